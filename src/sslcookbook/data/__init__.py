"""Data sets as in-memory uint8 tensors.

``load(name, split)`` returns an ``ImageDataset`` (images uint8 N×C×H×W, labels int64 N); see
``available()``. ``fit`` moves the tensors to the device once and gathers its batches there.
"""

from .arithmetic import AdditionTask, Problem, ProblemSets, make_problem_sets
from .dataset import ImageDataset
from .paired import PairedDataset, make_shape_pairs
from .registry import available, default_root, load
from .series import SERIES_CLASSES, SeriesDataset, load_ucr, make_series
from .shapes import SHAPE_CLASSES, make_shapes, make_shapes_with_masks
from .text import WordTokenizer

__all__ = [
    "ImageDataset",
    "SHAPE_CLASSES",
    "available",
    "default_root",
    "load",
    "make_shapes",
    "PairedDataset",
    "WordTokenizer",
    "make_shape_pairs",
    "make_shapes_with_masks",
    "ShardDataset",
    "pack",
    "SERIES_CLASSES",
    "SeriesDataset",
    "load_ucr",
    "make_series",
    "AdditionTask",
    "Problem",
    "ProblemSets",
    "make_problem_sets",
]

from .shards import ShardDataset, pack  # noqa: E402  (streamed shards; appended after the core names)
