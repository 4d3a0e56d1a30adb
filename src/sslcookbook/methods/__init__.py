"""Methods: ``nn.Module``s with ``training_step(views, labels) -> dict`` and ``embed(x)``.

One file per family (pretext, contrastive, momentum, distillation, dino), each built from the kit in
``methods/base.py``.
"""

from .base import SSLMethod
from .contrastive import DCL, NNCLR, SimCLR, SupCon
from .dino import DINO, DINOHead
from .distillation import BYOL, SimSiam
from .momentum import MoCoV2, MoCoV3
from .pretext import InstanceDiscrimination, Jigsaw, RelativePosition, RotationPrediction

__all__ = [
    "BYOL",
    "DCL",
    "DINO",
    "DINOHead",
    "InstanceDiscrimination",
    "Jigsaw",
    "NNCLR",
    "RelativePosition",
    "RotationPrediction",
    "MoCoV2",
    "MoCoV3",
    "SSLMethod",
    "SimCLR",
    "SimSiam",
    "SupCon",
]
