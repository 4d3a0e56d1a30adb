"""Does ViT pre-training buy fine-tuning accuracy on the digits? Pre-trained ViTs against one from scratch.

Each variant is a ViT recipe with ``--set``-style changes (``mae:train.epochs=200``). It is pre-trained on all
training digits (seed 0), then scored on 20% of them held out (``train.split(0.2, seed=0)``, as notebooks 08
and 09 do; never the test split): its linear probe and kNN on frozen features, and its fine-tuning accuracy
with the recipe's protocol (``Setting.fine_tune``) at ``--labels`` labels per class, averaged over ``--draws``
labelled draws (the single-draw figure the notebooks report moves by about ±2 points between draws). Beside
them: the same ViT trained from scratch with the same steps and views (once per distinct architecture, steps
and views), and the raw-pixel probe. Run from this folder; writes
``results/vit_fine_tune_<profile>_<device>.{json,md}``.

    python vit_fine_tune_sweep.py                      # the default variants, cpu profile
    python vit_fine_tune_sweep.py mae mae:train.epochs=200 --draws 5
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import torch
from _machine import cpu_flags, device_name, slug  # benchmarks/_machine.py (scripts run from this folder)

from sslcookbook import data, evaluate
from sslcookbook.cli import parse_overrides
from sslcookbook.recipes import get_recipe
from sslcookbook.settings import FINE_TUNE_DEFAULTS
from sslcookbook.train import fit

RESULTS = Path(__file__).resolve().parent / "results"
# Each ViT recipe as set, and the two longest pre-training runs that fit a few minutes on 2 cores.
DEFAULT_VARIANTS = ("mae", "mae:train.epochs=200", "simmim", "ijepa", "data2vec", "data2vec:train.epochs=60")


def parse_variant(text: str) -> tuple[str, dict]:
    """``"mae:train.epochs=200,method.mask_ratio=0.5"`` -> ``("mae", {"train.epochs": 200, ...})``."""
    recipe, _, changes = text.partition(":")
    return recipe, parse_overrides([c for c in changes.split(",") if c]) if changes else {}


def fine_tuned_over_draws(backbone, protocol, labelled, labels: int, draws: int, from_scratch: bool) -> dict:
    """Accuracy at ``labels`` labels per class of ``backbone`` fine-tuned (or its architecture trained from
    scratch) with ``protocol``, per labelled draw (seeds 0..draws-1) and their mean."""
    accuracies = []
    for seed in range(draws):
        common = dict(
            labels_per_class=(labels,), repeats=1, seed=seed, steps=protocol.steps, views=protocol.views
        )
        if from_scratch:  # supervised_baseline's own optimiser, as the notebooks and `sslcookbook run` use
            scores = evaluate.supervised_baseline(backbone, *labelled, **common)
        else:
            scores = evaluate.fine_tune(backbone, *labelled, **common, **protocol.optimizer)
        accuracies.append(scores[str(labels)])
    return {"mean": sum(accuracies) / draws, "draws": accuracies}


def scratch_key(resolved, protocol) -> str:
    """What the from-scratch baseline depends on: the architecture, the steps and the views (not the
    fine-tuning optimiser, which it does not use); variants that share it share one baseline run."""
    tuning = {**FINE_TUNE_DEFAULTS, **resolved.setting.fine_tune}
    s = resolved.setting
    key = [s.backbone, s.backbone_kwargs, protocol.steps, tuning["views"], tuning["view_strength"]]
    return json.dumps(key, sort_keys=True)


def sweep(variants: list[str], profile: str, labels: int, draws: int) -> tuple[dict, list[dict]]:
    train = data.load("digits", "train")
    fit_part, val = train.split(0.2, seed=0)
    labelled = (fit_part.images, fit_part.labels, val.images, val.labels)
    key = str(labels)
    raw = evaluate.evaluate_features(
        evaluate.raw_pixel_features(fit_part.images), fit_part.labels,
        evaluate.raw_pixel_features(val.images), val.labels,
    )
    rows, scratch = [], {}
    for text in variants:
        name, overrides = parse_variant(text)
        resolved = get_recipe(name).resolve(profile, overrides)
        # 1. pre-train on every training digit (the labels unused), as the notebooks do
        torch.manual_seed(0)
        method = resolved.build(train.image_shape[0], train.image_shape[-1])
        start = time.perf_counter()
        fit(method, train, resolved.views(train.image_shape), resolved.setting.train, progress=True)
        seconds = time.perf_counter() - start
        backbone = method.evaluation_backbone
        # 2. frozen features: probe and kNN on the held-out digits
        frozen = evaluate.evaluate_features(
            evaluate.embed(backbone, fit_part.images), fit_part.labels,
            evaluate.embed(backbone, val.images), val.labels,
        )
        # 3. fine-tuning with the recipe's protocol; the same ViT from scratch once per scratch_key
        protocol = resolved.fine_tune_protocol(train.image_shape)
        tuned = fine_tuned_over_draws(backbone, protocol, labelled, labels, draws, from_scratch=False)
        baseline = scratch_key(resolved, protocol)
        if baseline not in scratch:
            scratch[baseline] = fine_tuned_over_draws(
                backbone, protocol, labelled, labels, draws, from_scratch=True
            )
        row = {
            "variant": text,
            "backbone": resolved.setting.backbone_kwargs,
            "pretrain_seconds": round(seconds, 1),
            "protocol": protocol.description,
            "steps": protocol.steps,
            "probe": frozen["probe"],
            "knn": frozen["knn"],
            "fine_tune": tuned,
            "scratch": scratch[baseline],
        }
        rows.append(row)
        print(f"{text}: probe@{key} {frozen['probe'][key]:.3f}, fine-tuned {tuned['mean']:.3f}, "
              f"from scratch {row['scratch']['mean']:.3f}", flush=True)
    meta = {
        "profile": profile, "labels_per_class": labels, "draws": draws, "device": device_name(),
        "cpu_flags": cpu_flags(), "torch": torch.__version__, "python": platform.python_version(),
        "date": datetime.date.today().isoformat(), "raw_pixels": {"probe": raw["probe"], "knn": raw["knn"]},
    }
    return meta, rows


def write_markdown(path: Path, meta: dict, rows: list[dict]) -> None:
    k = str(meta["labels_per_class"])
    raw = meta["raw_pixels"]
    lines = [
        f"# ViT pre-training vs from scratch, fine-tuned at {k} labels per class (held-out digits)",
        "",
        f"{meta['device']} (CPU flags: {meta['cpu_flags'] or 'unknown'}), torch {meta['torch']}, "
        f"Python {meta['python']}, {meta['date']}; profile `{meta['profile']}`, {meta['draws']} labelled "
        f"draws (seeds 0..{meta['draws'] - 1}), scored on 20% of the training digits held out. Raw pixels: "
        f"probe@{k} {raw['probe'][k]:.3f}, kNN {raw['knn']:.3f}. "
        f"Command: `cd benchmarks && {meta.get('command', 'python vit_fine_tune_sweep.py')}`.",
        "",
        f"| variant | pre-train s | probe@{k} | kNN | fine-tuned@{k} (draws) | from scratch@{k} (draws) "
        "| margin |",
        "|---|---:|---:|---:|---|---|---:|",
    ]
    for r in rows:
        draws = lambda d: f"{d['mean']:.3f} ({' '.join(f'{a:.3f}' for a in d['draws'])})"  # noqa: E731
        baseline = max(r["scratch"]["mean"], raw["probe"][k])
        lines.append(
            f"| `{r['variant']}` | {r['pretrain_seconds']:.0f} | {r['probe'][k]:.3f} | {r['knn']:.3f} | "
            f"{draws(r['fine_tune'])} | {draws(r['scratch'])} | {r['fine_tune']['mean'] - baseline:+.3f} |"
        )
    lines += ["", "margin: fine-tuned minus the stronger of the ViT from scratch and the raw-pixel probe."]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", default=list(DEFAULT_VARIANTS), help="recipe[:key=value,...]")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--labels", type=int, default=10, help="labels per class of the fine-tuning draws")
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="results path without suffix")
    args = parser.parse_args(argv)
    meta, rows = sweep(args.variants, args.profile, args.labels, args.draws)
    given = sys.argv[1:] if argv is None else argv
    meta["command"] = " ".join(["python vit_fine_tune_sweep.py", *(shlex.quote(a) for a in given)])
    out = args.out or RESULTS / f"vit_fine_tune_{args.profile}_{slug(meta['device'])}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({**meta, "variants": rows}, indent=1) + "\n")
    write_markdown(out.with_suffix(".md"), meta, rows)
    print(f"wrote {out}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
