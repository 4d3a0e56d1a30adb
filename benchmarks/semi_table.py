"""The semi-supervised table of a profile: labels per class × methods, test accuracy, one seeded run each.

Rows: labels per class (the profile's budgets, e.g. 1, 4, 10, all). Columns: supervised only (the same
classifier on the labelled images), SSL + linear probe and SSL + fine-tune (the ``simclr`` recipe trained
once on all the training images, no labels, with the classifiers' backbone), pseudo-label (Lee 2013),
Mean Teacher, FixMatch, Noisy Student (the supervised model as first teacher, then noised students) and
SimCLRv2 (the fine-tuned SSL model distilled into a fresh student on the unlabelled images). Every cell is
the test accuracy of one run with seed 0 (split seed 0); settings from ``sslcookbook.semi_recipes``.
Results go to ``benchmarks/results/semi_<profile>_<device>.md`` and ``.json`` with the device, versions,
load average and date; a run of some budgets replaces their rows and keeps the others (a column that was
not run shows "—").

    python benchmarks/semi_table.py --profile cpu
    python benchmarks/semi_table.py --profile cpu --budgets 1 4 --methods supervised fixmatch
    python benchmarks/semi_table.py --profile cpu --seeds 0 1 2     # and the seed spread (_seeds.md)
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import time
from pathlib import Path

import torch
from _machine import device_name, slug  # benchmarks/_machine.py (scripts run from this folder)

from sslcookbook import data, evaluate
from sslcookbook.augment.strong import weak_strong_views
from sslcookbook.data.semi import labelled_split
from sslcookbook.methods.semi import Classifier, FixMatch, MeanTeacher, PseudoLabel, SupervisedOnly
from sslcookbook.profiles import downloads_data
from sslcookbook.semi_recipes import semi_setting, ssl_pretrain
from sslcookbook.semi_train import accuracy, noisy_student, simclrv2, train_semi

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = [
    "supervised",
    "ssl_probe",
    "ssl_finetune",
    "pseudo_label",
    "mean_teacher",
    "fixmatch",
    "noisy_student",
    "simclrv2",
]
TITLES = {
    "supervised": "supervised only",
    "ssl_probe": "SSL + linear probe",
    "ssl_finetune": "SSL + fine-tune",
    "pseudo_label": "pseudo-label",
    "mean_teacher": "Mean Teacher",
    "fixmatch": "FixMatch",
    "noisy_student": "Noisy Student",
    "simclrv2": "SimCLRv2",
}


def _budget(text: str) -> int | None:
    return None if text == "all" else int(text)


def run(profile: str, budgets, columns, seed: int = 0, on_row=None) -> tuple[dict, list[dict]]:
    setting = semi_setting(profile)
    train = data.load(setting.data, "train", download=downloads_data(profile))
    test = data.load(setting.data, "test", download=downloads_data(profile))
    if setting.train_subset:
        train = train.subset(setting.train_subset)
    views = weak_strong_views(train.image_shape, weak_strength=setting.weak_strength)
    channels, classes = train.image_shape[0], train.num_classes
    config = setting.config.replace(seed=seed)

    def build() -> Classifier:
        torch.manual_seed(seed)
        return setting.build_model(channels, classes)

    started = time.perf_counter()
    backbone = None
    if {"ssl_probe", "ssl_finetune", "simclrv2"} & set(columns):
        torch.manual_seed(seed)
        backbone = ssl_pretrain(train, profile)
    ssl_seconds = time.perf_counter() - started

    def one_budget(k: int | None) -> dict:
        split = labelled_split(train, k, seed=seed)
        row, seconds = {"labels_per_class": "all" if k is None else k}, {}

        def timed(name, fn):
            t = time.perf_counter()
            row[name] = fn()
            seconds[name] = round(time.perf_counter() - t, 1)
            print(
                f"k={row['labels_per_class']:<4} {name:<14} {100 * row[name]:.1f}%  ({seconds[name]} s)",
                flush=True,
            )

        supervised = SupervisedOnly(build())
        if {"supervised", "noisy_student"} & set(columns):
            timed(
                "supervised",
                lambda: (
                    train_semi(supervised, split, views, config, progress=False),
                    accuracy(supervised, test),
                )[1],
            )
        fine = None
        if "ssl_probe" in columns:
            features = evaluate.embed(backbone, train.images)
            timed(
                "ssl_probe",
                lambda: evaluate.linear_probe(
                    features[split.indices],
                    split.labelled.labels,
                    evaluate.embed(backbone, test.images),
                    test.labels,
                ),
            )
        if {"ssl_finetune", "simclrv2"} & set(columns):
            fine = SupervisedOnly(Classifier(copy.deepcopy(backbone), classes, setting.dropout))
            ft_config = config.replace(lr=setting.fine_tune_lr)
            timed(
                "ssl_finetune",
                lambda: (train_semi(fine, split, views, ft_config, progress=False), accuracy(fine, test))[1],
            )
        makers = {
            "pseudo_label": lambda: PseudoLabel(build(), **setting.methods["pseudo_label"]),
            "mean_teacher": lambda: MeanTeacher(build(), **setting.methods["mean_teacher"]),
            "fixmatch": lambda: FixMatch(build(), **setting.methods["fixmatch"]),
        }
        for name, make in makers.items():
            if name in columns:
                method = make()
                timed(
                    name,
                    lambda m=method: (train_semi(m, split, views, config, progress=False), accuracy(m, test))[
                        1
                    ],
                )
        if "noisy_student" in columns:
            timed(
                "noisy_student",
                lambda: accuracy(
                    noisy_student(
                        split,
                        views,
                        config,
                        build,
                        iterations=setting.noisy_iterations,
                        teacher=supervised.model,
                        **setting.methods["distillation"],
                    )[0],
                    test,
                ),
            )
        if "simclrv2" in columns:
            timed(
                "simclrv2",
                lambda: accuracy(
                    simclrv2(
                        split,
                        views,
                        config,
                        backbone,
                        build,
                        classes,
                        fine_tuned=fine.model,
                        **setting.methods["distillation"],
                    )["student"],
                    test,
                ),
            )
        row["seconds"] = seconds
        return row

    rows = []
    for k in budgets:
        rows.append(one_budget(k))
        if on_row is not None:  # write what is done so far: a long run that is stopped keeps its rows
            on_row(_meta(profile, setting, train, test, seed, ssl_seconds, started), rows)
    return _meta(profile, setting, train, test, seed, ssl_seconds, started), rows


def _meta(profile, setting, train, test, seed, ssl_seconds, started) -> dict:
    return {
        "profile": profile,
        "device": device_name(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
        "data": setting.data,
        "train_images": len(train),
        "test_images": len(test),
        "backbone": f"{setting.backbone} {setting.backbone_kwargs}",
        "config": setting.config.__dict__,
        "methods": setting.methods,
        "seed": seed,
        "ssl_pretrain_seconds": round(ssl_seconds, 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "load_average_after": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def _results_stem(meta: dict, suffix: str = "") -> Path:
    """benchmarks/results/semi_<profile>_<device><suffix> (the .md and .json share it)."""
    return RESULTS / f"semi_{meta['profile']}_{slug(meta['device'], None)}{suffix}"


def write(meta: dict, rows: list[dict], columns=COLUMNS) -> Path:
    base = _results_stem(meta)
    RESULTS.mkdir(exist_ok=True)
    # A run of some budgets replaces their rows and keeps the others (each row says when it was measured).
    done = {row["labels_per_class"] for row in rows}
    rows = [{**row, "date": row.get("date", meta["date"])} for row in rows]
    if base.with_suffix(".json").exists():
        earlier = json.loads(base.with_suffix(".json").read_text())
        kept = [
            {**row, "date": row.get("date", earlier["meta"]["date"])}
            for row in earlier["rows"]
            if row["labels_per_class"] not in done
        ]
        order = {k: i for i, k in enumerate([1, 4, 10, 25, 400, "all"])}
        rows = sorted(kept + rows, key=lambda row: order.get(row["labels_per_class"], 99))
    base.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [
        f"# Semi-supervised table, profile `{meta['profile']}`",
        "",
        f"{meta['data']}: {meta['train_images']} training images (all of them unlabelled, k per class "
        f"labelled), test accuracy on {meta['test_images']} test images; {meta['backbone']} + linear head; "
        f"one run, seed {meta['seed']}. Device {meta['device']}, torch {meta['torch']}, "
        f"{meta['threads']} thread(s), "
        f"{meta['date']}, load average after {meta['load_average_after']}; wall {meta['wall_seconds']} s "
        f"(SimCLR pre-training {meta['ssl_pretrain_seconds']} s). Loop: {meta['config']}.",
        "",
        "| labels per class | " + " | ".join(TITLES[c] for c in columns) + " | measured |",
        "|---|" + "---|" * (len(columns) + 1),
    ]
    for row in rows:
        cells = [f"{100 * row[c]:.1f}%" if c in row else "—" for c in columns]
        lines.append(f"| {row['labels_per_class']} | " + " | ".join(cells) + f" | {row['date']} |")
    base.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return base.with_suffix(".md")


def write_spread(meta: dict, per_seed: dict[int, list[dict]], columns=COLUMNS) -> Path:
    """The seed spread: each cell's mean, standard deviation and range over the seeds (split and training
    seeds both), in ``semi_<profile>_<device>_seeds.md`` and ``.json`` beside the seed-0 table."""
    base = _results_stem(meta, "_seeds")
    seeds = sorted(per_seed)
    budgets = [row["labels_per_class"] for row in per_seed[seeds[0]]]
    base.with_suffix(".json").write_text(json.dumps({"meta": meta, "seeds": per_seed}, indent=2) + "\n")
    lines = [
        f"# Semi-supervised table, profile `{meta['profile']}`: spread over seeds "
        + ", ".join(map(str, seeds)),
        "",
        f"Each cell: mean ± standard deviation of the test accuracy over {len(seeds)} runs (the labelled "
        "split and the training both seeded), and the range in brackets. Same setting as the seed-0 table; "
        f"{meta['device']}, torch {meta['torch']}, {meta['date']}.",
        "",
        "| labels per class | " + " | ".join(TITLES[c] for c in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for k in budgets:
        cells = []
        for c in columns:
            rows = [row for s in seeds for row in per_seed[s] if row["labels_per_class"] == k]
            values = torch.tensor([100 * row[c] for row in rows if c in row])
            cells.append(
                f"{values.mean():.1f} ± {values.std():.1f} ({values.min():.1f}–{values.max():.1f})"
                if len(values) > 1
                else "—"
            )
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    base.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return base.with_suffix(".md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--budgets", nargs="*", default=None, help="labels per class, e.g. 1 4 10 all")
    parser.add_argument("--methods", nargs="*", default=COLUMNS, choices=COLUMNS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--seeds",
        nargs="*",
        type=int,
        default=None,
        help="several seeds: seed 0 (if listed) writes the table, all of them the spread table (_seeds.md)",
    )
    args = parser.parse_args()
    budgets = (
        [_budget(b) for b in args.budgets]
        if args.budgets
        else list(semi_setting(args.profile).labels_per_class)
    )
    if args.seeds:
        per_seed = {}
        for seed in args.seeds:
            meta, per_seed[seed] = run(args.profile, budgets, args.methods, seed)
            if seed == 0:
                write(meta, per_seed[seed])
        print(write_spread(meta, per_seed).read_text())
        return
    meta, rows = run(args.profile, budgets, args.methods, args.seed, on_row=lambda m, r: write(m, r))
    print(write(meta, rows).read_text())


if __name__ == "__main__":
    main()
