"""Methods: ``nn.Module``s with ``training_step(views, labels) -> dict`` and ``embed(x)``."""

from .base import SSLMethod
from .contrastive import DCL, NNCLR, SimCLR, SupCon
from .momentum import MoCoV2, MoCoV3

__all__ = ["DCL", "NNCLR", "MoCoV2", "MoCoV3", "SSLMethod", "SimCLR", "SupCon"]

# Self-distillation family (methods/distillation.py)
from .distillation import BYOL, DINO, DINOHead, SimSiam  # noqa: E402

__all__ += ["BYOL", "DINO", "DINOHead", "SimSiam"]
