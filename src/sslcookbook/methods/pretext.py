"""Pretext tasks, the self-supervision that came before contrastive learning.

Three tasks make a label out of a transformation and train a classifier to recover it: rotation
prediction (Gidaris et al. 2018), jigsaw (Noroozi & Favaro 2016) and relative patch position
(Doersch et al. 2015). Instance discrimination (Wu et al. 2018) makes every image its own class and
scores it against a memory bank of features; contrastive learning grew out of it.

The transformations are batched tensor ops (``torch.rot90``, tiles gathered by index): no per-image
Python loop. Their random draws come from a generator seeded with the method's ``seed``, the number of
steps drawn so far (in the state dict) and the rank, so a resumed run draws what an uninterrupted one
draws, on any device.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from .. import distributed
from ..losses import (
    MemoryBank,
    estimate_log_z,
    instance_nce_loss,
    nonparametric_softmax_loss,
    transformation_loss,
)
from ..models import mlp
from .base import SSLMethod, check_fraction, check_positive, check_views, feature_dim

# --------------------------------------------------------------------------------------------------
# The pretext transformations, batched
# --------------------------------------------------------------------------------------------------


def rotate_batch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The four rotations of every image (0°, 90°, 180°, 270°), as one 4B batch, and each one's angle index.

    Gidaris et al. (2018) feed all four rotations of each image in the same batch.
    """
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"rotation prediction needs square images, got {x.shape[-2]}×{x.shape[-1]}")
    rotated = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])
    targets = torch.arange(4, device=x.device).repeat_interleave(x.shape[0])
    return rotated, targets


def crop_tiles(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int) -> torch.Tensor:
    """Square tiles of side ``size`` at (``top``, ``left``) (B×T long tensors) of x: B×T×C×size×size."""
    steps = torch.arange(size, device=x.device)
    rows = (top.unsqueeze(-1) + steps).unsqueeze(-1)  # B×T×size×1
    cols = (left.unsqueeze(-1) + steps).unsqueeze(-2)  # B×T×1×size
    images = torch.arange(x.shape[0], device=x.device).view(-1, 1, 1, 1)
    return x[images, :, rows, cols].permute(0, 1, 4, 2, 3)  # advanced indices first, then C


def hamming_permutations(
    num_tiles: int, count: int, seed: int = 0, candidates: int = 100_000
) -> torch.Tensor:
    """``count`` permutations of ``num_tiles`` tiles, far apart in Hamming distance (count × num_tiles).

    Noroozi & Favaro (2016, Algorithm 1): start from a random permutation, then add, one at a time, the
    candidate with the largest average Hamming distance to those chosen. The candidates are all
    ``num_tiles!`` permutations, or ``candidates`` random ones when there are more; seeded.
    """
    if num_tiles < 2:
        raise ValueError(f"a jigsaw needs at least 2 tiles, got {num_tiles}")
    total = math.factorial(num_tiles)
    if not 2 <= count <= min(total, candidates):
        raise ValueError(
            f"count must be in [2, {min(total, candidates)}] for {num_tiles} tiles ({total} permutations), "
            f"got {count}"
        )
    g = torch.Generator().manual_seed(seed)
    if total <= candidates:
        pool = torch.tensor(list(itertools.permutations(range(num_tiles))), dtype=torch.long)
    else:
        pool = torch.argsort(torch.rand(candidates, num_tiles, generator=g), dim=1)
    chosen = [int(torch.randint(len(pool), (1,), generator=g))]
    distance_sum = torch.zeros(len(pool))
    for _ in range(count - 1):
        distance_sum += (pool != pool[chosen[-1]]).sum(1)
        distance_sum[chosen] = -1.0  # never choose one twice
        chosen.append(int(distance_sum.argmax()))
    return pool[chosen]


def jigsaw_batch(
    x: torch.Tensor, permutations: torch.Tensor, grid: int, tile_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A jigsaw per image: a grid × grid of tiles, shuffled by a permutation drawn from ``permutations``.

    The image (square) is cut into cells of ``side // grid`` pixels; each tile, ``tile_size`` ≤ cell,
    sits at a random offset inside its cell, so neighbouring tiles are separated by a random gap and
    no edge continues across tiles (Noroozi & Favaro's defence against edge-matching shortcuts).
    Tile k of the output is tile ``permutations[y][k]`` of the image; returns (B×T×C×t×t tiles, y).
    """
    b, side = x.shape[0], x.shape[-1]
    cell, num_tiles = side // grid, grid * grid
    if x.shape[-2] != side or not 1 <= tile_size <= cell:
        raise ValueError(
            f"jigsaw needs square images with tiles of at most side // grid = {cell} px, got "
            f"{x.shape[-2]}×{side} images and tile_size={tile_size}"
        )
    cells = torch.arange(grid, device=x.device) * cell
    top = cells.repeat_interleave(grid).expand(b, -1)
    left = cells.repeat(grid).expand(b, -1)
    jitter = cell - tile_size + 1
    top = top + torch.randint(jitter, (b, num_tiles), generator=generator, device=x.device)
    left = left + torch.randint(jitter, (b, num_tiles), generator=generator, device=x.device)
    tiles = crop_tiles(x, top, left, tile_size)
    targets = torch.randint(len(permutations), (b,), generator=generator, device=x.device)
    order = permutations.to(x.device)[targets]
    return tiles[torch.arange(b, device=x.device).unsqueeze(1), order], targets


#: The eight neighbours of the centre patch on a 3×3 lattice (row, column), the classes of Doersch et al.
NEIGHBOURS = ((0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2))


def patch_pairs(
    x: torch.Tensor, patch_size: int, gap: int, jitter: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The centre patch and one random neighbour of each image, and the neighbour's index in ``NEIGHBOURS``.

    Patches sit on a 3×3 lattice of cells of ``patch_size + gap + jitter`` pixels, centred in the image
    (zero-padded when the lattice is larger than the image), each moved by up to ``jitter`` pixels:
    neighbouring patches are always at least ``gap`` pixels apart (Doersch et al.: the gap and the
    jitter keep the network from matching edges and textures across the border).
    Returns (centre B×C×p×p, neighbour B×C×p×p, positions B).
    """
    b, side = x.shape[0], x.shape[-1]
    cell = patch_size + gap + jitter
    lattice = 3 * cell - gap
    if x.shape[-2] != side:
        raise ValueError(f"relative position needs square images, got {x.shape[-2]}×{side}")
    if lattice > side:  # zero padding: the digits' background is black
        pad = math.ceil((lattice - side) / 2)
        x, side = nn.functional.pad(x, (pad, pad, pad, pad)), side + 2 * pad
    start = (side - lattice) // 2
    positions = torch.randint(len(NEIGHBOURS), (b,), generator=generator, device=x.device)
    lattice_rc = torch.tensor(NEIGHBOURS, device=x.device)[positions]  # B×2
    rows = torch.stack([torch.ones_like(positions), lattice_rc[:, 0]], dim=1)  # centre, neighbour
    cols = torch.stack([torch.ones_like(positions), lattice_rc[:, 1]], dim=1)
    top = start + rows * cell + torch.randint(jitter + 1, (b, 2), generator=generator, device=x.device)
    left = start + cols * cell + torch.randint(jitter + 1, (b, 2), generator=generator, device=x.device)
    patches = crop_tiles(x, top, left, patch_size)
    return patches[:, 0], patches[:, 1], positions


# --------------------------------------------------------------------------------------------------
# The methods
# --------------------------------------------------------------------------------------------------


class _SeededDraws(SSLMethod):
    """A method whose transformations draw random numbers: one generator per step, resumable."""

    def __init__(self, seed: int):
        super().__init__()
        self.seed, self.steps_drawn = int(seed), 0

    def generator(self, device: torch.device) -> torch.Generator:
        """A fresh generator for this step (seed, steps drawn so far, rank); counts the step."""
        g = torch.Generator(device=device)
        index = self.steps_drawn * distributed.world_size() + distributed.rank()
        g.manual_seed((self.seed * 1_000_003 + index) % (2**63))
        self.steps_drawn += 1
        return g

    def get_extra_state(self) -> dict:
        return {"steps_drawn": self.steps_drawn}

    def set_extra_state(self, state: dict) -> None:
        self.steps_drawn = int(state["steps_drawn"])


def _head(in_dim: int, hidden_dim: int, classes: int) -> nn.Sequential:
    """The classifier on top of the backbone's features: Linear-BN-ReLU-Linear (hidden_dim 0: one Linear)."""
    return mlp(in_dim, hidden_dim, classes, num_layers=2 if hidden_dim else 1)


class RotationPrediction(SSLMethod):
    """RotNet (Gidaris, Singh & Komodakis, ICLR 2018): predict by how much the image was rotated.

    Each image of the (first) view is rotated by 0°, 90°, 180° and 270°, all four in one batch, and a head
    on the backbone's features classifies the angle: ``transformation_loss(head(f(rot_k x)), k)``. To
    tell the angle the network has to find where the top of the object is, so it learns objects.
    """

    def __init__(self, backbone: nn.Module, hidden_dim: int = 256):
        super().__init__()
        self.backbone = backbone
        self.head = _head(feature_dim(backbone), hidden_dim, 4)

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        check_views(views, type(self).__name__)
        rotated, targets = rotate_batch(views[0])
        logits = self.head(self.backbone(rotated))
        accuracy = (logits.detach().argmax(1) == targets).float().mean()
        return {"loss": transformation_loss(logits, targets), "accuracy": accuracy}


class Jigsaw(_SeededDraws):
    """Jigsaw puzzles (Noroozi & Favaro, ECCV 2016): which permutation shuffled the tiles?

    The image is cut into ``grid × grid`` tiles (with random gaps, :func:`jigsaw_batch`), shuffled by one
    of ``num_permutations`` permutations chosen far apart in Hamming distance
    (:func:`hamming_permutations`); each tile goes through the backbone on its own (shared weights), the
    tiles' features are concatenated in their shuffled order and a head classifies the permutation.
    The paper: a 3×3 grid of 64 px tiles in 85 px cells, 1,000 permutations (100 in most ablations).
    ``tile_size`` defaults to the cell minus a quarter of it (at least one pixel of jitter).
    """

    def __init__(
        self,
        backbone: nn.Module,
        grid: int = 3,
        num_permutations: int = 100,
        tile_size: int | None = None,
        hidden_dim: int = 512,
        seed: int = 0,
    ):
        super().__init__(seed)
        check_positive(grid=grid, num_permutations=num_permutations)
        if tile_size is not None:
            check_positive(tile_size=tile_size)
        self.backbone, self.grid, self.tile_size = backbone, grid, tile_size
        self.register_buffer("permutations", hamming_permutations(grid * grid, num_permutations, seed))
        self.head = _head(grid * grid * feature_dim(backbone), hidden_dim, num_permutations)

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        check_views(views, type(self).__name__)
        x = views[0]
        cell = x.shape[-1] // self.grid
        tile = self.tile_size or max(1, cell - max(1, cell // 4))
        tiles, targets = jigsaw_batch(x, self.permutations, self.grid, tile, self.generator(x.device))
        b, t = tiles.shape[:2]
        features = self.backbone(tiles.flatten(0, 1)).reshape(b, -1)  # B × (T·F), in the shuffled order
        logits = self.head(features)
        accuracy = (logits.detach().argmax(1) == targets).float().mean()
        return {"loss": transformation_loss(logits, targets), "accuracy": accuracy}


class RelativePosition(_SeededDraws):
    """Context prediction (Doersch, Gupta & Efros, ICCV 2015): where is this patch relative to the centre one?

    A centre patch and one of its 8 neighbours on a 3×3 lattice (:func:`patch_pairs`) go through the
    backbone (shared weights); their features, concatenated, feed a head that classifies the position.
    The paper: 96 px patches, a 48 px gap and up to 7 px of jitter, so that edges and textures cannot be
    matched across the border; here scaled to small images by ``patch_size``, ``gap`` and ``jitter``.
    (The paper also found chromatic aberration as a shortcut and removed it by colour projection or
    dropping channels; at CIFAR's resolution lenses leave little of it, and it is not reproduced here.)
    """

    def __init__(
        self,
        backbone: nn.Module,
        patch_size: int = 7,
        gap: int = 2,
        jitter: int = 1,
        hidden_dim: int = 512,
        seed: int = 0,
    ):
        super().__init__(seed)
        check_positive(patch_size=patch_size)
        if gap < 0 or jitter < 0:
            raise ValueError(f"gap and jitter must be >= 0 pixels, got gap={gap}, jitter={jitter}")
        self.backbone, self.patch_size, self.gap, self.jitter = backbone, patch_size, gap, jitter
        self.head = _head(2 * feature_dim(backbone), hidden_dim, len(NEIGHBOURS))

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        check_views(views, type(self).__name__)
        x = views[0]
        g = self.generator(x.device)
        centre, neighbour, targets = patch_pairs(x, self.patch_size, self.gap, self.jitter, g)
        features = self.backbone(torch.cat([centre, neighbour])).chunk(2)
        logits = self.head(torch.cat(features, dim=1))
        accuracy = (logits.detach().argmax(1) == targets).float().mean()
        return {"loss": transformation_loss(logits, targets), "accuracy": accuracy}


class InstanceDiscrimination(_SeededDraws):
    """Instance discrimination with a memory bank (Wu, Xiong, Yu & Lin, CVPR 2018).

    Every training image is its own class. A linear layer maps the backbone's features to
    ``embedding_dim``, L2-normalised; the bank holds one such feature per image (:class:`MemoryBank`).
    The loss scores the (first) view of image i against the bank: the full non-parametric softmax over
    all n slots (``negatives=None``, :func:`nonparametric_softmax_loss`) or NCE with ``negatives``
    uniformly drawn slots and a normaliser Z estimated at the first step
    (:func:`instance_nce_loss`; the paper: 4,096 negatives, τ = 0.07). After the optimiser's step the
    batch's slots move towards the new features with momentum 0.5.

    The bank needs each image's position in the training set: ``uses_indices`` tells ``fit`` to size
    the bank (``set_num_instances(len(dataset))``) and to pass ``indices=`` with every batch. Under DDP
    every rank writes every rank's rows, so the banks stay identical.
    """

    uses_indices = True

    def __init__(
        self,
        backbone: nn.Module,
        embedding_dim: int = 128,
        temperature: float = 0.07,
        bank_momentum: float = 0.5,
        negatives: int | None = 4096,
        gather_distributed: bool = True,
        seed: int = 0,
    ):
        super().__init__(seed)
        check_positive(temperature=temperature, embedding_dim=embedding_dim)
        check_fraction(bank_momentum=bank_momentum)
        if negatives is not None:
            check_positive(negatives=negatives)
        self.backbone = backbone
        self.embedding = nn.Linear(feature_dim(backbone), embedding_dim)
        self.bank = MemoryBank(embedding_dim, bank_momentum, gather_distributed)
        self.register_buffer("log_z", torch.tensor(0.0))  # NCE's log Z, once z_estimated
        self.register_buffer("z_estimated", torch.tensor(False))
        self.temperature, self.negatives = temperature, negatives
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None

    def set_num_instances(self, num_instances: int) -> None:
        """Give the bank one slot per training image (``fit`` calls it with ``len(dataset)``)."""
        self.bank.resize(num_instances)

    def training_step(
        self,
        views: list[torch.Tensor],
        labels: torch.Tensor | None = None,
        indices: torch.Tensor | None = None,
    ) -> dict:
        check_views(views, type(self).__name__)
        if indices is None:
            raise ValueError(
                "InstanceDiscrimination needs each image's index in the training set: "
                "training_step(views, indices=...) (fit passes them)"
            )
        if not len(self.bank):
            raise RuntimeError("the memory bank is empty: call set_num_instances(len(dataset)) first")
        f = self.embedding(self.backbone(views[0]))
        bank = self.bank.features
        if self.negatives is None:
            loss = nonparametric_softmax_loss(f, bank, indices, self.temperature)
        else:
            g = self.generator(f.device)
            noise = torch.randint(len(bank), (f.shape[0], self.negatives), generator=g, device=f.device)
            if not self.z_estimated:  # the first step: Z from this batch, then fixed (Wu et al.)
                log_z = estimate_log_z(f, bank, noise, self.temperature)
                self.log_z.copy_(distributed.all_reduce_mean(log_z.exp()).log())
                self.z_estimated.fill_(True)
            loss = instance_nce_loss(f, bank, indices, noise, self.log_z, self.temperature)
        self._pending = (indices, f.detach())
        return {"loss": loss}

    def after_step(self, progress: float) -> None:
        """Write the batch's features into the bank, after the step (the loss read the old slots)."""
        if self._pending is not None:
            self.bank.update(*self._pending)
            self._pending = None


__all__ = [
    "NEIGHBOURS",
    "InstanceDiscrimination",
    "Jigsaw",
    "RelativePosition",
    "RotationPrediction",
    "crop_tiles",
    "hamming_permutations",
    "jigsaw_batch",
    "patch_pairs",
    "rotate_batch",
]
