"""The kNN monitor: how well a method's features classify held-out images, every few epochs of ``fit``.

Weighted cosine kNN (k = 20, Wu et al. 2018) on ``method.embed`` features in eval mode: a seeded
memory bank of training images votes for the classes of seeded held-out queries. It draws from
generators of its own and touches no training state, so a run with the monitor on trains exactly as
one with it off.
"""

from __future__ import annotations

import torch

from .evaluate import embed, knn_accuracy


class KNNMonitor:
    """kNN top-1 every ``every`` epochs and after the last one (``last_epoch``)."""

    def __init__(self, every: int, last_epoch: int, bank, queries):
        self.every, self.last_epoch = every, last_epoch
        (self.bank_images, self.bank_labels), (self.query_images, self.query_labels) = bank, queries

    @classmethod
    def of(cls, dataset, monitor_data, config) -> KNNMonitor:
        """The monitor of a ``TrainConfig`` (``knn_every``, ``knn_samples``, ``seed``): a bank of
        ``knn_samples`` training images and as many queries from ``monitor_data``, or, without it,
        from the rest of the training set (at most half of it each)."""
        g = torch.Generator().manual_seed(config.seed)
        order = torch.randperm(len(dataset.images), generator=g)
        if monitor_data is None:
            k = min(config.knn_samples, len(order) // 2)
            bank, queries = (dataset, order[k : 2 * k]), (dataset, order[:k])
        else:
            if not isinstance(getattr(monitor_data, "images", None), torch.Tensor):
                raise TypeError(
                    "monitor_data needs .images (uint8 N×C×H×W) and .labels, like the training set"
                )
            picked = torch.randperm(len(monitor_data.images), generator=g)[: config.knn_samples]
            bank, queries = (dataset, order[: config.knn_samples]), (monitor_data, picked)
        bank, queries = _labelled(*bank, "dataset"), _labelled(*queries, "monitor_data")
        return cls(config.knn_every, config.epochs - 1, bank, queries)

    def due(self, epoch: int) -> bool:
        return (epoch + 1) % self.every == 0 or epoch == self.last_epoch

    def __call__(self, method: torch.nn.Module) -> float:
        bank = embed(method.embed, self.bank_images)
        queries = embed(method.embed, self.query_images)
        return knn_accuracy(bank, self.bank_labels, queries, self.query_labels)


def _labelled(data, idx: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    labels = getattr(data, "labels", None)
    if not isinstance(labels, torch.Tensor) or labels.numel() == 0 or int(labels.min()) < 0:
        raise ValueError(
            f"the kNN monitor (knn_every) needs class labels, but {name} has none: pass "
            "monitor_data= a labelled data set, or set knn_every=0"
        )
    return data.images[idx], labels[idx]
