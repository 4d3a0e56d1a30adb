"""The command line: list, show, run (--set, config.json, results.json + figures), eval, export, errors."""

import dataclasses
import json
import subprocess
import sys
import warnings

import pytest
import torch

from sslcookbook import data, runner
from sslcookbook.cli import main, parse_overrides
from sslcookbook.models import load_backbone
from sslcookbook.models.export import read_metadata
from sslcookbook.profiles import FINE_TUNE_STEPS, PROFILES
from sslcookbook.recipes import RECIPES, get_recipe
from sslcookbook.runner import load_trained_method, run_recipe


def test_list_shows_every_recipe(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in RECIPES:
        assert name in out


def test_unknown_recipe_is_a_clear_error(capsys, tmp_path):
    assert main(["run", "simclrr", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown recipe 'simclrr'" in err and "simclr" in err


def test_unknown_data_is_a_clear_error(capsys, tmp_path):
    assert main(["run", "simclr", "--data", "imagenet-22k", "--out", str(tmp_path)]) == 2
    assert "digits" in capsys.readouterr().err  # the message lists the known data sets


def test_eval_of_a_missing_checkpoint(capsys, tmp_path):
    assert main(["eval", str(tmp_path / "nope.pt")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def show(capsys, *args) -> dict:
    assert main(["show", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_show_lists_every_knob_of_the_setting(capsys):
    shown = show(capsys, "simclr", "--profile", "smoke")
    setting = get_recipe("simclr").setting("smoke")
    assert (shown["recipe"], shown["profile"], shown["data"]) == ("simclr", "smoke", "digits")
    assert shown["backbone"] == {"name": "small_cnn", "arguments": {"width": 16, "feature_dim": None}}
    assert shown["method"]["name"] == "SimCLR"
    # the recipe's arguments and the defaults it leaves alone
    assert shown["method"]["arguments"]["temperature"] == setting.method_kwargs["temperature"]
    assert shown["method"]["arguments"]["gather_distributed"] is True
    assert shown["views"] == {
        "preset": "digits",
        "arguments": {"strength": 1.0, "size": None, "num_views": 2},
    }
    assert shown["train"] == json.loads(json.dumps(dataclasses.asdict(setting.train)))


def test_show_applies_set_overrides(capsys):
    shown = show(
        capsys,
        "simsiam",
        "--profile",
        "full",
        "--set",
        "train.lr=0.01",
        "--set",
        "train.amp=False",
        "--set",
        "method.use_predictor=False",
        "--set",
        "views.crop_scale=(0.5, 1.0)",
        "--set",
        "data=folder:/photos",
        "--set",
        "backbone=small_cnn",
        "--set",
        "backbone.width=8",
    )
    assert shown["train"]["lr"] == 0.01 and shown["train"]["amp"] is False
    assert shown["train"]["epochs"] == get_recipe("simsiam").setting("full").train.epochs  # the rest stays
    assert shown["method"]["arguments"]["use_predictor"] is False
    assert shown["views"]["arguments"]["crop_scale"] == [0.5, 1.0]
    assert shown["views"]["arguments"]["color_strength"] == 0.5  # the recipe's, kept
    assert shown["data"] == "folder:/photos"
    assert shown["backbone"] == {"name": "small_cnn", "arguments": {"width": 8, "feature_dim": None}}


def test_set_values_are_python_literals_or_strings():
    assert parse_overrides(
        ["train.lr=1e-3", "train.amp=None", "views.crop_scale=(0.2,1)", "data=folder:/x"]
    ) == {
        "train.lr": 1e-3,
        "train.amp": None,
        "views.crop_scale": (0.2, 1),
        "data": "folder:/x",
    }
    assert parse_overrides(["train.optimizer=adamw", "method.backend='torch'"]) == {
        "train.optimizer": "adamw",
        "method.backend": "torch",
    }


@pytest.mark.parametrize("command", ["show", "run"])
def test_unknown_set_key_lists_the_valid_keys(capsys, tmp_path, command):
    args = [command, "moco_v3", "--set", "train.epoch=3"] + (
        ["--out", str(tmp_path)] if command == "run" else []
    )
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "unknown setting 'train.epoch'" in err and "did you mean 'train.epochs'" in err
    for key in (
        "data",
        "backbone.width",
        "method.base_momentum",
        "views.num_views",
        "train.lr",
        "train.seed",
    ):
        assert key in err
    assert not (tmp_path / "config.json").exists()  # nothing ran


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochs=ten", "train.epochs expects an integer, got 'ten'"),
        ("method.temperature=True", "method.temperature expects a number"),
        ("train.lr", "--set expects KEY=VALUE"),
        ("backbone=vit", "unknown backbone 'vit'"),
        ("views=simclr2", "unknown view preset 'simclr2'"),
    ],
)
def test_bad_set_values_are_clear_errors(capsys, override, message):
    assert main(["show", "simclr", "--set", override]) == 2
    assert message in capsys.readouterr().err


def test_a_flag_and_a_set_that_disagree_are_an_error(capsys, tmp_path):
    assert main(["run", "simclr", "--epochs", "2", "--set", "train.epochs=3", "--out", str(tmp_path)]) == 2
    assert "train.epochs is given twice (2 and 3)" in capsys.readouterr().err


SMOKE_SETS = ["backbone.width=8", "method.projector_dim=32", "train.batch_size=64"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sslcookbook",
            "run",
            "simclr",
            "--profile",
            "smoke",
            "--epochs",
            "2",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--no-progress",
            *[arg for key in SMOKE_SETS for arg in ("--set", key)],
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def test_run_writes_results_and_figures(smoke_run):
    out, stdout = smoke_run
    results = json.loads((out / "results.json").read_text())
    assert {"recipe", "data", "profile", "epochs", "seconds", "probe", "knn"} <= set(results)
    assert (results["recipe"], results["data"], results["profile"], results["epochs"]) == (
        "simclr",
        "digits",
        "smoke",
        2,
    )
    for encoder in ("ssl", "raw", "random"):
        assert set(results["probe"][encoder]) == {"1", "10", "all"}
        assert 0.0 <= results["knn"][encoder] <= 1.0
    # raw pixels on digits are a strong baseline: a broken probe would not reach this
    assert results["probe"]["raw"]["all"] > 0.9
    for figure in ("loss.png", "embedding.png", "neighbours.png", "label_efficiency.png"):
        assert (out / figure).stat().st_size > 1000
    assert "probe@1" in stdout


def test_eval_rebuilds_the_method_from_the_checkpoint(smoke_run, capsys):
    out, _ = smoke_run
    assert main(["eval", str(out / "checkpoints" / "last.pt"), "--json", "--no-fine-tune"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    trained = json.loads((out / "results.json").read_text())
    assert evaluated["epochs_trained"] == 2
    assert evaluated["probe"]["ssl"]["all"] == pytest.approx(trained["probe"]["ssl"]["all"], abs=1e-6)


def test_run_writes_the_setting_show_prints(smoke_run, capsys):
    out, _ = smoke_run
    sets = [arg for key in SMOKE_SETS for arg in ("--set", key)]
    shown = show(capsys, "simclr", "--profile", "smoke", "--set", "train.epochs=2", *sets)
    config = json.loads((out / "config.json").read_text())
    assert config == shown
    assert config["backbone"]["arguments"]["width"] == 8 and config["train"]["batch_size"] == 64


def test_export_writes_a_backbone_that_loads_with_identical_features(smoke_run, tmp_path, capsys):
    out, _ = smoke_run
    checkpoint, target = out / "checkpoints" / "last.pt", tmp_path / "simclr.safetensors"
    assert main(["export", str(checkpoint), str(target)]) == 0
    assert "load_backbone" in capsys.readouterr().out
    loaded = load_backbone(target)
    method, _, _ = load_trained_method(checkpoint)
    images = data.load("digits", "test").images[:64].float() / 255
    with torch.no_grad():
        assert torch.equal(loaded(images), method.backbone.eval()(images))
    meta = read_metadata(target)
    assert json.loads(meta["backbone_kwargs"]) == {"width": 8}  # the --set override, not the recipe's 16
    assert (meta["recipe"], meta["profile"], meta["data"], meta["epochs_trained"]) == (
        "simclr",
        "smoke",
        "digits",
        "2",
    )


def test_export_of_a_missing_checkpoint(capsys, tmp_path):
    assert main(["export", str(tmp_path / "nope.pt"), str(tmp_path / "out.safetensors")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_run_reports_fine_tuning_beside_the_probe(smoke_run):
    out, stdout = smoke_run
    results = json.loads((out / "results.json").read_text())
    assert results["fine_tune_steps"] == FINE_TUNE_STEPS["smoke"]
    assert set(results["fine_tune"]) == {"ssl", "random"}  # raw pixels have no network to fine-tune
    for encoder in ("ssl", "random"):
        assert set(results["fine_tune"][encoder]) == {"1", "10", "all"}
        assert all(0.0 <= acc <= 1.0 for acc in results["fine_tune"][encoder].values())
    assert "ft@all" in stdout and "from scratch" in stdout


def test_eval_fine_tunes_as_the_run_did_unless_told_not_to(smoke_run, capsys):
    out, _ = smoke_run
    checkpoint = str(out / "checkpoints" / "last.pt")
    assert main(["eval", checkpoint, "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["fine_tune"] == json.loads((out / "results.json").read_text())["fine_tune"]  # seeded
    assert main(["eval", checkpoint, "--no-fine-tune"]) == 0
    table = capsys.readouterr().out
    assert "probe@1" in table and "ft@" not in table


def _record_fine_tuning(monkeypatch) -> dict:
    """runner.fine_tune and runner.supervised_baseline replaced by recorders of their arguments."""
    calls = {}

    def recorder(name):
        def record(backbone, *splits, steps, views, device, amp, **optimizer):
            calls[name] = (backbone, steps, views, [len(split) for split in splits], optimizer, amp)
            return {"1": 0.5, "10": 0.6, "all": 0.7}

        return record

    monkeypatch.setattr(runner, "fine_tune", recorder("ssl"))
    monkeypatch.setattr(runner, "supervised_baseline", recorder("random"))
    return calls


def test_the_runner_fine_tunes_the_ssl_weights_and_trains_the_same_network_from_scratch(monkeypatch):
    calls = _record_fine_tuning(monkeypatch)
    train = data.load("digits", "train").subset(200, seed=0)
    test = data.load("digits", "test").subset(30, seed=0)
    method = get_recipe("simclr").resolve("smoke", {"backbone.width": 8}).build(in_channels=1)
    protocol = get_recipe("simclr").resolve("cpu").fine_tune_protocol(train.image_shape)
    assert protocol == (FINE_TUNE_STEPS["cpu"], None, None, {})  # the default: the profile's steps, no views
    results = runner._evaluate(method, train, test, "cpu", protocol)
    assert results["fine_tune_steps"] == FINE_TUNE_STEPS["cpu"] and results["fine_tune_views"] is None
    for name in ("ssl", "random"):
        backbone, steps, views, sizes, optimizer, amp = calls[name]
        assert backbone is method.backbone and steps == FINE_TUNE_STEPS["cpu"] and views is None
        assert optimizer == {}  # fine_tune's and supervised_baseline's own lr, weight decay, layer decay
        assert sizes == [200, 200, 30, 30] and amp is False
    assert "fine_tune" not in runner._evaluate(method, train, test, "cpu", None)
    text = runner.format_results(results)
    assert "70.0%" in text and text.splitlines()[2].split()[-3:] == ["—", "—", "—"]  # the raw row

    # A recipe's own protocol (steps and views) reaches both trainings, the same for each
    resolved = get_recipe("simclr").resolve(
        "cpu", {"fine_tune.steps": 7, "fine_tune.views": "digits", "fine_tune.view_strength": 0.5}
    )
    results = runner._evaluate(method, train, test, "cpu", resolved.fine_tune_protocol(train.image_shape))
    assert calls["ssl"][1:3] == calls["random"][1:3] and calls["ssl"][1] == 7
    assert callable(calls["ssl"][2]) and results["fine_tune_views"] == "digits views at strength 0.5"
    assert "7 steps per labelled draw, digits views at strength 0.5" in runner.format_results(results)

    # Its optimiser settings reach the fine-tuned network only: the from-scratch one keeps its own
    resolved = get_recipe("simclr").resolve("cpu", {"fine_tune.lr": 2e-3, "fine_tune.layer_decay": 1.0})
    results = runner._evaluate(method, train, test, "cpu", resolved.fine_tune_protocol(train.image_shape))
    assert calls["ssl"][4] == {"lr": 2e-3, "layer_decay": 1.0} and calls["random"][4] == {}
    assert results["fine_tune_views"] == "lr 0.002, layer decay 1"
    runner._evaluate(method, train, test, "cpu", protocol, amp=True)
    assert calls["ssl"][5] is True and calls["random"][5] is True


@pytest.mark.parametrize("amp", [True, None])
def test_run_recipe_fine_tunes_under_autocast_only_when_train_amp_is_set(amp, monkeypatch, tmp_path):
    # amp left at None (bf16 on CUDA for pre-training) keeps the report's fine-tuning in fp32, as before
    calls = _record_fine_tuning(monkeypatch)
    overrides = {"backbone.width": 8, "fine_tune.steps": 1, **({} if amp is None else {"train.amp": amp})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # amp on a CPU without native bf16 warns
        run_recipe("simclr", profile="smoke", out=tmp_path, progress=False, figures=False,
                   overrides=overrides)
    assert calls["ssl"][5] is (amp is True) and calls["random"][5] is (amp is True)


def test_fine_tuning_budgets_are_set_for_every_profile_and_small_in_smoke():
    assert set(FINE_TUNE_STEPS) == set(PROFILES)
    assert FINE_TUNE_STEPS["smoke"] <= 10 < FINE_TUNE_STEPS["cpu"]
