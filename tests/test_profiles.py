"""Profiles: cpu is the default everywhere (a GPU does not switch to a longer run), gpu and full download."""

import pytest
import torch

from sslcookbook import runner
from sslcookbook.profiles import PROFILES, active_profile, downloads_data, notebook_profile
from sslcookbook.recipes import RECIPES


def test_cpu_is_the_default_even_with_cuda(monkeypatch):
    monkeypatch.delenv("SSLCOOKBOOK_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert active_profile() == "cpu"
    monkeypatch.setenv("SSLCOOKBOOK_PROFILE", "gpu")
    assert active_profile() == "gpu" and active_profile("full") == "full"


def test_unknown_profile_names_the_choices(monkeypatch):
    monkeypatch.setenv("SSLCOOKBOOK_PROFILE", "laptop")
    with pytest.raises(ValueError, match="smoke, cpu, gpu, full"):
        active_profile()


def test_notebooks_refuse_the_full_profile_and_say_what_to_do(monkeypatch):
    monkeypatch.setenv("SSLCOOKBOOK_PROFILE", "full")
    with pytest.raises(ValueError, match="--profile full"):
        notebook_profile()
    assert notebook_profile("gpu") == "gpu"


def test_only_gpu_and_full_download():
    assert [p for p in PROFILES if downloads_data(p)] == ["gpu", "full"]


# The language-image recipes learn from captions, which CIFAR-10 does not have.
CAPTIONED_RECIPES = {"clip", "siglip"}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_has_a_classroom_and_a_published_setting(name):
    recipe = RECIPES[name]
    smoke, cpu, gpu, full = (recipe.setting(p) for p in PROFILES)
    if name in CAPTIONED_RECIPES:  # no captioned CIFAR: every profile trains on the generated pairs
        assert smoke.data == cpu.data == gpu.data == full.data == "shape_pairs"
        assert full.backbone == "resnet18_cifar" and gpu.backbone == "small_cnn" and gpu.train.epochs <= 40
        return
    assert smoke.data == cpu.data == "digits"  # offline
    assert gpu.data == full.data == "cifar10"
    # Methods that mask patch tokens (MAE, SimMIM, I-JEPA, data2vec) train a ViT-Tiny in every profile.
    vit = name in {"mae", "simmim", "ijepa", "data2vec"}
    assert full.train.epochs == 200 and full.backbone == ("vit_tiny" if vit else "resnet18_cifar")
    # The classroom run is a fraction of the published one: a small CNN, a subset, a short schedule.
    assert gpu.backbone == ("vit_tiny" if vit else "small_cnn")
    assert gpu.train_subset and gpu.train.epochs <= 20


@pytest.mark.parametrize("profile, expected", [("cpu", False), ("gpu", True), ("full", True)])
def test_the_runner_downloads_in_gpu_and_full(monkeypatch, tmp_path, profile, expected):
    seen = {}

    def fake_load_splits(name, train_subset=None, test_subset=None, download=False):
        seen["download"] = download
        raise RuntimeError("stop here")

    monkeypatch.setattr(runner, "load_splits", fake_load_splits)
    with pytest.raises(RuntimeError, match="stop here"):
        runner.run_recipe("simclr", profile=profile, out=tmp_path, progress=False)
    assert seen["download"] is expected
