"""``load(name, split)``: one entry point for every data set the cookbook knows."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from .dataset import ImageDataset

SPLITS = ("train", "test")
_BUILTIN = ("digits", "shapes", "shapes_colour_shortcut")
_TORCHVISION = ("cifar10", "cifar100", "stl10", "mnist", "fashion_mnist")
FOLDER_PREFIX = "folder:"
_PAIRED = ("shape_pairs", "digit_pairs")  # image-caption pairs (data/paired.py), generated offline
PAIRS_PREFIX = "pairs:"
SHARDS_PREFIX = "shards:"  # WebDataset shards written by `sslcookbook pack`, streamed (data/shards.py)
_SERIES = ("series", "series_anomalies")  # generated multichannel time series (data/series.py)
UCR_PREFIX = "ucr:"


def available() -> list[str]:
    """Names ``load`` accepts: built-in sets (no download), torchvision sets, and ``folder:<path>``."""
    return [
        *_BUILTIN,
        *_TORCHVISION,
        f"{FOLDER_PREFIX}<path>",
        *_PAIRED,
        f"{PAIRS_PREFIX}<path>",
        f"{SHARDS_PREFIX}<path or glob>",
        *_SERIES,
        f"{UCR_PREFIX}<path>",
    ]


def default_root() -> Path:
    """Where data files and caches live: ``$SSLCOOKBOOK_DATA``, else ``~/.cache/sslcookbook/data``."""
    env = os.environ.get("SSLCOOKBOOK_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sslcookbook" / "data"


@functools.cache
def _builtin(name: str, split: str) -> ImageDataset:
    if name == "digits":
        from .digits import load_digits_split

        return load_digits_split(split)
    from .shapes import (
        SHAPES_SHORTCUT_PIXELS,
        SHAPES_SHORTCUT_TEST_SIZE,
        SHAPES_SHORTCUT_TRAIN_SIZE,
        SHAPES_TEST_SEED,
        SHAPES_TEST_SIZE,
        SHAPES_TRAIN_SEED,
        SHAPES_TRAIN_SIZE,
        make_shapes,
    )

    seed = SHAPES_TRAIN_SEED if split == "train" else SHAPES_TEST_SEED
    if name == "shapes_colour_shortcut":
        n = SHAPES_SHORTCUT_TRAIN_SIZE if split == "train" else SHAPES_SHORTCUT_TEST_SIZE
        dataset = make_shapes(n, size=SHAPES_SHORTCUT_PIXELS, seed=seed, colour_shortcut=True)
    else:
        dataset = make_shapes(SHAPES_TRAIN_SIZE if split == "train" else SHAPES_TEST_SIZE, seed=seed)
    dataset.name = f"{name}/{split}"
    return dataset


@functools.cache
def _paired(name: str, split: str) -> ImageDataset:
    from . import paired

    if name == "digit_pairs":
        return paired.digit_pairs(_builtin("digits", split), seed=0 if split == "train" else 1)
    n = paired.SHAPE_PAIRS_TRAIN_SIZE if split == "train" else paired.SHAPE_PAIRS_TEST_SIZE
    dataset = paired.make_shape_pairs(n, split, seed=0 if split == "train" else 1)
    dataset.name = f"{name}/{split}"
    return dataset


def load(
    name: str, split: str = "train", root: str | os.PathLike | None = None, download: bool = False
) -> ImageDataset:
    """Load data set ``name`` (see ``available()``) for ``split`` ("train" or "test") as an ImageDataset.

    - ``digits``: scikit-learn's 8×8 digits, 1×8×8, 1,437 train / 360 test (stratified, seed 0).
    - ``shapes``: synthetic 3×32×32 shapes, 8 classes, 5,000 train (seed 0) / 1,000 test (seed 1).
    - ``shapes_colour_shortcut``: the shapes with colour as an instance shortcut (two vivid colours per
      image, flat background, no noise; ``make_shapes(colour_shortcut=True)``), 3×16×16, 2,000 train
      (seed 0) / 1,000 test (seed 1): small enough to train crop/colour ablations in CPU minutes.
    - ``cifar10``, ``cifar100``, ``stl10``, ``mnist``, ``fashion_mnist``: torchvision's files under
      ``root``; ``download=True`` fetches them when missing.
    - ``folder:<path>``: an ImageFolder tree; its decoded tensors are cached under ``root/folder-cache``.
      A tree whose decoded size would pass ``$SSLCOOKBOOK_STREAM_ABOVE_MB`` (default 4096) is streamed
      instead, as a ``ShardDataset`` over its files (``data/shards.py``, ``folder_stream``).
    - ``shape_pairs``, ``digit_pairs``, ``pairs:<path>``: image–caption pairs (a ``PairedDataset``, see
      ``data/paired.py``): generated shapes captioned with their attributes (3×24×24, 4,000 train / 1,000
      test, held-out colour–shape combinations), the digits with templated captions, or a folder of
      images with a captions.csv / captions.jsonl.
    - ``shards:<path or glob>``: WebDataset shards written by ``sslcookbook pack`` (``pack``), returned
      as a streaming ``ShardDataset`` (``data/shards.py``): decoded per batch, never held in memory.
    - ``series``, ``series_anomalies``, ``ucr:<path>``: time series (a ``SeriesDataset``, float N×C×L, see
      ``data/series.py``): generated 3-channel series of 128 steps, 6 classes, 1,500 train (seed 0) / 600
      test (seed 1), 10% of them with an injected anomaly in ``series_anomalies``; or a UCR/UEA data set's
      folder or file (``.tsv`` / ``.ts``), shorter series padded with a mask.

    ``root`` defaults to ``default_root()``. Built-in sets are cached in memory and shared between
    calls: treat the returned tensors as read-only.
    """
    if not isinstance(name, str):
        raise TypeError(f"data set name must be a str, got {type(name).__name__}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: choose 'train' or 'test'")
    data_root = Path(root).expanduser() if root is not None else default_root()
    if name.startswith(FOLDER_PREFIX):
        path = name[len(FOLDER_PREFIX) :]
        if not path:
            raise ValueError("folder: needs a path, e.g. load('folder:~/pictures/pets')")
        from .folder import load_folder
        from .shards import folder_stream

        stream = folder_stream(path, split)  # above $SSLCOOKBOOK_STREAM_ABOVE_MB decoded: streamed
        return stream if stream is not None else load_folder(path, split, data_root)
    if name.startswith(PAIRS_PREFIX):
        path = name[len(PAIRS_PREFIX) :]
        if not path:
            raise ValueError("pairs: needs a path, e.g. load('pairs:~/photos') with ~/photos/captions.csv")
        from .paired import load_pairs

        return load_pairs(path, split)
    if name.startswith(SHARDS_PREFIX):
        spec = name[len(SHARDS_PREFIX) :]
        if not spec:
            raise ValueError("shards: needs a path, e.g. load('shards:~/packed') after `sslcookbook pack`")
        from .shards import load_shards

        return load_shards(spec, split)
    if name.startswith(UCR_PREFIX):
        if not name[len(UCR_PREFIX) :]:
            raise ValueError("ucr: needs a path, e.g. load('ucr:~/UCRArchive_2018/GunPoint')")
        from .series import load_ucr

        return load_ucr(name[len(UCR_PREFIX) :], split)
    key = name.lower()
    if key in _SERIES:
        return _series(key, split)
    if key in _PAIRED:
        return _paired(key, split)
    if key in _BUILTIN:
        return _builtin(key, split)
    if key in _TORCHVISION:
        from .torchvision_sets import load_torchvision

        return load_torchvision(key, split, data_root, download)
    raise ValueError(f"unknown data set {name!r}: known names are {', '.join(available())}")


@functools.cache
def _series(name: str, split: str):
    from .series import series_split

    return series_split(name, split)
