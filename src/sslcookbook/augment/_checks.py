"""Argument checks shared by every augmentation op: the batch, the generator, probabilities, ranges.

Each check names the op (``op``) in its message and says how to fix the input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Tensor = torch.Tensor


def check_batch(x: object, op: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{op}: expected a torch.Tensor of images B×C×H×W, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(
            f"{op}: expected a batch of images B×C×H×W, got shape {tuple(x.shape)}; "
            "add a batch dimension with images.unsqueeze(0) or stack single images with torch.stack"
        )


def check_images(x: Tensor, op: str, color: bool = False) -> None:
    check_batch(x, op)
    if not x.is_floating_point():
        raise TypeError(
            f"{op}: expected float images in [0, 1], got dtype {x.dtype}; "
            "convert with sslcookbook.augment.to_float(images)"
        )
    if color and x.shape[1] not in (1, 3):
        raise ValueError(
            f"{op}: expected 1 (grayscale) or 3 (RGB) channels, got {x.shape[1]} (shape {tuple(x.shape)}); "
            "images must be channels-first B×C×H×W"
        )


def check_generator(generator: torch.Generator | None, x: Tensor, op: str) -> None:
    if generator is not None and generator.device.type != x.device.type:
        raise ValueError(
            f"{op}: generator is on {generator.device} but the images are on {x.device}; "
            f"create it with torch.Generator(device={str(x.device)!r}).manual_seed(seed)"
        )


def check_probability(p: float, op: str) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: p must be a probability in [0, 1], got {p}")
    return p


def check_random_op(
    x: object, generator: torch.Generator | None, op: str, p: float = 1.0, color: bool = False
) -> float:
    """The checks every random op starts with: float images B×C×H×W (1 or 3 channels if ``color``), a
    generator on their device, and the probability ``p`` of applying the op; returns ``p`` as a float."""
    check_images(x, op, color=color)
    check_generator(generator, x, op)
    return check_probability(p, op)


def as_range(value: float | Sequence[float], name: str, op: str) -> tuple[float, float]:
    """``(low, high)`` from a pair, validated."""
    if isinstance(value, (int, float)):
        raise TypeError(f"{op}: {name} must be a (low, high) pair, got {value!r}")
    low, high = (float(v) for v in value)
    if low > high:
        raise ValueError(f"{op}: {name} must be (low, high) with low <= high, got {tuple(value)}")
    return low, high


def per_sample(factor: float | Tensor, x: Tensor, op: str) -> Tensor:
    """A scalar or a (B,) tensor as a B×1×1×1 tensor of the images' dtype and device."""
    if not isinstance(factor, torch.Tensor):
        return torch.full((x.shape[0], 1, 1, 1), float(factor), dtype=x.dtype, device=x.device)
    if factor.ndim == 0:
        factor = factor.expand(x.shape[0])
    if factor.shape != (x.shape[0],):
        raise ValueError(
            f"{op}: expected a scalar or one factor per image (shape ({x.shape[0]},)), "
            f"got shape {tuple(factor.shape)}"
        )
    return factor.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def output_size(size: int | Sequence[int] | None, x: Tensor, op: str) -> tuple[int, int]:
    if size is None:
        return int(x.shape[-2]), int(x.shape[-1])
    if isinstance(size, int):
        size = (size, size)
    if len(size) != 2 or any(int(s) < 1 for s in size):
        raise ValueError(f"{op}: size must be a positive int or an (height, width) pair, got {size!r}")
    return int(size[0]), int(size[1])
