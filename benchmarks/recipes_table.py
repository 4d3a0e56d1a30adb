"""Run recipes one after another in a profile and record what each reports: the README's recipes table.

Each recipe runs as ``sslcookbook run RECIPE --profile PROFILE`` does (``runner.run_recipe``, its seed,
no figures): linear probe at 1, 10 and all labels per class, kNN, and the fine-tuning evaluation (the SSL
encoder fine-tuned end to end, and the same network trained from scratch, on the probe's label draws).
Rows go to ``benchmarks/results/recipes_<profile>_<device>.md`` and ``.json`` with the device, versions,
load average and date; a run of some recipes replaces their rows and keeps the others.

    python benchmarks/recipes_table.py --profile cpu simclr byol dino
    python benchmarks/recipes_table.py --profile smoke            # every recipe
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from _machine import device_name, slug  # benchmarks/_machine.py (scripts run from this folder)

from sslcookbook.profiles import PROFILES
from sslcookbook.recipes import RECIPES
from sslcookbook.runner import run_recipe

RESULTS = Path(__file__).resolve().parent / "results"


def run_one(name: str, profile: str, device: str | None) -> dict:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        results = run_recipe(name, profile=profile, device=device, out=out, progress=False, figures=False)
    wall = time.perf_counter() - start
    return {
        "recipe": name,
        "epochs": results["epochs"],
        "train_seconds": results["seconds"],
        "wall_seconds": round(wall, 1),
        "probe": results["probe"],
        "knn": results["knn"],
        "fine_tune": results.get("fine_tune"),
        "fine_tune_steps": results.get("fine_tune_steps"),
        "fine_tune_views": results.get("fine_tune_views"),
        **{key: results[key] for key in ("zero_shot", "retrieval") if key in results},  # language–image
        "date": datetime.date.today().isoformat(),
        "load_average_after": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def write_markdown(path: Path, meta: dict, rows: list[dict]) -> None:
    """One row per recipe: the probe and kNN of the README table, the fine-tuning beside them."""
    lines = [
        f"# Recipes in the `{meta['profile']}` profile",
        "",
        f"{meta['device']}; torch {meta['torch']}, Python {meta['python']}, "
        f"OMP_NUM_THREADS={meta['omp_num_threads']}; one recipe after another, each with its seed.",
        f"Command: `python benchmarks/recipes_table.py --profile {meta['profile']} RECIPE ...` "
        "(= `sslcookbook run RECIPE --profile PROFILE` for each). ft = fine-tuned end to end on the probe's "
        "label draws; from scratch = the same network trained from random init on them (the supervised "
        "baseline).",
        "",
        "| recipe | probe@1 / probe@all / kNN | ft@1 / ft@10 / ft@all | from scratch @1 / @10 / @all "
        "| ft steps | train, wall | date, load after |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        probe, knn = row["probe"]["ssl"], row["knn"]["ssl"]
        tuned = row.get("fine_tune") or {}
        ssl, scratch = tuned.get("ssl", {}), tuned.get("random", {})
        keys = ("1", "10", "all")
        tuned_cell = " / ".join(_pct(ssl.get(k)) for k in keys)
        scratch_cell = " / ".join(_pct(scratch.get(k)) for k in keys)
        lines.append(
            f"| {row['recipe']} | {_pct(probe['1'])} / {_pct(probe['all'])} / {_pct(knn)} "
            f"| {tuned_cell} | {scratch_cell} | {row.get('fine_tune_steps') or '—'}"
            f"{', ' + row['fine_tune_views'] if row.get('fine_tune_views') else ''} "
            f"| {row['train_seconds']:.0f} s, {row['wall_seconds']:.0f} s "
            f"| {row['date']}, {row['load_average_after']} |"
        )
    # The baselines depend on the data and the architecture: one line per distinct pair of baselines.
    groups: dict[str, list[str]] = {}
    for row in rows:
        raw, random = row["probe"]["raw"], row["probe"]["random"]
        line = (
            f"raw pixels {_pct(raw['1'])} / {_pct(raw['10'])} / {_pct(raw['all'])} "
            f"/ {_pct(row['knn']['raw'])}, "
            f"random init {_pct(random['1'])} / {_pct(random['10'])} / {_pct(random['all'])} "
            f"/ {_pct(row['knn']['random'])}"
        )
        groups.setdefault(line, []).append(row["recipe"])
    if groups:
        lines += ["", "Baselines (probe@1 / @10 / @all / kNN), as each recipe's run measured them:", ""]
        lines += [f"- {line}: {', '.join(names)}" for line, names in groups.items()]
    paired = [row for row in rows if "zero_shot" in row]
    if paired:
        lines += [
            "",
            "Language–image recipes, test pairs: zero-shot top-1 from the class prompts (best-matching "
            "prompt), all images and the attribute combinations training never showed; recall@1 both ways.",
            "",
            "| recipe | zero-shot all | zero-shot held-out | image→text R@1 | text→image R@1 |",
            "|---|---|---|---|---|",
        ]
        for row in paired:
            shot, recall = row["zero_shot"], row.get("retrieval", {})
            lines.append(
                f"| {row['recipe']} | {_pct(shot.get('all'))} | {_pct(shot.get('held_out'))} "
                f"| {_pct(recall.get('image_to_text@1'))} | {_pct(recall.get('text_to_image@1'))} |"
            )
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="*", help="default: every recipe")
    parser.add_argument("--profile", default="cpu", choices=PROFILES)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    unknown = [name for name in args.recipes if name not in RECIPES]
    if unknown:
        parser.error(f"unknown recipes {unknown}: choose from {', '.join(sorted(RECIPES))}")
    device = device_name()
    meta = {
        "profile": args.profile,
        "device": device,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"recipes_{args.profile}_{slug(device)}"
    json_path = RESULTS / f"{stem}.json"
    for name in args.recipes or sorted(RECIPES):
        print(f"{name} ({args.profile}) ...", flush=True)
        row = run_one(name, args.profile, args.device)
        print(
            f"  {row['wall_seconds']:.0f} s: probe {row['probe']['ssl']}, fine-tune {row['fine_tune']}",
            flush=True,
        )
        # Written after each recipe (a partial run counts), re-read first: two runs of different recipes
        # side by side keep each other's rows.
        rows = json.loads(json_path.read_text())["recipes"] if json_path.exists() else []
        rows = [r for r in rows if r["recipe"] != name] + [row]
        json_path.write_text(json.dumps({**meta, "recipes": rows}, indent=1) + "\n")
        write_markdown(RESULTS / f"{stem}.md", meta, rows)
    print(f"wrote {RESULTS / stem}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
