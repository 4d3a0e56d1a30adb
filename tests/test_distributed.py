"""Distributed correctness on the CPU: 2 gloo processes on B/2 each == 1 process on B.

Each rank computes its loss on its half of the batch with ``gather_distributed=True``; gradients are
then averaged over ranks, as DDP does. The loss (averaged over ranks) and every encoder gradient must
equal the single-process values on the whole batch. The encoders here have no BatchNorm: with BN,
per-rank batch statistics differ from the global ones unless SyncBN is used.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from gloo_group import free_port, run_on_ranks
from torch import nn

from sslcookbook import distributed
from sslcookbook.losses import nt_xent
from sslcookbook.methods import MoCoV3, SimCLR
from sslcookbook.train import TrainConfig, fit

B, D_IN, WORLD = 8, 12, 2


class FlatEncoder(nn.Module):
    feature_dim = 16

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(D_IN, 16), nn.Tanh())

    def forward(self, x):
        return self.net(x)


def make_batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(B, 1, 3, 4, generator=g, dtype=torch.float64), torch.randn(
        B, 1, 3, 4, generator=g, dtype=torch.float64
    )


def simclr_loss(encoder, v1, v2, gather):
    return nt_xent(encoder(v1), encoder(v2), temperature=0.3, gather_distributed=gather)


def make_moco():
    torch.manual_seed(0)
    return MoCoV3(
        FlatEncoder(), 32, 8, 32, temperature=0.2, batch_norm=False, gather_distributed=True
    ).double()


def moco_loss(method, v1, v2, gather):
    method.gather_distributed = gather
    return method.training_step([v1, v2])["loss"]


def make_encoder():
    torch.manual_seed(0)
    return FlatEncoder().double()


CASES = {"nt_xent": (make_encoder, simclr_loss), "moco_v3": (make_moco, moco_loss)}


def loss_and_grads(case: str, v1, v2, gather: bool):
    build, loss_fn = CASES[case]
    model = build()
    loss = loss_fn(model, v1, v2, gather)
    loss.backward()
    encoder = model.backbone if hasattr(model, "backbone") else model
    return loss.detach(), [p.grad.clone() for p in encoder.parameters()]


def _worker(rank: int, case: str, out: str):
    v1, v2 = make_batch()
    half = slice(rank * B // WORLD, (rank + 1) * B // WORLD)
    loss, grads = loss_and_grads(case, v1[half], v2[half], gather=True)
    dist.all_reduce(loss)
    for g in grads:
        dist.all_reduce(g)
    if rank == 0:
        torch.save({"loss": loss / WORLD, "grads": [g / WORLD for g in grads]}, out)


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_ranks_on_half_batches_equal_one_process_on_the_batch(case, tmp_path):
    out = tmp_path / "ranks.pt"
    run_on_ranks(_worker, case, str(out), world=WORLD)
    distributed = torch.load(out)
    v1, v2 = make_batch()
    loss, grads = loss_and_grads(case, v1, v2, gather=False)
    torch.testing.assert_close(distributed["loss"], loss, rtol=1e-10, atol=1e-12)
    assert len(grads) == len(distributed["grads"]) > 0
    for got, want in zip(distributed["grads"], grads):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_without_gather_the_gradient_differs(tmp_path):
    """The check above can fail: contrasting only within each rank's half gives another gradient."""
    v1, v2 = make_batch()
    _, full = loss_and_grads("nt_xent", v1, v2, gather=False)
    halves = [loss_and_grads("nt_xent", v1[s], v2[s], gather=False)[1] for s in (slice(0, 4), slice(4, 8))]
    averaged = [(a + b) / 2 for a, b in zip(*halves)]
    assert not all(torch.allclose(a, b) for a, b in zip(averaged, full))


# fit under DDP: every rank takes its half of each batch, the loss is gathered over ranks, the logged
# loss is averaged over ranks at each sync, and the kNN monitor runs on every rank alike.
FIT_CONFIG = TrainConfig(epochs=2, batch_size=8, lr=0.5, log_every=3, knn_every=1, knn_samples=8)


class Images:
    def __init__(self):
        g = torch.Generator().manual_seed(1)
        self.images = torch.randint(0, 256, (24, 1, 3, 4), dtype=torch.uint8, generator=g)
        self.labels = torch.arange(24) % 3


def fixed_views(images, generator=None):
    """Views without randomness, so that one process and two ranks see the same views."""
    x = images.float() / 255
    return [x, x.flip(-1)]


def make_simclr():
    torch.manual_seed(0)
    return SimCLR(FlatEncoder(), 16, 8, temperature=0.3, batch_norm=False)  # float32: embed's dtype


def _thread_names() -> list[str]:
    return sorted(
        (Path("/proc/self/task") / t / "comm").read_text().strip() for t in os.listdir("/proc/self/task")
    )


def _backend_threads_left(wait_s: float = 5.0) -> list[str] | None:
    """Thread names of this process once no gloo/TCPStore thread is listed, or after ``wait_s``.

    A thread that has been joined can still be listed in /proc for a moment while the kernel releases
    it (seen once in CI, on a loaded 2-core machine), so the list is read until it is clear. A thread
    that was never stopped is still listed after ``wait_s`` and fails the test."""
    if not Path("/proc/self/task").is_dir():
        return None
    deadline = time.monotonic() + wait_s
    while True:
        names = _thread_names()
        if not any("gloo" in t or "tcpstore" in t for t in names) or time.monotonic() > deadline:
            return names
        time.sleep(0.01)


def _fit_worker(rank: int, out: str):
    method = make_simclr()
    history = fit(method, Images(), fixed_views, FIT_CONFIG, device="cpu", progress=False)
    distributed.shutdown()  # run_on_ranks calls it again: a second call does nothing
    threads = _backend_threads_left()
    torch.save(
        {"state": method.state_dict(), "history": history.to_dict(), "threads": threads}, f"{out}.{rank}"
    )


def test_fit_on_two_ranks_equals_fit_in_one_process_and_shutdown_stops_gloo(tmp_path):
    """Also: after DDP training and ``shutdown`` no gloo thread is left. One still alive when Python
    shuts down can take the GIL then and abort the process (the SIGABRT once seen under torchrun)."""
    run_on_ranks(_fit_worker, str(tmp_path / "rank"), world=WORLD)
    ranks = [torch.load(tmp_path / f"rank.{r}") for r in range(WORLD)]
    single = make_simclr()
    history = fit(single, Images(), fixed_views, FIT_CONFIG, device="cpu", progress=False)
    for name, want in single.state_dict().items():
        for r in ranks:
            torch.testing.assert_close(r["state"][name], want, rtol=1e-5, atol=1e-6, msg=name)
    assert ranks[0]["history"]["steps"] == ranks[1]["history"]["steps"]
    assert [row["loss"] for row in ranks[0]["history"]["steps"]] == pytest.approx(history.losses, rel=1e-5)
    knn = [[row["knn"] for row in r["history"]["epochs"]] for r in ranks]
    assert knn[0] == knn[1] and len(knn[0]) == FIT_CONFIG.epochs
    for r in ranks:
        if r["threads"] is not None:  # Linux: thread names from /proc
            assert not [t for t in r["threads"] if "gloo" in t or "tcpstore" in t], r["threads"]


@pytest.mark.slow
def test_cli_run_under_torchrun(tmp_path):
    """`sslcookbook run` trains with DDP under torchrun (2 CPU processes, gloo) and rank 0 reports."""
    env = {**os.environ, "SSLCOOKBOOK_PROFILE": "smoke", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        "-m",
        "sslcookbook",
        "run",
        "simclr",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--no-progress",
        "--out",
        str(tmp_path / "run"),
    ]
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1]
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    import json

    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["world_size"] == 2
    assert results["probe"]["ssl"]["all"] > 0.3
