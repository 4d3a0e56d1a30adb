"""Images per second of decode + SimCLR views: streamed shards vs in memory vs a torchvision ImageFolder.

Three ways to feed SimCLR's two views of every image, with the same number of loader processes:
(a) ``stream``: ``sslcookbook pack`` shards read by a ``ShardDataset`` (``data.load("shards:...")``):
    JPEG decode (``torchvision.io.decode_jpeg``) and one random-resized crop to S×S per image in the
    DataLoader workers, uint8 batches, then ``augment.simclr`` on the whole batch in the main process
    (on the CPU here; on the device in training).
(b) ``memory``: the images already decoded to S×S uint8 in memory (what ``folder:`` and the built-in
    sets give), a random batch gathered, the same batched views.
(c) ``imagefolder``: ``torchvision.datasets.ImageFolder`` with a per-sample transform applied twice
    (PIL decode, RandomResizedCrop, flip, ColorJitter(0.4, 0.4, 0.4, 0.1) p=0.8, RandomGrayscale(0.2),
    GaussianBlur p=0.5 when the preset blurs at this size, to float tensors) in the same number of
    DataLoader workers: what lightly and solo-learn do.
Each row is one pass over the images after the first batch (worker start-up is excluded); images per
second count input images (each gives two views). The main process uses one thread.

Data: generated JPEG folders of variable-size images (``--count``, about 320×240 to 400×300, smooth
random fields, quality 90, under /tmp) cropped to 96 px and to 224 px, and the offline CIFAR-10 JPEG copy
(``../shared/data/cifar10``, the first ``--cifar`` test images) at 32 px when present.
Writes ``benchmarks/results/data_cpu_<machine>.json`` and ``.md`` with the device, versions, date and the
load average at start and end (the machine may be shared: say so when it is).

    nice -n 15 python benchmarks/bench_data.py [--workers 2] [--count 2048] [--cifar 4096] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import platform
import resource
import shutil
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torchvision
from _machine import device_name, slug  # benchmarks/_machine.py (scripts run from this folder)
from PIL import Image

from sslcookbook import augment, data
from sslcookbook.data.generated import write_image_folder
from sslcookbook.data.shards import pack

RESULTS = Path(__file__).resolve().parent / "results"
_REPO = Path(__file__).resolve().parents[1]  # ../shared beside the checkout, or beside a worktree's folder
CIFAR = (
    next(
        (
            p
            for p in (_REPO.parent / "shared", _REPO.parent.parent / "shared")
            if (p / "data" / "cifar10").is_dir()
        ),
        _REPO.parent / "shared",
    )
    / "data"
    / "cifar10"
    / "cifar10_jpeg.npz"
)


def make_jpeg_folder(root: Path, count: int, classes: int = 10, seed: int = 0) -> Path:
    """``count`` JPEGs of variable size (320..400 × 240..300, smooth random colour fields + noise,
    quality 90, no class tint) in ``classes`` folders, from ``data.generated.write_image_folder``;
    reused when already there."""
    if root.is_dir() and sum(1 for _ in root.rglob("*.jpg")) == count:
        return root
    shutil.rmtree(root, ignore_errors=True)
    return write_image_folder(
        root, count, classes=classes, heights=(240, 300), widths=(320, 400), quality=90, tint=0.0, seed=seed
    )


def cifar_folder(root: Path, count: int) -> Path | None:
    if not CIFAR.is_file():
        return None
    if root.is_dir() and sum(1 for _ in root.rglob("*.jpg")) == count:
        return root
    shutil.rmtree(root, ignore_errors=True)
    npz = np.load(CIFAR)
    blob, offsets, labels = npz["test_jpeg"], npz["test_offsets"], npz["test_labels"]
    classes = [str(c) for c in npz["classes"]]
    for i in range(min(count, len(labels))):
        folder = root / classes[int(labels[i])]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:05d}.jpg").write_bytes(blob[offsets[i] : offsets[i + 1]].tobytes())
    return root


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (the DataLoader workers, once joined)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(batches, count_of) -> tuple[float, float]:
    """(images per second, CPU milliseconds per image) over every batch after the first. The CPU time
    (main process + workers) does not depend on what else the machine runs; the wall time does."""
    cpu = _cpu_seconds()
    iterator = iter(batches)
    first = count_of(next(iterator))
    start, seen = time.perf_counter(), 0
    for batch in iterator:
        seen += count_of(batch)
    wall = time.perf_counter() - start
    del iterator  # joins the workers, so that their CPU time is counted
    gc.collect()
    spent = _cpu_seconds() - cpu
    return seen / wall, 1000 * spent / (seen + first)


def stream_rate(shards: Path, size: int, batch: int, workers: int, with_views: bool = True):
    views = augment.preset("simclr", (3, size, size), color_strength=0.5)
    stream = data.load(f"shards:{shards}?size={size}").with_options(batch_size=batch, workers=workers)
    generator = torch.Generator().manual_seed(0)

    def run():
        for images, labels, _, _ in stream.batches():
            yield (views(images, generator=generator) if with_views else images), labels

    return _timed(run(), lambda b: b[1].shape[0])


def memory_rate(shards: Path, size: int, batch: int):
    images = data.load(f"shards:{shards}?size={size}").materialize().images
    views = augment.preset("simclr", (3, size, size), color_strength=0.5)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(images.shape[0], generator=generator)

    def run():
        for start in range(0, images.shape[0] - batch + 1, batch):
            yield views(images[order[start : start + batch]], generator=generator)

    return _timed(run(), lambda b: b[0].shape[0])


class TwoViews:
    def __init__(self, transform):
        self.transform = transform

    def __call__(self, image):
        return self.transform(image), self.transform(image)


def imagefolder_rate(folder: Path, size: int, batch: int, workers: int):
    from torchvision.transforms import v2

    ops = [
        v2.RandomResizedCrop(size, scale=(0.08, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        v2.RandomGrayscale(p=0.2),
    ]
    if size >= 16:  # the simclr preset blurs from 16 px up
        ops.append(v2.RandomApply([v2.GaussianBlur(augment.blur_kernel_size(size), sigma=(0.1, 2.0))], p=0.5))
    ops += [v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True)]
    dataset = torchvision.datasets.ImageFolder(str(folder), transform=TwoViews(v2.Compose(ops)))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True
    )
    return _timed(loader, lambda b: b[1].shape[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for (a) and (c)")
    parser.add_argument("--count", type=int, default=2048, help="generated JPEGs")
    parser.add_argument("--cifar", type=int, default=4096, help="CIFAR-10 test images used")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats; the best is kept")
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 224], help="crop sides, generated set")
    parser.add_argument("--no-cifar", action="store_true", help="skip the CIFAR-10 copy")
    parser.add_argument("--tmp", default="/tmp/sslcookbook-bench-data")
    parser.add_argument("--quick", action="store_true", help="256 images, one size: checks the script runs")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--main-threads",
        type=int,
        default=1,
        help="torch threads of the main process (the batched views); the workers decode with one each",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.main_threads)
    if args.quick:
        args.count, args.cifar, args.batch = 256, 256, 32
    tmp = Path(args.tmp)
    load_start = os.getloadavg()
    started = dt.datetime.now(dt.timezone.utc)
    sets = [
        (
            "generated",
            make_jpeg_folder(tmp / f"jpeg-{args.count}", args.count),
            (96,) if args.quick else tuple(args.sizes),
        )
    ]
    cifar = None if args.no_cifar else cifar_folder(tmp / f"cifar-{args.cifar}", args.cifar)
    if cifar is None:
        print(f"no CIFAR-10 JPEG copy at {CIFAR}: skipping that data set")
    else:
        sets.append(("cifar10-jpeg", cifar, (32,)))
    rows = []
    for name, folder, sizes in sets:
        shards = tmp / f"shards-{folder.name}"
        t0 = time.perf_counter()
        index = pack(folder, shards, shard_size=256)["train"]
        pack_seconds = time.perf_counter() - t0
        for size in sizes:
            batch = args.batch if size > 100 else 2 * args.batch
            row = {
                "data": name,
                "images": index["count"],
                "size": size,
                "batch": batch,
                "workers": args.workers,
                "main_threads": args.main_threads,
            }
            row["pack_images_per_s"] = round(index["count"] / pack_seconds, 1)
            paths = {
                "stream": partial(stream_rate, shards, size, batch, args.workers),
                "stream_loader_only": partial(
                    stream_rate, shards, size, batch, args.workers, with_views=False
                ),
                "memory": partial(memory_rate, shards, size, batch),
                "imagefolder": partial(imagefolder_rate, folder, size, batch, args.workers),
            }
            best = {key: (0.0, math.inf) for key in paths}
            for _ in range(args.repeats):  # interleaved, best of each: the least disturbed by other jobs
                for key, measure in paths.items():
                    rate, cpu_ms = measure()
                    best[key] = (max(best[key][0], rate), min(best[key][1], cpu_ms))
            for key, (rate, cpu_ms) in best.items():
                row[key], row[f"{key}_cpu_ms_per_image"] = round(rate, 1), round(cpu_ms, 3)
            row["stream_over_imagefolder"] = round(row["stream"] / row["imagefolder"], 2)
            row["stream_over_imagefolder_cpu"] = round(
                row["imagefolder_cpu_ms_per_image"] / row["stream_cpu_ms_per_image"], 2
            )
            print(row, flush=True)
            rows.append(row)
    meta = {
        "date_utc": started.strftime("%Y-%m-%d %H:%M"),
        "device": device_name(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pillow": Image.__version__,
        "main_threads": args.main_threads,
        "nice": os.nice(0),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    if args.no_write:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"data_cpu_{slug(meta['device'])}"
    json_path = RESULTS / f"{stem}.json"
    for r in rows:
        r["meta"] = meta
    if json_path.exists():  # rows of earlier runs for other data/size pairs are kept, each with its meta

        def key(r):
            return r["data"], r["size"], r.get("main_threads", 1)

        measured = {key(r) for r in rows}
        earlier = json.loads(json_path.read_text())["rows"]
        rows = [r for r in earlier if key(r) not in measured] + rows
    rows.sort(key=lambda r: (r["data"], r["size"], r.get("main_threads", 1)))
    json_path.write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    lines = [
        "# Decode + SimCLR views: streamed shards vs in memory vs torchvision ImageFolder (CPU)",
        "",
        "Input images per second (each yields two SimCLR views, colour strength 0.5), one pass after the",
        "first batch. (a) stream: shards, decode + one crop per image in the workers, batched views in the",
        "main process on the CPU; (b) memory: pre-decoded uint8 images, batched views; (c) imagefolder:",
        "torchvision ImageFolder + per-sample PIL transforms twice, in the same number of workers.",
        "Written by `benchmarks/bench_data.py`.",
        "",
        "Each row names its date (UTC), niceness and the load average (1/5/15 min) at its start and end:",
        "the machine was shared with other jobs, so the wall-clock figures are low and noisy; the CPU cost",
        "per image does not depend on the load. Device, versions: "
        f"{meta['device']}, torch {meta['torch']}, torchvision {meta['torchvision']},",
        f"Pillow {meta['pillow']}; 'threads' is the main process's torch threads (the batched views).",
        "",
        "| date | nice | load 1 min | data | images | size | batch | workers | threads | (a) stream "
        "| (a) loader only | (b) memory | (c) ImageFolder | (a)/(c) wall | (a)/(c) CPU | pack |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m = r["meta"]
        cells = [m["date_utc"], f"{m['nice']}", f"{m['load_average_start'][0]}→{m['load_average_end'][0]}"]
        cells += [r["data"], r["images"], r["size"], r["batch"], r["workers"], r.get("main_threads", 1)]
        for key in ("stream", "stream_loader_only", "memory", "imagefolder"):
            cells.append(f"{r[key]:,.0f} img/s ({r[key + '_cpu_ms_per_image']:.2f} ms)")
        cells += [f"{r['stream_over_imagefolder']:.2f}×", f"{r['stream_over_imagefolder_cpu']:.2f}×"]
        cells.append(f"{r['pack_images_per_s']:,.0f} img/s")
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    notes = [
        f"- {r['meta']['date_utc']}, {r['data']} {r['size']} px: {r['meta']['note']}"
        for r in rows
        if "note" in r["meta"]
    ]
    lines += ["", *notes] if notes else []
    lines += [
        "",
        "Each cell: images per second (wall clock, best of the interleaved repeats) and, in brackets, CPU",
        "milliseconds per image over the main process and its workers (independent of the other jobs on",
        "the machine). (a)/(c) CPU is the ratio of CPU cost per image, (c) over (a). '(a) loader only' is",
        "the stream without the views: what a GPU trainer waits for, its views being made on the device.",
    ]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / stem}.md")


if __name__ == "__main__":
    main()
