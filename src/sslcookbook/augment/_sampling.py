"""Per-sample randomness for a whole batch: uniform draws on the images' device, and applying an op
to the images a per-sample mask selects."""

from __future__ import annotations

from collections.abc import Callable

import torch

Tensor = torch.Tensor


def rand(shape: tuple[int, ...] | int, generator: torch.Generator | None, x: Tensor) -> Tensor:
    """Uniform [0, 1) float32 numbers on the images' device."""
    return torch.rand(shape, generator=generator, device=x.device)


def uniform(u: Tensor, low: float, high: float) -> Tensor:
    return low + (high - low) * u


def select(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Per-sample choice: ``a[i]`` where ``mask[i]`` else ``b[i]``."""
    return torch.where(mask.view(-1, 1, 1, 1), a, b)


def apply_where(
    x: Tensor, mask: Tensor, fn: Callable[..., Tensor], *args: Tensor, inplace: bool = False
) -> Tensor:
    """``fn(x, *args)[i]`` for the images where ``mask[i]``, ``x[i]`` elsewhere.

    ``fn`` maps a batch and per-image arguments (first dimension B) to a batch of the same shape.
    On CPU only the selected images are gathered and computed (``inplace`` then writes them into
    ``x``); on CUDA every image is computed and the results selected, which avoids the host
    synchronisation that gathering a data-dependent subset needs. Both give the same values.
    """
    if x.device.type != "cpu":
        return select(mask, fn(x, *args), x)
    index = mask.nonzero().squeeze(1)
    if index.numel() == 0:
        return x
    selected = fn(x.index_select(0, index), *(a.index_select(0, index) for a in args))
    return (x if inplace else x.clone()).index_copy_(0, index, selected)
