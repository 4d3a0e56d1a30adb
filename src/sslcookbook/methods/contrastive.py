"""Contrastive methods: positives are pulled together, the rest of the batch pushed apart."""

from __future__ import annotations

import torch
from torch import nn

from ..losses import MemoryQueue, dcl, nnclr_loss, nt_xent, supcon
from ..models import mlp
from .base import SSLMethod


def _two_views(views: list[torch.Tensor], name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if len(views) != 2:
        raise ValueError(f"{name} takes exactly 2 views, got {len(views)}: use a two-view preset")
    return views[0], views[1]


class _TwoViewProjection(SSLMethod):
    """Backbone + projector applied to both views in one batch."""

    def __init__(self, backbone: nn.Module, projector_hidden_dim: int, projector_dim: int, batch_norm: bool):
        super().__init__()
        self.backbone = backbone
        self.projector = mlp(backbone.feature_dim, projector_hidden_dim, projector_dim, batch_norm=batch_norm)

    def project(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        v1, v2 = _two_views(views, type(self).__name__)
        z = self.projector(self.backbone(torch.cat([v1, v2])))
        return z.chunk(2)


class SimCLR(_TwoViewProjection):
    """SimCLR (Chen et al., 2020): backbone f, projector g, NT-Xent between two views.

    loss = NT-Xent(g(f(v1)), g(f(v2)); τ); evaluation uses f's features.
    """

    def __init__(
        self,
        backbone: nn.Module,
        projector_hidden_dim: int = 512,
        projector_dim: int = 128,
        temperature: float = 0.5,
        batch_norm: bool = True,
        gather_distributed: bool = True,
        backend: str = "auto",
    ):
        super().__init__(backbone, projector_hidden_dim, projector_dim, batch_norm)
        self.temperature, self.gather_distributed, self.backend = temperature, gather_distributed, backend

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        z1, z2 = self.project(views)
        loss = nt_xent(
            z1, z2, self.temperature, backend=self.backend, gather_distributed=self.gather_distributed
        )
        return {"loss": loss}


class DCL(_TwoViewProjection):
    """Decoupled contrastive learning (Yeh et al., 2022): SimCLR without the positive in the denominator."""

    def __init__(
        self,
        backbone: nn.Module,
        projector_hidden_dim: int = 512,
        projector_dim: int = 128,
        temperature: float = 0.1,
        batch_norm: bool = True,
    ):
        super().__init__(backbone, projector_hidden_dim, projector_dim, batch_norm)
        self.temperature = temperature

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        z1, z2 = self.project(views)
        return {"loss": dcl(z1, z2, self.temperature)}


class SupCon(_TwoViewProjection):
    """Supervised contrastive learning (Khosla et al., 2020): all images of a class are positives.

    It uses the labels, so it is the *supervised ceiling* that self-supervised methods are compared to.
    """

    def __init__(
        self,
        backbone: nn.Module,
        projector_hidden_dim: int = 512,
        projector_dim: int = 128,
        temperature: float = 0.1,
        batch_norm: bool = True,
        gather_distributed: bool = True,
    ):
        super().__init__(backbone, projector_hidden_dim, projector_dim, batch_norm)
        self.temperature, self.gather_distributed = temperature, gather_distributed

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        if labels is None:
            raise ValueError("SupCon is supervised: it needs the labels of the batch")
        z1, z2 = self.project(views)
        loss = supcon(torch.cat([z1, z2]), labels.repeat(2), self.temperature, self.gather_distributed)
        return {"loss": loss}


class NNCLR(_TwoViewProjection):
    """NNCLR (Dwibedi et al., 2021): the positive is the nearest neighbour of the other view in a queue.

    A support queue of past projections supplies semantically close positives that no augmentation
    could produce; a predictor head sits on top of the projector, as in the paper.
    """

    def __init__(
        self,
        backbone: nn.Module,
        projector_hidden_dim: int = 512,
        projector_dim: int = 128,
        predictor_hidden_dim: int = 512,
        queue_size: int = 4096,
        temperature: float = 0.1,
        batch_norm: bool = True,
        gather_distributed: bool = True,
        backend: str = "auto",
    ):
        super().__init__(backbone, projector_hidden_dim, projector_dim, batch_norm)
        self.predictor = mlp(projector_dim, predictor_hidden_dim, projector_dim, batch_norm=batch_norm)
        self.support = MemoryQueue(queue_size, projector_dim, gather_distributed=gather_distributed)
        self.temperature, self.backend = temperature, backend

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        z1, z2 = self.project(views)
        p1, p2 = self.predictor(torch.cat([z1, z2])).chunk(2)
        queue = self.support.queue
        loss = 0.5 * (
            nnclr_loss(z1, p2, queue, self.temperature, self.backend)
            + nnclr_loss(z2, p1, queue, self.temperature, self.backend)
        )
        self.support.push(z1)
        return {"loss": loss}


__all__ = ["DCL", "NNCLR", "SimCLR", "SupCon"]
