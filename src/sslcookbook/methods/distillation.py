r"""Self-distillation methods: BYOL, SimSiam and DINO.

A network learns to predict its own output on another view of the same image. The target gets no
gradient; what prevents the trivial constant solution differs per method:

- BYOL (Grill et al., 2020): a predictor on the online side and a momentum (EMA) target network.
- SimSiam (Chen & He, 2021): a predictor and a stop-gradient; no momentum network at all.
- DINO (Caron et al., 2021): a momentum teacher whose softmax output is centred and sharpened,
  trained with multi-crop (the teacher sees only the global crops).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..ema import cosine_momentum, ema_update_
from ..losses.distillation import dino_loss, negative_cosine, update_center
from ..models import mlp
from .base import SSLMethod


def _feature_dim(backbone: nn.Module) -> int:
    dim = getattr(backbone, "feature_dim", None)
    if not isinstance(dim, int) or dim < 1:
        raise TypeError(
            f"{type(backbone).__name__} has no integer `feature_dim`: set backbone.feature_dim to the size "
            "of its output features (the backbones of sslcookbook.models have it)"
        )
    return dim


def _frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy that receives no gradient (a momentum target starts as the online network)."""
    clone = copy.deepcopy(module)
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


def _check_views(views, method: str, min_views: int, exact: bool = False) -> int:
    """All views are float B×C×H×W with one batch size; returns B."""
    if not isinstance(views, (list, tuple)) or not all(isinstance(v, torch.Tensor) for v in views):
        raise TypeError(f"{method} takes a list of view tensors (B×C×H×W), got {type(views).__name__}")
    if (exact and len(views) != min_views) or len(views) < min_views:
        wanted = f"exactly {min_views}" if exact else f"at least {min_views}"
        raise ValueError(
            f"{method} takes {wanted} views, got {len(views)}: choose a view preset that makes them"
        )
    for i, v in enumerate(views):
        if v.dim() != 4 or not v.is_floating_point():
            raise ValueError(
                f"view {i} must be a float B×C×H×W batch, got {v.dtype} of shape {tuple(v.shape)}"
            )
    sizes = {v.shape[0] for v in views}
    if len(sizes) != 1:
        raise ValueError(f"all views must hold the same images, got batch sizes {sorted(sizes)}")
    return views[0].shape[0]


class _ProgressMixin:
    """Keeps the training progress (set by ``after_step``) in the state dict, so schedules resume exactly."""

    progress: float = 0.0

    def get_extra_state(self) -> dict:
        return {"progress": float(self.progress)}

    def set_extra_state(self, state: dict) -> None:
        self.progress = float(state["progress"])


# --------------------------------------------------------------------------------------------------
# BYOL
# --------------------------------------------------------------------------------------------------


class BYOL(_ProgressMixin, SSLMethod):
    r"""BYOL (Grill et al., 2020, "Bootstrap Your Own Latent", arXiv:2006.07733).

    Online network: backbone f_θ → projector g_θ → predictor q_θ. Target network: f_ξ → g_ξ, a copy
    that gets no gradient and follows ξ ← m ξ + (1 − m) θ after every step, with m rising from
    ``base_momentum`` to ``final_momentum`` on a cosine (:func:`sslcookbook.ema.cosine_momentum`).

    .. math:: \mathcal{L} = \tfrac12\,\mathcal{D}\big(q_\theta(z^\theta_1), z^\xi_2\big)
                          + \tfrac12\,\mathcal{D}\big(q_\theta(z^\theta_2), z^\xi_1\big)

    with :math:`\mathcal{D}` the negative cosine (:func:`sslcookbook.losses.negative_cosine`; BYOL's
    2 − 2 cos is the same up to an affine map). Evaluation uses the online backbone.

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
        super().__init__()
        cosine_momentum(0.0, base_momentum, final_momentum)  # validates both ends
        self.backbone = backbone
        self.projector = mlp(
            _feature_dim(backbone), projector_hidden_dim, projector_dim, num_layers=2, batch_norm=batch_norm
        )
        self.predictor = mlp(
            projector_dim, predictor_hidden_dim, projector_dim, num_layers=2, batch_norm=batch_norm
        )
        self.target_backbone = _frozen_copy(backbone)
        self.target_projector = _frozen_copy(self.projector)
        self.base_momentum = base_momentum
        self.final_momentum = final_momentum

    @property
    def momentum(self) -> float:
        """The EMA momentum at the current progress."""
        return cosine_momentum(self.progress, self.base_momentum, self.final_momentum)

    def online_parameters(self) -> list[nn.Parameter]:
        return [*self.backbone.parameters(), *self.projector.parameters()]

    def target_parameters(self) -> list[nn.Parameter]:
        return [*self.target_backbone.parameters(), *self.target_projector.parameters()]

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        _check_views(views, "BYOL", 2, exact=True)
        both = torch.cat(views)
        p1, p2 = self.predictor(self.projector(self.backbone(both))).chunk(2)
        with torch.no_grad():
            z1, z2 = self.target_projector(self.target_backbone(both)).chunk(2)
        loss = 0.5 * (negative_cosine(p1, z2) + negative_cosine(p2, z1))
        return {"loss": loss, "momentum": self.momentum}

    def after_step(self, progress: float) -> None:
        self.progress = float(progress)
        ema_update_(self.target_parameters(), self.online_parameters(), self.momentum)


# --------------------------------------------------------------------------------------------------
# SimSiam
# --------------------------------------------------------------------------------------------------


class SimSiam(SSLMethod):
    r"""SimSiam (Chen & He, 2021, "Exploring Simple Siamese Representation Learning", arXiv:2011.10566).

    One shared encoder f (backbone + projector, a 3-layer MLP with BN on every layer, the last one
    without affine parameters), a bottleneck predictor h (2 layers) and a stop-gradient:

    .. math:: \mathcal{L} = \tfrac12\,\mathcal{D}\big(h(z_1), \mathrm{sg}(z_2)\big)
                          + \tfrac12\,\mathcal{D}\big(h(z_2), \mathrm{sg}(z_1)\big), \qquad z_i = f(x_i)

    The two ablations of the paper collapse to a constant: ``stop_gradient=False`` (its Figure 2) and
    ``use_predictor=False`` (h = identity, its Table 1a). ``z_std`` (logged) is the per-dimension std
    of the L2-normalised z: about 1/√d when healthy, 0 once collapsed.

    Args:
        backbone: the encoder (with ``feature_dim``).
        projector_dim: width and output of the projector (2048 in the paper).
        predictor_hidden_dim: the predictor's bottleneck (512, a quarter of ``projector_dim``).
        use_predictor, stop_gradient: switches for the collapse ablations.
        batch_norm: BatchNorm in projector and predictor (off only for exact DDP tests).
        projector_layers: layers of the projector (3 in the paper).
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
    ):
        super().__init__()
        self.backbone = backbone
        self.projector = mlp(
            _feature_dim(backbone),
            projector_dim,
            projector_dim,
            num_layers=projector_layers,
            batch_norm=batch_norm,
            last_batch_norm=batch_norm,
        )
        self.predictor = (
            mlp(projector_dim, predictor_hidden_dim, projector_dim, num_layers=2, batch_norm=batch_norm)
            if use_predictor
            else nn.Identity()
        )
        self.use_predictor = use_predictor
        self.stop_gradient = stop_gradient

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        _check_views(views, "SimSiam", 2, exact=True)
        z = self.projector(self.backbone(torch.cat(views)))
        p1, p2 = self.predictor(z).chunk(2)
        z1, z2 = z.chunk(2)
        loss = 0.5 * (
            negative_cosine(p1, z2, stop_gradient=self.stop_gradient)
            + negative_cosine(p2, z1, stop_gradient=self.stop_gradient)
        )
        with torch.no_grad():
            z_std = F.normalize(z.detach().float(), dim=1).std(dim=0).mean()
        return {"loss": loss, "z_std": z_std}


# --------------------------------------------------------------------------------------------------
# DINO
# --------------------------------------------------------------------------------------------------


class DINOHead(nn.Module):
    r"""DINO's projection head: MLP → L2-normalise → weight-normalised linear layer of K prototypes.

    .. math:: h(x) = \bar W\,\frac{u}{\lVert u\rVert_2}, \quad u = \mathrm{MLP}(x), \quad
              \bar W_k = \frac{W_k}{\lVert W_k\rVert_2}

    so every logit is a cosine in [−1, 1]. The rows of W are normalised explicitly: DINO's weight
    norm with its gain fixed to 1. The MLP is Linear(-BN)-GELU ×(``num_layers`` − 1) → Linear to
    ``bottleneck_dim``, initialised with a truncated normal (std 0.02) as in the paper.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 4096,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        num_layers: int = 3,
        batch_norm: bool = False,
    ):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"the DINO head needs at least one layer, got num_layers={num_layers}")
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(num_layers - 1):
            layers.append(nn.Linear(dim, hidden_dim))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.GELU())
            dim = hidden_dim
        layers.append(nn.Linear(dim, bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)
        self.prototypes = nn.Linear(bottleneck_dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor, freeze_prototypes: bool = False) -> torch.Tensor:
        """Logits (N, K). ``freeze_prototypes`` stops the gradient into the prototypes (their ``grad``
        stays None, so the optimiser skips them, weight decay included), as DINO does early on."""
        u = self.mlp(x)
        weight = self.prototypes.weight.detach() if freeze_prototypes else self.prototypes.weight
        # Cosines in fp32 even under bf16 autocast: divided by τ_t = 0.04 a bf16 rounding error of 4e-3
        # would move a logit by 0.1.
        dtype = torch.promote_types(u.dtype, torch.float32)
        with torch.autocast(x.device.type, enabled=False):
            return F.linear(F.normalize(u.to(dtype), dim=-1), F.normalize(weight.to(dtype), dim=1))


class DINO(_ProgressMixin, SSLMethod):
    r"""DINO (Caron et al., 2021, "Emerging Properties in Self-Supervised Vision Transformers",
    arXiv:2104.14294): self-distillation with no labels.

    Student: backbone → :class:`DINOHead`. Teacher: an EMA copy of both (no gradient), momentum from
    ``base_momentum`` to ``final_momentum`` on a cosine. Views: the first ``num_global_views`` are
    global crops, the rest local crops (any size; the backbone runs once per group of consecutive
    views of one size). The teacher sees the global crops only; the loss is
    :func:`sslcookbook.losses.dino_loss` over all (teacher crop, other student crop) pairs, with the
    teacher centred by ``center`` (a buffer, updated with :func:`~sslcookbook.losses.update_center`
    in ``after_step``) and sharpened by τ_t < τ_s.

    The teacher temperature warms up linearly from ``warmup_teacher_temperature`` to
    ``teacher_temperature`` over the first ``teacher_temperature_warmup`` fraction of training
    (0.04 → 0.07 over 30 epochs in the paper); the progress comes from ``after_step``.

    The notebook's collapse ablations: ``use_centering=False`` (one prototype wins for every image)
    and ``use_sharpening=False`` (τ_t = τ_s: the output flattens to uniform). ``teacher_entropy``
    (logged) is the mean entropy of the teacher's distribution: → 0 in the first, → log K in the second.

    Args:
        backbone: the encoder (with ``feature_dim``).
        out_dim: K, the number of prototypes (65536 on ImageNet).
        hidden_dim, bottleneck_dim, head_layers: the head's MLP (2048, 256, 3 in the paper).
        student_temperature: τ_s (0.1).
        teacher_temperature: τ_t after the warm-up (0.04; 0.07 for long runs).
        warmup_teacher_temperature: τ_t at the start (None: no warm-up).
        teacher_temperature_warmup: fraction of training the warm-up lasts.
        center_momentum: the centre's EMA momentum (0.9).
        base_momentum, final_momentum: the teacher's EMA schedule (0.996 → 1).
        num_global_views: T, the views the teacher sees (2).
        use_centering, use_sharpening: switches for the collapse ablations.
        batch_norm: BatchNorm in the head's MLP (DINO has none; the backbone's own BN is untouched).
        freeze_prototypes: fraction of training during which the prototypes get no gradient (DINO
            freezes them for the first epoch, which stabilises the start).
        backend: for the loss: ``"auto"`` (Triton on CUDA), ``"triton"`` or ``"torch"``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        out_dim: int = 4096,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        student_temperature: float = 0.1,
        teacher_temperature: float = 0.04,
        warmup_teacher_temperature: float | None = None,
        teacher_temperature_warmup: float = 0.0,
        center_momentum: float = 0.9,
        base_momentum: float = 0.996,
        final_momentum: float = 1.0,
        num_global_views: int = 2,
        use_centering: bool = True,
        use_sharpening: bool = True,
        batch_norm: bool = False,
        head_layers: int = 3,
        freeze_prototypes: float = 0.0,
        backend: str = "auto",
    ):
        super().__init__()
        for name, value in (
            ("student_temperature", student_temperature),
            ("teacher_temperature", teacher_temperature),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if warmup_teacher_temperature is not None and not warmup_teacher_temperature > 0:
            raise ValueError(
                f"warmup_teacher_temperature must be > 0 or None, got {warmup_teacher_temperature}"
            )
        if not 0.0 <= teacher_temperature_warmup <= 1.0:
            raise ValueError(
                "teacher_temperature_warmup is a fraction of training in [0, 1], "
                f"got {teacher_temperature_warmup}"
            )
        if not 0.0 <= center_momentum <= 1.0:
            raise ValueError(f"center_momentum must be in [0, 1], got {center_momentum}")
        if num_global_views < 1:
            raise ValueError(f"num_global_views must be >= 1, got {num_global_views}")
        cosine_momentum(0.0, base_momentum, final_momentum)  # validates both ends
        self.backbone = backbone
        self.head = DINOHead(
            _feature_dim(backbone), out_dim, hidden_dim, bottleneck_dim, head_layers, batch_norm
        )
        self.teacher_backbone = _frozen_copy(backbone)
        self.teacher_head = _frozen_copy(self.head)
        self.register_buffer("center", torch.zeros(out_dim))
        self.student_temperature = student_temperature
        self.final_teacher_temperature = teacher_temperature
        self.warmup_teacher_temperature = warmup_teacher_temperature
        self.teacher_temperature_warmup = teacher_temperature_warmup
        self.center_momentum = center_momentum
        self.base_momentum = base_momentum
        self.final_momentum = final_momentum
        self.num_global_views = num_global_views
        self.use_centering = use_centering
        self.use_sharpening = use_sharpening
        self.freeze_prototypes = freeze_prototypes
        self.backend = backend
        self._pending_teacher_mean: torch.Tensor | None = None

    @property
    def momentum(self) -> float:
        return cosine_momentum(self.progress, self.base_momentum, self.final_momentum)

    @property
    def teacher_temperature(self) -> float:
        """τ_t at the current progress (τ_s when sharpening is off)."""
        if not self.use_sharpening:
            return self.student_temperature
        warmup = self.teacher_temperature_warmup
        if self.warmup_teacher_temperature is None or warmup <= 0 or self.progress >= warmup:
            return self.final_teacher_temperature
        start, end = self.warmup_teacher_temperature, self.final_teacher_temperature
        return start + (end - start) * self.progress / warmup

    @staticmethod
    def _logits(backbone: nn.Module, head: DINOHead, views, freeze_prototypes: bool = False) -> torch.Tensor:
        """(len(views), B, K): the backbone once per run of consecutive same-size views, the head once."""
        features, start = [], 0
        while start < len(views):
            end = start + 1
            while end < len(views) and views[end].shape == views[start].shape:
                end += 1
            features.append(backbone(torch.cat(views[start:end]) if end - start > 1 else views[start]))
            start = end
        logits = head(torch.cat(features), freeze_prototypes=freeze_prototypes)
        return logits.reshape(len(views), views[0].shape[0], -1)

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        _check_views(views, "DINO", max(2, self.num_global_views))
        freeze = self.progress < self.freeze_prototypes
        student = self._logits(self.backbone, self.head, views, freeze_prototypes=freeze)
        with torch.no_grad():
            teacher = self._logits(self.teacher_backbone, self.teacher_head, views[: self.num_global_views])
        center = self.center if self.use_centering else torch.zeros_like(self.center)
        teacher_temperature = self.teacher_temperature
        loss = dino_loss(
            student, teacher, center, self.student_temperature, teacher_temperature, backend=self.backend
        )
        with torch.no_grad():
            teacher = teacher.to(torch.promote_types(teacher.dtype, torch.float32))
            if self.use_centering:
                self._pending_teacher_mean = teacher.mean(dim=(0, 1))
            log_p = F.log_softmax((teacher - center) / teacher_temperature, dim=-1)
            teacher_entropy = -(log_p.exp() * log_p).sum(dim=-1).mean()
        return {
            "loss": loss,
            "teacher_temperature": teacher_temperature,
            "momentum": self.momentum,
            "teacher_entropy": teacher_entropy,
        }

    def after_step(self, progress: float) -> None:
        """Update the centre with this step's teacher mean, then the teacher's EMA."""
        self.progress = float(progress)
        if self._pending_teacher_mean is not None:
            self.center.copy_(
                update_center(self.center, self._pending_teacher_mean[None], self.center_momentum)
            )
            self._pending_teacher_mean = None
        ema_update_(
            [*self.teacher_backbone.parameters(), *self.teacher_head.parameters()],
            [*self.backbone.parameters(), *self.head.parameters()],
            self.momentum,
        )
