"""The recipe table: every recipe × profile resolves to the settings in tests/data/recipe_settings.json.

The golden file was dumped from the recipes as they stood before the table rewrite (commit 6be1d68), with
the digits settings' view preset recorded as ``"digits"`` (what ``preset("simclr")`` gave on 1×8×8 images).
An intended change of a recipe must update the golden file in the same commit:
``python tests/test_recipes.py --write``, then review ``git diff tests/data/recipe_settings.json``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from sslcookbook.profiles import PROFILES
from sslcookbook.recipes import RECIPES
from sslcookbook.train import TrainConfig

GOLDEN = Path(__file__).parent / "data" / "recipe_settings.json"


def setting_record(name: str, profile: str) -> dict:
    """One recipe × profile as plain JSON values (tuples become lists, as in the golden file)."""
    recipe = RECIPES[name]
    s = recipe.setting(profile)
    record = {
        "data": s.data,
        "backbone": s.backbone,
        "backbone_kwargs": s.backbone_kwargs,
        "method": recipe.method.__name__,
        "method_kwargs": s.method_kwargs,
        "views": s.views,
        "view_strength": s.view_strength,
        "view_kwargs": s.view_kwargs,
        "train": dataclasses.asdict(s.train),
        "train_subset": s.train_subset,
        "test_subset": s.test_subset,
    }
    return json.loads(json.dumps(record))


def all_records() -> dict:
    return {
        f"{name}/{profile}": setting_record(name, profile) for name in sorted(RECIPES) for profile in PROFILES
    }


GOLDEN_RECORDS = json.loads(GOLDEN.read_text())
TRAIN_DEFAULTS = json.loads(json.dumps(dataclasses.asdict(TrainConfig())))


def test_the_golden_file_covers_every_recipe_and_profile():
    assert sorted(GOLDEN_RECORDS) == sorted(all_records())


@pytest.mark.parametrize("key", sorted(GOLDEN_RECORDS))
def test_recipe_setting_is_unchanged_field_by_field(key):
    name, profile = key.split("/")
    golden, record = GOLDEN_RECORDS[key], setting_record(name, profile)
    for field in golden:
        if field != "train":
            assert record[field] == golden[field], f"{key}: {field} changed"
    for field, value in golden["train"].items():
        assert record["train"][field] == value, f"{key}: train.{field} changed"
    # TrainConfig fields added after the golden file was written must keep their defaults here
    for field in set(record["train"]) - set(golden["train"]):
        assert record["train"][field] == TRAIN_DEFAULTS[field], f"{key}: new train.{field} is not its default"


@pytest.mark.parametrize("key", sorted(GOLDEN_RECORDS))
def test_recipe_views_build_for_its_data(key):
    """Each setting names a view preset that accepts its data's images (digits: 1×8×8, CIFAR: 3×32×32)."""
    name, profile = key.split("/")
    shape = (1, 8, 8) if RECIPES[name].setting(profile).data == "digits" else (3, 32, 32)
    views = RECIPES[name].views(shape, profile)
    assert views.num_views >= 2


if __name__ == "__main__" and "--write" in sys.argv:
    GOLDEN.write_text(json.dumps(all_records(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
