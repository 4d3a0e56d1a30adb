"""`ImageDataset`: uint8 images N×C×H×W and int64 labels held in memory, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset


def _as_tensor(value: object, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise TypeError(f"{what} must be a torch.Tensor (or numpy array), got {type(value).__name__}")


@dataclass(eq=False, repr=False)
class ImageDataset(Dataset):
    """An image classification data set held in memory.

    ``images``: uint8 tensor N×C×H×W (contiguous); ``labels``: int64 tensor N with values in
    ``0 .. len(classes) - 1``; ``classes``: class names in label order; ``name``: where it came from.
    Treat the tensors as read-only: ``load`` caches and shares them between calls.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str = "dataset"

    def __post_init__(self) -> None:
        images = _as_tensor(self.images, "images")
        labels = _as_tensor(self.labels, "labels")
        if images.dim() != 4:
            hint = " (add a channel axis with images.unsqueeze(1))" if images.dim() == 3 else ""
            raise ValueError(f"images must be 4-D N×C×H×W, got shape {tuple(images.shape)}{hint}")
        if images.dtype != torch.uint8:
            raise TypeError(
                f"images must be uint8 (0..255), got {images.dtype}; convert floats in [0, 1] with "
                "(images * 255).round().clamp(0, 255).to(torch.uint8)"
            )
        if images.shape[1] not in (1, 3) and images.shape[-1] in (1, 3):
            raise ValueError(
                f"images of shape {tuple(images.shape)} look channels-last (N×H×W×C); "
                "pass images.permute(0, 3, 1, 2) to get N×C×H×W"
            )
        if labels.dim() != 1:
            raise ValueError(
                f"labels must be 1-D (one class index per image), got shape {tuple(labels.shape)}"
            )
        if labels.dtype != torch.int64:
            if labels.dtype.is_floating_point or labels.dtype == torch.bool:
                raise TypeError(f"labels must be int64 class indices, got {labels.dtype}; pass labels.long()")
            labels = labels.long()
        if labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"images and labels disagree in length: {images.shape[0]} images but {labels.shape[0]} labels"
            )
        if images.shape[0] == 0:
            raise ValueError(f"data set {self.name!r} has no images")
        classes = list(self.classes)
        if not classes or not all(isinstance(c, str) for c in classes):
            raise TypeError(f"classes must be a non-empty list of class names (str), got {self.classes!r}")
        if len(set(classes)) != len(classes):
            raise ValueError(f"classes contains duplicate names: {classes}")
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= len(classes):
            raise ValueError(
                f"labels must lie in 0..{len(classes) - 1} (one per class name), found {low}..{high}; "
                "pass the full list of class names or remap the labels"
            )
        self.images = images.contiguous()
        self.labels = labels.contiguous()
        self.classes = classes

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        shape = f"({c}, {h}, {w})"
        return f"ImageDataset(name={self.name!r}, n={n}, image_shape={shape}, classes={len(self.classes)})"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])

    def class_counts(self) -> torch.Tensor:
        """Number of images per class, int64 tensor of length ``num_classes``."""
        return torch.bincount(self.labels.cpu(), minlength=self.num_classes)

    def subset(self, n: int, seed: int = 0) -> ImageDataset:
        """A class-stratified random subset of ``min(n, len(self))`` images, deterministic given ``seed``.

        Each class keeps its share of the data set (up to rounding): images are shuffled, ranked
        within their class, and taken in order of ``rank / class_size``, so the first ``n`` picks
        interleave the classes proportionally. The kept images stay in their original order.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"subset size n must be a positive int, got {n!r}")
        if n >= len(self):
            return self
        return self._take(self._stratified_order(seed)[:n].sort().values, f"subset {n}, seed {seed}")

    def split(self, fraction: float, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
        """``(rest, held_out)``: a class-stratified ``fraction`` of the images held out, deterministically.

        This is how a validation split is carved from a training set, so that thresholds and choices are
        tuned without looking at the test split. ``held_out`` is what ``subset(round(fraction * N), seed)``
        returns; ``rest`` is every other image, both in their original order.
        """
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
            raise ValueError(f"split fraction must be a number strictly between 0 and 1, got {fraction!r}")
        k = round(fraction * len(self))
        if not 1 <= k < len(self):
            raise ValueError(
                f"a fraction of {fraction} of {len(self)} images holds out {k}: choose a fraction that "
                "leaves at least one image on each side"
            )
        order = self._stratified_order(seed)
        tag = f"{fraction:g} held out, seed {seed}"
        return self._take(order[k:].sort().values, f"rest of {tag}"), self._take(order[:k].sort().values, tag)

    def _stratified_order(self, seed: int) -> torch.Tensor:
        """A permutation of the indices whose every prefix holds each class in proportion to its size."""
        total = len(self)
        generator = torch.Generator().manual_seed(seed)
        labels = self.labels.cpu()
        order = torch.randperm(total, generator=generator)
        shuffled = labels[order]
        # Rank of each shuffled item inside its class: position after a stable sort by label.
        by_class = torch.sort(shuffled, stable=True).indices
        counts = torch.bincount(shuffled, minlength=self.num_classes)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.empty(total, dtype=torch.float64)
        rank[by_class] = (torch.arange(total) - starts[shuffled[by_class]]).double()
        jitter = torch.rand(total, generator=generator, dtype=torch.float64)
        key = (rank + jitter) / counts[shuffled].double()
        return order[torch.argsort(key)]

    def _take(self, keep: torch.Tensor, tag: str) -> ImageDataset:
        return ImageDataset(
            self.images.index_select(0, keep.to(self.images.device)),
            self.labels.index_select(0, keep.to(self.labels.device)),
            list(self.classes),
            f"{self.name}[{tag}]",
        )
