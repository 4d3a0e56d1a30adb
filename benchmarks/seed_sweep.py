"""How robust is a recipe's result to the seed? Train it once per seed and compare with the baselines.

For each seed: ``torch.manual_seed(seed)``, build the recipe's method, ``fit`` with the profile's
setting (optionally with a different number of epochs or method arguments), then
``evaluate.compare_baselines``. Reports probe@1, probe@10, kNN and RankMe of each run, the random-init
baseline (the same for every seed: it is drawn with a fixed seed), and how many seeds beat it at
probe@1. Rows go to ``benchmarks/results/seed_sweep_<recipe>_<profile>.md`` and ``.json`` (appended,
with device, versions and date).

    python benchmarks/seed_sweep.py byol --profile smoke --seeds 0 1 2 3 4 5
    python benchmarks/seed_sweep.py byol --profile smoke --epochs 3 --method projector_hidden_dim=128
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import time
from pathlib import Path

import torch
from _machine import device_name  # benchmarks/_machine.py (scripts run from this folder)

from sslcookbook import data, evaluate
from sslcookbook.models import build_backbone
from sslcookbook.profiles import PROFILES
from sslcookbook.recipes import get_recipe
from sslcookbook.train import fit

RESULTS = Path(__file__).resolve().parent / "results"


def parse_assignment(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--profile", default="smoke", choices=PROFILES)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    parser.add_argument(
        "--method", type=parse_assignment, action="append", default=[], help="KEY=VALUE method argument"
    )
    parser.add_argument("--margin", type=float, default=0.05, help="also count seeds beating random by this")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)

    recipe = get_recipe(args.recipe)
    setting = recipe.setting(args.profile)
    train_config = setting.train.replace(epochs=args.epochs)
    method_kwargs = {**setting.method_kwargs, **dict(args.method)}
    train, test = data.load(setting.data, "train"), data.load(setting.data, "test")
    views = recipe.views(train.image_shape, args.profile)

    runs, random_init = [], None
    for seed in args.seeds:
        torch.manual_seed(seed)
        backbone = build_backbone(setting.backbone, train.image_shape[0], **setting.backbone_kwargs)
        method = recipe.method(backbone, **method_kwargs)  # as Recipe.build, with the overrides
        start = time.perf_counter()
        fit(method, train, views, train_config, device=args.device, progress=False)
        seconds = time.perf_counter() - start
        reports = evaluate.compare_baselines(method.backbone, train, test, device=args.device)
        random_init = reports["random"]
        ssl = reports["ssl"]
        runs.append(
            {
                "seed": seed,
                "probe@1": ssl["probe"]["1"],
                "probe@10": ssl["probe"]["10"],
                "knn": ssl["knn"],
                "rankme": ssl["rankme"],
                "train_s": seconds,
            }
        )
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in runs[-1].items() if k != "seed"))

    beats = sum(run["probe@1"] > random_init["probe"]["1"] for run in runs)
    beats_by_margin = sum(run["probe@1"] >= random_init["probe"]["1"] + args.margin for run in runs)
    record = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "device": device_name(),
        "torch": torch.__version__,
        "recipe": args.recipe,
        "profile": args.profile,
        "epochs": train_config.epochs,
        "method_kwargs": method_kwargs,
        "random_init": {"probe@1": random_init["probe"]["1"], "knn": random_init["knn"]},
        "runs": runs,
        "seeds_beating_random_at_probe@1": f"{beats} of {len(runs)}",
        "margin": args.margin,
        "seeds_beating_random_by_margin": f"{beats_by_margin} of {len(runs)}",
    }
    print(
        f"random init probe@1 {random_init['probe']['1']:.3f}; {beats} of {len(runs)} seeds beat it, "
        f"{beats_by_margin} by >= {args.margin}"
    )

    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"seed_sweep_{args.recipe}_{args.profile}"
    history = json.loads(stem.with_suffix(".json").read_text()) if stem.with_suffix(".json").exists() else []
    history.append(record)
    stem.with_suffix(".json").write_text(json.dumps(history, indent=1) + "\n")
    lines = [
        f"# Seed sweep: `{args.recipe}`, profile `{args.profile}`",
        "",
        "Written by `benchmarks/seed_sweep.py`. probe@1 = linear probe with one label per class.",
        "",
        "| date (UTC) | device | torch | epochs | method arguments | probe@1 per seed | random init "
        "| above it | by the margin |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in history:
        per_seed = ", ".join(f"{run['seed']}: {run['probe@1']:.3f}" for run in r["runs"])
        lines.append(
            f"| {r['date_utc']} | {r['device']} | {r['torch']} | {r['epochs']} | `{r['method_kwargs']}` | "
            f"{per_seed} | {r['random_init']['probe@1']:.3f} | {r['seeds_beating_random_at_probe@1']} "
            f"| {r['seeds_beating_random_by_margin']} (≥ {r['margin']}) |"
        )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {stem}.md and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
