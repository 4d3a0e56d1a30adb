"""Input checks shared by the losses, run once per call: each names the problem and the fix."""

from __future__ import annotations

import math
import numbers

import torch


def inspects_values(t: torch.Tensor) -> bool:
    """Whether the checks read ``t``'s values (NaN/inf, label ranges), not only its shape and dtype.

    On the CPU they do: it is cheap there. On a GPU each look would wait for the device on every call,
    which is what a fast training loop avoids; there a diverged run is caught by ``fit``'s check of the
    loss at its sync points, which names the step. Skipped while torch.compile traces.
    """
    return t.device.type == "cpu" and not torch.compiler.is_compiling()


def check_tensor(name: str, t, dims: int, layout: str, hint: str = "") -> None:
    """``t`` is a floating-point tensor with ``dims`` dimensions (``layout`` describes them)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != dims:
        raise ValueError(f"{name} must be {dims}-D {layout}, got shape {tuple(t.shape)}{hint}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {t.dtype}; call .float() on it")


def check_embeddings(**tensors: torch.Tensor) -> None:
    """Every tensor is a finite floating-point N×D matrix, N, D ≥ 1; all share D, dtype and device."""
    _check_matrices(tensors)
    _check_agree(tensors)


def check_views(**views: torch.Tensor) -> None:
    """:func:`check_embeddings`, and all views have one shape (the views of one batch)."""
    _check_matrices(views)
    shapes = {name: tuple(t.shape) for name, t in views.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(
            f"shapes differ: {shapes}; the views must have equal shapes (the same batch size and dimension)"
        )
    _check_agree(views)


def check_temperature(temperature, name: str = "temperature") -> float:
    """A Python number, finite and > 0, returned as a float."""
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(
            f"{name} must be a Python number, got {type(temperature).__name__}; use float(...) "
            "(gradients with respect to the temperature are not supported)"
        )
    value = float(temperature)
    if not 0.0 < value < math.inf:  # also false for nan
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def check_labels(labels, n_query: int, n_keys: int, device: torch.device) -> torch.Tensor | None:
    """The index of each query's positive key, as a long tensor; None means keys[i] for query i."""
    if labels is None:
        if n_keys < n_query:
            raise ValueError(
                f"keys has {n_keys} rows but query has {n_query}: with labels=None the positive of "
                "query i is keys[i], so keys needs at least as many rows; pass labels= to choose positives"
            )
        return None
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor of key indices, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor (key indices), got {labels.dtype}; use .long()")
    if labels.shape != (n_query,):
        raise ValueError(
            f"labels must have shape ({n_query},), one key index per query, got {tuple(labels.shape)}"
        )
    if labels.device != device:
        raise ValueError(f"labels is on {labels.device} but the embeddings are on {device}; move it")
    if not inspects_values(labels):
        return labels.long()
    low, high = torch.stack([labels.min(), labels.max()]).tolist()
    if low < 0 or high >= n_keys:
        raise ValueError(f"labels must be indices into keys, in [0, {n_keys}), got values in [{low}, {high}]")
    return labels.long()


def _check_matrices(tensors: dict[str, torch.Tensor]) -> None:
    for name, t in tensors.items():
        check_tensor(name, t, 2, "(batch × dim)", "; flatten it first")
        if t.shape[0] == 0 or t.shape[1] == 0:
            raise ValueError(
                f"{name} is empty (shape {tuple(t.shape)}): it needs at least one row and one feature"
            )
        if inspects_values(t) and not torch.isfinite(t).all():
            raise ValueError(
                f"{name} contains NaN or inf: training diverged — lower the learning rate or check the inputs"
            )


def _check_agree(tensors: dict[str, torch.Tensor]) -> None:
    (first_name, first), *others = tensors.items()
    for name, t in others:
        if t.shape[1] != first.shape[1]:
            raise ValueError(
                f"{first_name} and {name} must have the same number of features, "
                f"got {first.shape[1]} and {t.shape[1]}"
            )
        if t.dtype != first.dtype:
            raise TypeError(
                f"{first_name} is {first.dtype} but {name} is {t.dtype}; cast both to the same dtype"
            )
        if t.device != first.device:
            raise ValueError(
                f"{first_name} is on {first.device} but {name} is on {t.device}; move both to one device"
            )


def check_weight(value, name: str) -> float:
    """A loss weight: a Python number, finite and ≥ 0, returned as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a Python number, got {type(value).__name__}; use float(...)")
    value = float(value)
    if not 0.0 <= value < math.inf:  # also false for nan
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def check_count(value, name: str, minimum: int = 1) -> int:
    """A count (iterations, a sub-batch size): a Python int ≥ ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a Python int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_index_vector(name: str, t, n: int, meaning: str, per_row: str) -> None:
    """``t`` must be an integer tensor of shape (n,): one index (of ``meaning``) per row, ``per_row``."""
    if not isinstance(t, torch.Tensor) or t.is_floating_point() or t.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor of {meaning}; use .long()")
    if t.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), {per_row}, got {tuple(t.shape)}")
