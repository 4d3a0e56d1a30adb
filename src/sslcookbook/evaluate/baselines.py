"""The two baselines an SSL encoder must beat: raw pixels, and the same architecture at random init."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ._checks import as_tensor

#: Seed of :func:`random_encoder_like`; deliberately not 0, the seed a training run most likely used.
RANDOM_INIT_SEED = 1234


def raw_pixel_features(images: Tensor) -> Tensor:
    """The raw-pixels baseline: images flattened to N×(C·H·W) float32, uint8 scaled by 1/255."""
    images = as_tensor(images, "images")
    if images.ndim < 2:
        raise ValueError(f"images must be batched (N×...), got shape {tuple(images.shape)}")
    flat = images.reshape(images.shape[0], -1)
    return flat.float() / 255.0 if images.dtype == torch.uint8 else flat.float()


def _children_first(module: nn.Module, seen: set | None = None):
    """Every submodule of ``module`` (itself included) once, each after all of its own submodules."""
    seen = set() if seen is None else seen
    for child in module.children():
        if id(child) not in seen:
            yield from _children_first(child, seen)
    if id(module) not in seen:
        seen.add(id(module))
        yield module


def random_encoder_like(encoder: nn.Module, seed: int = RANDOM_INIT_SEED) -> nn.Module:
    """The random-init baseline: a deep copy of ``encoder`` with every submodule that has
    ``reset_parameters()`` re-initialised under ``torch.manual_seed(seed)``, children before their parents,
    so that a model's own initialisation has the last word (a ViT's ``reset_parameters``: the MAE
    initialisation of its linear layers, which each ``nn.Linear``'s own default would otherwise replace).

    The draw happens on the CPU, so the baseline is the same whatever device ``encoder`` is on; the
    copy stays on the encoder's devices. ``encoder`` and the global RNG state are untouched.
    Parameters owned by modules without ``reset_parameters`` keep the encoder's values: every encoder
    the library builds resets its own (a ViT's CLS token and positions, the text encoder's positions;
    tested), while a whole method's bare parameters (MAE's mask token, CLIP's logit scale) are kept.
    """
    if not isinstance(encoder, nn.Module):
        raise TypeError(f"encoder must be an nn.Module, got {type(encoder).__name__}")
    fresh = copy.deepcopy(encoder).cpu()
    reset = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in _children_first(fresh):
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
                reset += 1
    if reset == 0 and any(True for _ in fresh.parameters()):
        raise ValueError(
            f"{type(encoder).__name__} has parameters but no submodule with reset_parameters(): "
            "cannot build a random-init baseline"
        )
    clone = copy.deepcopy(encoder)
    clone.load_state_dict(fresh.state_dict())  # copies into the clone's tensors, on their devices
    return clone
