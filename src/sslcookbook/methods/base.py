"""The interface every method implements."""

from __future__ import annotations

import torch
from torch import nn


class SSLMethod(nn.Module):
    """A self-supervised method: a backbone, its heads and its loss.

    Subclasses set ``self.backbone`` and implement ``training_step``. The trainer calls
    ``training_step(views, labels)`` with the list of augmented views (float B×C×H×W in [0, 1]) and
    the labels (used only by supervised references and online probes), then ``after_step(progress)``
    once the optimiser has stepped (momentum encoders update there), with ``progress`` in [0, 1].
    """

    backbone: nn.Module

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        """Return a dict with the scalar ``"loss"`` and any tensors or floats to log."""
        raise NotImplementedError

    def after_step(self, progress: float) -> None:
        """Hook after each optimiser step (EMA updates, schedules). Default: nothing."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Features used for evaluation: the backbone's output, not the projector's."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)
