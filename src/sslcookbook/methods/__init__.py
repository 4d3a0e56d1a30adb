"""Methods: ``nn.Module``s with ``training_step(views, labels) -> dict`` and ``embed(x)``."""

from .base import SSLMethod
from .contrastive import SimCLR

__all__ = ["SSLMethod", "SimCLR"]
