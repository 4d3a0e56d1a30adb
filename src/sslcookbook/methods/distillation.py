r"""Self-distillation methods: BYOL and SimSiam (DINO has its own file, ``methods/dino.py``).

A network learns to predict its own output on another view of the same image. The target gets no
gradient; what prevents the trivial constant solution differs per method:

- BYOL (Grill et al., 2020): a predictor on the online side and a momentum (EMA) target network.
- SimSiam (Chen & He, 2021): a predictor and a stop-gradient; no momentum network at all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import negative_cosine
from ..models import mlp
from .base import EMATarget, TwoViewMethod, feature_dim

# --------------------------------------------------------------------------------------------------
# BYOL
# --------------------------------------------------------------------------------------------------


class BYOL(TwoViewMethod):
    r"""BYOL (Grill et al., 2020, "Bootstrap Your Own Latent", arXiv:2006.07733).

    Online network: backbone f_θ → projector g_θ → predictor q_θ. Target network: f_ξ → g_ξ
    (``self.target.backbone``, ``self.target.projector``: an :class:`~sslcookbook.ema.EMATarget`), a
    copy that gets no gradient and follows ξ ← m ξ + (1 − m) θ after every step, with m rising from
    ``base_momentum`` to ``final_momentum`` on a cosine (:func:`sslcookbook.ema.cosine_momentum`).

    .. math:: \mathcal{L} = \tfrac12\,\mathcal{D}\big(q_\theta(z^\theta_1), z^\xi_2\big)
                          + \tfrac12\,\mathcal{D}\big(q_\theta(z^\theta_2), z^\xi_1\big)

    with :math:`\mathcal{D}` the negative cosine (:func:`sslcookbook.losses.negative_cosine`; BYOL's
    2 − 2 cos is the same up to an affine map). Evaluation uses the online backbone.

    The target runs in training mode (BatchNorm with the statistics of its own batch, as in the
    paper) on the batches the online network sees: both views in one 2B batch by default, one batch
    per view with ``view_forward = "split"`` (the predictor too), so z^ξ and z^θ differ only in the
    weights that made them.

    Args:
        backbone: the encoder (with ``feature_dim``).
        projector_hidden_dim, projector_dim: the projector MLP (4096 → 256 in the paper).
        predictor_hidden_dim: the predictor MLP's hidden width (4096; its output is ``projector_dim``).
        base_momentum, final_momentum: the EMA schedule's ends (0.996 → 1 on ImageNet, 0.99 on CIFAR).
        batch_norm: BatchNorm in the projector and predictor (BYOL has it; off for exact DDP tests).
    """

    def __init__(
        self,
        backbone: nn.Module,
        projector_hidden_dim: int = 4096,
        projector_dim: int = 256,
        predictor_hidden_dim: int = 4096,
        base_momentum: float = 0.996,
        final_momentum: float = 1.0,
        batch_norm: bool = True,
    ):
        projector = mlp(
            feature_dim(backbone), projector_hidden_dim, projector_dim, num_layers=2, batch_norm=batch_norm
        )
        super().__init__(backbone, projector)
        self.predictor = mlp(
            projector_dim, predictor_hidden_dim, projector_dim, num_layers=2, batch_norm=batch_norm
        )
        self.target = EMATarget({"backbone": backbone, "projector": projector}, base_momentum, final_momentum)

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        both = self.batch(views)
        p1, p2 = self.forward_views(self.predictor, self.forward_views(self.project, both)).chunk(2)
        z1, z2 = self.forward_views(self.targets, both).chunk(2)
        loss = 0.5 * (negative_cosine(p1, z2) + negative_cosine(p2, z1))
        return {"loss": loss, "momentum": self.target.momentum}

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """The target network's projections z^ξ = g_ξ(f_ξ(x)), without gradient."""
        with torch.no_grad():
            return self.target.projector(self.target.backbone(x))

    def after_step(self, progress: float) -> None:
        self.target.update(progress)


# --------------------------------------------------------------------------------------------------
# SimSiam
# --------------------------------------------------------------------------------------------------


class SimSiam(TwoViewMethod):
    r"""SimSiam (Chen & He, 2021, "Exploring Simple Siamese Representation Learning", arXiv:2011.10566).

    One shared encoder f (backbone + projector, a 3-layer MLP with BN on every layer, the last one
    without affine parameters), a bottleneck predictor h (2 layers) and a stop-gradient:

    .. math:: \mathcal{L} = \tfrac12\,\mathcal{D}\big(h(z_1), \mathrm{sg}(z_2)\big)
                          + \tfrac12\,\mathcal{D}\big(h(z_2), \mathrm{sg}(z_1)\big), \qquad z_i = f(x_i)

    The two ablations of the paper collapse to a constant: ``stop_gradient=False`` (its Figure 2) and
    ``use_predictor=False`` (h = identity, its Table 1a). As in the paper (Table 1, last row; the
    official ``--fix-pred-lr``), the predictor's learning rate is not scheduled: it stays at the base
    lr while the rest follows warm-up and cosine decay (the paper's reading: h should keep adapting to
    the latest representations); ``fixed_predictor_lr=False`` schedules it like the rest. ``z_std``
    (logged) is the per-dimension std of the L2-normalised z: about 1/√d when healthy, 0 once collapsed.

    Args:
        backbone: the encoder (with ``feature_dim``).
        projector_dim: width and output of the projector (2048 in the paper).
        predictor_hidden_dim: the predictor's bottleneck (512, a quarter of ``projector_dim``).
        use_predictor, stop_gradient: switches for the collapse ablations.
        batch_norm: BatchNorm in projector and predictor (off only for exact DDP tests).
        projector_layers: layers of the projector (3 in the paper).
        fixed_predictor_lr: keep the predictor's learning rate at the base value (the paper).
    """

    def __init__(
        self,
        backbone: nn.Module,
        projector_dim: int = 2048,
        predictor_hidden_dim: int = 512,
        use_predictor: bool = True,
        stop_gradient: bool = True,
        batch_norm: bool = True,
        projector_layers: int = 3,
        fixed_predictor_lr: bool = True,
    ):
        projector = mlp(
            feature_dim(backbone),
            projector_dim,
            projector_dim,
            num_layers=projector_layers,
            batch_norm=batch_norm,
            last_batch_norm=batch_norm,
        )
        super().__init__(backbone, projector)
        self.predictor = (
            mlp(projector_dim, predictor_hidden_dim, projector_dim, num_layers=2, batch_norm=batch_norm)
            if use_predictor
            else nn.Identity()
        )
        self.use_predictor = use_predictor
        self.stop_gradient = stop_gradient
        self.fixed_predictor_lr = fixed_predictor_lr

    def fixed_lr_modules(self) -> list[nn.Module]:
        return [self.predictor] if self.fixed_predictor_lr and self.use_predictor else []

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        z = self.project_views(views)
        p1, p2 = self.forward_views(self.predictor, z).chunk(2)
        z1, z2 = z.chunk(2)
        loss = 0.5 * (
            negative_cosine(p1, z2, stop_gradient=self.stop_gradient)
            + negative_cosine(p2, z1, stop_gradient=self.stop_gradient)
        )
        with torch.no_grad():
            z_std = F.normalize(z.detach().float(), dim=1).std(dim=0).mean()
        return {"loss": loss, "z_std": z_std}


__all__ = ["BYOL", "SimSiam"]
