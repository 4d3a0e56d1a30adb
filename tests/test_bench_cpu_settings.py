"""benchmarks/bench_cpu_settings.py: the recipe-vs-fast comparison, its overrides and its table."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_cpu_settings  # noqa: E402


def test_view_forward_is_set_only_for_two_view_methods():
    assert bench_cpu_settings.fast_overrides("simclr")["train.view_forward"] == "auto"
    assert "train.view_forward" not in bench_cpu_settings.fast_overrides("dino")  # DINO: its own multi-crop
    assert bench_cpu_settings.fast_overrides("dino")["train.channels_last"] is True


def test_each_recipe_runs_with_its_settings_then_the_fast_ones(monkeypatch, tmp_path):
    calls = []

    def fake_run_recipe(recipe, profile, out, overrides, **_):
        calls.append((recipe, profile, dict(overrides)))
        seconds = 2.0 if overrides else 3.0
        return {"seconds": seconds, "probe": {"ssl": {"1": 0.5, "all": 0.9}}, "knn": {"ssl": 0.8}}

    monkeypatch.setattr(bench_cpu_settings, "run_recipe", fake_run_recipe)
    out = tmp_path / "cpu_settings"
    argv = ["simclr", "--profile", "smoke", "--runs", str(tmp_path), "--out", str(out)]
    assert bench_cpu_settings.main(argv) == 0
    assert [c[:2] for c in calls] == [("simclr", "smoke")] * 4  # two warm-up runs, then the two measured
    assert calls[2][2] == {} and calls[3][2] == bench_cpu_settings.fast_overrides("simclr")
    table = out.with_suffix(".md").read_text()
    assert "| simclr | recipe | 3.0 s | 1.00× |" in table and "| simclr | fast | 2.0 s | 1.50× |" in table


def test_the_fp32_variant_is_the_fast_settings_with_amp_off(monkeypatch, tmp_path):
    fast, fp32 = (
        bench_cpu_settings.fast_overrides("simclr"),
        bench_cpu_settings.VARIANTS["fast fp32"]("simclr"),
    )
    assert fp32 == {**fast, "train.amp": False}
    calls = []

    def fake_run_recipe(recipe, profile, out, overrides, **_):
        calls.append(dict(overrides))
        return {
            "seconds": 4.0 if not overrides else 2.0,
            "probe": {"ssl": {"1": 0.5, "all": 0.9}},
            "knn": {"ssl": 0.8},
        }

    monkeypatch.setattr(bench_cpu_settings, "run_recipe", fake_run_recipe)
    out = tmp_path / "cpu_settings"
    argv = ["byol", "--variants", "recipe", "fast fp32", "--runs", str(tmp_path), "--out", str(out)]
    assert bench_cpu_settings.main(argv) == 0
    assert calls[2:] == [{}, bench_cpu_settings.VARIANTS["fast fp32"]("byol")]
    assert "| byol | fast fp32 | 2.0 s | 2.00× |" in out.with_suffix(".md").read_text()
