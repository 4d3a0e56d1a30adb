"""Every recipe, stopped by Ctrl-C mid-epoch and resumed in a fresh object, ends bit for bit where an
uninterrupted run ends: weights, buffers (queues, centres, BatchNorm statistics), schedule states, and
every value logged on the way.

The recipes run with their smoke settings, cut down to 2 epochs of 3 steps (batch 16) on 64 images;
the interruption comes from views that raise KeyboardInterrupt on their n-th call (the n-th step).
A recipe added to ``RECIPES`` is covered without touching this file.
"""

from __future__ import annotations

import pytest
import torch

from sslcookbook import data
from sslcookbook.recipes import RECIPES
from sslcookbook.train import fit, load_checkpoint

STEPS_PER_EPOCH = 3
# Options that draw random numbers or keep state of their own, resumed like the recipes: name -> (recipe,
# overrides of its smoke setting).
VARIANTS = {"moco_v2+shuffle_bn": ("moco_v2", {"method.bn_splits": 4})}
# (call of the views that raises, (epoch, step_in_epoch) saved in the checkpoint)
INTERRUPTIONS = {"epoch0": (2, (0, 1)), "epoch1": (5, (1, 1))}


def setup(name: str):
    recipe_name, overrides = VARIANTS.get(name, (name, {}))
    resolved = RECIPES[recipe_name].resolve("smoke", overrides)
    setting = resolved.setting
    images = data.load(setting.data, "train").subset(64, seed=0)
    config = setting.train.replace(epochs=2, batch_size=16, max_steps_per_epoch=STEPS_PER_EPOCH)
    return resolved, images, resolved.views(images.image_shape), config


def build(resolved, images, seed: int):
    torch.manual_seed(seed)
    return resolved.build(in_channels=images.image_shape[0])


def interrupted_at(views, call: int):
    """``views`` that raise KeyboardInterrupt (Ctrl-C) on their ``call``-th call, i.e. at that step."""
    calls = {"n": 0}

    def interrupted(images, generator=None):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return views(images, generator=generator)

    return interrupted


_uninterrupted: dict[str, tuple[dict, list[dict]]] = {}


def uninterrupted(name: str) -> tuple[dict, list[dict]]:
    """The final state dict and the logged steps of the run that nothing stops (once per recipe)."""
    if name not in _uninterrupted:
        recipe, images, views, config = setup(name)
        method = build(recipe, images, seed=0)
        history = fit(method, images, views, config, device="cpu", progress=False)
        _uninterrupted[name] = (method.state_dict(), history.steps)
    return _uninterrupted[name]


def assert_identical_state(expected: dict, got: dict) -> None:
    assert list(got) == list(expected)
    for key, value in expected.items():
        if isinstance(value, torch.Tensor):
            assert got[key].dtype == value.dtype, key
            torch.testing.assert_close(got[key], value, rtol=0, atol=0, msg=f"{key} differs")
        else:  # extra state, e.g. an EMA target's progress
            assert got[key] == value, f"{key}: {got[key]} != {value}"


@pytest.mark.parametrize("where", sorted(INTERRUPTIONS))
@pytest.mark.parametrize("name", sorted(RECIPES) + sorted(VARIANTS))
def test_ctrl_c_then_resume_in_a_fresh_method_equals_an_uninterrupted_run(name, where, tmp_path):
    recipe, images, views, config = setup(name)
    call, saved_at = INTERRUPTIONS[where]
    with pytest.raises(KeyboardInterrupt):
        fit(
            build(recipe, images, seed=0),
            images,
            interrupted_at(views, call),
            config,
            device="cpu",
            checkpoint_dir=tmp_path,
            progress=False,
        )
    state = load_checkpoint(tmp_path / "last.pt")
    assert (state["epoch"], state["step_in_epoch"]) == saved_at

    resumed = build(recipe, images, seed=1)  # other initial weights: everything must come from the checkpoint
    history = fit(resumed, images, views, config, device="cpu", checkpoint_dir=tmp_path, progress=False)

    expected_state, expected_steps = uninterrupted(name)
    assert_identical_state(expected_state, resumed.state_dict())
    # Every logged value too (loss, lr, the momentum and other schedules read before the first update).
    assert len(history.steps) == 2 * STEPS_PER_EPOCH
    for got, expected in zip(history.steps, expected_steps):
        assert got == expected
