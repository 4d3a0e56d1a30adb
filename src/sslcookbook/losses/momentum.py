r"""Momentum-contrast losses (MoCo v2 and v3) and the queue of past keys they (and NNCLR) use.

The keys come from a momentum encoder, an exponential moving average of the online one, and receive no
gradient; MoCo v2 contrasts each query with its own key and a queue of keys of earlier batches, MoCo v3
with the keys of the current (global) batch. Both are InfoNCE (:mod:`.contrastive`), run on the fused
kernel for CUDA tensors like the losses there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from ..kernels import infonce as fused
from ..kernels import resolve_backend
from ._checks import check_temperature, check_views
from .contrastive import info_nce_lse_reference, info_nce_reference


def moco_loss(
    q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.2, backend: str = "auto"
) -> torch.Tensor:
    r"""MoCo's InfoNCE with a queue of negatives (He et al., 2020; Chen et al., 2020 for v2).

    Query :math:`q_i` (online encoder) must pick its key :math:`k_i` (momentum encoder, no gradient)
    among the K queued keys of earlier batches (no gradient):

    .. math:: \mathcal{L} = \frac{1}{N}\sum_i -\log\frac{\exp(q_i^\top k_i/\tau)}
        {\exp(q_i^\top k_i/\tau) + \sum_{j=1}^{K}\exp(q_i^\top \mathrm{queue}_j/\tau)}

    Args:
        q, k: N×D raw embeddings of the two views (normalised here).
        queue: K×D L2-normalised keys, e.g. :attr:`MemoryQueue.queue`.
        temperature: τ > 0 (0.2 for MoCo v2).
        backend: ``"auto"``, ``"triton"`` or ``"torch"``, as for :func:`~.contrastive.info_nce`.
    """
    check_views(q=q, k=k)
    temperature = check_temperature(temperature)
    qn, kn = F.normalize(q, dim=1), F.normalize(k.detach(), dim=1)
    queue = queue.detach().to(qn.dtype)
    rows = fused.logits_rows(qn.shape[0], queue.shape[0])
    on_triton = resolve_backend(backend, (qn, queue), fused, rows) == "triton"
    # log Σ_j exp(q·queue_j/τ) (the kernel never builds the N×K logits), then the positive joins the
    # denominator exactly.
    lse_queue = (fused.info_nce_lse if on_triton else info_nce_lse_reference)(qn, queue, temperature)
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
    :math:`\mathcal{L} = 2\tau \cdot \mathrm{InfoNCE}(q, k; \tau)` (see :func:`~.contrastive.info_nce`).
    With ``gather_distributed`` the keys of every rank are the negatives, as in the paper.
    """
    check_views(q=q, k=k)
    temperature = check_temperature(temperature)
    keys, labels = k.detach(), None
    if gather_distributed and distributed.is_distributed():
        keys = distributed.gather(keys)
        labels = torch.arange(q.shape[0], device=q.device) + distributed.rank() * q.shape[0]
    if resolve_backend(backend, (q, keys), fused, fused.logits_rows(q.shape[0], keys.shape[0])) == "triton":
        return 2 * temperature * fused.info_nce(q, keys, temperature, labels)
    return 2 * temperature * info_nce_reference(q, keys, temperature, labels)


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
