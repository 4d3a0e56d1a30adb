"""Methods: ``nn.Module``s with ``training_step(views, labels) -> dict`` and ``embed(x)``.

One file per family (pretext, contrastive, momentum, distillation, dino, redundancy, clustering),
each built from the kit in ``methods/base.py``.
"""

from .base import SSLMethod
from .clustering import DeepClusterV2, SwAV
from .contrastive import DCL, NNCLR, SimCLR, SupCon
from .dino import DINO, DINOHead
from .distillation import BYOL, SimSiam
from .jepa import IJEPA, Data2Vec
from .language_image import CLIP, SigLIP
from .masked import MAE, SimMIM
from .momentum import MoCoV2, MoCoV3
from .pretext import InstanceDiscrimination, Jigsaw, RelativePosition, RotationPrediction
from .redundancy import WMSE, BarlowTwins, VICReg
from .semi import FixMatch, MeanTeacher, PseudoLabel, SupervisedOnly
from .sequence import CPC, MaskedPatchModel, TS2Vec

__all__ = [
    "BYOL",
    "WMSE",
    "BarlowTwins",
    "DCL",
    "DINO",
    "DeepClusterV2",
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
    "SwAV",
    "VICReg",
    "CLIP",
    "SigLIP",
    "IJEPA",
    "Data2Vec",
    "MAE",
    "SimMIM",
    "FixMatch",
    "MeanTeacher",
    "PseudoLabel",
    "SupervisedOnly",
    "CPC",
    "MaskedPatchModel",
    "TS2Vec",
]
