"""Generated image folders: an ImageFolder tree of JPEG (or PNG) files written from a seed.

For what needs real encoded files rather than tensors, without a download: the tests of packing and
streaming (``tests/test_shards.py``) and the data-loading benchmark (``benchmarks/bench_data.py``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

_COARSE = (6, 8)  # rows × columns of random colours that the bicubic upsampling smooths into a field


def write_image_folder(
    root: str | os.PathLike,
    count: int,
    *,
    classes: int | Sequence[str] = 10,
    heights: tuple[int, int] = (240, 300),
    widths: tuple[int, int] = (320, 400),
    fmt: str = "JPEG",
    quality: int = 90,
    tint: float = 0.5,
    noise: float = 8.0,
    seed: int = 0,
) -> Path:
    """Write ``count`` images into ``root/<class>/<i:06d>.jpg`` (``.png`` with ``fmt="PNG"``) and return
    ``root``; image i belongs to class i mod K.

    Each image's width and height are drawn uniformly from the inclusive ranges ``widths`` and
    ``heights`` (pass equal bounds for a fixed size); its pixels are a smooth random colour field (a 6×8
    grid of random colours, bicubic-upsampled), blended with its class's colour,
    ``(1 − tint)·field + tint·colour`` (the colour is 255 in channel k mod 3 of class k, 0 elsewhere, so a
    probe can tell the classes apart when ``tint`` > 0), plus Gaussian noise of standard deviation
    ``noise``, clipped to 0..255; saved with JPEG ``quality``. Everything is drawn from
    ``numpy.random.default_rng(seed)``: the same arguments write the same bytes.

    Args:
        classes: K, named ``class0`` ... ``class{K-1}``, or the folder names themselves.
        fmt: ``"JPEG"`` or ``"PNG"`` (lossless).
    """
    names = [f"class{k}" for k in range(classes)] if isinstance(classes, int) else [str(c) for c in classes]
    if not names or count < 0:
        raise ValueError(f"need at least one class and count >= 0, got {len(names)} classes, count={count}")
    if fmt not in ("JPEG", "PNG"):
        raise ValueError(f"fmt must be 'JPEG' or 'PNG', got {fmt!r}")
    for low, high in (heights, widths):
        if not 1 <= low <= high:
            raise ValueError(f"heights and widths must be (low, high), 1 <= low <= high: {heights}, {widths}")
    if not 0 <= tint <= 1:
        raise ValueError(f"tint must lie in [0, 1], got {tint}")
    root = Path(root).expanduser()
    suffix = "jpg" if fmt == "JPEG" else "png"
    options = {"quality": quality} if fmt == "JPEG" else {}
    rng = np.random.default_rng(seed)
    for i in range(count):
        label = i % len(names)
        folder = root / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        # the draws in this order (width, height, grid, noise): the benchmark's images stay the same bytes
        width = int(rng.integers(widths[0], widths[1] + 1))
        height = int(rng.integers(heights[0], heights[1] + 1))
        coarse = Image.fromarray(rng.integers(0, 256, (*_COARSE, 3), dtype=np.uint8))
        field = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
        if tint:
            colour = np.zeros(3, np.float32)
            colour[label % 3] = 255
            field = (1 - tint) * field + tint * colour
        pixels = np.clip(field + rng.normal(0, noise, field.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:06d}.{suffix}", format=fmt, **options)
    return root


__all__ = ["write_image_folder"]
