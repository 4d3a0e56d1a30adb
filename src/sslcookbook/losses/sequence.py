r"""Self-supervised losses on sequences: predict the future, contrast timestamps, reconstruct patches.

- :func:`cpc_loss` (van den Oord et al., 2018, CPC): InfoNCE over k future steps, negatives from the
  batch, written on :func:`~sslcookbook.losses.contrastive.info_nce`.
- :func:`ts2vec_loss` (Yue et al., 2022, TS2Vec): hierarchical contrast of two views' timestamps, against
  the other timestamps of the series (temporal) and the same timestamp of the other series (instance), at
  every scale of a max-pool pyramid; :func:`instance_contrast` and :func:`temporal_contrast` are its parts.
- :func:`patchify_series` and :func:`masked_patch_loss` (Nie et al., 2023, PatchTST's self-supervised
  mode): MSE over the hidden patches, :func:`~sslcookbook.losses.masked.mae_loss` on patch rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import check_temperature, check_tensor
from .contrastive import info_nce
from .masked import mae_loss


def cpc_loss(
    predictions: torch.Tensor, targets: torch.Tensor, temperature: float = 0.1, backend: str = "auto"
) -> torch.Tensor:
    r"""CPC's InfoNCE over K future steps (van den Oord, Li, Vinyals, 2018, "Representation Learning with
    Contrastive Predictive Coding", arXiv:1807.03748, eq. 4).

    The context :math:`c_t` predicts the code k steps ahead, :math:`p^k_t = W_k c_t`
    (``predictions[:, :, k-1]``); its positive is the true code :math:`z_{t+k}` of the same series and its
    negatives are the codes :math:`z_{b', t'+k}` of every other (series, step) pair of the batch at offset
    k. With cosine scores :math:`s(p, z) = \hat p^\top \hat z / \tau` (the bilinear score of the paper,
    normalised as in :func:`info_nce`) and :math:`P_k` the B·(T−k) pairs with a future k steps ahead:

    .. math:: \mathcal{L} = \frac{1}{K}\sum_{k=1}^{K} \frac{1}{|P_k|}\sum_{(b,t) \in P_k} -\log
        \frac{\exp s(p^k_{b,t}, z_{b,t+k})}{\sum_{(b',t') \in P_k} \exp s(p^k_{b,t}, z_{b',t'+k})}

    Args:
        predictions: B×T×K×D, the prediction of each step's context for 1..K steps ahead.
        targets: B×T×D, the codes z_t (the encoder's outputs; not detached: CPC trains through both).
        temperature: τ > 0.
        backend: passed to :func:`info_nce`.
    Returns:
        the scalar mean over k, fp32 (fp64 for fp64 inputs).
    """
    check_tensor("predictions", predictions, 4, "B×T×K×D (one prediction per step and offset)")
    check_tensor("targets", targets, 3, "B×T×D (one code per step)")
    b, t, k_max, d = predictions.shape
    if targets.shape != (b, t, d):
        raise ValueError(
            f"targets must be B×T×D = {(b, t, d)} to match predictions {tuple(predictions.shape)}, "
            f"got {tuple(targets.shape)}"
        )
    if k_max >= t:
        raise ValueError(f"predicting {k_max} steps ahead needs more than {k_max} steps, got T = {t}")
    temperature = check_temperature(temperature)
    losses = []
    for k in range(1, k_max + 1):
        query = predictions[:, : t - k, k - 1].reshape(-1, d)
        keys = targets[:, k:].reshape(-1, d)
        losses.append(info_nce(query, keys, temperature, backend=backend))
    return torch.stack(losses).mean()


def _contrast(z: torch.Tensor, half: int) -> torch.Tensor:
    """Mean −log-softmax of each row's partner (row i ± ``half``) among the other rows, batched over the
    first axis: z is G×2h×D; scores are raw dot products (TS2Vec uses no normalisation, no temperature)."""
    sim = (z @ z.transpose(1, 2)).to(torch.promote_types(z.dtype, torch.float32))
    sim = sim.masked_fill(torch.eye(2 * half, dtype=torch.bool, device=z.device), float("-inf"))
    log_prob = sim.log_softmax(dim=-1)
    rows = torch.arange(2 * half, device=z.device)
    partner = (rows + half) % (2 * half)
    return -log_prob[:, rows, partner].mean()


def instance_contrast(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    r"""TS2Vec's instance-wise contrast: at each timestamp t, view 1 of series i must pick view 2 of
    series i among the 2B−1 other representations of that timestamp (and the other way round),

    .. math:: \ell^{inst}_{i,t} = -\log\frac{\exp(r_{i,t}\cdot r'_{i,t})}
        {\sum_{j=1}^{B}\big(\exp(r_{i,t}\cdot r'_{j,t}) + [i\ne j]\exp(r_{i,t}\cdot r_{j,t})\big)}

    averaged over t, i and both directions. z1, z2: B×T×D. 0 when B = 1 (no other series)."""
    if z1.shape[0] == 1:
        return z1.new_zeros(()).to(torch.promote_types(z1.dtype, torch.float32))
    z = torch.cat([z1, z2], dim=0).transpose(0, 1)  # T×2B×D
    return _contrast(z, z1.shape[0])


def temporal_contrast(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    r"""TS2Vec's temporal contrast: for series i, view 1 at timestamp t must pick view 2 at t among the
    2T−1 other timestamps of both views of that series,

    .. math:: \ell^{temp}_{i,t} = -\log\frac{\exp(r_{i,t}\cdot r'_{i,t})}
        {\sum_{t'=1}^{T}\big(\exp(r_{i,t}\cdot r'_{i,t'}) + [t\ne t']\exp(r_{i,t}\cdot r_{i,t'})\big)}

    averaged over i, t and both directions. z1, z2: B×T×D. 0 when T = 1."""
    if z1.shape[1] == 1:
        return z1.new_zeros(()).to(torch.promote_types(z1.dtype, torch.float32))
    return _contrast(torch.cat([z1, z2], dim=1), z1.shape[1])


def ts2vec_loss(
    z1: torch.Tensor, z2: torch.Tensor, alpha: float = 0.5, temporal_unit: int = 0
) -> torch.Tensor:
    r"""TS2Vec's hierarchical contrastive loss (Yue et al., 2022, "TS2Vec: Towards Universal
    Representation of Time Series", AAAI, Algorithm 1).

    The two views' representations of their overlap, :math:`r^{(0)} = z_1`, :math:`r'^{(0)} = z_2`, are
    max-pooled over time by 2 repeatedly, :math:`r^{(s+1)} = \mathrm{maxpool}_2(r^{(s)})`, until one
    timestamp is left; at every scale s both contrasts apply (the temporal one only from scale
    ``temporal_unit`` on, and only while more than one timestamp is left):

    .. math:: \mathcal{L} = \frac{1}{S}\sum_{s=0}^{S-1}\Big[\alpha\,\ell^{inst}(r^{(s)}, r'^{(s)})
        + (1-\alpha)\,\ell^{temp}(r^{(s)}, r'^{(s)})\Big]

    with S the number of scales (the last one, T = 1, has the instance term only).

    Args:
        z1, z2: B×T×D per-timestamp representations of the two views' common segment.
        alpha: the weight α of the instance term (0.5 in the paper).
        temporal_unit: the first scale with a temporal term (0 in the paper's defaults).
    """
    check_tensor("z1", z1, 3, "B×T×D (one representation per timestamp)")
    check_tensor("z2", z2, 3, "B×T×D (one representation per timestamp)")
    if z1.shape != z2.shape:
        raise ValueError(f"z1 {tuple(z1.shape)} and z2 {tuple(z2.shape)} must cover the same timestamps")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    loss, scales = z1.new_zeros(()).to(torch.promote_types(z1.dtype, torch.float32)), 0
    while z1.shape[1] > 1:
        loss = loss + alpha * instance_contrast(z1, z2)
        if scales >= temporal_unit:
            loss = loss + (1 - alpha) * temporal_contrast(z1, z2)
        scales += 1
        z1 = F.max_pool1d(z1.transpose(1, 2), kernel_size=2).transpose(1, 2)
        z2 = F.max_pool1d(z2.transpose(1, 2), kernel_size=2).transpose(1, 2)
    loss = loss + alpha * instance_contrast(z1, z2)
    return loss / (scales + 1)


def patchify_series(series: torch.Tensor, patch_len: int) -> torch.Tensor:
    """Series B×C×L → channel-independent patch rows (B·C)×(L/P)×P (row b·C + c is channel c of series b).
    L must be a multiple of P (the patch transformer pads; pass its ``patches`` output instead)."""
    check_tensor("series", series, 3, "B×C×L")
    b, c, length = series.shape
    if patch_len < 1 or length % patch_len:
        raise ValueError(f"series of {length} steps cannot be cut into whole patches of {patch_len} steps")
    return series.reshape(b * c, length // patch_len, patch_len)


def masked_patch_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r"""PatchTST's self-supervised loss (Nie et al., 2023, "A Time Series is Worth 64 Words", ICLR, §3.3):
    the mean squared error over the hidden patches of the (instance-normalised) series,

    .. math:: \mathcal{L} = \frac{\sum_{r,n} m_{rn}\,\frac{1}{P}\lVert \hat x_{rn} - x_{rn}\rVert^2}
        {\sum_{r,n} m_{rn}}

    over patch rows r (one per channel and series) and patches n: MAE's loss
    (:func:`~sslcookbook.losses.masked.mae_loss`) on time-series patches, without per-patch target
    normalisation (PatchTST normalises each channel as a whole instead).

    Args:
        pred, target: (B·C)×N×P predicted and true patches; mask: (B·C)×N, 1 where a patch was hidden.
    """
    return mae_loss(pred, target, mask)


__all__ = [
    "cpc_loss",
    "instance_contrast",
    "masked_patch_loss",
    "patchify_series",
    "temporal_contrast",
    "ts2vec_loss",
]
