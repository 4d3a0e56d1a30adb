"""Losses, one file per method family; pure functions on tensors."""

from .contrastive import (
    MemoryQueue,
    dcl,
    info_nce,
    moco_loss,
    moco_v3_loss,
    nearest_neighbour,
    nnclr_loss,
    nt_xent,
    supcon,
)

__all__ = [
    "MemoryQueue",
    "dcl",
    "info_nce",
    "moco_loss",
    "moco_v3_loss",
    "nearest_neighbour",
    "nnclr_loss",
    "nt_xent",
    "supcon",
]

# Self-distillation family (losses/distillation.py)
from .distillation import dino_loss, negative_cosine, update_center  # noqa: E402

__all__ += ["dino_loss", "negative_cosine", "update_center"]
