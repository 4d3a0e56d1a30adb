"""The full report: kNN, linear probe per label budget, RankMe, feature std; for the SSL encoder and its
baselines (what the CLI writes to results.json)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from ._checks import as_tensor, check_labels, check_pair
from .baselines import random_encoder_like, raw_pixel_features
from .embedding import embed
from .knn import knn_accuracy
from .probe import label_efficiency
from .statistics import feature_std, rankme


def evaluate_features(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    labels_per_class: Iterable[int | str | None] = (1, 10, None),
    k: int = 20,
) -> dict[str, Any]:
    """The full report for one set of features.

    ``{"probe": {"1": .., "10": .., "all": ..}, "knn": float, "rankme": float, "feature_std": float}``;
    RankMe and feature std are measured on the test features.
    """
    train_features, train_labels, test_features, test_labels = check_pair(
        train_features, train_labels, test_features, test_labels
    )
    return {
        "probe": label_efficiency(train_features, train_labels, test_features, test_labels, labels_per_class),
        "knn": knn_accuracy(train_features, train_labels, test_features, test_labels, k=k),
        "rankme": rankme(test_features),
        "feature_std": feature_std(test_features),
    }


def _dataset_tensors(dataset: Any, name: str) -> tuple[Tensor, Tensor]:
    for attribute in ("images", "labels"):
        if not hasattr(dataset, attribute):
            raise TypeError(
                f"{name} must have .images (uint8 N×C×H×W) and .labels (int64 N), "
                f"got {type(dataset).__name__} without .{attribute}"
            )
    images = as_tensor(dataset.images, f"{name}.images")
    labels = check_labels(dataset.labels, images.shape[0], f"{name}.labels", f"{name}.images")
    return images, labels


def compare_baselines(
    encoder: nn.Module,
    train_ds: Any,
    test_ds: Any,
    device: str | torch.device | None = None,
    labels_per_class: Iterable[int | str | None] = (1, 10, None),
    k: int = 20,
) -> dict[str, dict[str, Any]]:
    """:func:`evaluate_features` for the SSL encoder, raw pixels and a random-init copy of the encoder.

    Returns ``{"ssl": report, "raw": report, "random": report}`` (what the CLI writes to results.json).
    """
    train_images, train_labels = _dataset_tensors(train_ds, "train_ds")
    test_images, test_labels = _dataset_tensors(test_ds, "test_ds")
    labels_per_class = tuple(labels_per_class)

    def report(train_features: Tensor, test_features: Tensor) -> dict[str, Any]:
        return evaluate_features(
            train_features, train_labels, test_features, test_labels, labels_per_class, k
        )

    random_encoder = random_encoder_like(encoder)
    return {
        "ssl": report(
            embed(encoder, train_images, device=device), embed(encoder, test_images, device=device)
        ),
        "raw": report(raw_pixel_features(train_images), raw_pixel_features(test_images)),
        "random": report(
            embed(random_encoder, train_images, device=device),
            embed(random_encoder, test_images, device=device),
        ),
    }
