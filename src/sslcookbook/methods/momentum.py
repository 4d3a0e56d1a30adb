"""Momentum contrast: keys come from a slowly moving (EMA) copy of the encoder.

MoCo v2 keeps a queue of keys from past batches as negatives; the EMA makes those keys consistent
with each other, because the encoder that produced them changes slowly. MoCo v3 drops the queue,
contrasts within the (large) batch, and adds a predictor on the query side.
"""

from __future__ import annotations

import torch
from torch import nn

from ..losses import MemoryQueue, moco_loss, moco_v3_loss
from ..models import mlp
from .base import EMATarget, TwoViewMethod, check_positive, feature_dim


class _MomentumContrast(TwoViewMethod):
    """Online backbone + projector (the queries), and their EMA target (the momentum encoder: keys)."""

    def __init__(self, backbone, projector, base_momentum: float, final_momentum: float = 1.0):
        super().__init__(backbone, projector)
        self.target = EMATarget({"backbone": backbone, "projector": projector}, base_momentum, final_momentum)

    def keys(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.target.projector(self.target.backbone(x))

    def after_step(self, progress: float) -> None:
        self.target.update(progress)


class MoCoV2(_MomentumContrast):
    """MoCo v2 (He et al., 2020; Chen, Fan, Girshick & He, 2020): momentum encoder + queue of negatives.

    Symmetrised (each view is query once), with an MLP projector, τ = 0.2 and a fixed momentum.
    (The original shuffles BN across GPUs to stop the batch statistics leaking the positive; with
    ``sync_bn`` or on one device the projector here has no BN, which serves the same purpose.)
    """

    def __init__(
        self,
        backbone: nn.Module,
        projector_hidden_dim: int = 2048,
        projector_dim: int = 128,
        queue_size: int = 4096,
        temperature: float = 0.2,
        momentum: float = 0.99,
        gather_distributed: bool = True,
        backend: str = "auto",
    ):
        check_positive(temperature=temperature)
        projector = mlp(feature_dim(backbone), projector_hidden_dim, projector_dim, batch_norm=False)
        super().__init__(backbone, projector, base_momentum=momentum, final_momentum=momentum)
        self.queue = MemoryQueue(queue_size, projector_dim, gather_distributed=gather_distributed)
        self.temperature, self.backend = temperature, backend

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        both = self.batch(views)
        q1, q2 = self.project(both).chunk(2)
        k1, k2 = self.keys(both).chunk(2)
        queue = self.queue.queue.clone()
        loss = 0.5 * (
            moco_loss(q1, k2, queue, self.temperature, self.backend)
            + moco_loss(q2, k1, queue, self.temperature, self.backend)
        )
        self.queue.push(torch.cat([k1, k2]))
        return {"loss": loss, "momentum": self.target.momentum}


class MoCoV3(_MomentumContrast):
    """MoCo v3 (Chen, Xie & He, 2021): momentum encoder + predictor, symmetric, no queue.

    loss = ctr(q1, k2) + ctr(q2, k1) with ctr = 2τ·InfoNCE over the global batch; the momentum goes
    from ``base_momentum`` to 1 on a cosine schedule.
    """

    def __init__(
        self,
        backbone: nn.Module,
        projector_hidden_dim: int = 2048,
        projector_dim: int = 256,
        predictor_hidden_dim: int = 2048,
        temperature: float = 0.2,
        base_momentum: float = 0.99,
        batch_norm: bool = True,
        gather_distributed: bool = True,
        backend: str = "auto",
    ):
        check_positive(temperature=temperature)
        projector = mlp(
            feature_dim(backbone),
            projector_hidden_dim,
            projector_dim,
            num_layers=3,
            batch_norm=batch_norm,
            last_batch_norm=batch_norm,
        )
        super().__init__(backbone, projector, base_momentum=base_momentum)
        self.predictor = mlp(
            projector_dim, predictor_hidden_dim, projector_dim, num_layers=2, batch_norm=batch_norm
        )
        self.temperature, self.gather_distributed, self.backend = temperature, gather_distributed, backend

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        both = self.batch(views)
        q1, q2 = self.predictor(self.project(both)).chunk(2)
        k1, k2 = self.keys(both).chunk(2)
        kwargs = dict(
            temperature=self.temperature, backend=self.backend, gather_distributed=self.gather_distributed
        )
        loss = moco_v3_loss(q1, k2, **kwargs) + moco_v3_loss(q2, k1, **kwargs)
        return {"loss": loss, "momentum": self.target.momentum}
