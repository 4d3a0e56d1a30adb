"""Per-iteration curves of the six ways notebook 12 self-trains a small language model.

Runs :func:`sslcookbook.methods.lm_self_training.run_all` with a profile's setting (the seed model, then
unfiltered self-training, expert iteration with the verifier, majority vote, GRPO with the checker's and
the majority's rewards, and DPO, each at the same number of sampled answers per iteration) and writes
``benchmarks/results/lm_self_training_<profile>.json``, ``.md`` and ``.png``, with device, versions and
date. Accuracies are on the held-out test problems.

    python benchmarks/lm_self_training_curves.py --profile cpu
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import matplotlib
import torch
from _machine import device_name  # benchmarks/_machine.py (scripts run from this folder)

from sslcookbook import viz
from sslcookbook.methods.lm_self_training import METHODS, SETTINGS, run_all

RESULTS = Path(__file__).resolve().parent / "results"


def markdown(result: dict) -> str:
    setting, curves = result["setting"], result["curves"]
    k = setting["samples"]
    lines = [
        f"# Self-training a small LM: per-iteration curves, profile `{result['profile']}`",
        "",
        f"Written by `benchmarks/lm_self_training_curves.py` on {result['date']} ({result['device']}, "
        f"torch {result['torch']}, Python {result['python']}, {result['wall_s']:.0f} s wall, "
        f"{result['cpu_s']:.0f} s CPU).",
        "",
        f"{setting['max_digits']}-digit addition, {setting['seed_size']} labelled seed problems, "
        f"{setting['pool_size']} unlabelled prompts, {setting['test_size']} held-out test problems; "
        f"{setting['problems_per_iteration']} problems × k = {k} samples = "
        f"{setting['problems_per_iteration'] * k} sampled answers per iteration for every method. "
        "Greedy test accuracy (pass@1 and pass@k of k samples at temperature "
        f"{setting['temperature']} in brackets), iteration 0 = the seed model.",
        "",
        "| method | " + " | ".join(f"iteration {r['iteration']}" for r in next(iter(curves.values()))) + " |",
        "|---|" + "---|" * len(next(iter(curves.values()))),
    ]
    for name, rows in curves.items():
        cells = [f"{r['accuracy']:.3f} ({r['pass@1']:.3f} / {r[f'pass@{k}']:.3f})" for r in rows]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", choices=list(SETTINGS))
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    matplotlib.use("Agg")

    started, cpu_started = time.perf_counter(), time.process_time()
    result = run_all(SETTINGS[args.profile], METHODS, device=args.device, progress=True)
    result.update(
        profile=args.profile, device=device_name(), torch=torch.__version__, python=platform.python_version(),
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        wall_s=time.perf_counter() - started, cpu_s=time.process_time() - cpu_started,
    )
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"lm_self_training_{args.profile}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    k = result["setting"]["samples"]
    fig = viz.plot_self_training_curves(result["curves"], metrics=("accuracy", "pass@1", f"pass@{k}"),
                                        title=f"self-training on addition, profile {args.profile}")
    fig.savefig(stem.with_suffix(".png"), dpi=110)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
