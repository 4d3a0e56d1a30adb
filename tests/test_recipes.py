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
from sslcookbook.recipes import RECIPES, get_recipe
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
        "fine_tune": s.fine_tune,
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


# The pretext tasks make their own transformation of one view (methods/pretext.py); CLIP and SigLIP read one.
ONE_VIEW_RECIPES = {"rotation", "jigsaw", "relative_position", "instance_discrimination", "clip", "siglip"}
ONE_VIEW_RECIPES |= {"mae", "simmim"}  # masked image modelling: one crop per image
ONE_VIEW_RECIPES |= {"ijepa", "data2vec"}  # joint-embedding prediction: one view, the masks are the task


@pytest.mark.parametrize("key", sorted(GOLDEN_RECORDS))
def test_recipe_views_build_for_its_data(key):
    """Each setting names a view preset that accepts its data's images (digits: 1×8×8, CIFAR: 3×32×32)."""
    name, profile = key.split("/")
    shape = (1, 8, 8) if RECIPES[name].setting(profile).data == "digits" else (3, 32, 32)
    views = RECIPES[name].views(shape, profile)
    assert views.num_views >= (1 if name in ONE_VIEW_RECIPES else 2)


def test_resolve_applies_overrides_and_leaves_the_table_alone():
    before = setting_record("dino", "cpu")
    resolved = get_recipe("dino").resolve(
        "cpu", {"train.lr": 0.01, "method.out_dim": 64, "views.num_views": 6, "views.strength": 0.5}
    )
    s = resolved.setting
    assert (s.train.lr, s.method_kwargs["out_dim"], s.view_kwargs, s.view_strength) == (
        0.01,
        64,
        {"num_views": 6},
        0.5,
    )
    assert s.train.epochs == get_recipe("dino").setting("cpu").train.epochs
    assert setting_record("dino", "cpu") == before


def test_a_new_backbone_or_preset_drops_the_recipes_arguments_for_the_old_one():
    s = get_recipe("dino").resolve("smoke", {"backbone": "resnet18_cifar", "views": "simclr"}).setting
    assert (s.backbone, s.backbone_kwargs, s.views, s.view_kwargs) == ("resnet18_cifar", {}, "simclr", {})
    s = get_recipe("dino").resolve("smoke", {"backbone": "small_cnn", "views": "digits"}).setting
    assert (s.backbone_kwargs, s.view_kwargs) == ({"width": 16}, {"num_views": 4})  # same names: kept


def test_keys_follow_the_backbone_and_preset_chosen():
    recipe = get_recipe("simclr")
    with pytest.raises(KeyError, match="views.crop_scale"):
        recipe.resolve("smoke", {"views.crop_scale": (0.2, 1.0)})  # digits_views has no crop_scale
    s = recipe.resolve("smoke", {"views": "simclr", "views.crop_scale": (0.2, 1.0)}).setting
    assert s.view_kwargs == {"crop_scale": (0.2, 1.0)}


def test_fine_tune_protocol_overrides_and_their_errors():
    recipe = get_recipe("simclr")
    s = recipe.resolve("cpu", {"fine_tune.steps": 50, "fine_tune.views": "digits"}).setting
    assert s.fine_tune == {"steps": 50, "views": "digits"} and recipe.setting("cpu").fine_tune == {}
    shown = recipe.resolve("cpu", {"fine_tune.steps": 50}).to_dict()["fine_tune"]
    assert shown == {"steps": 50, "views": None, "view_strength": 1.0} | dict.fromkeys(
        ("lr", "weight_decay", "layer_decay")
    )
    optimizer = {"lr": 1e-3, "weight_decay": 0, "layer_decay": 1}
    tuned = recipe.resolve("cpu", {f"fine_tune.{k}": v for k, v in optimizer.items()})
    assert tuned.fine_tune_protocol((1, 8, 8)).optimizer == optimizer
    for key, bad in (("lr", 0), ("weight_decay", -0.1), ("layer_decay", 1.5), ("layer_decay", 0)):
        with pytest.raises(ValueError, match=f"fine_tune.{key} must be"):
            recipe.resolve("cpu", {f"fine_tune.{key}": bad})
    with pytest.raises(ValueError, match="fine_tune.steps must be a positive int"):
        recipe.resolve("cpu", {"fine_tune.steps": 0})
    with pytest.raises(ValueError, match="unknown fine_tune.views preset 'digit'"):
        recipe.resolve("cpu", {"fine_tune.views": "digit"})
    with pytest.raises(ValueError, match="view_strength must be a number >= 0"):
        recipe.resolve("cpu", {"fine_tune.view_strength": -1})
    with pytest.raises(TypeError, match="fine_tune.view_strength expects a number"):
        recipe.resolve("cpu", {"fine_tune.view_strength": "strong"})
    with pytest.raises(KeyError, match="fine_tune.step"):
        recipe.resolve("cpu", {"fine_tune.step": 5})


if __name__ == "__main__" and "--write" in sys.argv:
    GOLDEN.write_text(json.dumps(all_records(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
