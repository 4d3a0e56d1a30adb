"""Throughput of the batched ``simclr`` views against torchvision's per-sample pipeline.

Ours: ``sslcookbook.augment.simclr(size, color_strength=0.5)`` on a whole uint8 batch already on
``--device`` (as a device-resident loader hands it over), two views, float output.
Baseline: the same operations with ``torchvision.transforms.v2`` — RandomResizedCrop, horizontal
flip, ColorJitter(0.4, 0.4, 0.4, 0.1) with p=0.8, RandomGrayscale(0.2), GaussianBlur with p=0.5
(kernel as the preset's), ToDtype(float32) — called once per image and view in a Python loop, on
uint8 CHW CPU tensors: the usual ``Dataset.__getitem__`` path in a single process. The baseline
always runs on the CPU, where a DataLoader would run it, also when ours runs on CUDA.

Reports input images per second (each image yields two views), the median of several timed repeats
after a warm-up, and writes ``benchmarks/results/views_<device>.csv`` and ``.md`` (rows for the same
machine, versions and settings are replaced; others are kept).

    python benchmarks/bench_views.py [--device cpu|cuda] [--quick] [--batch 512] [--size 32]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from sslcookbook.augment import blur_kernel_size, simclr

RESULTS = Path(__file__).resolve().parent / "results"
FIELDS = [
    "date_utc",
    "device",
    "device_name",
    "baseline_cpu",
    "torch",
    "torchvision",
    "threads",
    "batch",
    "size",
    "repeats",
    "load_1m",
    "ours_images_per_s",
    "torchvision_images_per_s",
    "speedup",
]
KEY = ["device", "device_name", "baseline_cpu", "torch", "torchvision", "threads", "batch", "size"]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def median_seconds(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def torchvision_views(size: int, blur: bool) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    from torchvision.transforms import v2

    ops = [
        v2.RandomResizedCrop(size, scale=(0.08, 1.0), antialias=True),
        v2.RandomHorizontalFlip(p=0.5),
        v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        v2.RandomGrayscale(p=0.2),
    ]
    if blur:
        ops.append(v2.RandomApply([v2.GaussianBlur(blur_kernel_size(size), sigma=(0.1, 2.0))], p=0.5))
    ops.append(v2.ToDtype(torch.float32, scale=True))
    transform = v2.Compose(ops)

    def per_sample(batch: torch.Tensor) -> list[torch.Tensor]:
        # A Dataset returns one image at a time; the DataLoader's collate stacks them.
        first, second = [], []
        for image in batch:
            first.append(transform(image))
            second.append(transform(image))
        return [torch.stack(first), torch.stack(second)]

    return per_sample


def write_results(row: dict[str, object], device: str) -> tuple[Path, Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = RESULTS / f"views_{device}.csv", RESULTS / f"views_{device}.md"
    rows: list[dict[str, str]] = []
    if csv_path.exists():
        with csv_path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if [r.get(k) for k in KEY] != [str(row[k]) for k in KEY]]
    rows.append({k: str(v) for k, v in row.items()})
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    render_markdown(rows, md_path, device)
    return csv_path, md_path


def render_markdown(rows: list[dict[str, str]], md_path: Path, device: str) -> None:
    lines = [
        f"# SimCLR views: batched sslcookbook.augment vs per-sample torchvision ({device})",
        "",
        "Input images per second; each image yields two augmented views (crop, flip, colour jitter",
        "0.4/0.4/0.4/0.1 p=0.8, grayscale 0.2, Gaussian blur p=0.5 when the preset blurs at this size).",
        "Ours runs on the whole uint8 batch on the listed device; torchvision.transforms.v2 runs once per",
        "image and view in a Python loop on the CPU (a Dataset's `__getitem__`, single process).",
        "Written by `benchmarks/bench_views.py`; median of timed repeats (ours/torchvision) after a warm-up;",
        "`load` is the machine's 1-minute load average when the row was measured.",
        "",
        "| date (UTC) | device | torchvision on | torch | torchvision | threads | batch | size "
        "| load | ours img/s | torchvision img/s | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['date_utc']} | {r['device_name']} | {r['baseline_cpu']} | {r['torch']} "
            f"| {r['torchvision']} | {r['threads']} "
            f"| {r['batch']} | {r['size']} | {r.get('load_1m', '')} | {float(r['ours_images_per_s']):,.0f} "
            f"| {float(r['torchvision_images_per_s']):,.0f} | {float(r['speedup']):.1f}× |"
        )
    md_path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (both pipelines)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--no-write", action="store_true", help="print only, write no results")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available on this machine; use --device cpu")
    import torchvision

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    repeats, baseline_repeats = (3, 1) if args.quick else (7, 3)
    seed = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.batch, 3, args.size, args.size), dtype=torch.uint8, generator=seed)

    views = simclr(args.size, color_strength=0.5)
    blur = "gaussian_blur" in repr(views)
    on_device = images.to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    ours = median_seconds(lambda: views(on_device, generator), repeats, sync)
    baseline_fn = torchvision_views(args.size, blur)
    baseline = median_seconds(lambda: baseline_fn(images), baseline_repeats, lambda: None)

    row = {
        "date_utc": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "device": args.device,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "baseline_cpu": cpu_name(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "threads": args.threads,
        "batch": args.batch,
        "size": args.size,
        "repeats": f"{repeats}/{baseline_repeats}",
        "load_1m": round(os.getloadavg()[0], 2),  # other work on the machine slows both pipelines
        "ours_images_per_s": round(args.batch / ours, 1),
        "torchvision_images_per_s": round(args.batch / baseline, 1),
        "speedup": round(baseline / ours, 2),
    }
    print(
        f"{row['device_name']}: ours {row['ours_images_per_s']:,.0f} img/s, torchvision per-sample "
        f"{row['torchvision_images_per_s']:,.0f} img/s, speed-up {row['speedup']}×"
    )
    if not args.no_write:
        for path in write_results(row, args.device):
            print("wrote", path)
    return row


if __name__ == "__main__":
    main()
