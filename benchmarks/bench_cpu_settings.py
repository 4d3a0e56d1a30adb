"""Do the CPU speed settings pay on the notebooks' own runs? Each recipe's profile, defaults against fast.

``bench_train.py`` measures the speed settings (``channels_last``, bf16 autocast, one forward per view)
on CIFAR-10's 32-px images, where they train SimCLR 3× faster than lightly. The notebooks' ``cpu``
profile trains on the 8×8 digits with a small CNN, tensors a sixteenth of that size. This script trains
each recipe's profile twice in one run, with the recipe's settings and with the fast ones (same seed,
same data; a smoke run of each first, not reported, warms both paths up), and reports the training wall
time and the frozen-feature scores (probe@1, probe@all, kNN on the test split): a setting is worth making
a notebook default only if it is faster there without costing accuracy. Results:
``benchmarks/results/cpu_settings_<profile>.md`` and ``.json`` with device, versions and date.

    python benchmarks/bench_cpu_settings.py simclr byol --profile cpu
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path

import torch
from _machine import device_name  # benchmarks/_machine.py (scripts run from this folder)
from bench_train import fast_settings  # the same settings bench_train's lib_fast pipeline uses

from sslcookbook.recipes import get_recipe
from sslcookbook.runner import run_recipe

RESULTS = Path(__file__).resolve().parent / "results"
FAST = {f"train.{k}": v for k, v in fast_settings(torch.device("cpu"), compile_backbone=False).items()}


def fast_overrides(recipe: str) -> dict:
    """The fast settings as ``run_recipe`` overrides; ``view_forward`` only for two-view methods (bf16
    autocast only where the CPU has native bf16: ``fast_settings`` decides)."""
    method = get_recipe(recipe).method
    return {k: v for k, v in FAST.items() if k != "train.view_forward" or hasattr(method, "view_forward")}


# The settings each recipe is trained with: its own, the fast ones, the fast ones in fp32 (what a CPU
# without native bf16 gets, and the numerics of the recipe's own settings), and the NHWC layout alone.
VARIANTS = {
    "recipe": lambda recipe: {},
    "fast": fast_overrides,
    "fast fp32": lambda recipe: {**fast_overrides(recipe), "train.amp": False},
    "channels_last": lambda recipe: {"train.channels_last": True},  # the layout alone: same numerics, BN
}


def measure(recipe: str, profile: str, variant: str, out: Path) -> dict:
    overrides = VARIANTS[variant](recipe)
    results = run_recipe(
        recipe,
        profile=profile,
        out=out,
        progress=False,
        figures=False,
        overrides=overrides,
        fine_tuning=False,
    )
    probe = results["probe"]["ssl"]
    return {
        "recipe": recipe,
        "settings": variant,
        "overrides": overrides,
        "train_s": results["seconds"],
        "probe@1": probe["1"],
        "probe@all": probe["all"],
        "knn": results["knn"]["ssl"],
    }


def markdown(head: dict, rows: list[dict]) -> str:
    lines = [
        f"# The CPU speed settings on the `{head['profile']}` profile ({head['device']})",
        "",
        f"{head['date']}; torch {head['torch']}; {head['threads']} torch threads; Python {head['python']}. "
        "Each recipe's profile trained with its own settings and with the fast ones "
        f'(`{json.dumps(FAST)}`, `view_forward` only for two-view methods; "fast fp32": the same with '
        '`amp` off; "channels_last": the NHWC layout alone), same seed; scores on the test split.',
        "",
        "| recipe | settings | training wall time | speed-up | probe@1 | probe@all | kNN |",
        "|---|---|---|---|---|---|---|",
    ]
    base = {}
    for r in rows:
        speedup = base.setdefault(r["recipe"], r["train_s"]) / r["train_s"]
        lines.append(
            f"| {r['recipe']} | {r['settings']} | {r['train_s']:.1f} s | {speedup:.2f}× | "
            f"{r['probe@1']:.1%} | {r['probe@all']:.1%} | {r['knn']:.1%} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("recipes", nargs="+")
    p.add_argument("--profile", default="cpu", choices=("smoke", "cpu"))
    p.add_argument("--runs", default="/tmp/sslcookbook-cpu-settings", help="where the runs' folders go")
    p.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=["recipe", "fast"],
        help="settings to train each recipe with; the first is the speed-up's reference",
    )
    p.add_argument("--out", default=None, help="results stem (default results/cpu_settings_<profile>)")
    args = p.parse_args(argv)
    head = {
        "device": device_name(),
        "profile": args.profile,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    for variant in args.variants:  # warm-up (oneDNN, allocator), not reported
        measure(args.recipes[0], "smoke", variant, Path(args.runs) / "warm-up")
    rows = []
    for recipe in args.recipes:
        for variant in args.variants:
            out = Path(args.runs) / f"{recipe}-{variant.replace(' ', '-')}"
            rows.append(measure(recipe, args.profile, variant, out))
            print(json.dumps(rows[-1]), flush=True)
    stem = Path(args.out) if args.out else RESULTS / f"cpu_settings_{args.profile}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps({"header": head, "rows": rows}, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(head, rows))
    print(stem.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
