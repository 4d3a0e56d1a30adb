"""``digits``: scikit-learn's bundled 8×8 handwritten digits (UCI optdigits test set, 1,797 images)."""

from __future__ import annotations

import torch

from .dataset import ImageDataset

DIGITS_TEST_SIZE = 360
DIGITS_SPLIT_SEED = 0


def load_digits_split(split: str) -> ImageDataset:
    """The digits as uint8 N×1×8×8 (values 0..16 scaled to 0..255, rounded) with labels 0..9.

    Split: ``sklearn.model_selection.train_test_split(test_size=360, stratify=labels, random_state=0)``,
    giving 1,437 train / 360 test images with the class proportions of the whole set; indices are
    sorted so each split keeps scikit-learn's original order. Needs no download.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = (
        torch.from_numpy(bunch.images).mul(255.0 / 16.0).round().clamp(0, 255).to(torch.uint8).unsqueeze(1)
    )
    labels = torch.from_numpy(bunch.target).long()
    train_index, test_index = train_test_split(
        range(len(labels)), test_size=DIGITS_TEST_SIZE, stratify=bunch.target, random_state=DIGITS_SPLIT_SEED
    )
    index = torch.tensor(sorted(train_index if split == "train" else test_index))
    return ImageDataset(images[index], labels[index], [str(d) for d in range(10)], f"digits/{split}")
