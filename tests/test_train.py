"""The trainer: exact resume, atomic checkpoints, optimisers and schedule."""

import math
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from sslcookbook import distributed
from sslcookbook.methods import SimCLR
from sslcookbook.methods.base import SSLMethod
from sslcookbook.models import SmallCNN
from sslcookbook.optim import LARS, Schedule, build_optimizer, warmup_cosine
from sslcookbook.train import TrainConfig, fit, load_checkpoint, save_checkpoint


@dataclass
class TinyData:
    images: torch.Tensor
    labels: torch.Tensor


def tiny_data(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TinyData(torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=g), torch.arange(n) % 4)


def noisy_views(images, generator=None):
    x = images.float() / 255
    return [x + 0.1 * torch.randn(x.shape, generator=generator) for _ in range(2)]


def new_method(seed=0):
    torch.manual_seed(seed)
    return SimCLR(SmallCNN(in_channels=1, width=8), projector_hidden_dim=16, projector_dim=8)


def views_interrupted_at(call: int):
    """``noisy_views`` that raise KeyboardInterrupt (Ctrl-C) on their ``call``-th call, i.e. at that step."""
    calls = {"n": 0}

    def views(images, generator=None):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return noisy_views(images, generator)

    return views


CONFIG = TrainConfig(epochs=2, batch_size=16, optimizer="sgd", lr=0.05, warmup_epochs=0.5, seed=3)


def assert_same_parameters(a, b):
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0, msg=f"{name} differs")


def test_two_epochs_equal_one_plus_resume_plus_one(tmp_path):
    data = tiny_data()
    straight = new_method()
    h_straight = fit(straight, data, noisy_views, CONFIG, device="cpu", progress=False)

    # Stop at the first step of the second epoch (3 steps per epoch): the schedule stays the 2-epoch one.
    with pytest.raises(KeyboardInterrupt):
        fit(
            new_method(),
            data,
            views_interrupted_at(4),
            CONFIG,
            device="cpu",
            checkpoint_dir=tmp_path,
            progress=False,
        )
    state = load_checkpoint(tmp_path / "last.pt")
    assert (state["epoch"], state["step_in_epoch"], len(state["history"]["epochs"])) == (1, 0, 1)
    resumed = new_method(seed=123)  # a fresh process would start from other weights: the checkpoint wins
    h_resumed = fit(resumed, data, noisy_views, CONFIG, device="cpu", checkpoint_dir=tmp_path, progress=False)

    assert_same_parameters(straight, resumed)
    assert h_straight.losses == h_resumed.losses
    assert len(h_resumed.epochs) == 2


@pytest.mark.parametrize(
    "config",
    [
        CONFIG,
        CONFIG.replace(log_every=2),
        CONFIG.replace(optimizer="lars", lars_eta=0.02, lars_clip=True, final_weight_decay=0.4, log_every=1),
    ],
    ids=["sgd", "sgd-log-every-2", "lars-clip-wd-schedule"],
)
def test_ctrl_c_saves_a_checkpoint_and_resume_is_exact(tmp_path, config):
    data = tiny_data()
    straight = new_method()
    h_straight = fit(straight, data, noisy_views, config, device="cpu", progress=False)

    with pytest.raises(KeyboardInterrupt):
        fit(
            new_method(),
            data,
            views_interrupted_at(5),  # in the middle of the second epoch (3 steps per epoch)
            config,
            device="cpu",
            checkpoint_dir=tmp_path,
            progress=False,
        )
    state = load_checkpoint(tmp_path / "last.pt")
    assert (state["epoch"], state["step_in_epoch"]) == (1, 1)
    # Every step before the interrupt, synced: rows still waiting on the device are flushed first.
    assert [row["step"] for row in state["history"]["steps"]] == [0, 1, 2, 3]
    assert all(type(row["loss"]) is float for row in state["history"]["steps"])

    resumed = new_method(seed=7)
    h_resumed = fit(resumed, data, noisy_views, config, device="cpu", checkpoint_dir=tmp_path, progress=False)
    assert_same_parameters(straight, resumed)
    assert h_resumed.steps == h_straight.steps


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"method": {"w": torch.ones(2)}})

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"method": {"w": torch.zeros(2)}})
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["method"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


# The child trains CONFIG (2 epochs) with checkpoints; its second torch.save (after epoch 1) writes a
# few bytes, tells the parent, and blocks until the parent kills it with SIGKILL.
KILLED_WHILE_SAVING = """
import sys, time, torch
torch.set_num_threads(int(sys.argv[4]))  # the parent's: other thread counts sum in another order
sys.path.insert(0, sys.argv[1])
from test_train import CONFIG, new_method, noisy_views, tiny_data
from sslcookbook.train import fit

real_save, saves = torch.save, []

def save_then_hang(obj, f):
    saves.append(1)
    if len(saves) == 1:
        return real_save(obj, f)
    f.write(b"half a checkpoint")
    f.flush()
    open(sys.argv[3], "w").close()
    time.sleep(300)

torch.save = save_then_hang
fit(new_method(), tiny_data(), noisy_views, CONFIG, device="cpu", checkpoint_dir=sys.argv[2], progress=False)
"""


@pytest.mark.slow
def test_sigkill_while_writing_a_checkpoint_keeps_the_previous_one_and_resume_continues(tmp_path):
    ckpt_dir, writing = tmp_path / "ckpt", tmp_path / "writing"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILLED_WHILE_SAVING,
            str(Path(__file__).parent),
            str(ckpt_dir),
            str(writing),
            str(torch.get_num_threads()),
        ]
    )
    try:
        deadline = time.monotonic() + 120
        while not writing.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writing.exists(), f"the child never reached its second checkpoint (exit code {child.poll()})"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    partial = [p for p in ckpt_dir.iterdir() if p.name != "last.pt"]
    assert [p.read_bytes() for p in partial] == [b"half a checkpoint"]  # killed mid-write, beside last.pt
    state = load_checkpoint(ckpt_dir / "last.pt")
    assert (state["epoch"], state["step_in_epoch"], len(state["history"]["steps"])) == (1, 0, 3)

    resumed = new_method(seed=9)
    h_resumed = fit(
        resumed, tiny_data(), noisy_views, CONFIG, device="cpu", checkpoint_dir=ckpt_dir, progress=False
    )
    straight = new_method()
    h_straight = fit(straight, tiny_data(), noisy_views, CONFIG, device="cpu", progress=False)
    assert_same_parameters(straight, resumed)
    assert h_resumed.steps == h_straight.steps


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(bad)


def test_training_lowers_the_loss_and_records_history():
    data = tiny_data(n=64)
    history = fit(new_method(), data, noisy_views, CONFIG, epochs=6, lr=0.1, device="cpu", progress=False)
    assert len(history.steps) == 6 * 4
    assert history.epochs[-1]["loss"] < history.epochs[0]["loss"]
    assert {"epoch", "loss", "lr", "seconds"} <= set(history.epochs[0])


def test_weight_decay_follows_a_cosine_on_decayed_parameters_only(monkeypatch):
    """DINO's schedule: λ goes from weight_decay to final_weight_decay on a cosine; biases and norms
    stay at 0. Read from the optimizer at each step, not from the trainer's log."""
    seen = []
    original_step = torch.optim.AdamW.step

    def recording_step(self, *args, **kwargs):
        seen.append([group["weight_decay"] for group in self.param_groups])
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording_step)
    config = CONFIG.replace(optimizer="adamw", weight_decay=0.04, final_weight_decay=0.4, epochs=3)
    history = fit(new_method(), tiny_data(), noisy_views, config, device="cpu", progress=False)
    total = len(history.steps)
    expected = [0.4 + 0.5 * (0.04 - 0.4) * (1 + math.cos(math.pi * k / total)) for k in range(total)]
    assert [wd for wd, _ in seen] == pytest.approx(expected)
    assert [no_decay for _, no_decay in seen] == [0.0] * total
    assert [row["weight_decay"] for row in history.steps] == pytest.approx(expected)


def test_diverging_training_stops_with_a_clear_error():
    with pytest.raises((FloatingPointError, ValueError), match="lower the learning rate"):
        fit(new_method(), tiny_data(), noisy_views, CONFIG, lr=1e30, device="cpu", progress=False)


class SyncFreeMethod(SSLMethod):
    """Pulls two views' features together, with no input checks: every host sync is the trainer's.
    From step ``nan_from_step`` on, its loss is NaN."""

    def __init__(self, nan_from_step: int | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = SmallCNN(in_channels=1, width=4)
        self.nan_from_step, self.steps = nan_from_step, 0

    def training_step(self, views, labels=None):
        z1, z2 = self.backbone(views[0]), self.backbone(views[1])
        loss = (z1 - z2).pow(2).mean()
        if self.nan_from_step is not None and self.steps >= self.nan_from_step:
            loss = loss * math.nan
        self.steps += 1
        return {"loss": loss, "z_std": z1.detach().std()}


def test_step_rows_reach_the_host_only_every_log_every_steps(monkeypatch):
    """12 steps (4 epochs of 3), log_every=5: rows are synced at steps 4 and 9 and at the 4 epoch
    ends, one conversion each; nothing reads a tensor on the host in between."""
    reads = {"tolist": 0, "item": 0, "__bool__": 0, "__float__": 0}
    for name in reads:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            reads[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    history = fit(
        SyncFreeMethod(),
        tiny_data(),
        noisy_views,
        CONFIG,
        epochs=4,
        log_every=5,
        device="cpu",
        progress=False,
    )
    monkeypatch.undo()
    assert reads == {"tolist": 6, "item": 0, "__bool__": 0, "__float__": 0}
    assert [row["step"] for row in history.steps] == list(range(12))
    assert all(type(row["loss"]) is float and type(row["z_std"]) is float for row in history.steps)


def test_a_non_finite_loss_names_the_first_bad_step_and_leaves_the_last_good_checkpoint(tmp_path):
    """The loss turns NaN at step 7 (epoch 2); with log_every=25 the trainer sees it at the end of epoch
    2, names step 7, and writes no checkpoint of the diverged weights."""
    with pytest.raises(FloatingPointError, match=r"at step 7 \(epoch 2\): lower the learning rate"):
        fit(
            SyncFreeMethod(nan_from_step=7),
            tiny_data(),
            noisy_views,
            CONFIG,
            epochs=4,
            device="cpu",
            checkpoint_dir=tmp_path,
            progress=False,
        )
    state = load_checkpoint(tmp_path / "last.pt")
    assert (state["epoch"], state["step_in_epoch"]) == (2, 0)
    assert all(math.isfinite(row["loss"]) for row in state["history"]["steps"])


def test_knn_monitor_reports_every_n_epochs_and_does_not_change_training():
    data = tiny_data(n=64)
    config = CONFIG.replace(epochs=3, knn_every=2, knn_samples=16)
    watched, unwatched = new_method(), new_method()
    h_watched = fit(watched, data, noisy_views, config, device="cpu", progress=False)
    h_unwatched = fit(unwatched, data, noisy_views, config, knn_every=0, device="cpu", progress=False)
    assert_same_parameters(watched, unwatched)  # BatchNorm statistics included: embedding runs in eval mode
    assert h_watched.steps == h_unwatched.steps
    assert [("knn" in row) for row in h_watched.epochs] == [False, True, True]  # every 2 epochs and the last
    assert all(0.0 <= row["knn"] <= 1.0 for row in h_watched.epochs if "knn" in row)
    assert not any("knn" in row for row in h_unwatched.epochs)
    assert watched.training, "the monitor gives the method back in train mode"


def test_knn_monitor_on_held_out_data_survives_resume_and_shows_on_the_bar(tmp_path, capsys):
    data, held_out = tiny_data(n=64), tiny_data(n=40, seed=1)
    config = CONFIG.replace(knn_every=1, knn_samples=32)
    straight = new_method()
    h_straight = fit(straight, data, noisy_views, config, device="cpu", progress=False, monitor_data=held_out)
    with pytest.raises(KeyboardInterrupt):
        fit(
            new_method(),
            data,
            views_interrupted_at(6),  # inside the second epoch (4 steps per epoch)
            config,
            device="cpu",
            checkpoint_dir=tmp_path,
            progress=False,
            monitor_data=held_out,
        )
    resumed = new_method(seed=5)
    h_resumed = fit(
        resumed, data, noisy_views, config, device="cpu", checkpoint_dir=tmp_path, monitor_data=held_out
    )
    assert_same_parameters(straight, resumed)
    assert [row["knn"] for row in h_resumed.epochs] == [row["knn"] for row in h_straight.epochs]
    assert f"knn={h_resumed.epochs[-1]['knn']:.3f}" in capsys.readouterr().err


def _float_images(n=8, nan=False):
    images = torch.rand(n, 1, 8, 8)
    if nan:
        images[0, 0, 0, 0] = math.nan
    return TinyData(images, torch.zeros(n, dtype=torch.long))


@dataclass
class Unlabelled:
    images: torch.Tensor


BAD_INPUTS = {  # id: (data, overrides, number of processes, error, message)
    "fewer images than one batch": (
        tiny_data(n=8),
        {},
        1,
        ValueError,
        r"has 8 images, fewer than one batch \(batch_size=16\): set batch_size to at most 8",
    ),
    "batch not divisible by the world size": (
        tiny_data(),
        {},
        3,
        ValueError,
        r"batch_size=16 must be divisible by the number of processes \(3\): use a multiple of 3, e.g. 15",
    ),
    "NaN images": (_float_images(nan=True), {}, 1, TypeError, r"float32, and they hold NaN values"),
    "float images": (_float_images(), {}, 1, TypeError, r"needs uint8 images .* \(images \* 255\)"),
    "no .images": (object(), {}, 1, TypeError, r"no \.images: load one with sslcookbook\.data\.load"),
    "3-D images": (
        TinyData(torch.zeros(8, 8, 8, dtype=torch.uint8), torch.zeros(8)),
        {},
        1,
        ValueError,
        "N×C×H×W",
    ),
    "empty data set": (tiny_data(n=0), {}, 1, ValueError, r"the dataset is empty \(0 images\)"),
    "labels do not match": (
        TinyData(tiny_data().images, torch.zeros(3)),
        {},
        1,
        ValueError,
        r"one label per image \(48\)",
    ),
    "kNN monitor without labels": (
        Unlabelled(tiny_data().images),
        {"knn_every": 1},
        1,
        ValueError,
        r"kNN monitor \(knn_every\) needs class labels.*monitor_data=.*knn_every=0",
    ),
    "kNN monitor on unlabelled monitor_data": (
        tiny_data(),
        {"knn_every": 1, "monitor_data": Unlabelled(tiny_data().images)},
        1,
        ValueError,
        r"needs class labels, but monitor_data has none",
    ),
    "log_every 0": (tiny_data(), {"log_every": 0}, 1, ValueError, "log_every must be >= 1"),
    "negative final weight decay": (
        tiny_data(),
        {"final_weight_decay": -1.0},
        1,
        ValueError,
        "final_weight_decay must be >= 0",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_a_clear_error_naming_the_fix(case, monkeypatch):
    data, overrides, world, error, message = BAD_INPUTS[case]
    monkeypatch.setattr(distributed, "world_size", lambda: world)
    with pytest.raises(error, match=message):
        fit(new_method(), data, noisy_views, CONFIG, device="cpu", progress=False, **overrides)


def test_warmup_cosine_shape():
    lrs = [warmup_cosine(s, 100, 10, 1.0, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3)
    assert warmup_cosine(55, 100, 10, 1.0) == pytest.approx(0.5)


def test_lars_matches_hand_computed_step():
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))  # ||w|| = 5
    b = torch.nn.Parameter(torch.tensor([1.0]))
    opt = LARS(
        [{"params": [w], "weight_decay": 0.1}, {"params": [b], "weight_decay": 0.0, "lars_exclude": True}],
        lr=0.5,
        momentum=0.9,
        eta=0.01,
    )
    w.grad = torch.tensor([[0.0, 1.0]])
    b.grad = torch.tensor([2.0])
    opt.step()
    g = torch.tensor([[0.0, 1.0]]) + 0.1 * torch.tensor([[3.0, 4.0]])
    trust = 0.01 * 5 / g.norm()
    torch.testing.assert_close(w.data, torch.tensor([[3.0, 4.0]]) - 0.5 * trust * g)
    torch.testing.assert_close(b.data, torch.tensor([0.0]))


@pytest.mark.parametrize("lr", [2.0, 0.5, 0.001])
def test_lars_clip_caps_the_layer_rate_at_the_global_rate(lr):
    """LARC clipping: the step is min(η‖w‖/‖g‖, lr)·g (first step, so momentum plays no part)."""
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))
    opt = LARS([w], lr=lr, momentum=0.9, eta=0.02, clip=True)
    w.grad = torch.tensor([[0.0, 0.1]])
    opt.step()
    layer_rate = 0.02 * 5 / 0.1  # = 1.0: used as is under lr = 2, capped at lr = 0.5 and 0.001
    torch.testing.assert_close(w.data, torch.tensor([[3.0, 4.0 - min(layer_rate, lr) * 0.1]]))
    opt = build_optimizer(
        torch.nn.Linear(2, 2), "lars", lr=0.1, weight_decay=0.0, lars_eta=0.02, lars_clip=True
    )
    assert opt.param_groups[0]["eta"] == 0.02 and opt.param_groups[0]["clip"]
    with pytest.raises(ValueError, match="eta must be > 0"):
        LARS([w], lr=0.1, eta=0.0)


@pytest.mark.parametrize("name", ["sgd", "adamw", "lars"])
def test_optimizers_exclude_biases_and_norms_from_weight_decay(name):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    opt = build_optimizer(model, name, lr=0.1, weight_decay=0.5)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(model[0].weight)}
    assert math.isclose(opt.param_groups[0]["lr"], 0.1)


@pytest.mark.parametrize("name", ["sgd", "adamw", "lars"])
def test_fixed_lr_modules_keep_the_base_lr_while_the_rest_follows_warm_up_and_cosine(name):
    class WithPredictor(SSLMethod):
        def __init__(self):
            super().__init__()
            self.backbone = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
            self.predictor = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))

        def fixed_lr_modules(self):
            return [self.predictor]

    method = WithPredictor()
    opt = build_optimizer(method, name, lr=0.1, weight_decay=0.5)
    fixed = {id(p) for g in opt.param_groups if g.get("fixed_lr") for p in g["params"]}
    assert fixed == {id(p) for p in method.predictor.parameters()}
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(method.backbone[0].weight), id(method.predictor[0].weight)}
    schedule = Schedule(opt, total_steps=10, warmup_steps=2, lr=0.1)
    for step in range(10):
        logged = schedule.apply(step)
        expected = warmup_cosine(step, 10, 2, 0.1)
        assert logged == {"lr": expected}
        for group in opt.param_groups:
            assert group["lr"] == (0.1 if group.get("fixed_lr") else expected)
    # A resumed optimizer gets its groups (with the mark) from the checkpoint: still fixed.
    again = build_optimizer(WithPredictor(), name, lr=0.1, weight_decay=0.5)
    again.load_state_dict(opt.state_dict())
    Schedule(again, total_steps=10, warmup_steps=2, lr=0.1).apply(9)
    assert [g["lr"] for g in again.param_groups] == [warmup_cosine(9, 10, 2, 0.1)] * 2 + [0.1] * 2


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="choose one of sgd, adamw, lars"):
        build_optimizer(torch.nn.Linear(2, 2), "adam", lr=0.1, weight_decay=0.0)
