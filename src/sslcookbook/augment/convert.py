"""Deterministic value conversions at the ends of a pipeline: uint8 → float in [0, 1], and
per-channel normalisation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ._checks import check_batch, check_images

Tensor = torch.Tensor


def to_float(images: Tensor, dtype: torch.dtype = torch.float32, check_range: bool = True) -> Tensor:
    """uint8 images (0–255) → ``dtype`` in [0, 1]; float images pass through unchanged.

    With ``check_range`` a float batch is checked to be finite and within [0, 1] (one reduction;
    on CUDA it synchronises once). uint8 input needs no check.
    """
    check_batch(images, "to_float")
    if images.dtype == torch.uint8:
        return images.to(dtype).div_(255.0)
    if not images.is_floating_point():
        raise TypeError(
            f"to_float: expected uint8 images (0-255) or float images in [0, 1], got dtype {images.dtype}; "
            "convert with images.to(torch.uint8) if they hold 0-255 values, or images.float() / 255"
        )
    if check_range and images.numel() > 0:
        low, high = (float(v) for v in torch.aminmax(images.detach()))  # NaN propagates into both
        if math.isnan(low) or math.isnan(high):
            raise ValueError("to_float: images contain NaN; check the data loading and any preprocessing")
        if low < -1e-3 or high > 1.0 + 1e-3:
            hint = (
                "they look like 0-255 values: pass them as uint8 or divide by 255"
                if high > 1.5 and math.isfinite(high)
                else "clamp them with images.clamp(0, 1) or undo any normalisation first"
            )
            raise ValueError(
                f"to_float: float images must lie in [0, 1], got range [{low:g}, {high:g}]; {hint}"
            )
    return images


def normalize(
    x: Tensor,
    mean: float | Sequence[float],
    std: float | Sequence[float],
    generator: torch.Generator | None = None,
) -> Tensor:
    """``(x − mean) / std`` per channel (scalars or one value per channel).

    Deterministic: ``generator`` is accepted, unused, so that it composes like the random ops.
    """
    op = "normalize"
    check_images(x, op)
    channels = x.shape[1]
    stats = []
    for name, value in (("mean", mean), ("std", std)):
        values = [float(value)] * channels if isinstance(value, (int, float)) else [float(v) for v in value]
        if len(values) != channels:
            raise ValueError(f"{op}: {name} has {len(values)} values but the images have {channels} channels")
        stats.append(torch.tensor(values, dtype=x.dtype, device=x.device).view(1, channels, 1, 1))
    if (stats[1] <= 0).any():
        raise ValueError(f"{op}: std must be positive, got {std!r}")
    return (x - stats[0]) / stats[1]
