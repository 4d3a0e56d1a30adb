"""MAE training-step throughput: the encoder on the visible tokens vs on all tokens, SDPA vs plain attention.

    python benchmarks/bench_mae.py                 # CPU: the cpu profile's model (digits) and the CIFAR one
    python benchmarks/bench_mae.py --quick         # fewer repeats
    python benchmarks/bench_mae.py --device cuda   # bf16 autocast, larger batches

A step is what ``fit`` does: ``MAE.training_step`` on one batch of views (mask 75%), backward, AdamW step.
Variants:

- ``visible``: the encoder runs on the 25% visible tokens (``select_tokens`` + ``encode``), MAE's design;
- ``all tokens``: every token enters the encoder, hidden ones replaced by a mask token
  (``MAE(encode_visible_only=False)``, the paper's Table 1c ablation), the same loss;

each with ``attention="sdpa"`` (``torch.nn.functional.scaled_dot_product_attention``: a fused kernel on
the CPU, FlashAttention / memory-efficient attention on a GPU) and ``"plain"`` (softmax(QKᵀ/√d)V written
out). Models: ViT-Tiny (width 192) of the recipe's depth, with the recipe's decoder: ``digits`` (8×8,
2-px patches: 16 tokens, depth 4, decoder 128 × 2: the cpu profile) and ``cifar`` (32×32, 4-px patches:
64 tokens, depth 12, decoder 256 × 4: the gpu and full profiles). Reports images per second (median of
timed repeats after warm-up) and writes ``benchmarks/results/mae_<device>.csv`` and ``.md`` (rows with
the same device, versions and settings are replaced; others are kept).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import statistics
import time
from pathlib import Path

import torch
from _machine import device_name  # benchmarks/_machine.py: the script's folder is on sys.path
from _machine import slug as file_slug

from sslcookbook.methods import MAE
from sslcookbook.recipes import get_recipe

RESULTS = Path(__file__).resolve().parent / "results"
MODELS = {"digits": ("cpu", 1, 8), "cifar": ("gpu", 3, 32)}  # (the mae recipe's profile, channels, side)
FIELDS = [
    "date_utc", "device", "torch", "dtype", "threads", "load_1m", "model", "tokens", "batch",
    "encoder", "attention", "repeats", "ms_per_step", "images_per_s", "speedup_vs_all_tokens",
]  # fmt: skip
KEY = ["device", "torch", "dtype", "threads", "model", "batch", "encoder", "attention"]


def build(model: str, visible_only: bool, attention: str, device: torch.device) -> MAE:
    profile, channels, side = MODELS[model]
    torch.manual_seed(0)
    overrides = {"backbone.attention": attention, "method.encode_visible_only": visible_only}
    method = get_recipe("mae").resolve(profile, overrides).build(channels, side)
    for block in method.decoder_blocks:  # the decoder's attention follows the encoder's
        block.attention.implementation = attention
    return method.to(device)


def step_seconds(methods: dict, batch: torch.Tensor, repeats: int, amp: bool) -> dict:
    """Median seconds per training step of each method, timed in turns (one step of each per round), so
    that other work on the machine slows every variant alike."""
    cuda = batch.device.type == "cuda"
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, m in methods.items()}

    def step(name: str) -> None:
        with torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=amp):
            loss = methods[name].training_step([batch])["loss"]
        optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        optimizers[name].step()

    for _ in range(3):  # warm-up (allocator, kernels' first calls)
        for name in methods:
            step(name)
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name in methods:
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            step(name)
            if cuda:
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def write_results(rows_new: list[dict], slug: str) -> tuple[Path, Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = RESULTS / f"mae_{slug}.csv", RESULTS / f"mae_{slug}.md"
    rows: list[dict[str, str]] = []
    new_keys = {tuple(str(r[k]) for k in KEY) for r in rows_new}
    if csv_path.exists():
        with csv_path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if tuple(r.get(k) for k in KEY) not in new_keys]
    rows += [{k: str(v) for k, v in r.items()} for r in rows_new]
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"# MAE training step: encoder on the visible tokens vs all tokens ({slug})",
        "",
        "Images per second of one training step (MAE's loss at mask ratio 0.75, backward, AdamW step).",
        "`visible`: the encoder sees the 25% visible tokens (MAE); `all tokens`: every token, hidden ones",
        "replaced by a mask token (the paper's Table 1c ablation). `sdpa`: fused",
        "scaled_dot_product_attention; `plain`: softmax(QKᵀ/√d)V written out. ViT-Tiny (width 192):",
        "`digits` = the `mae` recipe's cpu profile (8×8 images, 16 tokens); `cifar` = its gpu profile",
        "(as full: 32×32, 64 tokens, depth 12, decoder 256×4). Written by `benchmarks/bench_mae.py`; median",
        "of timed repeats after 3 warm-up steps;",
        "`load` is the machine's 1-minute load average (other work slows every row alike, roughly).",
        "",
        "| date (UTC) | device | torch | dtype | threads | load | model | tokens | batch | encoder "
        "| attention | ms / step | images/s | × vs all tokens |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['date_utc']} | {r['device']} | {r['torch']} | {r['dtype']} | {r['threads']} "
            f"| {r['load_1m']} | {r['model']} | {r['tokens']} | {r['batch']} | {r['encoder']} "
            f"| {r['attention']} "
            f"| {float(r['ms_per_step']):.1f} | {float(r['images_per_s']):,.0f} "
            f"| {float(r['speedup_vs_all_tokens']):.2f} |"
        )
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batch", type=int, default=None, help="default: 256 on the CPU, 1024 on CUDA")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--no-write", action="store_true", help="print only, write no results")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available on this machine; use --device cpu")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    amp = device.type == "cuda"  # bf16 autocast on a GPU, as fit does; fp32 on the CPU
    batch_size = args.batch or (1024 if amp else 256)
    repeats = 5 if args.quick else 11
    name = device_name()
    slug = "cpu" if device.type == "cpu" else file_slug(name, None)
    rows = []
    for model in args.models:
        channels, side = MODELS[model][1:]
        images = torch.rand(batch_size, channels, side, side, generator=torch.Generator().manual_seed(0))
        images = images.to(device)
        variants = {
            (encoder, attention): build(model, visible_only, attention, device)
            for attention in ("sdpa", "plain")
            for encoder, visible_only in (("all tokens", False), ("visible", True))
        }
        measured = step_seconds(variants, images, repeats, amp)
        for attention in ("sdpa", "plain"):
            for encoder in ("all tokens", "visible"):
                seconds = measured[(encoder, attention)]
                row = {
                    "date_utc": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
                    "device": name,
                    "torch": torch.__version__,
                    "dtype": "bf16 autocast" if amp else "fp32",
                    "threads": args.threads if device.type == "cpu" else "",
                    "load_1m": round(os.getloadavg()[0], 2),
                    "model": model,
                    "tokens": (side // (2 if side <= 16 else 4)) ** 2,
                    "batch": batch_size,
                    "encoder": encoder,
                    "attention": attention,
                    "repeats": repeats,
                    "ms_per_step": round(1000 * seconds, 2),
                    "images_per_s": round(batch_size / seconds, 1),
                    "speedup_vs_all_tokens": round(measured[("all tokens", attention)] / seconds, 3),
                }
                rows.append(row)
                print(
                    f"{model:<7} {attention:<5} {encoder:<10} {row['ms_per_step']:9.1f} ms/step "
                    f"{row['images_per_s']:9,.0f} img/s  ×{row['speedup_vs_all_tokens']:.2f} vs all tokens",
                    flush=True,
                )
    if not args.no_write:
        for path in write_results(rows, slug):
            print("wrote", path)
    return rows


if __name__ == "__main__":
    main()
