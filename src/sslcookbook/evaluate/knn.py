"""Weighted cosine k-nearest-neighbour classification of frozen features (Wu et al. 2018, *InstDisc*)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_features, check_labels, check_pair, resolve_num_classes


def knn_predict(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    batch_size: int = 1024,
) -> Tensor:
    """Weighted kNN class predictions for ``test_features`` (int64, on the features' device).

    Cosine similarity s_i between a test point and each train point; the k most similar vote with
    weight exp(s_i / τ), and the class with the largest summed weight wins (Wu et al. 2018).
    """
    train_features = check_features(train_features, "train_features").float()
    test_features = check_features(test_features, "test_features").float().to(train_features.device)
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            f"train_features has {train_features.shape[1]} dims but test_features has "
            f"{test_features.shape[1]}: embed both with the same encoder"
        )
    train_labels = check_labels(train_labels, train_features.shape[0], "train_labels", "train_features")
    train_labels = train_labels.to(train_features.device)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    num_classes = resolve_num_classes(num_classes, train_labels)
    k = min(k, train_features.shape[0])

    train = F.normalize(train_features, dim=1)
    test = F.normalize(test_features, dim=1)
    predictions = []
    for start in range(0, test.shape[0], batch_size):
        sim = test[start : start + batch_size] @ train.T
        top_sim, top_idx = sim.topk(k, dim=1)
        # Subtracting the row maximum rescales all weights of a row equally (no overflow for tiny τ).
        weights = ((top_sim - top_sim[:, :1]) / temperature).exp()
        votes = torch.zeros(top_sim.shape[0], num_classes, device=sim.device, dtype=weights.dtype)
        votes.scatter_add_(1, train_labels[top_idx], weights)
        predictions.append(votes.argmax(dim=1))
    return torch.cat(predictions)


def knn_accuracy(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    batch_size: int = 1024,
) -> float:
    """Top-1 accuracy in [0, 1] of the weighted cosine kNN classifier (see :func:`knn_predict`)."""
    train_features, train_labels, test_features, test_labels = check_pair(
        train_features, train_labels, test_features, test_labels
    )
    num_classes = resolve_num_classes(num_classes, train_labels, test_labels)
    predictions = knn_predict(
        train_features, train_labels, test_features, k, temperature, num_classes, batch_size
    )
    return (predictions == test_labels).float().mean().item()
