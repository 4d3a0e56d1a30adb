"""Tile sizes and the launch that falls back to smaller tiles: the part every Triton kernel here shares.

Each kernel keeps its own table of starting sizes (``_tile_config`` in its module); :func:`launch` tries
it and, when the GPU runs out of registers or shared memory, steps down through :func:`smaller` and
remembers what worked for that kernel variant.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from . import triton_available

if triton_available():
    import triton
    from triton.runtime.errors import OutOfResources


@dataclasses.dataclass(frozen=True)
class TileConfig:
    block_out: int  # rows one program owns (kept on chip, with their fp32 accumulator)
    block_loop: int  # rows streamed through the inner loop per step
    num_warps: int
    num_stages: int  # software-pipelining depth of the streamed loads


def smaller(config: TileConfig) -> TileConfig | None:
    """The next smaller configuration to try after an out-of-resources error, or None."""
    if config.num_stages > 2:
        return dataclasses.replace(config, num_stages=config.num_stages - 1)
    if config.block_loop > 16:
        return dataclasses.replace(config, block_loop=config.block_loop // 2)
    if config.block_out > 16:
        return dataclasses.replace(config, block_out=config.block_out // 2)
    if config.num_stages > 1:
        return dataclasses.replace(config, num_stages=1)
    return None


def dot_precision(dtype: torch.dtype) -> str:
    """TF32 for fp32 tiles only when PyTorch's own fp32 matmuls use it, exact fp32 ("ieee") otherwise.

    For 16-bit tiles the setting is ignored by Triton; pass its default, "tf32".
    """
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    return "tf32"


def launch(
    kernel,
    n_rows: int,
    block_d: int,
    element_size: int,
    args: tuple,
    constants: dict,
    *,
    tile_config: Callable[[int, int], TileConfig],
    working: dict,
) -> None:
    """Launch ``kernel`` over blocks of ``n_rows`` rows, starting from ``tile_config(block_d, element_size)``
    (or what worked before, in ``working``, per kernel, row width and constants); on OutOfResources retry
    with :func:`smaller` tiles."""
    key = (getattr(kernel, "__name__", repr(kernel)), block_d, element_size, tuple(sorted(constants.items())))
    config = working.get(key) or tile_config(block_d, element_size)
    while True:
        grid = (triton.cdiv(n_rows, config.block_out),)
        try:
            kernel[grid](
                *args,
                **constants,
                BLOCK_OUT=config.block_out,
                BLOCK_LOOP=config.block_loop,
                BLOCK_D=block_d,
                num_warps=config.num_warps,
                num_stages=config.num_stages,
            )
        except OutOfResources:
            config = smaller(config)
            if config is None:
                raise
            continue
        working[key] = config
        return
