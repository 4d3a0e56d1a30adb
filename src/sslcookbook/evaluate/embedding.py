"""Frozen features of a data set: the encoder in eval mode, no gradients, batched, on the CPU."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ._checks import as_tensor
from ._modules import module_device, modules_behind


def embed(
    encoder: Callable[[Tensor], Tensor],
    images: Tensor,
    batch_size: int = 512,
    device: str | torch.device | None = None,
) -> Tensor:
    """Frozen features of ``images``: float32 N×D on the CPU.

    Runs under ``torch.no_grad()`` with ``encoder`` in eval mode — BatchNorm uses, and does not
    update, its running statistics — and restores every module's train/eval mode afterwards.
    ``encoder`` is an nn.Module or a function of modules; for a function, the modules it holds in
    closure variables, default arguments, a bound method's owner or a ``functools.partial`` are
    switched (a function that reaches its modules through globals is not seen: pass an nn.Module,
    e.g. ``nn.Sequential(backbone, projector)``). uint8 images are scaled to [0, 1]; float images
    are used as given. Outputs with more than two dims (e.g. N×C×h×w feature maps) are flattened.
    ``device`` defaults to the encoder's device, else the images' device.
    """
    images = as_tensor(images, "images")
    if images.ndim < 2:
        raise ValueError(f"images must be batched (N×C×H×W), got shape {tuple(images.shape)}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise TypeError(f"images must be uint8 (0..255) or float, got dtype {images.dtype}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not callable(encoder):
        raise TypeError(f"encoder must be callable (an nn.Module), got {type(encoder).__name__}")
    modules = modules_behind(encoder)
    if device is None:
        device = next(filter(None, map(module_device, modules)), None) or images.device
    device = torch.device(device)

    # Every submodule's own flag, so that a model with some parts frozen in eval mode gets them back.
    modes = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.eval()
    chunks = []
    try:
        with torch.no_grad():
            for start in range(0, images.shape[0], batch_size):
                batch = images[start : start + batch_size].to(device, non_blocking=True)
                batch = batch.float().div_(255.0) if batch.dtype == torch.uint8 else batch.float()
                out = encoder(batch)
                if not isinstance(out, Tensor):
                    raise TypeError(
                        f"encoder must return a Tensor of features, got {type(out).__name__}: "
                        "wrap it so that it returns the backbone features"
                    )
                if out.shape[0] != batch.shape[0]:
                    raise ValueError(
                        f"encoder returned {out.shape[0]} rows for a batch of {batch.shape[0]} images"
                    )
                chunks.append(out.reshape(out.shape[0], -1).float().cpu())
    finally:
        for module, training in modes:
            module.training = training
    if not chunks:
        raise ValueError("images is empty: nothing to embed")
    return torch.cat(chunks)


def embed_stream(
    encoder: Callable[[Tensor], Tensor],
    dataset,
    batch_size: int = 512,
    device: str | torch.device | None = None,
    workers: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Frozen features and labels of a streamed data set (a ``ShardDataset``, ``data.load("shards:...")``):
    ``(float32 N×D, int64 N)`` on the CPU, with the images read, centre-cropped and embedded one batch
    at a time (``embed`` on each), in shard order, so that only the features are ever held. The whole
    set is read in this process (every shard, whatever the rank). kNN and probes take the result as they
    take ``embed``'s: ``knn_accuracy(*embed_stream(f, train), *embed_stream(f, test))``."""
    if not getattr(dataset, "streaming", False):
        raise TypeError(
            f"embed_stream needs a streamed data set (data.load('shards:...')), got "
            f"{type(dataset).__name__}; embed an in-memory one with embed(encoder, dataset.images)"
        )
    stream = dataset.with_options(
        train=False, batch_size=batch_size, rank=0, world_size=1, skip_shards=frozenset()
    )
    features, labels = [], []
    for images, batch_labels, _, _ in stream.batches(workers=workers):
        features.append(embed(encoder, images, batch_size=batch_size, device=device))
        labels.append(batch_labels)
    if not features:
        raise ValueError(f"{dataset.name} yielded no images: nothing to embed")
    return torch.cat(features), torch.cat(labels)
