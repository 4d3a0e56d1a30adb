r"""DINO (Caron et al., 2021): self-distillation with no labels, a centred and sharpened teacher.

The student (backbone → :class:`DINOHead`) matches, on every crop, the softmax output of a momentum
teacher (an :class:`~sslcookbook.ema.EMATarget` of backbone and head) on the other global crops.
Two opposite forces prevent collapse: centring (no prototype may win for every image) and
sharpening (the output may not flatten to uniform).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import dino_loss, update_center
from .base import EMATarget, SSLMethod, check_fraction, check_positive, check_views, feature_dim


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


class DINO(SSLMethod):
    r"""DINO (Caron et al., 2021, "Emerging Properties in Self-Supervised Vision Transformers",
    arXiv:2104.14294): self-distillation with no labels.

    Student: backbone → :class:`DINOHead`. Teacher: ``self.target.backbone`` → ``self.target.head``, an
    EMA copy of both (:class:`~sslcookbook.ema.EMATarget`, no gradient), momentum from
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
        check_positive(student_temperature=student_temperature, teacher_temperature=teacher_temperature)
        if warmup_teacher_temperature is not None:
            check_positive(warmup_teacher_temperature=warmup_teacher_temperature)
        check_fraction(
            teacher_temperature_warmup=teacher_temperature_warmup,
            center_momentum=center_momentum,
            freeze_prototypes=freeze_prototypes,
        )
        if num_global_views < 1:
            raise ValueError(f"num_global_views must be >= 1, got {num_global_views}")
        self.backbone = backbone
        self.head = DINOHead(
            feature_dim(backbone), out_dim, hidden_dim, bottleneck_dim, head_layers, batch_norm
        )
        self.target = EMATarget({"backbone": backbone, "head": self.head}, base_momentum, final_momentum)
        self.register_buffer("center", torch.zeros(out_dim))
        self.student_temperature = student_temperature
        self.final_teacher_temperature = teacher_temperature
        self.warmup_teacher_temperature = warmup_teacher_temperature
        self.teacher_temperature_warmup = teacher_temperature_warmup
        self.center_momentum = center_momentum
        self.num_global_views = num_global_views
        self.use_centering = use_centering
        self.use_sharpening = use_sharpening
        self.freeze_prototypes = freeze_prototypes
        self.backend = backend
        self._pending_teacher_mean: torch.Tensor | None = None

    @property
    def progress(self) -> float:
        """The fraction of training done, as of the last ``after_step`` (the EMA target keeps it)."""
        return self.target.progress

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
        check_views(views, "DINO", min_count=max(2, self.num_global_views))
        freeze = self.progress < self.freeze_prototypes
        student = self._logits(self.backbone, self.head, views, freeze_prototypes=freeze)
        with torch.no_grad():
            teacher = self._logits(self.target.backbone, self.target.head, views[: self.num_global_views])
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
            "momentum": self.target.momentum,
            "teacher_entropy": teacher_entropy,
        }

    def after_step(self, progress: float) -> None:
        """Update the centre with this step's teacher mean, then the teacher's EMA (and the progress)."""
        if self._pending_teacher_mean is not None:
            self.center.copy_(
                update_center(self.center, self._pending_teacher_mean[None], self.center_momentum)
            )
            self._pending_teacher_mean = None
        self.target.update(progress)


__all__ = ["DINO", "DINOHead"]
