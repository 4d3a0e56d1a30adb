"""Clustering methods: every image is assigned to one of K prototypes, and each crop predicts it.

SwAV computes the assignments online, per batch, with Sinkhorn's equipartition (a queue of past
embeddings fills the batch up when B is small against K); DeepCluster v2 computes them offline, once
per epoch, by spherical k-means on a memory bank of the previous epoch's embeddings.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from ..augment import to_float
from ..losses import deepcluster_v2_loss, spherical_kmeans, swav_loss
from ..models import mlp
from .base import SSLMethod, check_fraction, check_positive, check_views, feature_dim


def crop_embeddings(backbone: nn.Module, projector: nn.Module, views: list[torch.Tensor]) -> torch.Tensor:
    """(V, B, D) L2-normalised projections of all crops: the backbone once per run of consecutive
    same-size crops (multi-crop), the projector once on all of them."""
    features, start = [], 0
    while start < len(views):
        end = start + 1
        while end < len(views) and views[end].shape == views[start].shape:
            end += 1
        features.append(backbone(torch.cat(views[start:end])))
        start = end
    z = F.normalize(projector(torch.cat(features)), dim=-1)
    return z.reshape(len(views), views[0].shape[0], -1)


def _cosines(z: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """z · cᵀ in fp32 even under autocast: divided by τ = 0.1 a bf16 rounding error would move a logit."""
    dtype = torch.promote_types(z.dtype, torch.float32)
    with torch.autocast(z.device.type, enabled=False):
        return z.to(dtype) @ prototypes.to(dtype).T


class SwAV(SSLMethod):
    r"""SwAV (Caron, Misra, Mairal, Goyal, Bojanowski & Joulin, 2020, arXiv:2006.09882).

    Backbone f → projector g (Linear-BN-ReLU → Linear, 2048 → 128) → L2 normalisation → scores
    against K prototypes C (unit rows). The codes of the ``num_global_crops`` global crops come from
    Sinkhorn's equipartition; every other crop predicts them (:func:`sslcookbook.losses.swav_loss`).

    - Multi-crop: the views are the global crops first, then any number of local crops (any size).
    - The prototypes are L2-normalised before every step (they then stay on the sphere), and get no
      gradient for the first ``freeze_prototypes`` fraction of training (the paper: the first epoch).
    - The queue (``queue_size`` > 0): from the ``queue_start`` fraction of training on, the global
      crops' embeddings of every step are queued (the oldest dropped), and, once the queue is full,
      its scores against the current prototypes join the batch's in Sinkhorn. Used before it is full,
      its empty rows would bias the codes; started at step 0, its stale embeddings of the first epochs
      make the loss jump (lightly #1148). Under ``torch.distributed`` every rank keeps the same queue
      of the global batch's embeddings and contributes a disjoint slice of it to the all-reduced
      Sinkhorn, so each queued row counts once.

    Logged: ``queue_used`` (1 while the queue joins Sinkhorn) and ``code_entropy``, the entropy of the
    mean code of the batch (log K when every prototype is used equally).

    Args:
        backbone: the encoder (with ``feature_dim``).
        projector_hidden_dim, projector_dim: g's sizes (2048, 128).
        num_prototypes: K (3000 on ImageNet; solo-learn's CIFAR config 3000).
        temperature: τ (0.1).
        epsilon, sinkhorn_iterations: Sinkhorn's ε (0.05) and iterations (3).
        num_global_crops: the crops whose codes are computed (2).
        queue_size: queued embeddings per global crop (0: no queue; 3840 in the bs-256 script).
        queue_start: fraction of training before the queue starts filling (15/100 epochs there).
        freeze_prototypes: fraction of training with frozen prototypes.
        gather_distributed: Sinkhorn over the global batch under ``torch.distributed``.
        batch_norm: BatchNorm in the projector (SwAV's has it).
    """

    def __init__(
        self,
        backbone: nn.Module,
        projector_hidden_dim: int = 2048,
        projector_dim: int = 128,
        num_prototypes: int = 3000,
        temperature: float = 0.1,
        epsilon: float = 0.05,
        sinkhorn_iterations: int = 3,
        num_global_crops: int = 2,
        queue_size: int = 0,
        queue_start: float = 0.0,
        freeze_prototypes: float = 0.0,
        gather_distributed: bool = True,
        batch_norm: bool = True,
    ):
        super().__init__()
        check_positive(temperature=temperature, epsilon=epsilon, num_prototypes=num_prototypes)
        check_fraction(queue_start=queue_start, freeze_prototypes=freeze_prototypes)
        if queue_size < 0 or num_global_crops < 1 or sinkhorn_iterations < 1:
            raise ValueError(
                "queue_size must be >= 0, num_global_crops and sinkhorn_iterations >= 1, got "
                f"{queue_size}, {num_global_crops}, {sinkhorn_iterations}"
            )
        self.backbone = backbone
        self.projector = mlp(
            feature_dim(backbone), projector_hidden_dim, projector_dim, batch_norm=batch_norm
        )
        self.prototypes = nn.Linear(projector_dim, num_prototypes, bias=False)
        self.temperature, self.epsilon, self.sinkhorn_iterations = temperature, epsilon, sinkhorn_iterations
        self.num_global_crops, self.queue_start, self.freeze_prototypes = (
            num_global_crops,
            queue_start,
            freeze_prototypes,
        )
        self.gather_distributed = gather_distributed
        self.register_buffer("queue", torch.zeros(num_global_crops, queue_size, projector_dim))
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))  # rows written so far
        self.register_buffer("progress", torch.zeros((), dtype=torch.float64))  # as of the last after_step

    @property
    def queue_full(self) -> bool:
        return self.queue.shape[1] > 0 and int(self.queue_filled) >= self.queue.shape[1]

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        check_views(views, "SwAV", min_count=max(2, self.num_global_crops))
        with torch.no_grad():
            self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))
        frozen = float(self.progress) < self.freeze_prototypes
        prototypes = self.prototypes.weight.detach() if frozen else self.prototypes.weight
        z = crop_embeddings(self.backbone, self.projector, views)
        scores = _cosines(z, prototypes)
        queue_scores = None
        use_queue = self.queue_full
        if use_queue:
            with torch.no_grad():
                share = self.queue[:, distributed.rank() :: distributed.world_size()]
                queue_scores = _cosines(share, self.prototypes.weight).to(scores.dtype)
        loss = swav_loss(
            scores,
            self.temperature,
            self.epsilon,
            self.sinkhorn_iterations,
            self.num_global_crops,
            queue_scores,
            self.gather_distributed,
        )
        if self.queue.shape[1] and float(self.progress) >= self.queue_start:
            self._enqueue(z[: self.num_global_crops].detach())
        with torch.no_grad():
            mean_code = F.softmax(scores[: self.num_global_crops].detach().float() / self.temperature, -1)
            mean_code = mean_code.mean(dim=(0, 1))
            entropy = -(mean_code * mean_code.clamp_min(1e-12).log()).sum()
        return {"loss": loss, "queue_used": float(use_queue), "code_entropy": entropy}

    @torch.no_grad()
    def _enqueue(self, z: torch.Tensor) -> None:
        """Queue the global batch's embeddings (G, B, D), newest first, dropping the oldest."""
        if self.gather_distributed and distributed.is_distributed():
            z = distributed.gather(z.transpose(0, 1).contiguous()).transpose(0, 1)
        size = self.queue.shape[1]
        z = z[:, -size:].to(self.queue.dtype)
        self.queue.copy_(torch.cat([z, self.queue[:, : size - z.shape[1]]], dim=1))
        self.queue_filled.add_(z.shape[1])

    def after_step(self, progress: float) -> None:
        self.progress.fill_(progress)


class DeepClusterV2(SSLMethod):
    r"""DeepCluster v2 (Caron et al., 2020, arXiv:2006.09882, the SwAV paper's improved DeepCluster).

    Backbone f → projector g (Linear-BN-ReLU → Linear, 2048 → 128) → L2 normalisation; H heads of
    prototypes (3 × 3000 in the paper). Every epoch starts with a spherical k-means
    (:func:`sslcookbook.losses.spherical_kmeans`, 10 iterations) of a memory bank holding the
    embeddings of every training image's global crops from the last epoch, head h clustering the
    bank of global crop h mod G; the centroids become head h's prototypes, and the assignments the
    targets of that epoch: :func:`sslcookbook.losses.deepcluster_v2_loss`, the cross-entropy of
    every crop's scores z·c/τ to its image's cluster, averaged over heads.

    The memory bank is filled by a forward pass over the training set before the first epoch
    (``before_epoch``, which ``fit`` calls): solo-learn starts from a random bank with every
    assignment −1, so its first epoch has no clustering loss at all. During an epoch each step
    writes its images' new embeddings into the bank (``fit`` passes the images' dataset ``indices``).
    Under ``torch.distributed`` the embeddings and indices are all-gathered, so every rank holds the
    whole bank and clusters it alike.

    A streamed data set (``data.load("shards:...")``, a large ``folder:``) trains it too
    (``streams_before_epoch``): ``fit`` passes the stream to ``before_epoch``, and ``fill_bank`` reads it
    once, un-augmented. The bank is G×N×D floats (and the assignments H×N integers) held on the device:
    the one part of a streamed run that grows with the number of images N.

    The bank, the assignments and the prototypes are buffers (in the state dict: a run resumes exactly);
    their size is set by the data set at the first ``before_epoch``, and by a checkpoint when loading.

    Args:
        backbone: the encoder (with ``feature_dim``).
        projector_hidden_dim, projector_dim: g's sizes (2048, 128).
        num_prototypes: the number of clusters of each head (H heads: a tuple; (3000,) * 3).
        temperature: τ (0.1).
        kmeans_iterations: k-means updates per epoch (10).
        kmeans_init: ``"random"`` (DeepCluster v2's: K random bank rows) or ``"kmeans++"``.
        num_global_crops: G, the crops kept in the memory bank (2).
        bank_batch_size: images per forward pass when filling the bank.
    """

    uses_indices = True
    streams_before_epoch = True  # before_epoch and fill_bank take a streamed data set as well as images

    def __init__(
        self,
        backbone: nn.Module,
        projector_hidden_dim: int = 2048,
        projector_dim: int = 128,
        num_prototypes: tuple[int, ...] | list[int] = (3000, 3000, 3000),
        temperature: float = 0.1,
        kmeans_iterations: int = 10,
        kmeans_init: str = "random",
        num_global_crops: int = 2,
        bank_batch_size: int = 256,
    ):
        super().__init__()
        num_prototypes = tuple(int(k) for k in num_prototypes)
        if not num_prototypes or min(num_prototypes) < 1:
            raise ValueError(f"num_prototypes must list one number >= 1 per head, got {num_prototypes}")
        check_positive(temperature=temperature, bank_batch_size=bank_batch_size)
        if kmeans_init not in ("random", "kmeans++"):
            raise ValueError(f"kmeans_init must be 'random' or 'kmeans++', got {kmeans_init!r}")
        if num_global_crops < 1 or kmeans_iterations < 0:
            raise ValueError("num_global_crops must be >= 1 and kmeans_iterations >= 0")
        self.backbone = backbone
        self.projector = mlp(feature_dim(backbone), projector_hidden_dim, projector_dim)
        self.num_prototypes, self.temperature = num_prototypes, temperature
        self.kmeans_iterations, self.kmeans_init = kmeans_iterations, kmeans_init
        self.num_global_crops, self.bank_batch_size = num_global_crops, bank_batch_size
        for h, k in enumerate(num_prototypes):
            self.register_buffer(f"prototypes{h}", F.normalize(torch.randn(k, projector_dim), dim=1))
        self.register_buffer("bank", torch.zeros(num_global_crops, 0, projector_dim))
        self.register_buffer("assignments", torch.full((len(num_prototypes), 0), -1, dtype=torch.long))
        self.register_buffer("clustered_epoch", torch.full((), -1, dtype=torch.long))

    def prototypes(self, head: int) -> torch.Tensor:
        return getattr(self, f"prototypes{head}")

    @torch.no_grad()
    def before_epoch(self, epoch: int, images, seed: int = 0) -> None:
        """Fill the bank (first epoch only), then cluster it once per epoch (skipped when resuming an
        epoch that was already clustered). ``images``: the uint8 training set, or a streamed data set
        (see ``fill_bank``)."""
        if int(self.clustered_epoch) == epoch:
            return
        if self.bank.shape[1] != len(images):
            self.fill_bank(images)
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        for h, k in enumerate(self.num_prototypes):
            centroids, assignments = spherical_kmeans(
                self.bank[h % self.num_global_crops], k, self.kmeans_iterations, self.kmeans_init, generator
            )
            self.prototypes(h).copy_(centroids)
            self.assignments[h] = assignments
        self.clustered_epoch.fill_(epoch)

    @torch.no_grad()
    def fill_bank(self, images) -> None:
        """A new bank of one row per training image: the embeddings of the un-augmented images (in
        training mode, batch statistics as in training), the same for every global crop's bank.

        ``images`` is the uint8 N×C×H×W training set (embedded in order, ``bank_batch_size`` at a time),
        or a streamed data set (a ``ShardDataset``), read whole in this process in its evaluation form,
        the centred crops that ``evaluate.embed_stream`` embeds, each row placed at the global index
        its sample carries: row i is image i, as ``fit`` names it in ``indices``. Images the stream
        skips (undecodable) keep a zero row, with a warning; training never reads them either.

        The official code embeds the training views here; the images themselves give k-means as good a
        start and take no random draws (a resumed run repeats nothing)."""
        if isinstance(images, torch.Tensor):
            n, device = images.shape[0], images.device
            batches = (
                (images[start : start + self.bank_batch_size], slice(start, start + self.bank_batch_size))
                for start in range(0, n, self.bank_batch_size)
            )
        elif getattr(images, "streaming", False):
            n, device = len(images), self.bank.device
            stream = images.with_options(
                train=False, batch_size=self.bank_batch_size, rank=0, world_size=1, skip_shards=frozenset()
            )
            batches = ((x, rows) for x, _, rows, _ in stream.batches(device))
        else:
            raise TypeError(
                f"fill_bank needs the training set as uint8 images N×C×H×W or a streamed data set "
                f"(data.load('shards:...')), got {type(images).__name__}"
            )
        bank = torch.zeros(self.num_global_crops, n, self.bank.shape[2], device=device)
        filled = torch.zeros(n, dtype=torch.bool, device=device)
        for x, rows in batches:
            z = F.normalize(self.projector(self.backbone(to_float(x))), dim=-1)
            bank[:, rows] = z.float()
            filled[rows] = True
        missing = n - int(filled.sum())
        if missing:
            warnings.warn(
                f"{missing} of the {n} images of {getattr(images, 'name', 'the data set')} could not be read "
                "(see the warnings above): their memory-bank rows stay zero",
                stacklevel=3,
            )
        self.bank = bank
        self.assignments = torch.full((len(self.num_prototypes), n), -1, dtype=torch.long, device=bank.device)

    def training_step(
        self,
        views: list[torch.Tensor],
        labels: torch.Tensor | None = None,
        indices: torch.Tensor | None = None,
    ) -> dict:
        check_views(views, "DeepClusterV2", min_count=max(2, self.num_global_crops))
        if indices is None or self.bank.shape[1] == 0:
            raise ValueError(
                "DeepClusterV2 needs each image's dataset index and a clustered memory bank: train it with "
                "sslcookbook.train.fit, which calls before_epoch and passes indices= to training_step"
            )
        z = crop_embeddings(self.backbone, self.projector, views)
        scores = [_cosines(z, self.prototypes(h)) for h in range(len(self.num_prototypes))]
        loss = deepcluster_v2_loss(scores, self.assignments[:, indices], self.temperature)
        self._remember(z[: self.num_global_crops].detach(), indices)
        return {"loss": loss}

    @torch.no_grad()
    def _remember(self, z: torch.Tensor, indices: torch.Tensor) -> None:
        if distributed.is_distributed():
            z = distributed.gather(z.transpose(0, 1).contiguous()).transpose(0, 1)
            indices = distributed.gather(indices)
        self.bank[:, indices] = z.to(self.bank.dtype)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The bank's size is the data set's: take it from the checkpoint before loading into it.
        for name in ("bank", "assignments"):
            if prefix + name in state_dict:
                setattr(
                    self, name, torch.empty_like(state_dict[prefix + name], device=getattr(self, name).device)
                )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


__all__ = ["DeepClusterV2", "SwAV", "crop_embeddings"]
