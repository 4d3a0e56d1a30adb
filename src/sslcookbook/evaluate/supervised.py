"""End-to-end training on few labels: the supervised baseline (from scratch) and fine-tuning (SSL weights).

SSL's promise is label efficiency: features learned without labels, probed with 1 or 10 labels per class,
should beat a network of the same architecture trained end to end on those same labels. This module trains
that network (a fresh copy of the backbone plus a linear classifier, cross-entropy, AdamW on a warm-up +
cosine schedule) on exactly the few-shot draws the linear probe uses (:func:`few_shot_indices`) and scores
it on the same test split, so the two sit side by side in one table. :func:`fine_tune` runs the same
training from the SSL encoder's own weights: the protocol where masked-image models shine.

Two details matter for Vision Transformers (measured 2026-12-01, 2-core CPU, MAE's cpu weights on the
digits, all labels, 100 steps). Their features leave a LayerNorm and are mostly a component every image
shares: per dimension they vary little across images, so a plain linear head's logits hardly differ and
cross-entropy sits at ln 10 for most of the budget (25% test accuracy at lr 5e-4, 18% at 1e-4; neither a
longer warm-up, gradient clipping nor layer decay moved it past 32%). A BatchNorm without affine
parameters before the linear layer (MAE's linear-probe head; the trainable form of the standardisation
:func:`linear_probe` applies) lifts it to 93%. Fine-tuning from pre-trained ViT weights also uses MAE's
layer-wise learning-rate decay (deeper blocks move more than the patch embedding).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..optim import param_groups, warmup_cosine
from ._checks import as_tensor, check_labels, resolve_num_classes
from .baselines import random_encoder_like
from .probe import FEW_SHOT_REPEATS, _label_key, _parse_labels_per_class, few_shot_indices

#: Optimiser steps per labelled subset (the 8×8 digits' small CNN fits all 1,437 images in about 100).
DEFAULT_SUPERVISED_STEPS = 200
#: Seed of the classifier's initialisation, shared by every label budget (so only the labels differ).
SUPERVISED_INIT_SEED = 0
#: What ``head_norm`` accepts: a BatchNorm before the linear layer (``"batch"``), none (None), or ``"auto"``.
HEAD_NORMS = ("auto", "batch", None)
#: MAE's layer-wise learning-rate decay for fine-tuning a pre-trained ViT (FINETUNE.md: 0.75 for ViT-L,
#: 0.65 for ViT-B): block i of L gets lr·decay^(L−i), the patch embedding lr·decay^(L+1).
VIT_LAYER_DECAY = 0.75


def _check_images(images, name: str) -> Tensor:
    images = as_tensor(images, name)
    if images.ndim != 4:
        raise ValueError(f"{name} must be N×C×H×W, got shape {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty: pass at least one image")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise TypeError(f"{name} must be uint8 (0..255) or float in [0, 1], got dtype {images.dtype}")
    return images


def _as_float(images: Tensor) -> Tensor:
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


class _Classifier(nn.Module):
    """backbone → (BatchNorm without affine →) linear layer on its features: the network trained end to
    end."""

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, batch_norm: bool = False):
        super().__init__()
        linear = nn.Linear(feature_dim, num_classes)
        norm = nn.BatchNorm1d(feature_dim, affine=False, eps=1e-6) if batch_norm else None
        self.backbone, self.head = backbone, linear if norm is None else nn.Sequential(norm, linear)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x).flatten(1))


def _feature_dim(backbone: nn.Module, images: Tensor) -> int:
    """The width of the backbone's (flattened) features on ``images``, run in eval mode."""
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        out = backbone(_as_float(images))
    backbone.train(was_training)
    if not isinstance(out, Tensor):
        raise TypeError(f"the backbone must return a Tensor of features, got {type(out).__name__}")
    return out.flatten(1).shape[1]


def _is_vit(backbone: nn.Module) -> bool:
    """A Vision Transformer (models/vit.py or one shaped like it: patch embedding, blocks, final norm)."""
    return all(hasattr(backbone, name) for name in ("patch_embed", "blocks", "norm"))


def _resolve_head_norm(head_norm, backbone: nn.Module) -> bool:
    if head_norm not in HEAD_NORMS:
        raise ValueError(f"head_norm must be one of {HEAD_NORMS}, got {head_norm!r}")
    return _is_vit(backbone) if head_norm == "auto" else head_norm == "batch"


def _resolve_layer_decay(layer_decay, backbone: nn.Module, from_scratch: bool) -> float | None:
    if layer_decay == "auto":
        return VIT_LAYER_DECAY if _is_vit(backbone) and not from_scratch else None
    if layer_decay is None:
        return None
    if isinstance(layer_decay, bool) or not isinstance(layer_decay, (int, float)) or not 0 < layer_decay <= 1:
        raise ValueError(f"layer_decay must be in (0, 1], None or 'auto', got {layer_decay!r}")
    if layer_decay == 1:  # every layer at lr, whatever the backbone: one learning rate
        return None
    if not _is_vit(backbone):
        raise ValueError(
            f"layer_decay needs a ViT's blocks to count layers; {type(backbone).__name__} has none: "
            "pass layer_decay=None"
        )
    return float(layer_decay)


def _vit_layer(name: str, depth: int) -> int:
    """The layer of backbone parameter ``name`` for layer decay: 0 embeddings, i+1 block i, depth+1 after."""
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    if name.startswith(("patch_embed", "cls_token", "pos_embed", "mask_token")):
        return 0
    return depth + 1  # the final norm


def _plain_groups(model: nn.Module, weight_decay: float, layer_decay: float | None = None) -> list[dict]:
    """``optim.param_groups`` without the LARS flag AdamW does not know; with ``layer_decay``, one group
    per (ViT layer, decays) whose ``lr_scale`` is decay^(depth+1−layer) (the head: 1)."""
    if layer_decay is None:
        return [
            {**{k: v for k, v in g.items() if k != "lars_exclude"}, "lr_scale": 1.0}
            for g in param_groups(model, weight_decay)
        ]
    depth = len(model.backbone.blocks)
    groups: dict[tuple[int, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        layer = _vit_layer(name[len("backbone.") :], depth) if name.startswith("backbone.") else depth + 1
        groups.setdefault((layer, p.ndim > 1), []).append(p)
    return [
        {
            "params": ps,
            "weight_decay": weight_decay if decays else 0.0,
            "lr_scale": layer_decay ** (depth + 1 - k),
        }
        for (k, decays), ps in sorted(groups.items())
    ]


def _accuracy(model: nn.Module, images: Tensor, labels: Tensor, device: torch.device) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, images.shape[0], 512):
            batch = _as_float(images[start : start + 512].to(device))
            correct += (model(batch).argmax(1).cpu() == labels[start : start + 512].cpu()).sum().item()
    return correct / images.shape[0]


def _train_and_score(
    backbone: nn.Module,
    images: Tensor,
    labels: Tensor,
    test_images: Tensor,
    test_labels: Tensor,
    num_classes: int,
    *,
    views: Callable | None,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    device: torch.device,
    bar,
    from_scratch: bool = True,
    batch_norm: bool = False,
    layer_decay: float | None = None,
    amp: bool = False,
) -> float:
    """Train a copy of ``backbone`` (re-initialised when ``from_scratch``, else with its trained weights) +
    a linear head on (images, labels); test accuracy in [0, 1]."""
    if from_scratch:
        init = random_encoder_like(backbone, seed=SUPERVISED_INIT_SEED).to(device)
    else:
        init = copy.deepcopy(backbone).to(device)
    for p in init.parameters():  # a frozen encoder (an EMA target: I-JEPA's) is trained all the same
        p.requires_grad_(True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SUPERVISED_INIT_SEED)
        model = _Classifier(init, _feature_dim(init, images[:1].to(device)), num_classes, batch_norm)
    model.to(device).train()
    # AdamW, no weight decay on biases and norm parameters; foreach: one kernel per group (faster)
    optimizer = torch.optim.AdamW(_plain_groups(model, weight_decay, layer_decay), lr=lr, foreach=True)
    warmup = max(1, steps // 20)
    n, batch = images.shape[0], min(batch_size, images.shape[0])
    order_generator = torch.Generator().manual_seed(seed)
    view_generator = torch.Generator(device=device).manual_seed(seed)
    images, labels = images.to(device), labels.to(device)
    order, position = torch.randperm(n, generator=order_generator), 0
    for step in range(steps):
        if position + batch > n:  # a new pass over the labelled images, in a new order
            order, position = torch.randperm(n, generator=order_generator), 0
        idx = order[position : position + batch].to(device)
        position += batch
        for group in optimizer.param_groups:
            group["lr"] = warmup_cosine(step, steps, warmup, lr) * group["lr_scale"]
        x = images[idx]
        if views is None:
            x = _as_float(x)
        else:
            x = views(x, generator=view_generator)
            x = x[0] if isinstance(x, (list, tuple)) else x  # a two-view preset: its first view
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(x), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        bar.update(1)
    if not math.isfinite(loss.item()):
        raise FloatingPointError(f"the supervised baseline's loss became {loss.item()}: lower lr (got {lr})")
    return _accuracy(model, test_images, test_labels, device)


def supervised_baseline(
    backbone: nn.Module,
    train_images: Tensor,
    train_labels: Tensor,
    test_images: Tensor,
    test_labels: Tensor,
    labels_per_class: Iterable[int | str | None] = (1, 10, None),
    *,
    views: Callable | None = None,
    steps: int = DEFAULT_SUPERVISED_STEPS,
    batch_size: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 5e-4,
    seed: int = 0,
    repeats: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
    head_norm: str | None = "auto",
    amp: bool = False,
) -> dict[str, float]:
    """Test accuracy of ``backbone``'s architecture trained from scratch on few labels, per label budget.

    For each budget k in ``labels_per_class`` (an int, or ``None``/``"all"``), a fresh copy of ``backbone``
    (re-initialised, so its trained weights are ignored) with a linear layer on its features is trained
    with cross-entropy, min_θ mean CE(h_θ(x), y), for ``steps`` AdamW steps (batches of ``batch_size``
    images, cosine learning rate from ``lr`` after a 5% warm-up, decoupled weight decay ``weight_decay``)
    on the labelled images, then scored on the test images. The labelled images are exactly the linear
    probe's: :func:`few_shot_indices` with seeds ``seed, seed + 1, ...``, averaged over ``repeats`` draws
    (by default ``FEW_SHOT_REPEATS`` when k < 10, else 1), as :func:`linear_probe` does.

    Args:
        backbone: the encoder whose architecture is trained (not modified).
        views: optional data augmentation, a view preset or any ``views(images, generator=g)``; a preset
            that returns several views contributes its first. None: the images as they are.
        device: where to train (default: the backbone's device, else the CPU).
        progress: show a progress bar over all the steps of all the budgets.
        head_norm: ``"batch"``: a BatchNorm without affine parameters between the features and the
            linear layer; None: the linear layer alone; ``"auto"`` (default): ``"batch"`` for a ViT (its
            LayerNormed features barely vary across images: see the module docstring), None otherwise.
        amp: train under bf16 autocast (the weights, the optimiser and the scoring stay fp32): on a GPU,
            or a CPU with native bf16 (AVX512-BF16 or AMX), where a ViT's steps run about 1.5× faster
            (``benchmarks/bench_fine_tune_amp.py``). Off by default: the notebooks' values are fp32's.
    Returns:
        ``{"1": acc, "10": acc, "all": acc}`` (keys as :func:`label_efficiency` writes them).
    """
    return _few_label_training(
        backbone, train_images, train_labels, test_images, test_labels, labels_per_class,
        views=views, steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed,
        repeats=repeats, device=device, progress=progress, from_scratch=True, description="supervised",
        head_norm=head_norm, layer_decay=None, amp=amp,
    )


def fine_tune(
    backbone: nn.Module,
    train_images: Tensor,
    train_labels: Tensor,
    test_images: Tensor,
    test_labels: Tensor,
    labels_per_class: Iterable[int | str | None] = (1, 10, None),
    *,
    views: Callable | None = None,
    steps: int = DEFAULT_SUPERVISED_STEPS,
    batch_size: int = 128,
    lr: float = 5e-4,
    weight_decay: float = 0.05,
    seed: int = 0,
    repeats: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
    head_norm: str | None = "auto",
    layer_decay: float | str | None = "auto",
    amp: bool = False,
) -> dict[str, float]:
    """Test accuracy of ``backbone`` fine-tuned end to end on few labels, per label budget.

    The protocol masked-image models are judged by (He et al. 2022: MAE probes poorly and fine-tunes well):
    a copy of the *trained* backbone (the original is not modified) with a fresh linear layer on its
    features is trained with cross-entropy for ``steps`` AdamW steps (lower ``lr`` and higher
    ``weight_decay`` than :func:`supervised_baseline`, as fine-tuning recipes use), on exactly the
    labelled draws of :func:`linear_probe` and :func:`supervised_baseline`, and scored on the test images.
    Everything else — arguments, repeats, returned keys — is :func:`supervised_baseline`'s, so the two sit
    side by side: fine-tuned minus from-scratch is what the pre-training bought.

    Args:
        head_norm: as in :func:`supervised_baseline` (``"auto"``: a BatchNorm before the head of a ViT).
        layer_decay: MAE's layer-wise learning-rate decay for a ViT, block i of L trained at
            lr·decay^(L−i), the patch and position embeddings at lr·decay^(L+1), the final norm and the
            head at lr; ``"auto"`` (default): ``VIT_LAYER_DECAY`` (0.75) for a ViT, None (one learning
            rate) otherwise; 1.0 (as None) trains every layer at lr.
        amp: as in :func:`supervised_baseline` (bf16 autocast for the training steps).

    Returns:
        ``{"1": acc, "10": acc, "all": acc}``, accuracies in [0, 1].
    """
    return _few_label_training(
        backbone, train_images, train_labels, test_images, test_labels, labels_per_class,
        views=views, steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed,
        repeats=repeats, device=device, progress=progress, from_scratch=False, description="fine-tune",
        head_norm=head_norm, layer_decay=layer_decay, amp=amp,
    )


def _few_label_training(
    backbone, train_images, train_labels, test_images, test_labels, labels_per_class, *, views, steps,
    batch_size, lr, weight_decay, seed, repeats, device, progress, from_scratch: bool, description: str,
    head_norm, layer_decay, amp: bool = False,
) -> dict[str, float]:
    if not isinstance(backbone, nn.Module):
        raise TypeError(
            f"backbone must be an nn.Module (the encoder's architecture), got {type(backbone).__name__}"
        )
    train_images = _check_images(train_images, "train_images")
    test_images = _check_images(test_images, "test_images")
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ValueError(
            f"train_images are {tuple(train_images.shape[1:])} but test_images "
            f"{tuple(test_images.shape[1:])}: both splits must hold images of one shape"
        )
    train_labels = check_labels(train_labels, train_images.shape[0], "train_labels", "train_images").cpu()
    test_labels = check_labels(test_labels, test_images.shape[0], "test_labels", "test_images").cpu()
    budgets = [_parse_labels_per_class(k) for k in labels_per_class]
    if not budgets:
        raise ValueError("labels_per_class is empty: pass e.g. (1, 10, None)")
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if repeats is not None and (isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1):
        raise ValueError(f"repeats must be a positive int or None, got {repeats!r}")
    if not isinstance(amp, bool):
        raise TypeError(f"amp must be True or False (bf16 autocast for the training steps), got {amp!r}")
    if views is not None and not callable(views):
        raise TypeError(f"views must be callable as views(images, generator=g), got {type(views).__name__}")
    if isinstance(getattr(views, "pipelines", None), list) and views.pipelines:
        views = views.pipelines[0]  # a MultiView preset: make only the first view, the one trained on
    if device is None:
        device = next((p.device for p in backbone.parameters()), torch.device("cpu"))
    device = torch.device(device)
    if amp and device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        warnings.warn(
            "amp=True on a CPU without native bf16 (AVX512-BF16 or AMX): autocast will be slower than "
            "fp32 here; set amp=False",
            stacklevel=3,
        )
    num_classes = resolve_num_classes(None, train_labels, test_labels)
    batch_norm = _resolve_head_norm(head_norm, backbone)
    layer_decay = _resolve_layer_decay(layer_decay, backbone, from_scratch)

    draws = {k: (1 if k is None else repeats or (FEW_SHOT_REPEATS if k < 10 else 1)) for k in budgets}
    bar = tqdm(total=steps * sum(draws.values()), disable=not progress, desc=description, unit="step")
    results = {}
    try:
        for k in budgets:
            scores = []
            for draw in range(draws[k]):
                idx = (
                    torch.arange(train_images.shape[0])
                    if k is None
                    else few_shot_indices(train_labels, k, seed + draw)
                )
                scores.append(
                    _train_and_score(
                        backbone,
                        train_images[idx.to(train_images.device)],
                        train_labels[idx],
                        test_images,
                        test_labels,
                        num_classes,
                        views=views,
                        steps=steps,
                        batch_size=batch_size,
                        lr=lr,
                        weight_decay=weight_decay,
                        seed=seed + draw,
                        device=device,
                        bar=bar,
                        from_scratch=from_scratch,
                        batch_norm=batch_norm and idx.numel() > 1,  # BatchNorm needs two images a batch
                        layer_decay=layer_decay,
                        amp=amp,
                    )
                )
            results[_label_key(k)] = sum(scores) / len(scores)
    finally:
        bar.close()
    return results
