"""Losses, one file per method family; pure functions on tensors.

Each loss checks its inputs once, then runs its PyTorch formula (written in the family's file) or, on
CUDA tensors, its fused Triton twin in :mod:`sslcookbook.kernels`.
"""

from .contrastive import dcl, info_nce, nearest_neighbour, nnclr_loss, nt_xent, supcon
from .dino import dino_loss, update_center
from .distillation import negative_cosine
from .momentum import MemoryQueue, moco_loss, moco_v3_loss

__all__ = [
    "MemoryQueue",
    "dcl",
    "dino_loss",
    "info_nce",
    "moco_loss",
    "moco_v3_loss",
    "nearest_neighbour",
    "negative_cosine",
    "nnclr_loss",
    "nt_xent",
    "supcon",
    "update_center",
]
