"""The labelled/unlabelled split of semi-supervised learning: k labels per class, drawn with a stored seed.

``split = labelled_split(train, labels_per_class=4, seed=0)`` keeps exactly 4 labelled images of every
class (``split.labelled``) and *all* the training images as the unlabelled set (``split.unlabelled``):
the labelled images are in it too, as in FixMatch's reference code (google-research/fixmatch #53).
``split.state_dict()`` (the budget, the seed and the chosen rows) goes into every checkpoint of a
semi-supervised run, and :func:`check_same_split` refuses to resume with a different labelled set: an
unseeded draw on resume silently trains on new labels, and so leaks labels (kekmodel/FixMatch-pytorch #41).

The unlabelled set keeps the true labels of its images only so that a notebook can *measure* how good
the pseudo-labels are; the semi-supervised losses never read them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .dataset import ImageDataset


@dataclass(frozen=True, eq=False)
class LabelledSplit:
    """``labelled`` (k images per class, with labels), ``unlabelled`` (every image of the data set),
    ``indices`` (the labelled rows of the original data set, sorted), ``labels_per_class`` (k, or
    None: every image labelled) and the ``seed`` the rows were drawn with."""

    labelled: ImageDataset
    unlabelled: ImageDataset
    indices: torch.Tensor
    labels_per_class: int | None
    seed: int

    def state_dict(self) -> dict:
        """What a checkpoint stores to prove (and rebuild) this exact labelled set."""
        return {
            "labels_per_class": self.labels_per_class,
            "seed": self.seed,
            "indices": self.indices.clone(),
            "num_images": len(self.unlabelled),
        }

    def __repr__(self) -> str:
        k = "all" if self.labels_per_class is None else self.labels_per_class
        return (
            f"LabelledSplit({len(self.labelled)} labelled ({k} per class, seed {self.seed}), "
            f"{len(self.unlabelled)} unlabelled, the labelled ones included)"
        )


def _parse_budget(labels_per_class) -> int | None:
    if labels_per_class is None or labels_per_class == "all":
        return None
    if isinstance(labels_per_class, bool) or not isinstance(labels_per_class, int):
        raise TypeError(f"labels_per_class must be a positive int, None or 'all', got {labels_per_class!r}")
    if labels_per_class < 1:
        raise ValueError(f"labels_per_class must be >= 1, got {labels_per_class}")
    return labels_per_class


def labelled_split(dataset: ImageDataset, labels_per_class: int | str | None, seed: int = 0) -> LabelledSplit:
    """Draw ``labels_per_class`` labelled images of every class of ``dataset`` with ``seed``.

    Within each class the images are shuffled by a generator seeded with ``seed`` and the first k kept,
    so the draw depends only on (data set, k, seed); the classes' draws are independent of each other's
    order. ``labels_per_class=None`` (or ``"all"``) labels every image (the fully supervised end of the
    table). The unlabelled set is the whole data set, the labelled images included.
    """
    if not isinstance(dataset, ImageDataset):
        raise TypeError(
            f"labelled_split takes an ImageDataset (data.load(...)), got {type(dataset).__name__}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int (it is stored with the run), got {seed!r}")
    k = _parse_budget(labels_per_class)
    labels = dataset.labels.cpu()
    counts = torch.bincount(labels, minlength=dataset.num_classes)
    present = counts > 0
    if k is None:
        indices = torch.arange(len(dataset))
    else:
        smallest = int(counts[present].min())
        if k > smallest:
            cls = int(torch.nonzero(present & (counts == smallest))[0])
            raise ValueError(
                f"labels_per_class={k} but class {dataset.classes[cls]!r} of {dataset.name!r} has only "
                f"{smallest} images: choose labels_per_class <= {smallest}, or None to label every image"
            )
        generator = torch.Generator().manual_seed(seed)
        chosen = []
        for cls in range(dataset.num_classes):
            members = (labels == cls).nonzero().flatten()
            order = torch.randperm(members.numel(), generator=generator)
            if members.numel():
                chosen.append(members[order[:k]])
        indices = torch.cat(chosen).sort().values
    labelled = dataset._take(indices, f"{'all' if k is None else k} labels per class, seed {seed}")
    return LabelledSplit(labelled, dataset, indices, k, seed)


def split_from_state(dataset: ImageDataset, state: dict) -> LabelledSplit:
    """Rebuild the split a checkpoint stored (``LabelledSplit.state_dict()``), checked against its rows."""
    split = labelled_split(dataset, state["labels_per_class"], int(state["seed"]))
    check_same_split(split, state)
    return split


def check_same_split(split: LabelledSplit, state: dict) -> None:
    """Raise unless ``split`` is the labelled set ``state`` (a checkpoint's ``"split"``) describes."""
    mine = split.state_dict()
    if mine["num_images"] != state["num_images"]:
        raise ValueError(
            f"the checkpoint was trained on {state['num_images']} images, this split has "
            f"{mine['num_images']}: resume with the same training set"
        )
    same = (
        mine["labels_per_class"] == state["labels_per_class"]
        and mine["seed"] == state["seed"]
        and torch.equal(mine["indices"], torch.as_tensor(state["indices"]))
    )
    if not same:
        raise ValueError(
            f"the checkpoint's labelled set ({state['labels_per_class']} per class, seed {state['seed']}) is "
            f"not this split's ({mine['labels_per_class']} per class, seed {mine['seed']}): resuming would "
            "train on other labels. Rebuild the split with data.semi.split_from_state(train, "
            "load_checkpoint(path)['split']), or start afresh in another checkpoint_dir"
        )
