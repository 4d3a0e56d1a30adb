"""Contrastive methods: positives are pulled together, the rest of the batch pushed apart."""

from __future__ import annotations

import torch
from torch import nn

from ..losses import MemoryQueue, dcl, nnclr_loss, nt_xent, supcon
from ..models import mlp
from .base import TwoViewMethod, check_positive, feature_dim


def _projector(backbone: nn.Module, hidden_dim: int, out_dim: int, batch_norm: bool) -> nn.Sequential:
    """SimCLR's projector g, shared by the family: Linear(-BN)-ReLU-Linear."""
    return mlp(feature_dim(backbone), hidden_dim, out_dim, batch_norm=batch_norm)


class SimCLR(TwoViewMethod):
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
        super().__init__(backbone, _projector(backbone, projector_hidden_dim, projector_dim, batch_norm))
        check_positive(temperature=temperature)
        self.temperature, self.gather_distributed, self.backend = temperature, gather_distributed, backend

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        z1, z2 = self.project_views(views).chunk(2)
        loss = nt_xent(
            z1, z2, self.temperature, backend=self.backend, gather_distributed=self.gather_distributed
        )
        return {"loss": loss}


class DCL(TwoViewMethod):
    """Decoupled contrastive learning (Yeh et al., 2022): SimCLR without the positive in the denominator."""

    def __init__(
        self,
        backbone: nn.Module,
        projector_hidden_dim: int = 512,
        projector_dim: int = 128,
        temperature: float = 0.1,
        batch_norm: bool = True,
    ):
        super().__init__(backbone, _projector(backbone, projector_hidden_dim, projector_dim, batch_norm))
        check_positive(temperature=temperature)
        self.temperature = temperature

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        z1, z2 = self.project_views(views).chunk(2)
        return {"loss": dcl(z1, z2, self.temperature)}


class SupCon(TwoViewMethod):
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
        super().__init__(backbone, _projector(backbone, projector_hidden_dim, projector_dim, batch_norm))
        check_positive(temperature=temperature)
        self.temperature, self.gather_distributed = temperature, gather_distributed

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        if labels is None:
            raise ValueError("SupCon is supervised: it needs the labels of the batch")
        z1, z2 = self.project_views(views).chunk(2)
        loss = supcon(torch.cat([z1, z2]), labels.repeat(2), self.temperature, self.gather_distributed)
        return {"loss": loss}


class NNCLR(TwoViewMethod):
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
        super().__init__(backbone, _projector(backbone, projector_hidden_dim, projector_dim, batch_norm))
        check_positive(temperature=temperature)
        self.predictor = mlp(projector_dim, predictor_hidden_dim, projector_dim, batch_norm=batch_norm)
        self.support = MemoryQueue(queue_size, projector_dim, gather_distributed=gather_distributed)
        self.temperature, self.backend = temperature, backend

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        z = self.project_views(views)
        z1, z2 = z.chunk(2)
        p1, p2 = self.forward_views(self.predictor, z).chunk(2)
        queue = self.support.queue
        loss = 0.5 * (
            nnclr_loss(z1, p2, queue, self.temperature, self.backend)
            + nnclr_loss(z2, p1, queue, self.temperature, self.backend)
        )
        self.support.push(z1)
        return {"loss": loss}


__all__ = ["DCL", "NNCLR", "SimCLR", "SupCon"]
