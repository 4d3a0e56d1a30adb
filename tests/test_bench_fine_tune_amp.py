"""benchmarks/bench_fine_tune_amp.py: a smoke run pre-trains, fine-tunes in all four variants, checks that
rounds agree, and writes a table that names every variant."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_fine_tune_amp  # noqa: E402


def test_a_smoke_run_measures_every_variant():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # amp on a CPU without native bf16 warns
        result = bench_fine_tune_amp.main(
            ["--recipes", "mae", "--profile", "smoke", "--rounds", "2", "--steps", "3", "--no-write"]
        )
    (row,) = result["rows"]
    assert row["recipe"] == "mae" and row["steps"] == 3
    assert set(row["seconds"]) == set(row["val_accuracy"]) == set(bench_fine_tune_amp.VARIANTS)
    assert all(s > 0 for s in row["seconds"].values())
    assert all(0 <= a <= 1 for a in row["val_accuracy"].values())
    table = bench_fine_tune_amp.markdown(result["header"], result["rows"])
    assert all(variant in table for variant in bench_fine_tune_amp.VARIANTS) and "| mae | 3 |" in table
