"""Methods: ``nn.Module``s with ``training_step(views, labels) -> dict`` and ``embed(x)``.

One file per family (contrastive, momentum, distillation, dino), each built from the kit in
``methods/base.py``.
"""

from .base import SSLMethod
from .contrastive import DCL, NNCLR, SimCLR, SupCon
from .dino import DINO, DINOHead
from .distillation import BYOL, SimSiam
from .momentum import MoCoV2, MoCoV3

__all__ = [
    "BYOL",
    "DCL",
    "DINO",
    "DINOHead",
    "NNCLR",
    "MoCoV2",
    "MoCoV3",
    "SSLMethod",
    "SimCLR",
    "SimSiam",
    "SupCon",
]
