"""benchmarks/bench_train.py: the library half of the training benchmark runs on tiny generated data."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_train  # noqa: E402


@pytest.mark.parametrize("recipe", ["simclr", "byol", "dino"])
def test_library_pipeline_runs_two_steps_and_stamps_them(recipe):
    train = bench_train.load_split("synthetic:64", "train", cache="/nonexistent")
    fast = bench_train.fast_settings(torch.device("cpu"), compile_backbone=False)
    settings = {} if recipe == "byol" else fast  # byol: the default path; the others: the fast one
    backbone, done, stamps, loss = bench_train.run_library(
        recipe, train, steps=2, budget_s=None, device=torch.device("cpu"), settings=settings, batch=16
    )
    assert done == 2 and len(stamps) == 3 and stamps == sorted(stamps)
    assert loss is not None and torch.isfinite(torch.tensor(loss))
    assert backbone(torch.rand(2, 3, 32, 32)).shape == (2, 128)


def test_budget_stops_the_run_between_steps():
    train = bench_train.load_split("synthetic:64", "train", cache="/nonexistent")
    _, done, stamps, _ = bench_train.run_library(
        "simclr", train, steps=50, budget_s=0.0, device=torch.device("cpu"), settings={}, batch=16
    )
    assert done == 1 and len(stamps) == 2  # the first step always runs; the budget is checked before each


def test_results_tables_name_the_device_the_rows_and_the_baselines():
    args = bench_train.argparse.Namespace(device="cpu", data="synthetic:64", budget_s=300.0, steps=None)
    head = bench_train.header(args)
    row = {"recipe": "simclr", "pipeline": "lib", "images_per_s": 100.0, "steady_images_per_s": 101.0,
           "steps": 10, "epochs": 0.5, "knn_top1": 0.5, "peak_rss_mb": 900.0, "load_before": "1 1 1",
           "load_after": "2 2 2"}
    text = bench_train.markdown(head, [row], {"random_init": 0.4, "raw_pixels": 0.3}, ["a note"])
    assert head["versions"]["torch"] in text and "| simclr | lib | 100.0 |" in text
    assert "random-init SmallCNN 40.0%" in text and "raw pixels 30.0%" in text and "- a note" in text
    assert bench_train.lightly_available() is None or "lightly" in bench_train.lightly_available()
