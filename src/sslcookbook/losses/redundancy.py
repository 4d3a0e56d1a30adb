r"""Redundancy-reduction losses: make the two views agree while every embedding dimension carries its own
information, with no negatives and no momentum encoder.

- :func:`barlow_twins_loss` (Zbontar et al., 2021): the cross-correlation of the two views → identity.
- :func:`vicreg_loss` (Bardes et al., 2022): invariance + variance (a hinge on each dimension's standard
  deviation) + covariance (its off-diagonal entries → 0), each term on its own.
- :func:`wmse_loss` with :func:`whiten` (Ermolov et al., 2021): whiten each sub-batch explicitly, then
  pull the whitened views together; what the other two only regularise towards is here a constraint.

Under ``torch.distributed`` (``gather_distributed=True``) the batch statistics are those of the global
batch: the embeddings are all-gathered with :func:`sslcookbook.distributed.gather`, whose backward sends
every rank the gradient of its own rows. Every rank then computes the same global loss; with DDP's
averaging this is exactly the gradient of one process on the whole batch (the official Barlow Twins
code all-reduces C in place with a raw ``dist.all_reduce``, which autograd does not see: its DDP
gradients are 1/world_size too small). Gathering N×D rows costs less than all-reducing the D×D matrix
whenever the global batch is smaller than D.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .. import distributed
from ._checks import check_count, check_embeddings, check_views, check_weight

BATCH_NORM_EPS = 1e-5  # what BatchNorm1d adds to the variance: the official code's affine-free BN
VICREG_STD_EPS = 1e-4


def barlow_twins_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    off_diagonal_weight: float = 0.0051,
    gather_distributed: bool = True,
) -> torch.Tensor:
    r"""Barlow Twins (Zbontar et al., 2021, "Barlow Twins: Self-Supervised Learning via Redundancy
    Reduction", arXiv:2103.03230).

    Each dimension is standardised over the batch as BatchNorm does in training (mean 0, biased
    variance, ε = 1e-5), :math:`\tilde z = (z - \mu) / \sqrt{\sigma^2 + \epsilon}`; then

    .. math::  C = \frac{1}{N}\,\tilde z_1^\top \tilde z_2 \in \mathbb{R}^{D\times D}, \qquad
               \mathcal{L} = \sum_i (1 - C_{ii})^2 + \lambda \sum_{i}\sum_{j \ne i} C_{ij}^2

    The diagonal makes the views agree (invariance), the off-diagonal decorrelates the dimensions
    (redundancy reduction). In PyTorch: ``c = bn(z1).T @ bn(z2) / n``,
    ``(1 - c.diagonal()).pow(2).sum() + lam * (c.pow(2).sum() - c.diagonal().pow(2).sum())``.

    Args:
        z1, z2: N×D projector outputs of the two views (N ≥ 2 over the global batch).
        off_diagonal_weight: λ ≥ 0 (0.0051, the official code's default for its 8192-D projector).
        gather_distributed: statistics and C over the global batch under ``torch.distributed``.
    Returns:
        the scalar loss, fp32 (fp64 for fp64 inputs); every rank returns the same global value.
    """
    check_views(z1=z1, z2=z2)
    off_diagonal_weight = check_weight(off_diagonal_weight, "off_diagonal_weight")
    z1, z2 = _global(z1, z2, gather=gather_distributed)
    _check_batch(z1.shape[0], "Barlow Twins standardises each dimension over the batch")
    return barlow_twins_reference(z1, z2, off_diagonal_weight)


def barlow_twins_reference(z1: torch.Tensor, z2: torch.Tensor, off_diagonal_weight: float) -> torch.Tensor:
    """:func:`barlow_twins_loss` in plain PyTorch on checked (already gathered) inputs."""
    with torch.autocast(z1.device.type, enabled=False):
        z1, z2 = _at_least_fp32(z1), _at_least_fp32(z2)
        c = batch_standardise(z1).T @ batch_standardise(z2) / z1.shape[0]
        on_diagonal = (1 - c.diagonal()).pow(2).sum()
        off_diagonal = c.pow(2).sum() - c.diagonal().pow(2).sum()
        return on_diagonal + off_diagonal_weight * off_diagonal


def batch_standardise(z: torch.Tensor, eps: float = BATCH_NORM_EPS) -> torch.Tensor:
    r"""BatchNorm without affine, in training mode: :math:`(z - \mu_B) / \sqrt{\sigma_B^2 + \epsilon}`,
    with the biased variance over the rows."""
    centred = z - z.mean(dim=0)
    return centred / (centred.pow(2).mean(dim=0) + eps).sqrt()


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    invariance_weight: float = 25.0,
    variance_weight: float = 25.0,
    covariance_weight: float = 1.0,
    gather_distributed: bool = True,
) -> torch.Tensor:
    r"""VICReg (Bardes, Ponce & LeCun, 2022, "VICReg: Variance-Invariance-Covariance Regularization for
    Self-Supervised Learning", arXiv:2105.04906), in the form of the official code.

    .. math::  \mathcal{L} = \lambda\,s(Z_1, Z_2) + \mu\,[v(Z_1) + v(Z_2)] + \nu\,[c(Z_1) + c(Z_2)]

    .. math::  s = \frac{1}{ND}\lVert Z_1 - Z_2\rVert_F^2, \quad
               v(Z) = \frac{1}{2D}\sum_j \max\big(0,\ 1 - \sqrt{\mathrm{Var}(Z_{:,j}) + 10^{-4}}\big), \quad
               c(Z) = \frac{1}{D}\sum_{i \ne j} \mathrm{Cov}(Z)_{ij}^2

    with the unbiased variance and :math:`\mathrm{Cov}(Z) = \bar Z^\top \bar Z / (N - 1)`, :math:`\bar Z`
    centred. The 1/2 in v is the official code's (not in the paper's equation; solo-learn drops it,
    which doubles μ). The invariance term is a mean over the local batch; variance and covariance are
    over the global batch when gathering (the official FullGatherLayer). See :func:`vicreg_terms`.

    Args:
        z1, z2: N×D projector outputs of the two views (N ≥ 2 over the global batch).
        invariance_weight, variance_weight, covariance_weight: λ, μ, ν ≥ 0 (25, 25, 1).
        gather_distributed: variance and covariance over the global batch under ``torch.distributed``.
    Returns:
        the scalar loss, fp32 (fp64 for fp64 inputs).
    """
    check_views(z1=z1, z2=z2)
    weights = [
        check_weight(w, name)
        for w, name in (
            (invariance_weight, "invariance_weight"),
            (variance_weight, "variance_weight"),
            (covariance_weight, "covariance_weight"),
        )
    ]
    terms = _vicreg_terms(z1, z2, gather_distributed)
    return sum(w * t for w, t in zip(weights, terms))


def vicreg_terms(
    z1: torch.Tensor, z2: torch.Tensor, gather_distributed: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """VICReg's three unweighted terms (invariance s, variance v(Z1) + v(Z2), covariance c(Z1) + c(Z2)),
    as in :func:`vicreg_loss`: to log them, or to weigh them yourself."""
    check_views(z1=z1, z2=z2)
    return _vicreg_terms(z1, z2, gather_distributed)


def _vicreg_terms(z1, z2, gather_distributed: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    with torch.autocast(z1.device.type, enabled=False):
        z1, z2 = _at_least_fp32(z1), _at_least_fp32(z2)
        invariance = F.mse_loss(z1, z2)  # the local batch: DDP's average makes it the global mean
        g1, g2 = _global(z1, z2, gather=gather_distributed)
        _check_batch(g1.shape[0], "VICReg's variance and covariance use the unbiased estimate")
        variance = _variance_term(g1) + _variance_term(g2)
        covariance = _covariance_term(g1) + _covariance_term(g2)
    return invariance, variance, covariance


def _variance_term(z: torch.Tensor) -> torch.Tensor:
    std = (z.var(dim=0) + VICREG_STD_EPS).sqrt()  # unbiased, as torch.var
    return F.relu(1 - std).mean() / 2


def _covariance_term(z: torch.Tensor) -> torch.Tensor:
    n, d = z.shape
    centred = z - z.mean(dim=0)
    cov = centred.T @ centred / (n - 1)
    return (cov.pow(2).sum() - cov.diagonal().pow(2).sum()) / d


def whiten(z: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    r"""Batch whitening by Cholesky (W-MSE's whitening, Ermolov et al., 2021).

    .. math::  \Sigma = \frac{1}{N-1}\bar z^\top \bar z + \epsilon I = L L^\top, \qquad
               w = \bar z\, L^{-\top}

    so that the whitened rows have mean 0 and covariance exactly I. Computed in fp32 (fp64 for fp64
    inputs) with autocast off: in 16 bits the factorisation of a near-singular Σ fails.

    Args:
        z: N×D embeddings; N > D unless ``eps`` > 0 (the covariance of N rows has rank ≤ N − 1).
        eps: added to Σ's diagonal (0, the paper's choice: a failure is then a sign of a collapsed
            or too-wide embedding).
    Returns:
        the N×D whitened embeddings, differentiable through the mean, the covariance and L.

    Raises ValueError when Σ is singular (not positive definite), saying what to change.
    """
    check_embeddings(z=z)
    eps = check_weight(eps, "eps")
    return _whiten(z, eps)


def _whiten(z: torch.Tensor, eps: float) -> torch.Tensor:
    n, d = z.shape
    with torch.autocast(z.device.type, enabled=False):
        z = _at_least_fp32(z)
        centred = z - z.mean(dim=0)
        cov = centred.T @ centred / max(n - 1, 1)
        if eps:
            cov = cov + eps * torch.eye(d, dtype=z.dtype, device=z.device)
        factor, info = torch.linalg.cholesky_ex(cov)
        # Singular in floating point too: a pivot L_ii² that is a rounding error of the variances means a
        # dimension that the others explain entirely; whitening would blow it up by ~1/√eps.
        pivots = factor.diagonal().pow(2)
        tolerance = torch.finfo(z.dtype).eps * d * cov.diagonal().max()
        if bool((info != 0) | ~(pivots.min() > tolerance)):  # one host sync per whitened block
            raise ValueError(
                f"the covariance of this {n}×{d} block is singular (Cholesky failed): "
                + (
                    f"{n} rows cannot span {d} dimensions; use sub-batches of more than {d} rows "
                    f"(w_size > {d}) or a smaller embedding, or pass eps > 0 (e.g. 1e-4)"
                    if n <= d and not eps
                    else "the embeddings have collapsed onto fewer dimensions: lower the learning rate, "
                    "use a larger sub-batch (w_size), or pass eps > 0 (e.g. 1e-4)"
                )
            )
        # w = centred @ L^{-T}: solve L wᵀ = centredᵀ instead of inverting L
        return torch.linalg.solve_triangular(factor, centred.T, upper=False).T


def wmse_loss(views: Sequence[torch.Tensor], w_size: int = 128, eps: float = 0.0) -> torch.Tensor:
    r"""W-MSE (Ermolov, Siarohin, Sangineto & Sebe, 2021, "Whitening for Self-Supervised Representation
    Learning", arXiv:2007.06346).

    The batch of each view is cut into sub-batches of ``w_size`` consecutive rows (the batch is
    already in random order); each sub-batch is whitened on its own (:func:`whiten`), and the whitened
    views of each image are pulled together with the normalised MSE over every pair of views:

    .. math::  \mathcal{L} = \frac{1}{\binom{V}{2}}\sum_{a < b}\ \frac{1}{N}\sum_i
               \Big(2 - 2\cos(w_{a,i}, w_{b,i})\Big)

    Whitening makes collapse impossible by construction (the whitened rows have covariance I), so
    nothing else is needed. For more sub-batch draws per step (the paper's ``w_iter``), permute the
    rows of every view alike and call again.

    Args:
        views: V ≥ 2 tensors N×D, the embeddings of V views of the same N images (the paper: 2 or 4).
        w_size: rows per whitened sub-batch (128 for 64-D embeddings on CIFAR-10); N must be a
            multiple of it, and w_size > D unless ``eps`` > 0.
        eps: added to each sub-batch's covariance before the Cholesky factorisation.
    Returns:
        the scalar loss, fp32 (fp64 for fp64 inputs), in [0, 4].
    """
    if isinstance(views, torch.Tensor) or not isinstance(views, Sequence):
        raise TypeError(
            f"views must be a list of N×D tensors, one per view, got {type(views).__name__}: "
            "pass [z1, z2] (or z.chunk(V))"
        )
    if len(views) < 2:
        raise ValueError(f"W-MSE needs at least 2 views of each image, got {len(views)}")
    check_views(**{f"views[{i}]": v for i, v in enumerate(views)})
    w_size = check_count(w_size, "w_size", minimum=2)
    eps = check_weight(eps, "eps")
    n, d = views[0].shape
    if n % w_size:
        raise ValueError(
            f"the batch of {n} rows is not a multiple of w_size={w_size}: choose a batch size that is "
            f"(e.g. {max(n // w_size, 1) * w_size}) or a w_size that divides {n}"
        )
    if w_size <= d and not eps:
        raise ValueError(
            f"w_size={w_size} rows cannot be whitened in {d} dimensions (their covariance has rank at most "
            f"{w_size - 1}): use w_size > {d} (the paper: 128 for 64-D embeddings), or pass eps > 0"
        )
    whitened = [torch.cat([_whiten(block, eps) for block in v.split(w_size)]) for v in views]
    pairs = [(a, b) for a in range(len(views)) for b in range(a + 1, len(views))]
    return sum(_normalised_mse(whitened[a], whitened[b]) for a, b in pairs) / len(pairs)


def _normalised_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """2 − 2·cos, the squared distance of the L2-normalised rows, averaged over rows."""
    return (2 - 2 * F.cosine_similarity(a, b, dim=1)).mean()


def _global(z1: torch.Tensor, z2: torch.Tensor, gather: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch of both views when gathering under torch.distributed, else the inputs."""
    if gather and distributed.is_distributed():
        return distributed.gather(z1), distributed.gather(z2)
    return z1, z2


def _check_batch(n: int, why: str) -> None:
    if n < 2:
        raise ValueError(f"the batch has {n} row: {why}, which needs at least 2; use a larger batch")


def _at_least_fp32(z: torch.Tensor) -> torch.Tensor:
    return z.to(torch.promote_types(z.dtype, torch.float32))
