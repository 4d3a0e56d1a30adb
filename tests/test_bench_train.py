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


def test_the_full_recipe_time_is_extrapolated_from_the_first_and_the_steady_steps():
    stamps = [0.0, 5.0, 5.1, 5.2, 5.3, 5.4]  # a 5 s first step (compilation), then 0.1 s steps
    got = bench_train.extrapolate(stamps, batch=512)
    assert got["first_step_s"] == 5.0 and got["step_ms"] == 100.0 and got["steps_per_s"] == 10.0
    assert got["full_run_steps"] == 200 * (50_000 // 512)  # fit drops the last partial batch
    assert got["full_run_min"] == round((5.0 + 19_400 * 0.1) / 60, 1)


def test_a_cpu_run_reports_step_throughput_and_the_200_epoch_time(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(bench_train, "BATCH", 16)
    args = bench_train.argparse.Namespace(
        device="cpu", data="synthetic:64", cache="/nonexistent", pipeline="lib", recipe="simclr",
        compile=False, compile_mode=None, budget_s=None, steps=2, knn=False, workers=0,
    )
    row = bench_train.worker(args)  # the run a subprocess of main() makes, here in-process
    assert row["steps"] == 2 and row["step_ms"] > 0 and row["full_run_steps"] == 200 * (50_000 // 16)
    line = bench_train.run_line(row)
    assert line.startswith("simclr / lib: ") and "ms a step" in line and "200 CIFAR-10 epochs" in line
    # main() prints that line as each run ends, before the next one starts, and the table repeats it
    finished = {**row, "load_before": "1 1 1", "load_after": "1 1 1"}  # what run_worker_process adds
    monkeypatch.setattr(bench_train, "run_worker_process", lambda _args, recipe, pipeline: finished)
    out = tmp_path / "train_cpu"
    argv = ["synthetic:64", "--steps", "3", "--no-knn", "--pipelines", "lib", "--batch", "16"]
    argv += ["--out", str(out)]
    assert bench_train.main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(line + "\n") and f"- {line}" in out.with_suffix(".md").read_text()


def test_fast_settings_pass_the_compile_mode_only_with_compile():
    cpu = torch.device("cpu")
    assert bench_train.fast_settings(cpu, True, "reduce-overhead")["compile_mode"] == "reduce-overhead"
    assert "compile_mode" not in bench_train.fast_settings(cpu, True)
    assert "compile" not in bench_train.fast_settings(cpu, False, "max-autotune")


def test_the_plan_uses_the_sustained_rate_slow_steps_included():
    # later half: 0.1 s steps and one 0.5 s stall; the median step (rate_of) is 0.1 s, the mean 0.2 s
    stamps = [0.0, 1.0, 1.1, 1.2, 1.3, 1.8, 1.9]
    assert bench_train.rate_of(stamps) == pytest.approx(10.0)
    assert bench_train.sustained_rate(stamps) == pytest.approx(3 / 0.7)


def test_a_budgeted_run_calibrates_on_a_slice_of_the_budget(monkeypatch):
    calls = []

    def fake_run_library(recipe, train, steps, budget_s, device, settings, seed=0, batch=None):
        calls.append((steps, budget_s))
        stamps = [0.1 * i for i in range(11 if budget_s and budget_s < 1 else 31)]  # 10 steps/s
        return torch.nn.Identity(), len(stamps) - 1, stamps, 1.0

    monkeypatch.setattr(bench_train, "run_library", fake_run_library)
    args = bench_train.argparse.Namespace(
        device="cpu", data="synthetic:64", cache="/nonexistent", pipeline="lib", recipe="simclr",
        compile=False, compile_mode=None, budget_s=5.0, steps=None, knn=False, workers=0,
    )
    row = bench_train.worker(args)
    assert calls[0][1] == pytest.approx(0.5)  # a tenth of the budget
    assert calls[1] == (50, 5.0) and row["planned_steps"] == 50  # 5 s at the calibrated 10 steps/s


@pytest.mark.parametrize("recipe", ["simclr", "byol"])
def test_the_view_size_knob_shrinks_the_library_views_only(monkeypatch, recipe):
    monkeypatch.setitem(bench_train.LIB_RECIPE, "view_size", 24)
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    views = bench_train.library_views(recipe)(images, generator=torch.Generator().manual_seed(0))
    assert [tuple(v.shape) for v in views] == [(4, 3, 24, 24)] * 2
    monkeypatch.setitem(bench_train.LIB_RECIPE, "view_size", 32)
    assert bench_train.library_views(recipe)(images)[0].shape[-1] == 32


def test_the_view_size_knob_scales_dinos_global_and_local_crops(monkeypatch):
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    views = bench_train.library_views("dino")(images)
    assert [v.shape[-1] for v in views] == [32, 32] + [bench_train.LOCAL_SIZE] * bench_train.NUM_LOCAL
    monkeypatch.setitem(bench_train.LIB_RECIPE, "view_size", 24)
    views = bench_train.library_views("dino")(images)
    assert [v.shape[-1] for v in views] == [24, 24] + [12] * bench_train.NUM_LOCAL
