"""``folder:<path>``: any ImageFolder tree (``<path>/<class>/<image>``), decoded once and cached on disk.

Layout: if ``<path>/train`` and ``<path>/test`` both exist they are the two splits (class names are
the union of their sub-folders, so labels agree between splits); otherwise the whole tree is the
``train`` split and there is no ``test`` split. Images are found recursively inside each class
folder, in sorted order. Every image is decoded with PIL (in a thread pool) and converted to RGB
(grayscale too, so the result is always N×3×H×W); images whose size differs from the most common
one are resized to it (bicubic, with a warning). The decoded tensors are saved
under ``<cache_root>/folder-cache/`` keyed by a hash of the file list, sizes and modification
times, so the next load reads one file.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .dataset import ImageDataset

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
_CACHE_FORMAT = 1


def _decode_file(path: str) -> np.ndarray:
    """Decode one image file to an H×W×3 uint8 array with PIL; a clear error naming the file if damaged."""
    try:
        with Image.open(path) as image:
            return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(
            f"cannot decode image {path} ({type(error).__name__}: {error}); "
            "remove or replace this file, then load again"
        ) from error


def _decode_many(paths: list[str]) -> list[np.ndarray]:
    return [_decode_file(path) for path in paths]


def _decode_all(paths: list[str]) -> list[np.ndarray]:
    """Decode in a thread pool (PIL releases the GIL while decoding: helps with large images), in chunks."""
    workers = min(8, os.cpu_count() or 1)
    if workers == 1 or len(paths) < 256:
        return _decode_many(paths)
    chunk = max(64, -(-len(paths) // (workers * 8)))
    pool = ThreadPoolExecutor(workers)
    try:
        parts = pool.map(_decode_many, [paths[i : i + chunk] for i in range(0, len(paths), chunk)])
        return [array for part in parts for array in part]
    finally:
        pool.shutdown(cancel_futures=True)  # on a bad file, report it without decoding the rest


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _class_folders(directory: Path) -> list[str]:
    return sorted(
        entry.name for entry in os.scandir(directory) if entry.is_dir() and not _is_hidden(entry.name)
    )


def _scan_images(class_dir: Path) -> list[tuple[str, int, int]]:
    """(path, size in bytes, mtime in ns) of every image under ``class_dir``, recursively, sorted."""
    found = []
    for current, dirs, files in os.walk(class_dir, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not _is_hidden(d))
        for name in sorted(files):
            if _is_hidden(name) or not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            path = os.path.join(current, name)
            stat = os.stat(path)
            found.append((path, stat.st_size, stat.st_mtime_ns))
    return found


def _resolve_split(tree: Path, split: str) -> tuple[Path, list[str]]:
    """The folder holding ``split`` and the class names shared by all splits of ``tree``."""
    train, test = tree / "train", tree / "test"
    if train.is_dir() and test.is_dir():
        classes = sorted(set(_class_folders(train)) | set(_class_folders(test)))
        return tree / split, classes
    if train.is_dir() or test.is_dir():
        present, absent = (train, test) if train.is_dir() else (test, train)
        raise ValueError(
            f"{tree} has a {present.name}/ folder but no {absent.name}/ folder: create {absent} with the "
            f"same class sub-folders, or point at {present} (folder:{present}) to use it as the train split"
        )
    if split == "test":
        raise ValueError(
            f"{tree} has no test split: without train/ and test/ sub-folders the whole tree is the train "
            f"split. Load split='train', or arrange it as {tree}/train/<class>/... and {tree}/test/<class>/"
        )
    return tree, _class_folders(tree)


def _cache_path(cache_dir: Path, tree: Path, split: str, classes: list[str], files: list) -> Path:
    digest = hashlib.sha256()
    digest.update(f"{_CACHE_FORMAT}\n{tree.resolve()}\n{split}\n".encode())
    digest.update("\0".join(classes).encode())
    for path, label, size, mtime in files:
        digest.update(f"\n{path}\0{label}\0{size}\0{mtime}".encode())
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", tree.resolve().name) or "root"
    return cache_dir / f"{stem}-{split}-{digest.hexdigest()[:24]}.pt"


def _read_cache(path: Path, count: int) -> dict | None:
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, weights_only=True)
        if blob.get("format") == _CACHE_FORMAT and len(blob["labels"]) == count:
            return blob
    except Exception as error:  # a damaged cache is rebuilt, never fatal
        warnings.warn(
            f"ignoring unreadable folder cache {path} ({error}); decoding the images again", stacklevel=3
        )
    return None


def _write_cache(path: Path, blob: dict) -> None:
    """Write atomically (temporary file in the same folder, then os.replace): no reader sees half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        os.close(handle)
        try:
            torch.save(blob, tmp)
            os.chmod(tmp, 0o644)  # mkstemp makes it owner-only
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    except OSError as error:
        warnings.warn(
            f"could not write the folder cache {path} ({error}); the next load will decode again",
            stacklevel=3,
        )


def _stack_images(paths: list[str], arrays: list[np.ndarray]) -> torch.Tensor:
    """Stack H×W×3 arrays into N×3×H×W, resizing those not of the most common size to it."""
    sizes = Counter(array.shape[:2] for array in arrays)
    (height, width), _ = sizes.most_common(1)[0]
    if len(sizes) > 1:
        odd = [i for i, array in enumerate(arrays) if array.shape[:2] != (height, width)]
        warnings.warn(
            f"{len(odd)} of {len(arrays)} images are not {height}×{width} (the most common size), e.g. "
            f"{paths[odd[0]]}; resizing them to {height}×{width}",
            stacklevel=3,
        )
        for i in odd:
            resized = Image.fromarray(arrays[i]).resize((width, height), Image.Resampling.BICUBIC)
            arrays[i] = np.asarray(resized)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def load_folder(path: str | os.PathLike, split: str, cache_root: Path) -> ImageDataset:
    """Load ``split`` of the ImageFolder tree at ``path`` (see the module docstring for the rules)."""
    tree = Path(path).expanduser()
    if not tree.exists():
        raise FileNotFoundError(f"image folder {tree} does not exist: check the path after 'folder:'")
    if not tree.is_dir():
        raise NotADirectoryError(
            f"folder:{tree} is not a directory: point at the folder holding one sub-folder per class"
        )
    split_dir, classes = _resolve_split(tree, split)
    if not classes:
        loose = sum(1 for entry in os.scandir(split_dir) if entry.name.lower().endswith(IMAGE_EXTENSIONS))
        found = (
            f"; it holds {loose} image files directly, move them into one sub-folder per class"
            if loose
            else ""
        )
        raise ValueError(f"no class sub-folders in {split_dir}: expected {split_dir}/<class>/<image>{found}")

    files = []
    for label, name in enumerate(classes):
        class_dir = split_dir / name
        if class_dir.is_dir():
            files.extend((p, label, size, mtime) for p, size, mtime in _scan_images(class_dir))
    if not files:
        raise ValueError(
            f"no images under the class folders of {split_dir} ({', '.join(classes[:5])}"
            f"{', ...' if len(classes) > 5 else ''}): expected files ending in {', '.join(IMAGE_EXTENSIONS)}"
        )

    name = f"folder:{tree}/{split}"
    cache_file = _cache_path(cache_root / "folder-cache", tree, split, classes, files)
    cached = _read_cache(cache_file, len(files))
    if cached is not None:
        return ImageDataset(cached["images"], cached["labels"], list(cached["classes"]), name)

    paths = [p for p, _, _, _ in files]
    images = _stack_images(paths, _decode_all(paths))
    labels = torch.tensor([label for _, label, _, _ in files], dtype=torch.int64)
    dataset = ImageDataset(images, labels, classes, name)
    _write_cache(
        cache_file, {"format": _CACHE_FORMAT, "images": images, "labels": labels, "classes": classes}
    )
    return dataset
