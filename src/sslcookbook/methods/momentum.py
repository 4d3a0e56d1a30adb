"""Momentum contrast: keys come from a slowly moving (EMA) copy of the encoder.

MoCo v2 keeps a queue of keys from past batches as negatives; the EMA makes those keys consistent
with each other, because the encoder that produced them changes slowly. MoCo v3 drops the queue,
contrasts within the (large) batch, and adds a predictor on the query side.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..losses import MemoryQueue, moco_loss, moco_v3_loss
from ..models import mlp
from .base import EMATarget, TwoViewMethod, check_positive, feature_dim


def _batch_norms(modules: list[nn.Module]) -> list[nn.modules.batchnorm._BatchNorm]:
    return [
        m
        for module in modules
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
    ]


def sub_batch_forward(
    encode: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    splits: int,
    modules: list[nn.Module],
    order: torch.Tensor | None = None,
) -> torch.Tensor:
    """``encode(x)`` with every BatchNorm normalising ``splits`` sub-batches apart, as on ``splits`` GPUs.

    With ``order`` (a permutation of the rows) the batch is shuffled first and the outputs put back in
    the original order: MoCo's Shuffle-BN. The running averages of the BatchNorm layers in ``modules``
    move once, by the mean of the sub-batches' statistics (as the ``SplitBatchNorm`` of MoCo's CIFAR-10
    demo), not once per sub-batch.
    """
    if x.shape[0] % splits:
        raise ValueError(
            f"a batch of {x.shape[0]} rows cannot be cut into {splits} equal sub-batches: choose a batch "
            "size (times the number of views) that bn_splits divides"
        )
    if splits == 1 and order is None:
        return encode(x)
    norms = _batch_norms(modules)
    saved = [(bn.momentum, bn.running_mean, bn.running_var, bn.num_batches_tracked) for bn in norms]
    sums = [[0.0, 0.0] for _ in norms]
    shuffled = x if order is None else x[order]
    outputs = []
    try:
        for bn in norms:
            bn.momentum = 1.0  # after each sub-batch, its running averages hold that sub-batch's statistics
        for chunk in shuffled.chunk(splits):
            for bn, (_, mean, var, tracked) in zip(norms, saved):
                # Fresh tensors for each sub-batch: autograd keeps the ones a sub-batch normalised with,
                # so they must not change in place afterwards.
                bn.running_mean, bn.running_var = mean.clone(), var.clone()
                bn.num_batches_tracked = tracked.clone()
            outputs.append(encode(chunk))
            for bn, acc in zip(norms, sums):
                acc[0], acc[1] = acc[0] + bn.running_mean, acc[1] + bn.running_var
    except BaseException:
        for bn, state in zip(norms, saved):
            bn.momentum, bn.running_mean, bn.running_var, bn.num_batches_tracked = state
        raise
    with torch.no_grad():
        for bn, (momentum, mean, var, tracked), (mean_sum, var_sum) in zip(norms, saved, sums):
            m = 1.0 / float(tracked + 1) if momentum is None else momentum  # None: cumulative average
            bn.momentum = momentum
            bn.running_mean = torch.lerp(mean, mean_sum / splits, m)
            bn.running_var = torch.lerp(var, var_sum / splits, m)
            bn.num_batches_tracked = tracked + 1
    out = torch.cat(outputs)
    return out if order is None else out[torch.argsort(order)]


class _MomentumContrast(TwoViewMethod):
    """Online backbone + projector (the queries), and their EMA target (the momentum encoder: keys)."""

    def __init__(self, backbone, projector, base_momentum: float, final_momentum: float = 1.0):
        super().__init__(backbone, projector)
        self.target = EMATarget({"backbone": backbone, "projector": projector}, base_momentum, final_momentum)

    def keys(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.target.projector(self.target.backbone(x))

    def after_step(self, progress: float) -> None:
        self.target.update(progress)


class MoCoV2(_MomentumContrast):
    """MoCo v2 (He et al., 2020; Chen, Fan, Girshick & He, 2020): momentum encoder + queue of negatives.

    Symmetrised, as the official CIFAR-10 demo's ``--symmetric`` option: each view is the query once,
    against the other view's key, and both keys join the queue (the paper's loss is one-directional).
    MLP projector, τ = 0.2 and a fixed momentum.

    **Shuffle-BN.** In one BatchNorm batch, the query q_i and its key k_i are normalised with
    statistics of the same images, and the keys in the queue with statistics of other batches. The
    network can use that shared signature to find the positive without learning anything about the
    image (MoCo v1, "Shuffling BN": the batch statistics leak the positive). The leak runs through every
    BN layer of the backbone, so a projector without BN does not stop it. MoCo's remedy: normalise
    the query and the key encoder in sub-batches (one per GPU), the keys' batch shuffled before it is
    split and put back in order after, so that a query and its key use statistics of two different
    subsets. ``bn_splits > 1`` does that on one device, as the official CIFAR-10 demo's
    ``--bn-splits 8`` (its ShuffleBN is worth 4 points at 800 epochs there); ``bn_splits=1`` (the
    default) normalises the whole batch at once. Under DDP each rank splits its own batch.

    With ``bn_splits=1``, ``view_forward = "split"`` puts the queries and the keys through one
    forward per view (the key encoder sees the batches the query encoder saw); ``bn_splits > 1``
    chooses the sub-batches itself, and ``view_forward`` does not apply.
    """

    def __init__(
        self,
        backbone: nn.Module,
        projector_hidden_dim: int = 2048,
        projector_dim: int = 128,
        queue_size: int = 4096,
        temperature: float = 0.2,
        momentum: float = 0.99,
        gather_distributed: bool = True,
        backend: str = "auto",
        bn_splits: int = 1,
    ):
        check_positive(temperature=temperature, bn_splits=bn_splits)
        if int(bn_splits) != bn_splits:
            raise ValueError(f"bn_splits must be a whole number of sub-batches, got {bn_splits}")
        projector = mlp(feature_dim(backbone), projector_hidden_dim, projector_dim, batch_norm=False)
        super().__init__(backbone, projector, base_momentum=momentum, final_momentum=momentum)
        self.queue = MemoryQueue(queue_size, projector_dim, gather_distributed=gather_distributed)
        self.temperature, self.backend, self.bn_splits = temperature, backend, int(bn_splits)

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        both = self.batch(views)
        if self.bn_splits == 1:
            q, k = self.forward_views(self.project, both), self.forward_views(self.keys, both)
        else:
            q = sub_batch_forward(self.project, both, self.bn_splits, [self.backbone, self.projector])
            order = torch.randperm(both.shape[0]).to(both.device)  # the CPU generator: checkpointed
            k = sub_batch_forward(self.keys, both, self.bn_splits, [self.target], order)
        q1, q2 = q.chunk(2)
        k1, k2 = k.chunk(2)
        queue = self.queue.queue.clone()
        loss = 0.5 * (
            moco_loss(q1, k2, queue, self.temperature, self.backend)
            + moco_loss(q2, k1, queue, self.temperature, self.backend)
        )
        self.queue.push(torch.cat([k1, k2]))
        return {"loss": loss, "momentum": self.target.momentum}


class MoCoV3(_MomentumContrast):
    """MoCo v3 (Chen, Xie & He, 2021): momentum encoder + predictor, symmetric, no queue.

    loss = ctr(q1, k2) + ctr(q2, k1) with ctr = 2τ·InfoNCE over the global batch; the momentum goes
    from ``base_momentum`` to 1 on a cosine schedule. The official code's τ is 1.0 for ResNets (its
    default) and 0.2 for ViTs; the default here, 0.2, is what the digits recipes were measured with.
    ``view_forward = "split"`` runs queries, predictor and keys one view at a time.
    """

    def __init__(
        self,
        backbone: nn.Module,
        projector_hidden_dim: int = 2048,
        projector_dim: int = 256,
        predictor_hidden_dim: int = 2048,
        temperature: float = 0.2,
        base_momentum: float = 0.99,
        batch_norm: bool = True,
        gather_distributed: bool = True,
        backend: str = "auto",
    ):
        check_positive(temperature=temperature)
        projector = mlp(
            feature_dim(backbone),
            projector_hidden_dim,
            projector_dim,
            num_layers=3,
            batch_norm=batch_norm,
            last_batch_norm=batch_norm,
        )
        super().__init__(backbone, projector, base_momentum=base_momentum)
        self.predictor = mlp(
            projector_dim, predictor_hidden_dim, projector_dim, num_layers=2, batch_norm=batch_norm
        )
        self.temperature, self.gather_distributed, self.backend = temperature, gather_distributed, backend

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        both = self.batch(views)
        q1, q2 = self.forward_views(self.predictor, self.forward_views(self.project, both)).chunk(2)
        k1, k2 = self.forward_views(self.keys, both).chunk(2)
        kwargs = dict(
            temperature=self.temperature, backend=self.backend, gather_distributed=self.gather_distributed
        )
        loss = moco_v3_loss(q1, k2, **kwargs) + moco_v3_loss(q2, k1, **kwargs)
        return {"loss": loss, "momentum": self.target.momentum}
