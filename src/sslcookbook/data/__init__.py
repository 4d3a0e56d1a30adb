"""Data sets as in-memory uint8 tensors, and device-resident batching.

``load(name, split)`` returns an ``ImageDataset`` (images uint8 N×C×H×W, labels int64 N);
``batches(dataset, batch_size, device=...)`` iterates over it on the device. See ``available()``.
"""

from .dataset import ImageDataset
from .loader import batches, num_batches
from .registry import available, default_root, load
from .shapes import SHAPE_CLASSES, make_shapes

__all__ = [
    "ImageDataset",
    "SHAPE_CLASSES",
    "available",
    "batches",
    "default_root",
    "load",
    "make_shapes",
    "num_batches",
]
