"""Does bf16 autocast pay for end-to-end fine-tuning on this machine, at the same accuracy?

``evaluate.fine_tune`` and ``evaluate.supervised_baseline`` train in fp32 unless ``amp=True``. Fine-tuning
is most of notebook 09's ``cpu`` run (three 300-step trainings of a ViT, compute-bound in fp32 matmuls).
For each ViT recipe this script pre-trains the recipe's ``cpu`` profile once (its own settings), then runs
its fine-tuning protocol (``Resolved.fine_tune_protocol``: steps, views, optimiser) from the pre-trained
weights and from scratch, in fp32 and under bf16 autocast, in turns, on the notebooks' split: fitted on
80% of train with 10 labels per class, scored on the other 20% (validation; the test split is not used).
It reports seconds per training (median of the rounds) and the validation accuracy of each. Results:
``benchmarks/results/fine_tune_amp_<device>.md`` and ``.json`` with device, CPU flags, versions and date.

    python benchmarks/bench_fine_tune_amp.py                       # ijepa data2vec mae, cpu profile
    python benchmarks/bench_fine_tune_amp.py --recipes mae --rounds 1 --steps 30 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from _machine import run_header, slug, write_results  # benchmarks/_machine.py (scripts run from this folder)

from sslcookbook import evaluate
from sslcookbook.recipes import get_recipe
from sslcookbook.runner import load_splits
from sslcookbook.train import fit

RESULTS = Path(__file__).resolve().parent / "results"
RECIPES = ["ijepa", "data2vec", "mae"]
VARIANTS = ("fine-tune fp32", "fine-tune bf16", "from scratch fp32", "from scratch bf16")


def pretrained(recipe: str, profile: str):
    """The recipe's method pre-trained on its profile, with its data split as the notebooks split it."""
    resolved = get_recipe(recipe).resolve(profile, {})
    setting = resolved.setting
    train, _ = load_splits(setting.data, setting.train_subset, setting.test_subset)
    torch.manual_seed(setting.train.seed)
    method = resolved.build(in_channels=train.image_shape[0], image_size=train.image_shape[-1])
    fit(method, train, resolved.views(train.image_shape), setting.train, device="cpu", progress=False)
    fit_part, val = train.split(0.2, seed=0)
    return method, resolved.fine_tune_protocol(train.image_shape), fit_part, val


def measure(recipe: str, profile: str, rounds: int, steps: int | None) -> dict:
    method, protocol, fit_part, val = pretrained(recipe, profile)
    steps = steps or protocol.steps
    labelled = (fit_part.images, fit_part.labels, val.images, val.labels)
    common = dict(labels_per_class=(10,), repeats=1, steps=steps, views=protocol.views)
    encoder = method.evaluation_backbone  # I-JEPA: its target encoder, as the paper evaluates

    tuned = {**common, **protocol.optimizer}  # the protocol's optimiser settings: fine-tuning only
    calls = {
        "fine-tune fp32": lambda: evaluate.fine_tune(encoder, *labelled, **tuned),
        "fine-tune bf16": lambda: evaluate.fine_tune(encoder, *labelled, **tuned, amp=True),
        "from scratch fp32": lambda: evaluate.supervised_baseline(encoder, *labelled, **common),
        "from scratch bf16": lambda: evaluate.supervised_baseline(encoder, *labelled, **common, amp=True),
    }
    seconds = {name: [] for name in calls}
    accuracy = {}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            score = call()["10"]
            seconds[name].append(time.perf_counter() - start)
            if accuracy.setdefault(name, score) != score:  # seeded: every round trains the same
                raise RuntimeError(f"{recipe} {name}: accuracy {accuracy[name]}, later {score}")
    median = {name: statistics.median(t) for name, t in seconds.items()}
    row = {
        "recipe": recipe,
        "steps": steps,
        "views": protocol.description,
        "seconds": {name: round(s, 2) for name, s in median.items()},
        "val_accuracy": {name: round(a, 4) for name, a in accuracy.items()},
        "bf16 speed-up": {
            "fine-tune": round(median["fine-tune fp32"] / median["fine-tune bf16"], 2),
            "from scratch": round(median["from scratch fp32"] / median["from scratch bf16"], 2),
        },
    }
    print(json.dumps(row), flush=True)
    return row


def markdown(head: dict, rows: list[dict]) -> str:
    lines = [
        f"# Fine-tuning in fp32 and under bf16 autocast ({head['device']})",
        "",
        f"{head['date']}; torch {head['torch']}; {head['threads']} threads; Python {head['python']}; "
        f"CPU flags: {head['cpu_flags'] or 'none of note'}; native bf16 (oneDNN): {head['native_bf16']}; "
        f"load average {head['load_before']} before, {head['load_after']} after. Written by "
        f"`python benchmarks/bench_fine_tune_amp.py{head['args']}`. Each recipe's `{head['profile']}` "
        "profile pre-trained once; its fine-tuning protocol from those weights and from scratch, 10 labels "
        "per class drawn from 80% of train, accuracy on the other 20% (validation); seconds per training, "
        "median of "
        f"{head['rounds']} rounds in turns.",
        "",
        "| recipe | steps | " + " | ".join(f"{v}: s (val acc.)" for v in VARIANTS) + " | bf16 speed-up |",
        "|---|---|" + "---|" * len(VARIANTS) + "---|",
    ]
    for r in rows:
        cells = [f"{r['seconds'][v]:.1f} ({r['val_accuracy'][v]:.3f})" for v in VARIANTS]
        speed = r["bf16 speed-up"]
        lines.append(
            f"| {r['recipe']} | {r['steps']} | "
            + " | ".join(cells)
            + f" | fine-tune {speed['fine-tune']:.2f}×, scratch {speed['from scratch']:.2f}× |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipes", nargs="*", default=RECIPES, help="ViT recipes (their fine-tuning protocol)")
    p.add_argument("--profile", default="cpu", help="the profile pre-trained and fine-tuned")
    p.add_argument("--rounds", type=int, default=2, help="timed rounds (median)")
    p.add_argument("--steps", type=int, default=None, help="fine-tuning steps (default: the protocol's)")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    head = run_header(argv)
    head.update(profile=args.profile, rounds=args.rounds)
    rows = [measure(recipe, args.profile, args.rounds, args.steps) for recipe in args.recipes]
    head["load_after"] = round(os.getloadavg()[0], 2)
    result = {"header": head, "rows": rows}
    text = markdown(head, rows)
    print(text)
    if not args.no_write:
        stem = RESULTS / f"fine_tune_amp_{args.profile}_{slug(head['device'])}"
        write_results(stem, result, text)
    return result


if __name__ == "__main__":
    main()
