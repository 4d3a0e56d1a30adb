"""Tile sizes and the launch that falls back to smaller tiles: the part every Triton kernel here shares.

Each kernel keeps its own table of starting sizes (``_tile_config`` in its module); :func:`launch` tries
it and, when the GPU runs out of registers or shared memory, steps down through :func:`smaller` and
remembers what worked for that kernel variant.

With ``SSLCOOKBOOK_AUTOTUNE=1`` (GPU only; off by default until GPU measurements say it pays) the first
launch of each kernel variant and problem size (rows rounded up to a power of two) times the table's
entry and its neighbours (:func:`candidates`, at most seven: tiles halved or doubled, the other warp
count) with ``triton.testing.do_bench`` and caches the fastest for the rest of the process. Every kernel
here only stores its outputs (no accumulation into them), so the timed launches leave correct results.
"""

from __future__ import annotations

import dataclasses
import os
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


def candidates(config: TileConfig) -> list[TileConfig]:
    """``config`` first, then its neighbours: each tile side halved or doubled (16 to 128), the other
    warp count (4 or 8); duplicates dropped."""
    out = [config]
    for field in ("block_out", "block_loop"):
        for factor in (0.5, 2):
            size = int(getattr(config, field) * factor)
            if 16 <= size <= 128:
                out.append(dataclasses.replace(config, **{field: size}))
    out.append(dataclasses.replace(config, num_warps=8 if config.num_warps == 4 else 4))
    return list(dict.fromkeys(out))


def autotune_enabled() -> bool:
    """``SSLCOOKBOOK_AUTOTUNE=1`` in the environment, on a GPU and not under the Triton interpreter (whose
    tiles are fixed: numpy does the arithmetic)."""
    return (
        os.environ.get("SSLCOOKBOOK_AUTOTUNE", "0") == "1"
        and os.environ.get("TRITON_INTERPRET", "0") != "1"
        and torch.cuda.is_available()
    )


def _do_bench_ms(fn: Callable[[], None]) -> float:
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=5, rep=20))


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
    autotune: bool | None = None,
    timer: Callable[[Callable[[], None]], float] | None = None,
) -> None:
    """Launch ``kernel`` over blocks of ``n_rows`` rows, starting from ``tile_config(block_d, element_size)``
    (or what worked before, in ``working``, per kernel, row width and constants); on OutOfResources retry
    with :func:`smaller` tiles. ``autotune`` (default :func:`autotune_enabled`) first times
    :func:`candidates` with ``timer`` (milliseconds of one call; default ``triton.testing.do_bench``) and
    keeps the fastest, per problem size as well."""
    key = (getattr(kernel, "__name__", repr(kernel)), block_d, element_size, tuple(sorted(constants.items())))
    autotune = autotune_enabled() if autotune is None else autotune

    def run(config: TileConfig) -> None:
        kernel[(triton.cdiv(n_rows, config.block_out),)](
            *args,
            **constants,
            BLOCK_OUT=config.block_out,
            BLOCK_LOOP=config.block_loop,
            BLOCK_D=block_d,
            num_warps=config.num_warps,
            num_stages=config.num_stages,
        )

    if autotune:
        tuned_key = (*key, 1 << max(0, n_rows - 1).bit_length())
        if tuned_key not in working:
            timer = timer or _do_bench_ms
            times = {}
            for config in candidates(working.get(key) or tile_config(block_d, element_size)):
                try:
                    times[config] = timer(lambda config=config: run(config))
                except OutOfResources:
                    continue
            if times:
                working[tuned_key] = min(times, key=times.get)
        key = tuned_key
    config = working.get(key) or tile_config(block_d, element_size)
    while True:
        try:
            run(config)
        except OutOfResources:
            config = smaller(config)
            if config is None:
                raise
            continue
        working[key] = config
        return
