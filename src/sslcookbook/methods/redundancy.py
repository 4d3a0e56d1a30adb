"""Redundancy-reduction methods: two (or more) views agree, and the embedding's dimensions are kept apart.

Barlow Twins drives the cross-correlation of the views to the identity, VICReg keeps every dimension's
variance up and their covariances down, W-MSE whitens each sub-batch and pulls the whitened views
together. None has negatives, a momentum encoder or a predictor: the batch statistics prevent collapse.
"""

from __future__ import annotations

import torch
from torch import nn

from ..losses import barlow_twins_loss, batch_standardise, vicreg_terms, wmse_loss
from ..models import mlp
from .base import SSLMethod, TwoViewMethod, check_positive, check_views, feature_dim, two_views


class BarlowTwins(TwoViewMethod):
    r"""Barlow Twins (Zbontar, Jing, Misra, LeCun & Deny, 2021, arXiv:2103.03230).

    Backbone f and a wide projector g (Linear-BN-ReLU ×2 → Linear; 8192³ in the paper, 2048² in
    solo-learn's CIFAR config), then :func:`sslcookbook.losses.barlow_twins_loss` between the two
    views, times ``scale_loss`` (solo-learn's CIFAR 0.1; the official code dropped its 0.024). Each view
    goes through g in a batch of its own, as in the official code, so each has its own BatchNorm
    statistics (``view_forward`` does not apply: that is its "split" mode, always).

    Logged: ``on_diagonal`` (mean C_ii, → 1) and ``off_diagonal`` (mean |C_ij|, → 0) of the
    cross-correlation on this rank's batch.
    """

    def __init__(
        self,
        backbone: nn.Module,
        projector_hidden_dim: int = 2048,
        projector_dim: int = 2048,
        off_diagonal_weight: float = 0.0051,
        scale_loss: float = 1.0,
        gather_distributed: bool = True,
    ):
        check_positive(scale_loss=scale_loss)
        _check_weights(off_diagonal_weight=off_diagonal_weight)
        super().__init__(backbone, _projector(backbone, projector_hidden_dim, projector_dim))
        self.off_diagonal_weight, self.scale_loss = off_diagonal_weight, scale_loss
        self.gather_distributed = gather_distributed

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        v1, v2 = two_views(views, "BarlowTwins")
        z1, z2 = self.project(v1), self.project(v2)
        loss = barlow_twins_loss(z1, z2, self.off_diagonal_weight, self.gather_distributed)
        with torch.no_grad():
            c = _cross_correlation(z1, z2)
            d = c.shape[0]
            on = c.diagonal().mean()
            off = (c.abs().sum() - c.diagonal().abs().sum()) / max(d * (d - 1), 1)
        return {"loss": self.scale_loss * loss, "on_diagonal": on, "off_diagonal": off}


class VICReg(TwoViewMethod):
    r"""VICReg (Bardes, Ponce & LeCun, 2022, arXiv:2105.04906).

    Backbone f and an expander g (Linear-BN-ReLU ×2 → Linear; 8192³ in the paper, 2048² in solo-learn's
    CIFAR config), then :func:`sslcookbook.losses.vicreg_loss`: λ·invariance + μ·variance +
    ν·covariance (25, 25, 1). Each view goes through g in a batch of its own (the official code;
    ``view_forward`` does not apply: that is its "split" mode, always).
    ``variance_weight=0`` is the notebook's collapse ablation.

    Logged: the three unweighted terms ``invariance``, ``variance``, ``covariance``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        projector_hidden_dim: int = 2048,
        projector_dim: int = 2048,
        invariance_weight: float = 25.0,
        variance_weight: float = 25.0,
        covariance_weight: float = 1.0,
        gather_distributed: bool = True,
    ):
        _check_weights(
            invariance_weight=invariance_weight,
            variance_weight=variance_weight,
            covariance_weight=covariance_weight,
        )
        super().__init__(backbone, _projector(backbone, projector_hidden_dim, projector_dim))
        self.weights = (float(invariance_weight), float(variance_weight), float(covariance_weight))
        self.gather_distributed = gather_distributed

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        v1, v2 = two_views(views, "VICReg")
        terms = vicreg_terms(self.project(v1), self.project(v2), self.gather_distributed)
        loss = sum(w * t for w, t in zip(self.weights, terms))
        names = ("invariance", "variance", "covariance")
        return {"loss": loss, **{name: t.detach() for name, t in zip(names, terms)}}


class WMSE(SSLMethod):
    r"""W-MSE (Ermolov, Siarohin, Sangineto & Sebe, 2021, arXiv:2007.06346).

    Backbone f and projector g (Linear-BN-ReLU → Linear to a small embedding: 1024 → 64 on CIFAR-10),
    all V views in one batch, then :func:`sslcookbook.losses.wmse_loss`: each view's batch is cut into
    sub-batches of ``w_size`` rows, each whitened, and the whitened views pulled together (2 − 2·cos).
    ``w_iterations`` > 1 draws that many random sub-batch partitions per step (the paper's w_iter) and
    averages the losses. Under ``torch.distributed`` each rank whitens its own sub-batches (as the
    official code does).

    A batch smaller than ``w_size`` is whitened as one sub-batch. ``w_size`` must exceed
    ``projector_dim`` (a whitened sub-batch must span the embedding) unless ``eps`` > 0.
    """

    def __init__(
        self,
        backbone: nn.Module,
        projector_hidden_dim: int = 1024,
        projector_dim: int = 64,
        w_size: int = 128,
        w_iterations: int = 1,
        eps: float = 0.0,
    ):
        super().__init__()
        if w_size <= projector_dim and not eps:
            raise ValueError(
                f"w_size={w_size} must exceed projector_dim={projector_dim}: fewer rows than dimensions "
                "cannot be whitened (the paper: w_size 128 for a 64-D embedding); or pass eps > 0"
            )
        if w_iterations < 1:
            raise ValueError(f"w_iterations must be >= 1, got {w_iterations}")
        self.backbone = backbone
        self.projector = mlp(feature_dim(backbone), projector_hidden_dim, projector_dim)
        self.w_size, self.w_iterations, self.eps = w_size, w_iterations, eps

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        n = check_views(views, "WMSE", min_count=2)
        z = self.projector(self.backbone(torch.cat(views))).chunk(len(views))
        w_size = min(self.w_size, n)
        loss = wmse_loss(z, w_size, self.eps)
        for _ in range(self.w_iterations - 1):  # draws from torch's global generator (in the checkpoint)
            order = torch.randperm(n, device=z[0].device)
            loss = loss + wmse_loss([v[order] for v in z], w_size, self.eps)
        return {"loss": loss / self.w_iterations}


def _projector(backbone: nn.Module, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Barlow Twins' and VICReg's projector: Linear-BN-ReLU, Linear-BN-ReLU, Linear."""
    return mlp(feature_dim(backbone), hidden_dim, out_dim, num_layers=3)


def _check_weights(**weights: float) -> None:
    for name, w in weights.items():
        if not w >= 0:
            raise ValueError(f"{name} must be >= 0, got {w}")


def _cross_correlation(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    z1, z2 = z1.float(), z2.float()
    return batch_standardise(z1).T @ batch_standardise(z2) / z1.shape[0]


__all__ = ["WMSE", "BarlowTwins", "VICReg"]
