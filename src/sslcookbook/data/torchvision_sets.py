"""Data sets read through ``torchvision.datasets`` (files on disk, downloaded only when asked).

Each is converted to uint8 N×C×H×W straight from the class's in-memory array (``.data``), never
image by image. torchvision is imported here, lazily, so ``import sslcookbook.data`` stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .dataset import ImageDataset

# name -> torchvision.datasets class name
TORCHVISION_SETS = {
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
    "stl10": "STL10",
    "mnist": "MNIST",
    "fashion_mnist": "FashionMNIST",
}

# Approximate download sizes, for the message printed before a first download.
_DOWNLOAD_MB = {"cifar10": 170, "cifar100": 170, "stl10": 2640, "mnist": 12, "fashion_mnist": 30}

_STL10_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def _expected_files(cls: type, root: Path) -> list[Path]:
    """The files torchvision's class needs under ``root`` (read from its class attributes)."""
    if hasattr(cls, "resources"):  # MNIST family: uncompressed idx files in <root>/<ClassName>/raw/
        raw = root / cls.__name__ / "raw"
        return [raw / os.path.splitext(os.path.basename(url))[0] for url, _ in cls.resources]
    folder = root / cls.base_folder
    files = [folder / name for name, _ in cls.train_list + cls.test_list]
    if hasattr(cls, "meta"):  # CIFAR: the class-name file
        files.append(folder / cls.meta["filename"])
    return files


def _mnist_legacy_present(cls: type, root: Path) -> bool:
    processed = root / cls.__name__ / "processed"
    return hasattr(cls, "training_file") and all(
        (processed / name).is_file() for name in (cls.training_file, cls.test_file)
    )


def load_torchvision(name: str, split: str, root: Path, download: bool) -> ImageDataset:
    """Load ``name`` (a key of ``TORCHVISION_SETS``) for ``split`` from ``root`` as an ImageDataset."""
    import torchvision.datasets

    cls = getattr(torchvision.datasets, TORCHVISION_SETS[name])
    expected = _expected_files(cls, root)
    missing = [path for path in expected if not path.is_file()]
    if missing and not download and not _mnist_legacy_present(cls, root):
        shown = ", ".join(str(path.relative_to(root)) for path in missing[:6])
        more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
        raise FileNotFoundError(
            f"{name}: data files not found under {root} (missing {shown}{more}). Pass download=True "
            f"(CLI: --download) to fetch them with torchvision, or copy the files there; "
            f"set root= or $SSLCOOKBOOK_DATA to look elsewhere."
        )
    if download:
        root.mkdir(parents=True, exist_ok=True)
        if missing:
            print(
                f"{name}: not found under {root}; downloading it once with torchvision "
                f"(about {_DOWNLOAD_MB[name]} MB), later runs read it from there "
                "(set $SSLCOOKBOOK_DATA to keep data elsewhere)",
                flush=True,
            )
    kwargs = {"split": split} if name == "stl10" else {"train": split == "train"}
    try:
        tv = cls(str(root), download=download, **kwargs)
    except (RuntimeError, OSError) as error:
        if download:
            raise RuntimeError(
                f"{name}: torchvision could not download or verify the data in {root}: {error}. "
                "Check the network connection, or copy the files there by hand and load with download=False."
            ) from error
        raise RuntimeError(
            f"{name}: torchvision rejected the files under {root}: {error}. They are probably corrupted or "
            f"incomplete: delete them ({', '.join(str(p) for p in expected[:3])}, ...) and load again with "
            "download=True."
        ) from error
    return _to_image_dataset(name, split, tv)


def _to_image_dataset(name: str, split: str, tv: object) -> ImageDataset:
    if name in ("cifar10", "cifar100"):
        images = torch.from_numpy(tv.data).permute(0, 3, 1, 2)  # stored N×H×W×C
        labels = torch.as_tensor(tv.targets, dtype=torch.int64)
        classes = list(tv.classes)
    elif name == "stl10":
        images = torch.from_numpy(np.ascontiguousarray(tv.data))  # N×3×96×96 (a transposed view)
        labels = torch.from_numpy(tv.labels.astype(np.int64))
        classes = list(getattr(tv, "classes", _STL10_CLASSES))
    else:  # MNIST family: a uint8 tensor N×28×28
        images = tv.data.unsqueeze(1)
        labels = tv.targets.long()
        classes = list(tv.classes)
    return ImageDataset(images.contiguous(), labels, classes, f"{name}/{split}")
