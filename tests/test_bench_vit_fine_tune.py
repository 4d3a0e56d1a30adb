"""benchmarks/vit_fine_tune_sweep.py: variants parse like --set; a one-epoch smoke sweep writes its tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import vit_fine_tune_sweep  # noqa: E402


def test_a_variant_is_a_recipe_with_set_style_changes():
    assert vit_fine_tune_sweep.parse_variant("mae") == ("mae", {})
    assert vit_fine_tune_sweep.parse_variant("mae:train.epochs=200,method.mask_ratio=0.5") == (
        "mae",
        {"train.epochs": 200, "method.mask_ratio": 0.5},
    )
    with pytest.raises(ValueError, match="KEY=VALUE"):
        vit_fine_tune_sweep.parse_variant("mae:epochs")


def test_a_smoke_sweep_scores_each_variant_against_one_scratch_run_per_architecture(tmp_path):
    out = tmp_path / "sweep"
    variants = ["mae:train.epochs=1", "simmim:train.epochs=1"]  # both 2-block ViTs: one from-scratch baseline
    assert vit_fine_tune_sweep.main([*variants, "--profile", "smoke", "--draws", "2", "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert [row["variant"] for row in result["variants"]] == variants
    first, second = result["variants"]
    assert len(first["fine_tune"]["draws"]) == 2 and first["scratch"] == second["scratch"]
    assert 0.0 <= first["probe"]["10"] <= 1.0 and result["raw_pixels"]["probe"]["10"] > 0.5
    table = out.with_suffix(".md").read_text()
    assert "| `mae:train.epochs=1` |" in table and result["device"] in table
    assert "python vit_fine_tune_sweep.py mae:train.epochs=1 simmim:train.epochs=1 --profile smoke" in table
