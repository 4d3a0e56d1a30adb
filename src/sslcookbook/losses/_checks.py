"""Input checks shared by the losses: they name the problem and the fix."""

from __future__ import annotations

import torch


def check_embeddings(**tensors: torch.Tensor) -> None:
    """Every tensor is a finite floating N×D matrix with N ≥ 1, and all share one shape."""
    shapes = {}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 2:
            raise ValueError(
                f"{name} must be 2-D (batch × dim), got shape {tuple(t.shape)}; flatten it first"
            )
        if not t.is_floating_point():
            raise TypeError(f"{name} must be floating point, got {t.dtype}; call .float() on it")
        if t.shape[0] == 0:
            raise ValueError(f"{name} is empty: the batch has no rows")
        if not torch.isfinite(t).all():
            raise ValueError(
                f"{name} contains NaN or inf: training diverged — lower the learning rate or check the inputs"
            )
        shapes[name] = tuple(t.shape)
    if len(set(shapes.values())) > 1:
        raise ValueError(f"shapes differ: {shapes}; the views must have the same batch size and dimension")
