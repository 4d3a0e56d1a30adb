"""Statistics of a representation: effective rank, alignment / uniformity, and a collapse monitor."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_features


def rankme(features: Tensor, eps: float = 1e-7) -> float:
    """Effective rank exp(−Σ p_k log p_k), p_k = σ_k / ‖σ‖₁ + ε (Garrido et al. 2023, RankMe).

    σ are the singular values of the N×D feature matrix; the result lies in [1, min(N, D)].
    """
    features = check_features(features)
    sigma = torch.linalg.svdvals(features.double())
    total = sigma.sum()
    if total <= 0:
        return 1.0  # all-zero features: fully collapsed
    p = sigma / total + eps
    value = math.exp(-(p * p.log()).sum().item())
    return float(min(max(value, 1.0), min(features.shape)))


def alignment(z1: Tensor, z2: Tensor, alpha: float = 2) -> float:
    """E ‖f(x) − f(y)‖₂^α over positive pairs of L2-normalised features (Wang & Isola 2020); 0 is best."""
    z1 = check_features(z1, "z1")
    z2 = check_features(z2, "z2")
    if z1.shape != z2.shape:
        raise ValueError(
            f"z1 and z2 must have the same shape (pairs of views), got {tuple(z1.shape)} "
            f"and {tuple(z2.shape)}"
        )
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    z1 = F.normalize(z1.float(), dim=1)
    z2 = F.normalize(z2.float().to(z1.device), dim=1)
    return (z1 - z2).norm(dim=1).pow(alpha).mean().item()


def uniformity(z: Tensor, t: float = 2, batch_size: int = 1024) -> float:
    """log E exp(−t ‖f(x) − f(y)‖₂²) over distinct pairs of L2-normalised features (Wang & Isola 2020).

    ≤ 0; 0 (the maximum) for fully collapsed features, lower for features spread on the sphere.
    Computed in row chunks, so N×N distances are never held at once.
    """
    z = check_features(z, "z")
    n = z.shape[0]
    if n < 2:
        raise ValueError("uniformity needs at least 2 feature vectors")
    if t <= 0:
        raise ValueError(f"t must be > 0, got {t}")
    z = F.normalize(z.double() if z.device.type == "cpu" else z.float(), dim=1)
    partial = []
    for start in range(0, n, batch_size):
        rows = z[start : start + batch_size]
        sq_dist = (2 - 2 * rows @ z.T).clamp_min(0)
        logits = -t * sq_dist
        diagonal = torch.arange(rows.shape[0], device=z.device)
        logits[diagonal, diagonal + start] = -math.inf  # a point is not paired with itself
        partial.append(logits.logsumexp(dim=1))
    return (torch.cat(partial).logsumexp(0) - math.log(n * (n - 1))).item()


def feature_std(z: Tensor) -> float:
    """Collapse monitor: mean over dims of the per-dim std (over the batch) of L2-normalised features.

    About 1/√D when the features spread over all D dims, → 0 when they collapse to one point
    (as used in SimSiam, Chen & He 2021).
    """
    z = check_features(z, "z")
    if z.shape[0] < 2:
        raise ValueError("feature_std needs at least 2 feature vectors")
    return F.normalize(z.float(), dim=1).std(dim=0).mean().item()
