"""The command line: list, run (results.json + figures), eval, and its errors."""

import json
import subprocess
import sys

import pytest

from sslcookbook.cli import main
from sslcookbook.recipes import RECIPES


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
    assert main(["eval", str(out / "checkpoints" / "last.pt"), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    trained = json.loads((out / "results.json").read_text())
    assert evaluated["epochs_trained"] == 2
    assert evaluated["probe"]["ssl"]["all"] == pytest.approx(trained["probe"]["ssl"]["all"], abs=1e-6)
