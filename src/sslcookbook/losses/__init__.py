"""Losses, one file per method family; pure functions on tensors."""

from .contrastive import nt_xent

__all__ = ["nt_xent"]
