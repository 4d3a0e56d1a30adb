"""Device-resident mini-batches: the data set is copied to the device once, batches are gathered there."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .dataset import ImageDataset


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


def num_batches(dataset: ImageDataset | int, batch_size: int, drop_last: bool = True) -> int:
    """How many batches ``batches`` yields per pass over ``dataset`` (or over that many items)."""
    _check_batch_size(batch_size)
    n = dataset if isinstance(dataset, int) else len(dataset)
    return n // batch_size if drop_last else -(-n // batch_size)


def batches(
    dataset: ImageDataset,
    batch_size: int,
    *,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
    drop_last: bool = True,
    device: torch.device | str | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One pass over ``dataset`` as ``(images uint8 B×C×H×W, labels int64 B)`` on ``device``.

    ``device=None`` keeps the data where it lives. The full tensors are moved to ``device`` once
    (cached on the dataset) and each batch is gathered there (``index_select``): a fresh tensor,
    never a view of the data set. The order is ``torch.randperm(len(dataset), generator=generator)``
    drawn on the CPU (the global RNG when ``generator`` is None), so a seeded generator gives the
    same batches on every device. Arguments are checked when called, not at the first batch.
    """
    if not isinstance(dataset, ImageDataset):
        raise TypeError(
            f"batches needs an ImageDataset, got {type(dataset).__name__}; wrap tensors with "
            "ImageDataset(images, labels, classes)"
        )
    _check_batch_size(batch_size)
    n = len(dataset)
    if drop_last and batch_size > n:
        raise ValueError(
            f"batch_size {batch_size} is larger than the data set ({n} images), so drop_last=True yields no "
            "batch: lower batch_size or pass drop_last=False"
        )
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU torch.Generator (got one on {generator.device})")
    images, labels = dataset.device_tensors(device)
    order = torch.randperm(n, generator=generator) if shuffle else None
    return _iterate(images, labels, order, batch_size, num_batches(n, batch_size, drop_last))


def _iterate(
    images: torch.Tensor, labels: torch.Tensor, order: torch.Tensor | None, batch_size: int, count: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    if order is None:  # clone: a batch never aliases the cached data set, so in-place edits are safe
        for b in range(count):
            rows = slice(b * batch_size, (b + 1) * batch_size)
            yield images[rows].clone(), labels[rows].clone()
        return
    order = order.to(images.device, non_blocking=True)
    for b in range(count):
        index = order[b * batch_size : (b + 1) * batch_size]
        yield images.index_select(0, index), labels.index_select(0, index)
