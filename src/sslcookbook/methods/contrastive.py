"""Contrastive methods: positives are pulled together, the rest of the batch pushed apart."""

from __future__ import annotations

import torch
from torch import nn

from ..losses import nt_xent
from ..models import projector_mlp
from .base import SSLMethod


class SimCLR(SSLMethod):
    """SimCLR (Chen et al., 2020): backbone f, projector g, NT-Xent between two views.

    loss = NT-Xent(g(f(v1)), g(f(v2)); τ); evaluation uses f's features.
    """

    def __init__(
        self,
        backbone: nn.Module,
        projector_hidden_dim: int = 512,
        projector_dim: int = 128,
        temperature: float = 0.5,
    ):
        super().__init__()
        self.backbone = backbone
        self.projector = projector_mlp(backbone.feature_dim, projector_hidden_dim, projector_dim)
        self.temperature = temperature

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        if len(views) != 2:
            raise ValueError(f"SimCLR takes exactly 2 views, got {len(views)}: use a two-view preset")
        batch = torch.cat(views)
        z = self.projector(self.backbone(batch))
        z1, z2 = z.chunk(2)
        return {"loss": nt_xent(z1, z2, temperature=self.temperature)}
