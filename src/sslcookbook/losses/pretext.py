r"""Pretext-task losses: the tasks that came before contrastive learning.

- :func:`transformation_loss`: classify which transformation made the input (rotation prediction, Gidaris
  et al. 2018; jigsaw, Noroozi & Favaro 2016; relative patch position, Doersch et al. 2015).
- :func:`nonparametric_softmax_loss` and :func:`instance_nce_loss`: instance discrimination with a memory
  bank (Wu et al. 2018), every image its own class, scored against the bank's features; with the full
  softmax over the bank, or with NCE and sampled negatives.
- :func:`update_memory_bank` and :class:`MemoryBank`: the bank of one feature per training image and
  its momentum update.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from ._checks import check_embeddings, check_index_vector, check_temperature, check_tensor


def transformation_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    r"""Cross-entropy of predicting which of K transformations :math:`t_y` made the input.

    .. math:: \mathcal{L} = -\frac{1}{N}\sum_{i} \log \frac{\exp(s_{i, y_i})}{\sum_{k=1}^{K} \exp(s_{i,k})}

    with :math:`s_i = h(f(t_{y_i}(x_i)))` the head's scores for the transformed input. The loss of rotation
    prediction (K = 4 angles; Gidaris, Singh & Komodakis, ICLR 2018), jigsaw (K permutations of the
    tiles; Noroozi & Favaro, ECCV 2016) and relative patch position (K = 8 neighbours; Doersch, Gupta &
    Efros, ICCV 2015).

    Args:
        logits: N×K scores.
        targets: N integer indices of the transformation applied, in [0, K).
    """
    check_tensor("logits", logits, 2, "(batch × transformations)")
    check_index_vector("targets", targets, logits.shape[0], "transformation indices", "one per row of logits")
    return F.cross_entropy(logits, targets.long())


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """Scores against n slots at τ ≈ 0.1 need more than bf16's 8 bits of mantissa (autocast on a GPU)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _check_bank_inputs(features, bank, indices, temperature) -> float:
    check_embeddings(features=features, bank=bank.to(features.dtype))
    check_index_vector(
        "indices", indices, features.shape[0], "memory-bank slots", "one bank slot per feature row"
    )
    return check_temperature(temperature)


def nonparametric_softmax_loss(
    features: torch.Tensor, bank: torch.Tensor, indices: torch.Tensor, temperature: float = 0.07
) -> torch.Tensor:
    r"""Instance discrimination, the full non-parametric softmax over a memory bank (Wu et al. 2018, eq. 2).

    Image i is class i. Its feature :math:`f_i` (L2-normalised here) must pick its own slot
    :math:`v_i` of the bank of n normalised features (no gradient) among all n:

    .. math:: \mathcal{L} = -\frac{1}{N}\sum_i \log P(i \mid f_i), \qquad
        P(i \mid f) = \frac{\exp(v_i^\top f/\tau)}{\sum_{j=1}^{n}\exp(v_j^\top f/\tau)}

    Wu, Xiong, Yu & Lin, *Unsupervised Feature Learning via Non-Parametric Instance Discrimination*,
    CVPR 2018 (τ = 0.07).

    Args:
        features: N×D raw features of the batch (normalised here).
        bank: n×D memory bank (its rows L2-normalised).
        indices: N slots of the batch's images in the bank.
        temperature: τ > 0.
    """
    temperature = _check_bank_inputs(features, bank, indices, temperature)
    f = F.normalize(_at_least_fp32(features), dim=1)
    logits = f @ bank.detach().to(f.dtype).T / temperature
    return F.cross_entropy(logits, indices.long())


def instance_nce_loss(
    features: torch.Tensor,
    bank: torch.Tensor,
    indices: torch.Tensor,
    negatives: torch.Tensor,
    log_z: torch.Tensor | float,
    temperature: float = 0.07,
) -> torch.Tensor:
    r"""Instance discrimination by noise-contrastive estimation over a memory bank (Wu et al. 2018, eqs. 5–7).

    With :math:`P(i \mid f) = \exp(v_i^\top f/\tau)/Z` (a constant Z, estimated once), m noise samples
    from the uniform :math:`P_n = 1/n` and :math:`h(i, f) = P(i \mid f)/(P(i \mid f) + m P_n)`, the
    probability that slot i is the data rather than noise:

    .. math:: \mathcal{L} = -\frac{1}{N}\sum_i \Big[\log h(i, f_i)
        + \sum_{k=1}^{m} \log\big(1 - h(j_{ik}, f_i)\big)\Big]

    Wu et al. draw m = 4096 negatives and estimate :math:`Z \approx n\,\mathbb{E}_j[\exp(v_j^\top f/\tau)]`
    from the first batch (:func:`estimate_log_z`), then keep it fixed.

    Args:
        features: N×D raw features (normalised here).
        bank: n×D memory bank (L2-normalised rows).
        indices: N slots of the batch's images (the positives).
        negatives: N×m slots drawn uniformly from the bank (the noise samples).
        log_z: log Z, the normaliser.
        temperature: τ > 0.
    """
    temperature = _check_bank_inputs(features, bank, indices, temperature)
    if not isinstance(negatives, torch.Tensor) or negatives.dim() != 2 or negatives.shape[0] != len(indices):
        raise ValueError(f"negatives must be an N×m tensor of bank slots with N = {len(indices)}")
    n, m = bank.shape[0], negatives.shape[1]
    f = F.normalize(_at_least_fp32(features), dim=1)
    bank = bank.detach().to(f.dtype)
    slots = torch.cat([indices.long().unsqueeze(1), negatives.long()], dim=1)  # N×(1+m), positive first
    scores = torch.einsum("nd,nkd->nk", f, bank[slots]) / temperature
    log_p = scores - torch.as_tensor(log_z, dtype=f.dtype, device=f.device)
    log_noise = math.log(m / n)  # log(m · P_n)
    log_denominator = torch.logaddexp(log_p, torch.full_like(log_p, log_noise))
    log_h_data = log_p[:, 0] - log_denominator[:, 0]
    log_not_h_noise = log_noise - log_denominator[:, 1:]
    return -(log_h_data + log_not_h_noise.sum(1)).mean()


@torch.no_grad()
def estimate_log_z(features: torch.Tensor, bank: torch.Tensor, negatives: torch.Tensor, temperature: float):
    r"""log Z for :func:`instance_nce_loss`, from m noise slots per row:

    .. math:: Z = n \cdot \mathrm{mean}_{i,k} \exp(v_{j_{ik}}^\top f_i/\tau)
    """
    f = F.normalize(features.detach(), dim=1)
    scores = torch.einsum("nd,nkd->nk", f, bank.to(f.dtype)[negatives.long()]) / temperature
    return torch.logsumexp(scores.flatten(), 0) - math.log(scores.numel()) + math.log(bank.shape[0])


@torch.no_grad()
def update_memory_bank(
    bank: torch.Tensor, indices: torch.Tensor, features: torch.Tensor, momentum: float = 0.5
) -> None:
    r"""In place: :math:`v_i \leftarrow \mathrm{normalize}(m\,v_i + (1 - m)\,f_i)` for the batch's slots i.

    Wu et al. (2018) use m = 0.5. ``features`` are normalised first. A slot that appears twice in
    ``indices`` takes its last row.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    f = F.normalize(features.detach().to(bank.dtype), dim=1)
    idx = indices.long()
    bank[idx] = F.normalize(momentum * bank[idx] + (1 - momentum) * f, dim=1)


class MemoryBank(nn.Module):
    """One L2-normalised feature per training image (no gradient), as in Wu et al. (2018).

    The bank is empty until :meth:`resize` gives it one slot per image (random unit vectors), which
    ``fit`` does through the method before training; a state dict loads into a bank of any size, so a
    checkpoint restores the bank it saved. :meth:`update` writes the momentum update of
    :func:`update_memory_bank`; with ``gather_distributed`` every rank writes all ranks' rows, so the
    banks of a DDP run stay equal.
    """

    def __init__(self, dim: int, momentum: float = 0.5, gather_distributed: bool = True):
        super().__init__()
        if dim < 1:
            raise ValueError(f"the bank's feature dimension must be >= 1, got {dim}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"bank momentum must be in [0, 1], got {momentum}")
        self.momentum, self.gather_distributed = momentum, gather_distributed
        self.register_buffer("features", torch.zeros(0, dim))

    def __len__(self) -> int:
        return self.features.shape[0]

    @torch.no_grad()
    def resize(self, num_instances: int) -> None:
        """One slot per image, ``num_instances`` of them; a bank of that size already is kept as it is."""
        if num_instances < 1:
            raise ValueError(f"the bank needs at least one image, got num_instances={num_instances}")
        if len(self) == num_instances:
            return
        if len(self):
            raise ValueError(
                f"the memory bank holds {len(self)} images' features but the data set has {num_instances}: "
                "a bank belongs to one training set; build a new method to train on other data"
            )
        dim, device = self.features.shape[1], self.features.device
        self.features = F.normalize(torch.randn(num_instances, dim, device=device), dim=1)

    @torch.no_grad()
    def update(self, indices: torch.Tensor, features: torch.Tensor) -> None:
        """Momentum-update the slots ``indices`` with ``features`` (every rank's, under DDP)."""
        if not len(self):
            raise RuntimeError("the memory bank is empty: call resize(len(dataset)) first (fit does it)")
        indices, features = indices.detach(), features.detach()
        if self.gather_distributed:
            indices, features = distributed.gather(indices), distributed.gather(features.contiguous())
        update_memory_bank(self.features, indices, features, self.momentum)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        saved = state_dict.get(prefix + "features")
        if isinstance(saved, torch.Tensor) and saved.shape != self.features.shape:
            self.features = torch.empty_like(saved, device=self.features.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
