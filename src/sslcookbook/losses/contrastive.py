"""Contrastive losses: each embedding must pick out its positive among negatives.

All losses take raw projector outputs and L2-normalise them themselves (cosine similarity). The
InfoNCE-shaped ones run on the fused Triton kernel (``kernels/infonce.py``) for CUDA tensors and on
the PyTorch reference otherwise (``backend="auto" | "triton" | "torch"``). ``gather_distributed=True``
contrasts against the embeddings of every rank with an autograd-correct all-gather.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from ..kernels import infonce as _kernel
from ._checks import check_embeddings


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def info_nce(
    query: torch.Tensor,
    keys: torch.Tensor,
    temperature: float = 0.1,
    labels: torch.Tensor | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    r"""InfoNCE (van den Oord et al., 2018; the loss of CPC, MoCo and most contrastive methods).

    With L2-normalised query :math:`q_i` (N of them) and keys :math:`k_j` (M ≥ N), the positive of
    query i being key :math:`\ell_i` (``labels``, default i):

    .. math:: \mathcal{L} = \frac{1}{N}\sum_i -\log
        \frac{\exp(q_i^\top k_{\ell_i}/\tau)}{\sum_{j=1}^{M}\exp(q_i^\top k_j/\tau)}

    Returns the fp32 scalar mean over queries.
    """
    check_embeddings(query=query)
    check_embeddings(keys=keys)
    _check_temperature(temperature)
    return _kernel.info_nce(query, keys, temperature=temperature, labels=labels, backend=backend)


def nt_xent(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float = 0.5,
    backend: str = "auto",
    gather_distributed: bool = False,
) -> torch.Tensor:
    r"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al., 2020).

    With :math:`z = [z_1; z_2]` the 2N L2-normalised embeddings, :math:`s_{ij} = z_i^\top z_j`, and
    :math:`p(i)` the other view of sample i (:math:`i \pm N`):

    .. math::
        \ell = \frac{1}{2N} \sum_{i=1}^{2N} -\log
        \frac{\exp(s_{i,p(i)}/\tau)}{\sum_{j \ne i} \exp(s_{ij}/\tau)}

    Args:
        z1, z2: N×D projections of the two views (raw: normalised here).
        temperature: τ > 0; SimCLR uses 0.5 on CIFAR-10 and 0.1 on ImageNet.
        backend: ``"auto"`` (Triton on CUDA), ``"triton"`` or ``"torch"``.
        gather_distributed: contrast this rank's 2N rows against the views of all ranks, so that W
            ranks of N samples compute the loss of one batch of W·N.
    Returns:
        the fp32 scalar mean over this rank's 2N rows.
    """
    check_embeddings(z1=z1, z2=z2)
    _check_temperature(temperature)
    if not (gather_distributed and distributed.is_distributed()):
        return _kernel.nt_xent(z1, z2, temperature=temperature, backend=backend)
    # Keys ordered [this rank's 2N rows; everybody else's], so row i's self-pair sits on the diagonal
    # and the kernel's self-mask applies unchanged.
    n, rank, world = z1.shape[0], distributed.rank(), distributed.world_size()
    local = torch.cat([F.normalize(z1, dim=1), F.normalize(z2, dim=1)])
    all1 = distributed.gather(local[:n]).view(world, n, -1)
    all2 = distributed.gather(local[n:]).view(world, n, -1)
    others = [t for r in range(world) if r != rank for t in (all1[r], all2[r])]
    keys = torch.cat([local, *others])
    lse = _kernel.info_nce_lse(local, keys, temperature, mask_self=True, backend=backend)
    positives = (local * local.roll(n, dims=0)).sum(1).to(lse.dtype) / temperature
    return (lse - positives).mean()


def supcon(
    z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1, gather_distributed: bool = False
) -> torch.Tensor:
    r"""Supervised contrastive loss :math:`\mathcal{L}^{sup}_{out}` (Khosla et al., 2020).

    Every other embedding with the same label is a positive. With :math:`P(i)` the positives of anchor
    i and :math:`A(i)` all embeddings but i:

    .. math:: \mathcal{L} = \frac{1}{|I|}\sum_{i \in I} \frac{-1}{|P(i)|}\sum_{p \in P(i)}
        \log\frac{\exp(z_i^\top z_p/\tau)}{\sum_{a \in A(i)}\exp(z_i^\top z_a/\tau)}

    Args:
        z: N×D embeddings of all views (e.g. ``torch.cat([z1, z2])``).
        labels: N class labels (repeat them for each view).
    Returns:
        the mean over anchors that have at least one positive.
    """
    check_embeddings(z=z)
    _check_temperature(temperature)
    if labels.shape != (z.shape[0],):
        raise ValueError(f"labels must have shape ({z.shape[0]},) to match z, got {tuple(labels.shape)}")
    if (labels < 0).any():
        raise ValueError("supcon needs real class labels (>= 0); the data set has no labels")
    zn = F.normalize(z.float() if z.dtype in (torch.float16, torch.bfloat16) else z, dim=1)
    keys, key_labels, offset = zn, labels, 0
    if gather_distributed and distributed.is_distributed():
        keys = distributed.gather(zn)
        key_labels = distributed.gather(labels)
        offset = distributed.rank() * z.shape[0]
    logits = zn @ keys.T / temperature
    self_mask = torch.zeros_like(logits, dtype=torch.bool)
    rows = torch.arange(z.shape[0], device=z.device)
    self_mask[rows, rows + offset] = True
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (labels[:, None] == key_labels[None, :]) & ~self_mask
    counts = positive.sum(1)
    has_positive = counts > 0
    if not has_positive.any():
        raise ValueError("no anchor has a positive: every label appears once; use at least two views")
    mean_log_prob = log_prob.masked_fill(~positive, 0).sum(1)[has_positive] / counts[has_positive]
    return -mean_log_prob.mean()


def dcl(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    r"""Decoupled contrastive loss (Yeh et al., 2022): NT-Xent without the positive in the denominator.

    .. math:: \ell = \frac{1}{2N}\sum_{i=1}^{2N}\Big[-s_{i,p(i)}/\tau
        + \log\sum_{j \ne i,\, j \ne p(i)}\exp(s_{ij}/\tau)\Big]

    Removing the positive decouples the gradients of the positive and negative terms, which makes the
    loss far less sensitive to the batch size.
    """
    check_embeddings(z1=z1, z2=z2)
    _check_temperature(temperature)
    n = z1.shape[0]
    if n < 2:
        raise ValueError("dcl needs a batch of at least 2: with one sample there is no negative")
    z = torch.cat([z1, z2])
    z = F.normalize(z.float() if z.dtype in (torch.float16, torch.bfloat16) else z, dim=1)
    logits = z @ z.T / temperature
    idx = torch.arange(2 * n, device=z.device)
    partner = (idx + n) % (2 * n)
    positives = logits[idx, partner]
    mask = torch.zeros_like(logits, dtype=torch.bool)
    mask[idx, idx] = True
    mask[idx, partner] = True
    negatives = torch.logsumexp(logits.masked_fill(mask, float("-inf")), dim=1)
    return (negatives - positives).mean()


class MemoryQueue(nn.Module):
    """A FIFO queue of L2-normalised embeddings (no gradient), as used by MoCo and NNCLR.

    ``push(z)`` adds the newest rows (all ranks' rows when ``gather_distributed``); ``queue`` holds
    ``size`` rows, initialised with random unit vectors.
    """

    def __init__(self, size: int, dim: int, gather_distributed: bool = False):
        super().__init__()
        if size < 1:
            raise ValueError(f"queue size must be >= 1, got {size}")
        self.gather_distributed = gather_distributed
        self.register_buffer("queue", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def push(self, z: torch.Tensor) -> None:
        z = F.normalize(z.detach().float(), dim=1)
        if self.gather_distributed:
            z = distributed.gather(z)
        size = self.queue.shape[0]
        z = z[-size:]
        idx = (self.pointer + torch.arange(z.shape[0], device=z.device)) % size
        self.queue[idx] = z.to(self.queue.dtype)
        self.pointer.copy_((self.pointer + z.shape[0]) % size)


@torch.no_grad()
def nearest_neighbour(z: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """For each row of ``z``, the row of ``support`` with the highest cosine similarity."""
    sims = F.normalize(z.float(), dim=1) @ F.normalize(support.float(), dim=1).T
    return support[sims.argmax(dim=1)]


def nnclr_loss(
    z: torch.Tensor, p: torch.Tensor, support: torch.Tensor, temperature: float = 0.1, backend: str = "auto"
) -> torch.Tensor:
    r"""NNCLR's loss (Dwibedi et al., 2021) for one direction: nearest neighbours as positives.

    The positive of sample i is the nearest neighbour :math:`\mathrm{NN}(z_i, Q)` of its projection in
    a support queue Q (no gradient), contrasted with the predictions :math:`p` of the other view:

    .. math:: \mathcal{L} = \frac{1}{N}\sum_i -\log
        \frac{\exp(\mathrm{NN}(z_i)^\top p_i/\tau)}{\sum_k \exp(\mathrm{NN}(z_i)^\top p_k/\tau)}

    Use it symmetrically: ``(nnclr_loss(z1, p2, Q) + nnclr_loss(z2, p1, Q)) / 2``.
    """
    check_embeddings(z=z, p=p)
    _check_temperature(temperature)
    neighbours = nearest_neighbour(z, support).to(p.dtype)
    return info_nce(neighbours, p, temperature=temperature, backend=backend)


def moco_loss(
    q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.2, backend: str = "auto"
) -> torch.Tensor:
    r"""MoCo's InfoNCE with a queue of negatives (He et al., 2020; Chen et al., 2020 for v2).

    Query :math:`q_i` (online encoder) must pick its key :math:`k_i` (momentum encoder, no gradient)
    among the K queued keys of earlier batches (no gradient):

    .. math:: \mathcal{L} = \frac{1}{N}\sum_i -\log\frac{\exp(q_i^\top k_i/\tau)}
        {\exp(q_i^\top k_i/\tau) + \sum_{j=1}^{K}\exp(q_i^\top \mathrm{queue}_j/\tau)}
    """
    check_embeddings(q=q, k=k)
    _check_temperature(temperature)
    qn, kn = F.normalize(q, dim=1), F.normalize(k.detach(), dim=1)
    # log Σ_j exp(q·queue_j/τ) on the fused kernel, then the positive joins the denominator exactly.
    lse_queue = _kernel.info_nce_lse(qn, queue.detach().to(qn.dtype), temperature, backend=backend)
    positive = (qn * kn).sum(1).to(lse_queue.dtype) / temperature
    return (torch.logaddexp(positive, lse_queue) - positive).mean()


def moco_v3_loss(
    q: torch.Tensor,
    k: torch.Tensor,
    temperature: float = 0.2,
    backend: str = "auto",
    gather_distributed: bool = False,
) -> torch.Tensor:
    r"""MoCo v3's in-batch contrastive loss (Chen, Xie & He, 2021), scaled by :math:`2\tau`.

    Queries from the online encoder + predictor, keys from the momentum encoder (no gradient); the other
    keys of the (global) batch are the negatives:
    :math:`\mathcal{L} = 2\tau \cdot \mathrm{InfoNCE}(q, k; \tau)`.
    """
    check_embeddings(q=q, k=k)
    _check_temperature(temperature)
    keys, labels = k.detach(), None
    if gather_distributed and distributed.is_distributed():
        keys = distributed.gather(keys)
        labels = torch.arange(q.shape[0], device=q.device) + distributed.rank() * q.shape[0]
    return 2 * temperature * info_nce(q, keys, temperature=temperature, labels=labels, backend=backend)
