"""Input checks shared by the evaluation functions: features, labels, and train/test pairs of them."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor


def as_tensor(x: Any, name: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")


def check_features(x: Any, name: str = "features") -> Tensor:
    """2-D, floating, finite features (integer input is converted to float32)."""
    x = as_tensor(x, name)
    if x.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (N×D), got shape {tuple(x.shape)}: flatten them with x.flatten(1)"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}): embed at least one example")
    if not x.is_floating_point():
        x = x.float()
    if torch.isnan(x).any():
        raise ValueError(f"{name} contain NaN: the encoder diverged — lower the learning rate")
    if torch.isinf(x).any():
        raise ValueError(f"{name} contain inf: the encoder diverged — lower the learning rate")
    return x


def check_labels(y: Any, n: int, name: str = "labels", features_name: str = "features") -> Tensor:
    y = as_tensor(y, name)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D (N,), got shape {tuple(y.shape)}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} must be integer class indices, got dtype {y.dtype}: use labels.long()")
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} entries but {features_name} has {n} rows: they must match")
    if y.numel() and int(y.min()) < 0:
        raise ValueError(f"{name} must be non-negative class indices, found {int(y.min())}")
    return y.long()


def check_pair(train_features, train_labels, test_features, test_labels):
    train_features = check_features(train_features, "train_features")
    test_features = check_features(test_features, "test_features")
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            f"train_features has {train_features.shape[1]} dims but test_features has "
            f"{test_features.shape[1]}: embed both with the same encoder"
        )
    train_labels = check_labels(train_labels, train_features.shape[0], "train_labels", "train_features")
    test_labels = check_labels(test_labels, test_features.shape[0], "test_labels", "test_features")
    device = train_features.device
    return (
        train_features.float(),
        train_labels.to(device),
        test_features.float().to(device),
        test_labels.to(device),
    )


def resolve_num_classes(num_classes: int | None, *labels: Tensor) -> int:
    needed = max(int(y.max()) + 1 for y in labels if y.numel())
    if num_classes is None:
        return needed
    if num_classes < needed:
        raise ValueError(f"num_classes={num_classes} but the labels go up to {needed - 1}")
    return num_classes
