"""Contrastive losses: each embedding must pick out its positive among negatives.

All losses take raw projector outputs and L2-normalise them themselves (cosine similarity). Each loss
checks its inputs once, then runs its formula, written below in plain PyTorch, or, for the InfoNCE-shaped
ones on CUDA tensors, its fused Triton twin in ``kernels/infonce.py`` (``backend="auto" | "triton" |
"torch"``, chosen by :func:`sslcookbook.kernels.resolve_backend`). ``gather_distributed=True`` contrasts
against the embeddings of every rank with an autograd-correct all-gather.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import distributed

# Imports run one way, losses -> kernels: a kernel module holds only Triton code for checked inputs, and its
# reference is the formula here (the kernel tests import it from this file). If the kernels imported these
# formulas, one of the two modules would need a lazy import to break the cycle.
from ..kernels import infonce as fused
from ..kernels import resolve_backend
from ._checks import check_embeddings, check_labels, check_temperature, check_views, inspects_values


def info_nce(
    query: torch.Tensor,
    keys: torch.Tensor,
    temperature: float = 0.1,
    labels: torch.Tensor | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    r"""InfoNCE (van den Oord et al., 2018; the loss of CPC, MoCo and most contrastive methods).

    With L2-normalised query :math:`q_i` (N of them) and keys :math:`k_j` (M of them), the positive of
    query i being key :math:`\ell_i` (``labels``, default i, which needs M ≥ N):

    .. math:: \mathcal{L} = \frac{1}{N}\sum_i -\log
        \frac{\exp(q_i^\top k_{\ell_i}/\tau)}{\sum_{j=1}^{M}\exp(q_i^\top k_j/\tau)}

    Args:
        query: N×D raw embeddings (e.g. projector outputs); normalised here.
        keys: M×D raw embeddings; normalised here.
        temperature: τ > 0.
        labels: (N,) integer indices into keys, the positive of each query; default arange(N).
        backend: ``"auto"``, ``"triton"`` or ``"torch"``. ``"auto"`` takes the Triton kernel for CUDA
            tensors where it was measured faster than this formula (H100, forward + backward,
            benchmarks/results/infonce_nvidia-h100-80gb-hbm3.csv), counting rows as R = √(N·M): from
            R = 8,192 in bf16 / fp16 (eager faster at ≤ 4,096, the kernel 1.7-9× faster at ≥ 16,384),
            and in fp32 (TF32 off; the kernel 0.12-0.62× of eager) only above R = 65,536, where the
            logits no longer fit a GPU. Otherwise, and on the CPU, this formula
            (:func:`sslcookbook.kernels.infonce.auto_backend`).
    Returns:
        the scalar mean over queries, fp32 (fp64 for fp64 inputs on the torch backend).
    """
    check_embeddings(query=query, keys=keys)
    temperature = check_temperature(temperature)
    labels = check_labels(labels, query.shape[0], keys.shape[0], query.device)
    rows = fused.logits_rows(query.shape[0], keys.shape[0])
    if resolve_backend(backend, (query, keys), fused, rows) == "triton":
        return fused.info_nce(query, keys, temperature, labels)
    return info_nce_reference(query, keys, temperature, labels)


def info_nce_reference(
    query: torch.Tensor, keys: torch.Tensor, temperature: float = 0.1, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`info_nce` in plain PyTorch on checked inputs: the N×M logits, then a cross-entropy.

    The logits are computed in the input dtype (tensor cores for 16-bit inputs, as an eager training
    step would) and the cross-entropy in fp32 (fp64 for fp64 inputs).
    """
    qn, kn = _normalize(query), _normalize(keys)
    logits = (qn @ kn.T).to(_at_least_fp32(qn.dtype)) / temperature
    if labels is None:
        labels = torch.arange(query.shape[0], device=query.device)
    return F.cross_entropy(logits, labels)


def info_nce_lse_reference(
    q: torch.Tensor, k: torch.Tensor, temperature: float, mask_self: bool = False
) -> torch.Tensor:
    r"""Per-row :math:`\mathrm{lse}_i = \log\sum_j e^{q_i\cdot k_j/\tau}` of given (normalised) q, k.

    With ``mask_self`` the pair j = i is left out (q is then the first rows of k). fp32 (fp64 for fp64
    inputs), shape (N,). The denominator of the InfoNCE-shaped losses that add their own positive term.
    """
    logits = (q @ k.T).to(_at_least_fp32(q.dtype)) / temperature
    if mask_self:
        logits.diagonal().fill_(float("-inf"))
    return torch.logsumexp(logits, dim=1)


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
        backend: ``"auto"``, ``"triton"`` or ``"torch"``. ``"auto"`` takes the Triton kernel for CUDA
            tensors where it was measured faster than :func:`nt_xent_reference` (H100, forward +
            backward, benchmarks/results/infonce_nvidia-h100-80gb-hbm3.csv): from R = 2N = 8,192 rows
            in bf16 / fp16 (batch N ≥ 4,096; eager faster at R ≤ 4,096, the kernel 1.7-9× faster at
            R ≥ 16,384), and in fp32 (TF32 off; the kernel 0.12-0.62× of eager) only above R = 65,536,
            where eager's R×R logits no longer fit a GPU. Otherwise, and on the CPU, the formula
            (:func:`sslcookbook.kernels.infonce.auto_backend`). With ``gather_distributed`` R counts
            the logits against all ranks, √(2N · 2NW).
        gather_distributed: contrast this rank's 2N rows against the views of all ranks, so that W
            ranks of N samples compute the loss of one batch of W·N.
    Returns:
        the scalar mean over this rank's 2N rows, fp32 (fp64 for fp64 inputs on the torch backend).
    """
    check_views(z1=z1, z2=z2)
    temperature = check_temperature(temperature)
    gathered = gather_distributed and distributed.is_distributed()
    world = distributed.world_size() if gathered else 1
    rows = fused.logits_rows(2 * z1.shape[0], 2 * z1.shape[0] * world)
    on_triton = resolve_backend(backend, (z1, z2), fused, rows) == "triton"
    if gathered:
        return _nt_xent_gathered(z1, z2, temperature, on_triton)
    if on_triton:
        return fused.nt_xent(z1, z2, temperature)
    return nt_xent_reference(z1, z2, temperature)


def nt_xent_reference(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """:func:`nt_xent` in plain PyTorch on checked inputs: the 2N×2N logits, then a cross-entropy."""
    n = z1.shape[0]
    z = _normalize(torch.cat([z1, z2]))
    logits = (z @ z.T).to(_at_least_fp32(z.dtype)) / temperature
    logits.diagonal().fill_(float("-inf"))  # a sample is not its own negative
    targets = torch.arange(2 * n, device=z.device).roll(n)  # row i's positive is i + N, row i + N's is i
    return F.cross_entropy(logits, targets)


def _nt_xent_gathered(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float, on_triton: bool
) -> torch.Tensor:
    """NT-Xent of this rank's 2N rows against the 2N·W rows of all W ranks."""
    # Keys ordered [this rank's 2N rows; everybody else's], so row i's self-pair sits on the diagonal
    # and the self-mask applies unchanged.
    n, rank, world = z1.shape[0], distributed.rank(), distributed.world_size()
    local = torch.cat([F.normalize(z1, dim=1), F.normalize(z2, dim=1)])
    all1 = distributed.gather(local[:n]).view(world, n, -1)
    all2 = distributed.gather(local[n:]).view(world, n, -1)
    others = [t for r in range(world) if r != rank for t in (all1[r], all2[r])]
    keys = torch.cat([local, *others])
    lse = (fused.info_nce_lse if on_triton else info_nce_lse_reference)(local, keys, temperature, True)
    positives = (local * local.roll(n, dims=0)).sum(1).to(lse.dtype) / temperature
    return (lse - positives).mean()


def _normalize(x: torch.Tensor) -> torch.Tensor:
    """Row-wise L2 normalisation computed in (at least) fp32, returned in the input dtype."""
    return F.normalize(x.to(_at_least_fp32(x.dtype)), dim=1).to(x.dtype)


def _at_least_fp32(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


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
    temperature = check_temperature(temperature)
    if labels.shape != (z.shape[0],):
        raise ValueError(f"labels must have shape ({z.shape[0]},) to match z, got {tuple(labels.shape)}")
    if inspects_values(labels) and (labels < 0).any():
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
    if inspects_values(has_positive) and not has_positive.any():
        raise ValueError("no anchor has a positive: every label appears once; use at least two views")
    # Masked, not indexed, mean over the anchors with a positive: boolean indexing waits for the device.
    mean_log_prob = log_prob.masked_fill(~positive, 0).sum(1) / counts.clamp(min=1)
    return -(mean_log_prob * has_positive).sum() / has_positive.sum()


def dcl(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    r"""Decoupled contrastive loss (Yeh et al., 2022): NT-Xent without the positive in the denominator.

    .. math:: \ell = \frac{1}{2N}\sum_{i=1}^{2N}\Big[-s_{i,p(i)}/\tau
        + \log\sum_{j \ne i,\, j \ne p(i)}\exp(s_{ij}/\tau)\Big]

    Removing the positive decouples the gradients of the positive and negative terms, which makes the
    loss far less sensitive to the batch size.
    """
    check_views(z1=z1, z2=z2)
    temperature = check_temperature(temperature)
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
    check_views(z=z, p=p)
    temperature = check_temperature(temperature)
    neighbours = nearest_neighbour(z, support).to(p.dtype)
    rows = fused.logits_rows(p.shape[0], p.shape[0])
    if resolve_backend(backend, (neighbours, p), fused, rows) == "triton":
        return fused.info_nce(neighbours, p, temperature)
    return info_nce_reference(neighbours, p, temperature)
