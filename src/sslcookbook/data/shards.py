"""Data sets larger than memory: WebDataset tar shards, packed once and streamed per batch.

``pack(source, out)`` (CLI: ``sslcookbook pack FOLDER OUT``) writes an ImageFolder tree, or a list file
of ``path,class`` lines, into tar shards in the WebDataset format (``webdataset.TarWriter``): one sample
per image, members ``<key>.<jpg|png|...>`` (the encoded bytes, re-encoded only with ``max_side`` or
``quality``), ``<key>.cls`` (the label) and ``<key>.path`` (the source file), in a seeded shuffled order so
that every shard mixes the classes. Beside the shards, ``index.json`` holds the class names, the count of
every shard and the files that were skipped because they could not be decoded (each named). A tree with
``train/`` and ``test/`` is packed into ``OUT/train`` and ``OUT/test``; a single tree into ``OUT/train``.

``load("shards:OUT")`` returns a ``ShardDataset``: an IterableDataset that reads its rank's shards
(``distributed.rank`` of ``world_size``, after a seeded shuffle of the shard order per epoch) split
again over DataLoader workers, decodes each image in the worker (``torchvision.io.decode_jpeg`` for
JPEG, PIL for the rest), takes a per-image random-resized crop to a fixed ``size`` (so images of any size
mix), passes samples through a seeded shuffle buffer, and yields uint8 batches B×3×size×size. ``fit``
then makes the same batched views on the device as for an in-memory data set (``fit_streaming``). Memory
is bounded by the shuffle buffer, the loader's prefetch and the batch (and, for DeepCluster v2, its
memory bank of N×D floats: method state, see ``fit_streaming``).

Determinism: the shard order of epoch e, the crops of shard s in epoch e and each worker's shuffle
buffer come from generators seeded with (seed, e, s / worker), so a run is reproducible for a fixed
world size and worker count. Resuming: see ``fit_streaming``.
"""

from __future__ import annotations

import contextlib
import glob as globbing
import io
import json
import math
import os
import re
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .dataset import ImageDataset
from .folder import IMAGE_EXTENSIONS, _resolve_split, _scan_images

SHARDS_PREFIX = "shards:"
INDEX_NAME = "index.json"
INDEX_FORMAT = 1
DEFAULT_SHARD_SIZE = 1000
DEFAULT_QUALITY = 90  # JPEG quality when re-encoding (--max-side without --quality)
_EXTENSIONS = ("jpg", "png", "webp", "bmp", "gif", "tiff", "ppm", "pgm")  # member suffixes of an image
_PIL_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "GIF": "gif", "TIFF": "tiff"}
_DECODE_ERRORS = (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError)
# torchvision 0.29 warns on every decode that TorchCodec will take over its decoders; they still work.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision")


# ---------------------------------------------------------------------------------------------------------
# Packing


def _list_file(path: Path) -> tuple[list[tuple[str, str]], None]:
    """``(file, class name)`` rows of a list file: ``path,class`` (or tab-separated) per line; ``#`` comments;
    relative paths are relative to the list file's folder."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in re.split(r"[\t,]", line)]
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"{path}:{number}: expected 'path,class' (or 'path<TAB>class'), got {line!r}")
        file = Path(parts[0]).expanduser()
        rows.append((str(file if file.is_absolute() else path.parent / file), parts[1]))
    if not rows:
        raise ValueError(f"list file {path} names no images: write one 'path,class' line per image")
    return rows, None


def _sources(source: Path) -> tuple[dict[str, list[tuple[str, int]]], list[str]]:
    """``{split: [(file, label), ...]}`` and the class names, from a list file or an ImageFolder tree."""
    if source.is_file():
        rows, _ = _list_file(source)
        classes = sorted({name for _, name in rows})
        lookup = {name: i for i, name in enumerate(classes)}
        return {"train": [(file, lookup[name]) for file, name in rows]}, classes
    if not source.is_dir():
        raise FileNotFoundError(
            f"{source} does not exist: pass an ImageFolder tree or a 'path,class' list file"
        )
    splits = ("train", "test") if (source / "train").is_dir() and (source / "test").is_dir() else ("train",)
    found, classes = {}, []
    for split in splits:
        split_dir, classes = _resolve_split(source, split)
        if not classes:
            raise ValueError(f"no class sub-folders in {split_dir}: expected {split_dir}/<class>/<image>")
        files = []
        for label, name in enumerate(classes):
            if (split_dir / name).is_dir():
                files.extend((p, label) for p, _, _ in _scan_images(split_dir / name))
        if not files:
            raise ValueError(
                f"no images ({', '.join(IMAGE_EXTENSIONS)}) under the class folders of {split_dir}"
            )
        found[split] = files
    return found, classes


def _encoded(path: str, max_side: int | None, quality: int | None) -> tuple[bytes, str, tuple[int, int]]:
    """The bytes to store for ``path``, their member suffix and the image's (height, width) as stored.

    The image is fully decoded to check it (a truncated file fails here, not during training); it is
    re-encoded as JPEG only when ``max_side`` (shrink so that the longer side is at most this) or
    ``quality`` asks, otherwise the original bytes are kept."""
    data = Path(path).read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        suffix = _PIL_FORMATS.get(image.format or "")
        size = (image.height, image.width)
        if max_side is None and quality is None and suffix is not None:
            return data, suffix, size
        rgb = image.convert("RGB")
    if max_side is not None and max(rgb.size) > max_side:
        scale = max_side / max(rgb.size)
        rgb = rgb.resize(
            (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), Image.Resampling.BICUBIC
        )
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=quality or DEFAULT_QUALITY)
    return out.getvalue(), "jpg", (rgb.height, rgb.width)


def _write_json(path: Path, value: dict) -> None:
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(handle, "w") as f:
        json.dump(value, f, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _pack_split(
    files: list[tuple[str, int]], classes: list[str], out: Path, shard_size: int, max_side, quality, seed: int
) -> dict:
    import webdataset as wds

    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.glob("shard-*.tar")) + [out / INDEX_NAME]:
        old.unlink(missing_ok=True)  # a re-pack must not leave shards of an earlier pack behind
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed)).tolist()
    shards, skipped, short_sides = [], [], []
    writer, count, counts = None, 0, [0] * len(classes)

    def close() -> None:
        if writer is not None:
            writer.close()
            shards.append({"file": f"shard-{len(shards):06d}.tar", "count": count, "class_counts": counts})

    for position in order:
        path, label = files[position]
        try:
            data, suffix, (height, width) = _encoded(path, max_side, quality)
        except _DECODE_ERRORS as error:
            reason = "not an image file PIL can read" if isinstance(error, UnidentifiedImageError) else error
            skipped.append({"path": path, "reason": f"{type(error).__name__}: {reason}"})
            print(f"skipped {path}: cannot decode it ({type(error).__name__}: {reason})")
            continue
        if writer is None or count == shard_size:
            close()
            writer = wds.TarWriter(str(out / f"shard-{len(shards):06d}.tar"), encoder=False)
            count, counts = 0, [0] * len(classes)
        key = f"{position:09d}"
        writer.write({"__key__": key, suffix: data, "cls": str(label).encode(), "path": path.encode()})
        count, short_sides = count + 1, short_sides + [min(height, width)]
        counts[label] += 1
    close()
    if not shards:
        raise ValueError(f"none of the {len(files)} images could be decoded (e.g. {skipped[0]['path']})")
    index = {
        "format": INDEX_FORMAT,
        "classes": classes,
        "count": sum(s["count"] for s in shards),
        "shards": shards,
        "median_short_side": int(np.median(short_sides)),
        "encoding": {"max_side": max_side, "quality": quality, "seed": seed},
        "skipped": skipped,
    }
    _write_json(out / INDEX_NAME, index)  # last: a folder with an index.json holds a complete pack
    return index


def pack(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    shard_size: int = DEFAULT_SHARD_SIZE,
    max_side: int | None = None,
    quality: int | None = None,
    seed: int = 0,
) -> dict[str, dict]:
    """Pack ``source`` (an ImageFolder tree, with or without train/ and test/, or a list file of
    ``path,class`` lines) into WebDataset shards of ``shard_size`` images under ``out/<split>/``.

    Images keep their encoded bytes unless ``max_side`` or ``quality`` asks for a JPEG re-encode.
    Files that cannot be decoded are printed by name, skipped and listed in the index. Returns the
    index of each split: ``{split: {"classes", "count", "shards", "skipped", ...}}``.
    """
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be a positive int (images per shard), got {shard_size!r}")
    if max_side is not None and max_side < 8:
        raise ValueError(f"max_side must be at least 8 pixels, got {max_side}")
    if quality is not None and not 1 <= quality <= 100:
        raise ValueError(f"quality must lie in 1..100 (JPEG quality), got {quality}")
    source, out = Path(source).expanduser(), Path(out).expanduser()
    found, classes = _sources(source)
    return {
        split: _pack_split(files, classes, out / split, shard_size, max_side, quality, seed)
        for split, files in found.items()
    }


# ---------------------------------------------------------------------------------------------------------
# Reading: shards → samples


class ShardError(ValueError):
    """A shard that cannot be used as it is (its message names the shard and the fix)."""


def _tar_samples(path: str) -> Iterator[dict]:
    """The samples (dicts of member suffix → bytes, plus ``__key__``) of one tar shard, via webdataset's
    tar iterator; a truncated or damaged shard ends its stream with a warning naming it."""
    from webdataset.tariterators import group_by_keys, tar_file_iterator

    def members() -> Iterator[dict]:
        with open(path, "rb") as stream:
            try:
                for member in tar_file_iterator(stream):
                    member["__url__"] = path
                    yield member
            except Exception as error:  # tarfile.ReadError, EOFError on a cut-off file
                warnings.warn(
                    f"shard {path} is damaged or truncated ({type(error).__name__}: {error}): the samples "
                    "after this point are skipped; pack the source again to recover them",
                    stacklevel=2,
                )

    yield from group_by_keys(members())


def _shard_samples(shard: str | tuple) -> Iterator[dict]:
    """The samples of a tar shard (a path) or of a chunk of an image folder (``(file, label)`` pairs)."""
    if isinstance(shard, str):
        yield from _tar_samples(shard)
        return
    for file, label in shard:
        suffix = Path(file).suffix.lower().lstrip(".")
        suffix = {"jpeg": "jpg", "tif": "tiff"}.get(suffix, suffix)
        try:
            payload = Path(file).read_bytes()
        except OSError as error:
            warnings.warn(f"cannot read {file} ({error}): skipped", stacklevel=2)
            continue
        yield {
            "__key__": file,
            suffix if suffix in _EXTENSIONS else "jpg": payload,
            "cls": str(label).encode(),
        }


def _image_member(sample: dict) -> tuple[str, bytes] | None:
    for suffix in _EXTENSIONS:
        if suffix in sample:
            return suffix, sample[suffix]
    for suffix in ("jpeg", "tif"):
        if suffix in sample:
            return ("jpg" if suffix == "jpeg" else "tiff"), sample[suffix]
    return None


def decode_image(data: bytes, suffix: str) -> torch.Tensor:
    """Encoded bytes → uint8 3×H×W (RGB): ``torchvision.io.decode_jpeg`` / ``decode_png``, PIL otherwise."""
    from torchvision.io import ImageReadMode, decode_jpeg, decode_png

    if suffix in ("jpg", "png"):
        buffer = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        try:
            if suffix == "jpg":
                return decode_jpeg(buffer, mode=ImageReadMode.RGB)
            return decode_png(buffer, mode=ImageReadMode.RGB)
        except RuntimeError:
            pass  # e.g. a CMYK JPEG or a 16-bit PNG: PIL handles those
    with Image.open(io.BytesIO(data)) as image:
        array = np.asarray(image.convert("RGB"))
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def crop_box(
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator,
) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random-resized crop: area ``U(scale)`` of the image, log-uniform aspect
    ``ratio`` (Szegedy et al. 2015), ten tries, then the largest centred crop within ``ratio``."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        u = torch.rand(3, generator=generator).tolist()
        target = area * (scale[0] + u[0] * (scale[1] - scale[0]))
        aspect = math.exp(log_ratio[0] + u[1] * (log_ratio[1] - log_ratio[0]))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(u[2] * (height - h + 1)) if height > h else 0
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator)) if width > w else 0
            return top, left, h, w
    return centre_box(height, width, ratio)


def centre_box(height: int, width: int, ratio: tuple[float, float] = (1.0, 1.0)) -> tuple[int, int, int, int]:
    """(top, left, h, w) of the largest centred crop whose aspect lies in ``ratio`` (a square by default)."""
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, min(height, round(width / ratio[0]))
    elif aspect > ratio[1]:
        w, h = min(width, round(height * ratio[1])), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def resized_crop(image: torch.Tensor, box: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """Crop ``box`` of a uint8 C×H×W image and resize it to size×size (bilinear, antialiased)."""
    from torchvision.transforms.v2.functional import resized_crop as _resized_crop

    top, left, h, w = box
    if (h, w) == (size, size):
        return image[:, top : top + h, left : left + w].contiguous()
    return _resized_crop(image, top, left, h, w, [size, size], antialias=True)


def _shard_seed(seed: int, epoch: int, stream: int, index: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + stream * 104_729 + index) % (2**63)


def _seeded(seed: int, epoch: int, stream: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(_shard_seed(seed, epoch, stream, index))


@dataclass
class ShardDataset(torch.utils.data.IterableDataset):
    """A streamed image data set of WebDataset shards (see the module docstring).

    Iterating yields batches ``(images uint8 B×3×S×S, labels int64 B, indices int64 B, shards int64 B)``:
    ``indices`` are the samples' global positions (shard offset + position in the shard), ``shards``
    the shard each came from. The last batch of each worker may be smaller. ``train=False`` reads the
    shards in order with a centred square crop and no shuffling (evaluation); ``train=True`` shuffles
    the shard order per epoch (``set_epoch``), crops at random (``crop_scale``, ``crop_ratio``) and mixes
    samples in a ``shuffle_buffer``. ``rank``/``world_size`` default to torch.distributed's.
    """

    shards: list[str]
    counts: list[int]
    classes: list[str]
    name: str = "shards"
    size: int = 32
    train: bool = True
    crop_scale: tuple[float, float] = (0.5, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    shuffle_buffer: int = 2000
    batch_size: int = 256
    workers: int = 0
    seed: int = 0
    epoch: int = 0
    rank: int | None = None
    world_size: int | None = None
    skip_shards: frozenset = frozenset()
    decode_device: str = "cpu"
    streaming: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        super().__init__()
        if not self.shards:
            raise ValueError("a ShardDataset needs at least one shard")
        if len(self.counts) != len(self.shards):
            raise ValueError(f"{len(self.shards)} shards but {len(self.counts)} counts")
        if self.size < 1 or self.batch_size < 1 or self.shuffle_buffer < 0 or self.workers < 0:
            raise ValueError(
                f"size, batch_size must be >= 1 and shuffle_buffer, workers >= 0; got size={self.size}, "
                f"batch_size={self.batch_size}, shuffle_buffer={self.shuffle_buffer}, workers={self.workers}"
            )
        self.offsets = [0, *np.cumsum(self.counts).tolist()][:-1]

    # -- what it is
    def __len__(self) -> int:
        return int(sum(self.counts))

    def __repr__(self) -> str:
        return (
            f"ShardDataset(name={self.name!r}, n={len(self)}, shards={len(self.shards)}, size={self.size}, "
            f"classes={len(self.classes)}, train={self.train})"
        )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.size, self.size)

    def with_options(self, **changes) -> ShardDataset:
        """A copy with other options, e.g. ``size=96, workers=4, batch_size=128, train=False``."""
        return replace(self, **changes)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    # -- who reads what
    def _world(self) -> tuple[int, int]:
        from .. import distributed

        world = self.world_size if self.world_size is not None else distributed.world_size()
        rank = self.rank if self.rank is not None else distributed.rank()
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is outside 0..{world - 1}")
        return rank, world

    def shard_order(self, epoch: int | None = None) -> list[int]:
        """Every shard index in the order epoch ``epoch`` deals them out (seeded shuffle when training)."""
        epoch = self.epoch if epoch is None else epoch
        if not self.train:
            return list(range(len(self.shards)))
        return torch.randperm(len(self.shards), generator=_seeded(self.seed, epoch, 0, 0)).tolist()

    def rank_shards(
        self, rank: int | None = None, world: int | None = None, epoch: int | None = None
    ) -> list[int]:
        """The shards rank ``rank`` of ``world`` reads in ``epoch`` (every world-th of the shard order),
        without those in ``skip_shards``."""
        own_rank, own_world = self._world()
        rank, world = own_rank if rank is None else rank, own_world if world is None else world
        if len(self.shards) < world:
            raise ShardError(
                f"{self.name} has {len(self.shards)} shards for {world} processes: every rank needs at least "
                f"one; pack again with a smaller shard size (sslcookbook pack --shard-size "
                f"{max(1, len(self) // (4 * world))})"
            )
        return [s for s in self.shard_order(epoch)[rank::world] if s not in self.skip_shards]

    def rank_count(self, rank: int | None = None, world: int | None = None, epoch: int | None = None) -> int:
        return sum(self.counts[s] for s in self.rank_shards(rank, world, epoch))

    # -- the stream
    def _samples(self, shard_ids: Sequence[int]) -> Iterator[tuple[torch.Tensor | bytes, int, int, int]]:
        """(image, label, global index, shard) of the given shards in order; the image decoded and cropped
        in this process (``decode_device="cpu"``) or left encoded for a batched GPU decode."""
        encoded = self.decode_device != "cpu"
        for shard in shard_ids:
            crops = _seeded(self.seed, self.epoch, 1, shard)
            path = self.shards[shard]
            for position, sample in enumerate(_shard_samples(path)):
                where = f"sample {sample.get('__key__')!r}" + (
                    f" of shard {path}" if isinstance(path, str) else ""
                )
                member = _image_member(sample)
                if member is None:
                    members = sorted(k for k in sample if not k.startswith("__"))
                    warnings.warn(f"{where} has no image member ({members}): skipped", stacklevel=2)
                    continue
                label = _label(sample, where, len(self.classes))
                index = self.offsets[shard] + min(position, self.counts[shard] - 1)
                if encoded:
                    yield member, label, index, shard
                    continue
                try:
                    image = decode_image(member[1], member[0])
                except _DECODE_ERRORS + (RuntimeError,) as error:
                    warnings.warn(f"{where} cannot be decoded ({error}): skipped", stacklevel=2)
                    continue
                yield self._crop(image, crops), label, index, shard

    def _crop(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        h, w = image.shape[-2:]
        if self.train:
            box = crop_box(h, w, self.crop_scale, self.crop_ratio, generator)
        else:
            box = centre_box(h, w)
        return resized_crop(image, box, self.size)

    def _shuffled(self, samples: Iterator, generator: torch.Generator) -> Iterator:
        """A shuffle buffer: fill ``shuffle_buffer`` samples, then yield a random one per new sample."""
        if not self.train or self.shuffle_buffer <= 1:
            yield from samples
            return
        buffer = []
        for sample in samples:
            if len(buffer) < self.shuffle_buffer:
                buffer.append(sample)
                continue
            pick = int(torch.randint(0, len(buffer), (1,), generator=generator))
            buffer[pick], sample = sample, buffer[pick]
            yield sample
        order = torch.randperm(len(buffer), generator=generator).tolist()
        yield from (buffer[i] for i in order)

    def _batched(self, samples: Iterator) -> Iterator[tuple]:
        rows = []
        for sample in samples:
            rows.append(sample)
            if len(rows) == self.batch_size:
                yield _collate(rows)
                rows = []
        if rows:
            yield _collate(rows)

    def __iter__(self) -> Iterator[tuple]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rank, world = self._world()
        mine = self.rank_shards(rank, world)[worker::workers]
        generator = _seeded(self.seed, self.epoch, 2, rank * 1_000 + worker)
        return self._batched(self._shuffled(self._samples(mine), generator))

    def loader(self, workers: int | None = None) -> torch.utils.data.DataLoader:
        """A DataLoader over this stream (``workers`` processes; the batches are made in the workers)."""
        workers = self.workers if workers is None else workers
        options = {"prefetch_factor": 2, "persistent_workers": False} if workers else {}
        return torch.utils.data.DataLoader(
            self,
            batch_size=None,
            num_workers=workers,
            pin_memory=torch.cuda.is_available() and self.decode_device == "cpu",
            collate_fn=_identity if self.decode_device != "cpu" else None,
            **options,
        )

    def batches(self, device: str | torch.device = "cpu", workers: int | None = None) -> Iterator[tuple]:
        """The batches of one pass, on ``device`` (decoded there in batches when ``decode_device`` is
        ``"cuda"``): ``(images, labels, indices, shards)``."""
        device = torch.device(device)
        for batch in self.loader(workers):
            if self.decode_device != "cpu":
                batch = self._decode_on_device(batch, torch.device(self.decode_device))
            yield tuple(t.to(device, non_blocking=True) for t in batch)

    def _decode_on_device(self, rows: list, device: torch.device) -> tuple:
        """Decode a batch of encoded JPEGs at once with ``torchvision.io.decode_jpeg(device="cuda")``
        (nvJPEG), then crop each image on the GPU. Non-JPEG members are decoded on the CPU first."""
        from torchvision.io import ImageReadMode, decode_jpeg

        images, labels, indices, shards = zip(*rows)
        jpegs = [i for i, (suffix, _) in enumerate(images) if suffix == "jpg"]
        decoded: list[torch.Tensor | None] = [None] * len(images)
        if jpegs:
            buffers = [torch.frombuffer(bytearray(images[i][1]), dtype=torch.uint8) for i in jpegs]
            for i, image in zip(jpegs, decode_jpeg(buffers, mode=ImageReadMode.RGB, device=device)):
                decoded[i] = image
        for i, image in enumerate(decoded):
            if image is None:
                decoded[i] = decode_image(images[i][1], images[i][0]).to(device)
        crops = _seeded(self.seed, self.epoch, 1, int(shards[0]))
        out = torch.stack([self._crop(image, crops) for image in decoded])
        return out, torch.tensor(labels), torch.tensor(indices), torch.tensor(shards)

    def _shard_subset(self, keep: list[int], tag: str) -> ShardDataset:
        keep = sorted(keep)
        return self.with_options(
            shards=[self.shards[s] for s in keep],
            counts=[self.counts[s] for s in keep],
            name=f"{self.name}[{tag}]",
        )

    def subset(self, n: int, seed: int = 0) -> ShardDataset:
        """The fewest whole shards, drawn at random (``seed``), that hold at least ``n`` images: a stream
        is cut at shard granularity (``len`` says how many images it kept)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"subset size n must be a positive int, got {n!r}")
        if n >= len(self):
            return self
        order = torch.randperm(len(self.shards), generator=torch.Generator().manual_seed(seed)).tolist()
        total = np.cumsum([self.counts[s] for s in order])
        return self._shard_subset(order[: int(np.searchsorted(total, n)) + 1], f"subset {n}, seed {seed}")

    def split(self, fraction: float, seed: int = 0) -> tuple[ShardDataset, ShardDataset]:
        """``(rest, held_out)`` at shard granularity: a seeded ``fraction`` of the shards (at least one,
        and at least one left) held out, e.g. as the test split of a pack without one."""
        if not 0 < fraction < 1:
            raise ValueError(f"split fraction must lie strictly between 0 and 1, got {fraction!r}")
        if len(self.shards) < 2:
            raise ShardError(f"{self.name} has one shard: pack it with a smaller --shard-size to split it")
        order = torch.randperm(len(self.shards), generator=torch.Generator().manual_seed(seed)).tolist()
        k = min(len(order) - 1, max(1, round(fraction * len(order))))
        tag = f"{fraction:g} of the shards held out, seed {seed}"
        return self._shard_subset(order[k:], f"rest of {tag}"), self._shard_subset(order[:k], tag)

    def materialize(self, n: int | None = None) -> ImageDataset:
        """The first ``n`` images (all by default) of an in-order evaluation pass, centre-cropped, as an
        in-memory ImageDataset: for the small held-out sets a monitor or a notebook needs."""
        stream = self.with_options(train=False, rank=0, world_size=1, skip_shards=frozenset())
        images, labels, kept = [], [], 0
        for batch in stream.batches(workers=0):
            take = batch[0].shape[0] if n is None else min(batch[0].shape[0], n - kept)
            images.append(batch[0][:take])
            labels.append(batch[1][:take])
            kept += take
            if n is not None and kept >= n:
                break
        return ImageDataset(torch.cat(images), torch.cat(labels), list(self.classes), f"{self.name}[{kept}]")


def _identity(batch):
    return batch


def _collate(rows: list) -> tuple:
    images, labels, indices, shards = zip(*rows)
    if isinstance(images[0], tuple):  # still encoded: the GPU decodes the whole batch
        return list(rows)
    return (
        torch.stack(images),
        torch.tensor(labels, dtype=torch.int64),
        torch.tensor(indices, dtype=torch.int64),
        torch.tensor(shards, dtype=torch.int64),
    )


def _label(sample: dict, where: str, num_classes: int) -> int:
    raw = sample.get("cls")
    if raw is None:
        return -1  # an unlabelled sample: fine for SSL, the probes need labels
    try:
        label = int(raw.decode() if isinstance(raw, bytes) else raw)
    except ValueError as error:
        raise ShardError(
            f"{where} has a non-integer label {raw!r}: its .cls member must hold a class index"
        ) from error
    if not 0 <= label < num_classes:
        raise ShardError(
            f"{where} has label {label}, outside the {num_classes} classes of the shard index "
            f"(0..{num_classes - 1}): the index.json does not belong to these shards; pack the source again"
        )
    return label


# ---------------------------------------------------------------------------------------------------------
# load("shards:...")

_OPTION = re.compile(r"\?((?:\w+=[^&]*)(?:&\w+=[^&]*)*)$")
_OPTION_TYPES = {"size": int, "workers": int, "buffer": int, "batch": int, "seed": int}


def _parse_options(spec: str) -> tuple[str, dict]:
    """``"PATH?size=96&workers=4"`` → ``("PATH", {"size": 96, "workers": 4})``."""
    match = _OPTION.search(spec)
    if match is None:
        return spec, {}
    options = {}
    for item in match.group(1).split("&"):
        key, _, value = item.partition("=")
        if key not in _OPTION_TYPES:
            raise ValueError(
                f"unknown shards option {key!r} in {spec!r}: known are {', '.join(_OPTION_TYPES)}"
            )
        try:
            options[key] = _OPTION_TYPES[key](value)
        except ValueError as error:
            raise ValueError(f"shards option {key}={value!r} must be an integer") from error
    return spec[: match.start()], options


def _index_of(folder: Path) -> dict:
    path = folder / INDEX_NAME
    try:
        index = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ShardError(
            f"cannot read the shard index {path} ({error}): shards written by `sslcookbook pack` carry one; "
            "pack the images again"
        ) from error
    if index.get("format") != INDEX_FORMAT or "shards" not in index or "classes" not in index:
        raise ShardError(f"{path} is not a shard index of format {INDEX_FORMAT}: pack the images again")
    return index


def load_shards(spec: str, split: str = "train") -> ShardDataset:
    """``shards:<spec>``: a folder written by ``pack`` (its ``<split>/`` sub-folder, or the folder itself
    when it holds an index.json), or a glob of .tar shards (their folder's index.json gives counts and
    classes). Options after ``?``: ``size`` (crop side, default the packed images' median short side, at
    most 224), ``workers``, ``buffer`` (shuffle buffer), ``batch``, ``seed``."""
    path_text, options = _parse_options(spec)
    path = Path(path_text).expanduser()
    if path.is_dir():
        folder = path / split if (path / split / INDEX_NAME).is_file() else path
        if split == "test" and (path / "train" / INDEX_NAME).is_file() and not (path / "test").is_dir():
            raise ValueError(
                f"{path} has no test split (the packed folder had no test/ sub-folder): load split='train', "
                "or hold out shards with ShardDataset.split(fraction)"
            )
        if not (folder / INDEX_NAME).is_file():
            which = "" if split == "train" else f" (no {split}/ split was packed)"
            raise FileNotFoundError(
                f"no {INDEX_NAME} under {path}{which}: point shards: at a folder written by "
                "`sslcookbook pack FOLDER OUT` (OUT, or OUT/<split>)"
            )
        index = _index_of(folder)
        chosen = [(folder / s["file"], s["count"]) for s in index["shards"]]
    else:
        matches = sorted(globbing.glob(str(path)))
        tars = [Path(m) for m in matches if m.endswith(".tar")]
        if not tars:
            raise FileNotFoundError(
                f"shards:{path_text} matches no .tar files"
                f"{f' ({len(matches)} other files)' if matches else ''}: "
                "check the path or glob (e.g. shards:OUT/train/shard-*.tar)"
            )
        folders = {t.parent for t in tars}
        if len(folders) > 1:
            raise ValueError(f"shards:{path_text} matches shards in {len(folders)} folders: pick one pack")
        folder = folders.pop()
        index = _index_of(folder)
        known = {s["file"]: s["count"] for s in index["shards"]}
        unknown = [t.name for t in tars if t.name not in known]
        if unknown:
            raise ShardError(f"{folder / INDEX_NAME} does not list {unknown[:3]}: pack the images again")
        chosen = [(t, known[t.name]) for t in tars]
    missing = [str(p) for p, _ in chosen if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} shards of {folder / INDEX_NAME} are missing, e.g. {missing[0]}"
        )
    size = options.get("size") or min(224, int(index.get("median_short_side", 32)))
    return ShardDataset(
        [str(p) for p, _ in chosen],
        [int(c) for _, c in chosen],
        list(index["classes"]),
        name=f"shards:{path_text}/{split}",
        size=size,
        workers=options.get("workers", 0),
        shuffle_buffer=options.get("buffer", 2000),
        batch_size=options.get("batch", 256),
        seed=options.get("seed", 0),
    )


def is_streaming(dataset) -> bool:
    return bool(getattr(dataset, "streaming", False))


# ---------------------------------------------------------------------------------------------------------
# Training on a stream: what ``train.fit`` calls for a ShardDataset

STREAM_STATE = "stream-rank{rank}.json"


def stream_steps(dataset: ShardDataset, batch_size: int, epochs: int, world: int, cap: int | None) -> int:
    """Steps per epoch of a stream: the fewest full local batches any rank can make in any epoch (ranks
    must step together under DDP; shards of unequal counts make the ranks' shares differ per epoch)."""
    if batch_size % world:
        raise ValueError(f"batch_size={batch_size} must be divisible by the number of processes ({world})")
    local = batch_size // world
    fewest = min(dataset.rank_count(r, world, e) for e in range(max(1, epochs)) for r in range(world))
    steps = fewest // local
    if steps < 1:
        raise ValueError(
            f"{dataset.name}: a rank reads only {fewest} images per epoch, fewer than one local batch of "
            f"{local}: "
            f"lower batch_size (at most {fewest * world}) or pack smaller shards (--shard-size)"
        )
    return min(steps, cap) if cap else steps


def _exact_batches(batches: Iterator[tuple], size: int, steps: int, name: str) -> Iterator[tuple]:
    """Regroup the workers' batches into ``steps`` batches of exactly ``size`` rows. A stream that ends
    early (skipped samples) repeats its last full batch, with a warning, so that ranks stay in step."""
    pending, made, last = [], 0, None
    held = 0
    for batch in batches:
        pending.append(batch)
        held += batch[0].shape[0]
        while held >= size and made < steps:
            joined = tuple(torch.cat([b[i] for b in pending]) for i in range(4))
            last = tuple(t[:size] for t in joined)
            rest = tuple(t[size:] for t in joined)
            pending, held = ([rest] if rest[0].shape[0] else []), rest[0].shape[0]
            made += 1
            yield last
        if made == steps:
            return
    if made < steps:
        if last is None:
            raise ValueError(f"{name} yielded fewer than {size} images this epoch: no batch to train on")
        warnings.warn(
            f"{name} ran out {steps - made} batches before the epoch's {steps} (samples were skipped, see "
            "the warnings above): repeating its last batch for those steps",
            stacklevel=2,
        )
        for _ in range(steps - made):
            yield last


def _read_stream_state(directory: Path | None, rank: int, epoch: int) -> frozenset:
    if directory is None:
        return frozenset()
    path = directory / STREAM_STATE.format(rank=rank)
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return frozenset()
    return frozenset(state["done_shards"]) if state.get("epoch") == epoch else frozenset()


def _write_stream_state(directory: Path | None, rank: int, epoch: int, done: list[int]) -> None:
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        _write_json(directory / STREAM_STATE.format(rank=rank), {"epoch": epoch, "done_shards": sorted(done)})


def fit_streaming(
    method: torch.nn.Module,
    dataset: ShardDataset,
    views,
    config,
    *,
    device=None,
    checkpoint_dir=None,
    resume: bool = True,
    progress: bool = True,
    on_epoch_end=None,
    meta: dict | None = None,
    monitor_data=None,
):
    """``train.fit`` for a ``ShardDataset``: the same optimiser, schedule, views, logging, checkpoints
    and DDP as the in-memory loop (its helpers are reused), fed by the stream.

    An epoch is one pass over the shard set: each rank reads its shards (``rank_shards``) and trains on
    ``stream_steps`` full batches of ``batch_size / world`` images (the remainder of the pass is dropped,
    as ``drop_last`` would). The views of step t are seeded with (seed, t) as in memory.

    Resume: ``last.pt`` records the epoch and step; each rank writes beside it the shards it has
    consumed entirely this epoch (``stream-rank<r>.json``). A run resumed at an epoch boundary is
    exact (same shard order, crops and shuffle buffer, for the same world size and worker count). A
    run resumed mid-epoch continues from the next unseen shards: the images of shards only partly
    read before the stop are seen again, the shuffle buffer starts empty, and the epoch may end with
    repeated batches if the unread shards hold fewer images than its remaining steps need; the
    optimiser, schedule and view seeds continue exactly.

    ``method.before_epoch(epoch, dataset, seed)`` runs at every epoch start, as in memory, but with the
    streamed data set in place of the images: only methods that set ``streams_before_epoch`` take it
    (DeepCluster v2, whose first epoch reads the whole set, un-augmented, on every rank, into its memory
    bank); one that overrides ``before_epoch`` without it is refused with a TypeError. That bank, N×D
    floats of method state, is the one thing beyond the shuffle buffer and the batch that grows with the
    number of images N. A resumed run loads the bank, assignments and prototypes with the checkpoint.
    """
    from .. import distributed
    from .. import train as trainer
    from ..monitor import KNNMonitor
    from ..profiles import default_device

    device = default_device(device)
    world, rank = distributed.world_size(), distributed.rank()
    from ..methods.base import SSLMethod

    hooked = getattr(type(method), "before_epoch", SSLMethod.before_epoch) is not SSLMethod.before_epoch
    if hooked and not getattr(method, "streams_before_epoch", False):
        raise TypeError(
            f"{type(method).__name__} needs the whole data set as images at every epoch start "
            "(before_epoch), which a stream does not hold, and does not set streams_before_epoch = True (a "
            "before_epoch that takes the streamed data set): train it on an in-memory data set (folder:, or "
            "ShardDataset.materialize())"
        )
    if getattr(method, "uses_text", False):
        raise TypeError(f"{type(method).__name__} learns from captions: shards hold images and labels only")
    trainer._check_config(config)
    steps = stream_steps(dataset, config.batch_size, config.epochs, world, config.max_steps_per_epoch)
    plan = trainer._Plan(
        config.batch_size, config.batch_size // world, steps, config.epochs * steps,
        round(config.warmup_epochs * steps),
    )  # fmt: skip
    monitor = None
    if config.knn_every:
        bank = dataset.materialize(2 * config.knn_samples)
        monitor = KNNMonitor.of(bank, monitor_data, config)
    method.to(device)
    trainer._apply_speed_settings(method, config, device)
    indexed = getattr(method, "uses_indices", False)
    if indexed:
        method.set_num_instances(len(dataset))
    step_module = (
        trainer._data_parallel(method, device, config.sync_bn) if world > 1 else trainer._Step(method)
    )
    optimizer, schedule = trainer._optimizer_and_schedule(method, config, plan)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    ckpt_path = ckpt_dir / "last.pt" if ckpt_dir is not None else None
    history, epoch, step_in_epoch = trainer._resume(ckpt_path if resume else None, method, optimizer, device)
    log = trainer._StepLog(history, config.log_every)
    use_amp = device.type == "cuda" if config.amp is None else config.amp
    stream = dataset.with_options(train=True, batch_size=plan.local_batch, seed=config.seed)
    done: list[int] = []

    def checkpoint() -> None:
        log.flush()
        _write_stream_state(ckpt_dir, rank, epoch, done)
        if ckpt_path is not None and rank == 0:
            state = trainer._checkpoint_state(method, optimizer, history, epoch, step_in_epoch, config, meta)
            state["stream"] = {"epoch": epoch, "step_in_epoch": step_in_epoch, "world_size": world}
            trainer.save_checkpoint(ckpt_path, state)

    bar = trainer._progress_bar(method, plan, epoch * steps + step_in_epoch, progress and rank == 0)
    try:
        while epoch < config.epochs:
            method.train()
            if hasattr(method, "before_epoch"):  # DeepCluster v2 fills its bank from the stream, clusters it
                method.before_epoch(epoch, dataset, seed=config.seed)
            skip = _read_stream_state(ckpt_dir, rank, epoch) if step_in_epoch and resume else frozenset()
            epoch_stream = stream.with_options(epoch=epoch, skip_shards=skip)
            counts = {s: dataset.counts[s] for s in epoch_stream.rank_shards(rank, world)}
            seen: dict[int, int] = {}
            done = sorted(skip)
            started = time.perf_counter()
            batches = _exact_batches(
                epoch_stream.batches(device), plan.local_batch, steps - step_in_epoch, dataset.name
            )
            for images, labels, idx, shard_of in batches:
                step = epoch * steps + step_in_epoch
                scheduled = schedule.apply(step)
                view_generator = trainer._seeded(config.seed, 1, step * world + rank, device)
                batch_views = views(images, generator=view_generator)
                out = trainer.optimise_step(
                    step_module, method, optimizer, config, batch_views, labels, idx if indexed else None,
                    None, use_amp, (step + 1) / plan.total_steps,
                )  # fmt: skip
                log.append({"epoch": epoch, "step": step, **scheduled}, out)
                for shard, n in zip(*torch.unique(shard_of.cpu(), return_counts=True)):
                    shard = int(shard)
                    seen[shard] = seen.get(shard, 0) + int(n)
                    if seen[shard] >= counts.get(shard, math.inf):
                        done.append(shard)
                step_in_epoch += 1
                bar.update(1)
                if log.due(step):
                    log.flush()
                    trainer._show(bar, history)
            trainer.end_epoch(method, history, log, bar, epoch, started, monitor, on_epoch_end)
            epoch, step_in_epoch, done = epoch + 1, 0, []
            checkpoint()
    except KeyboardInterrupt:
        checkpoint()
        bar.close()
        trainer._say_how_to_resume(ckpt_path)
        raise
    bar.close()
    return history


# ---------------------------------------------------------------------------------------------------------
# folder: trees too large for memory stream too

STREAM_ABOVE_ENV = "SSLCOOKBOOK_STREAM_ABOVE_MB"
DEFAULT_STREAM_ABOVE_MB = 4096.0
FOLDER_CHUNK = 1000  # files per chunk: a folder's "shard"


def stream_threshold_mb() -> float:
    """Decoded size (MB) above which ``folder:`` streams: ``$SSLCOOKBOOK_STREAM_ABOVE_MB``, else 4096."""
    text = os.environ.get(STREAM_ABOVE_ENV)
    if not text:
        return DEFAULT_STREAM_ABOVE_MB
    try:
        return float(text)
    except ValueError as error:
        raise ValueError(f"{STREAM_ABOVE_ENV}={text!r} must be a number of megabytes, e.g. 4096") from error


def _estimated_mb(files: list[tuple[str, int]], sample: int = 32) -> float:
    """Decoded uint8 RGB size of ``files``, from the header sizes of up to ``sample`` of them."""
    step = max(1, len(files) // sample)
    pixels = []
    for file, _ in files[::step][:sample]:
        try:
            with Image.open(file) as image:
                pixels.append(image.width * image.height)
        except _DECODE_ERRORS:
            continue
    return len(files) * 3 * (float(np.median(pixels)) if pixels else 0.0) / 2**20


def folder_stream(
    path: str | os.PathLike, split: str, threshold_mb: float | None = None
) -> ShardDataset | None:
    """A ``ShardDataset`` over the ImageFolder tree at ``path`` (chunks of ``FOLDER_CHUNK`` files in a
    seeded shuffled order act as its shards) when its decoded size would exceed ``threshold_mb``
    (default ``stream_threshold_mb()``); ``None`` below it, where ``folder:`` decodes it into memory.
    Packing it (``sslcookbook pack``) reads faster: one file per shard instead of one per image."""
    tree = Path(path).expanduser()
    if not tree.is_dir():
        return None  # load_folder names the problem
    try:
        found, classes = _sources(tree)
    except ValueError:
        return None
    if split not in found:
        return None
    files = found[split]
    limit = stream_threshold_mb() if threshold_mb is None else threshold_mb
    estimate = _estimated_mb(files)
    if estimate <= limit:
        return None
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(0)).tolist()
    shuffled = [files[i] for i in order]
    chunks = [tuple(shuffled[i : i + FOLDER_CHUNK]) for i in range(0, len(shuffled), FOLDER_CHUNK)]
    side = []
    for file, _ in shuffled[:32]:
        with contextlib.suppress(*_DECODE_ERRORS), Image.open(file) as image:
            side.append(min(image.size))
    print(
        f"folder:{tree} would take about {estimate:,.4g} MB decoded (above {limit:,.4g} MB, "
        f"${STREAM_ABOVE_ENV}): streaming it from the files; `sslcookbook pack {tree} OUT` reads faster"
    )
    return ShardDataset(
        list(chunks),
        [len(c) for c in chunks],
        classes,
        name=f"folder:{tree}/{split}",
        size=min(224, int(np.median(side))) if side else 224,
    )


EVALUATION_IMAGES = 10_000


def evaluation_sets(train, test, n: int = EVALUATION_IMAGES) -> tuple[ImageDataset, ImageDataset]:
    """In-memory, centre-cropped first ``n`` images of each streamed split (an in-memory split is
    returned as it is), for the reports that need tensors (``compare_baselines``, figures); memory is
    bounded by ``n``. ``evaluate.embed_stream`` embeds a whole split without this bound."""
    return tuple(d.materialize(min(n, len(d))) if is_streaming(d) else d for d in (train, test))
