"""BYOL and DINO on 2 gloo processes × B/2 == 1 process on B (loss, gradients, centre, EMA target).

Each rank runs ``training_step`` on its half of the batch; the per-rank losses are means over the
local batch, so averaging the parameter gradients over ranks (what DDP does) gives exactly the
gradient of the mean over the whole batch, and the mean of the per-rank losses is the whole-batch
loss. Neither BYOL nor DINO compares images with each other, so no gather is needed — but DINO's
centre is a mean over the global batch: ``update_center`` all-reduces it, and the centre (and the
EMA teacher after one step) must come out as in the single process.

Caveat: this is exact only without BatchNorm. With BN, each rank normalises with the statistics of
its own B/2 images, which differ from those of the whole batch unless SyncBatchNorm is used; the
encoders and heads here have no BN (``batch_norm=False``), and everything runs in fp64.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from gloo_group import run_on_ranks
from torch import nn

from sslcookbook.methods import BYOL, DINO

B, WORLD, LR = 8, 2, 0.1


class FlatEncoder(nn.Module):
    feature_dim = 10

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(16, 10), nn.ReLU())

    def forward(self, x):
        return self.net(x)


class PooledEncoder(nn.Module):
    """BN-free conv encoder that accepts any crop size (multi-crop)."""

    feature_dim = 6

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)

    def forward(self, x):
        return torch.tanh(self.conv(x)).mean(dim=(2, 3))


def build(case: str):
    torch.manual_seed(0)
    if case == "byol":
        return BYOL(FlatEncoder(), 16, 8, 16, base_momentum=0.9, batch_norm=False).double()
    method = DINO(
        PooledEncoder(), out_dim=12, hidden_dim=16, bottleneck_dim=5, center_momentum=0.7, base_momentum=0.9
    ).double()
    with torch.no_grad():
        method.center.copy_(0.2 * torch.randn(12, dtype=torch.float64))
    return method


def make_views(case: str) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    if case == "byol":
        return [torch.rand(B, 1, 4, 4, generator=g, dtype=torch.float64) for _ in range(2)]
    global_crops = [torch.rand(B, 1, 6, 6, generator=g, dtype=torch.float64) for _ in range(2)]
    return global_crops + [torch.rand(B, 1, 3, 3, generator=g, dtype=torch.float64) for _ in range(3)]


def one_step(case: str, part: slice, distributed: bool) -> dict:
    """Loss and gradients on ``part`` of the batch (averaged over ranks), then an SGD step and after_step."""
    method = build(case)
    views = [v[part] for v in make_views(case)]
    loss = method.training_step(views)["loss"]
    loss.backward()
    loss = loss.detach()
    params = [p for p in method.parameters() if p.requires_grad]
    grads = [p.grad.clone() for p in params]
    if distributed:
        dist.all_reduce(loss)
        loss /= WORLD
        for g in grads:
            dist.all_reduce(g)
            g /= WORLD
    local_center = None
    if case == "dino":  # what the centre would be with this rank's teacher mean only (no all-reduce)
        local_center = 0.7 * method.center + 0.3 * method._pending_teacher_mean
    with torch.no_grad():
        for p, g in zip(params, grads):
            p -= LR * g
    method.after_step(0.3)
    frozen = [p.detach().clone() for p in method.parameters() if not p.requires_grad]
    return {
        "loss": loss,
        "grads": grads,
        "target": frozen,
        "center": method.center.clone() if case == "dino" else None,
        "local_center": local_center,
    }


def _worker(rank: int, out: str):
    half = slice(rank * B // WORLD, (rank + 1) * B // WORLD)
    results = {case: one_step(case, half, distributed=True) for case in ("byol", "dino")}
    if rank == 0:
        torch.save(results, out)


def test_byol_and_dino_on_two_ranks_equal_one_process(tmp_path):
    out = tmp_path / "ranks.pt"
    run_on_ranks(_worker, str(out), world=WORLD)
    ranks = torch.load(out)
    for case in ("byol", "dino"):
        single = one_step(case, slice(0, B), distributed=False)
        got = ranks[case]
        torch.testing.assert_close(got["loss"], single["loss"], rtol=1e-12, atol=1e-14, msg=f"{case} loss")
        assert len(got["grads"]) == len(single["grads"]) > 0
        for i, (a, b) in enumerate(zip(got["grads"], single["grads"])):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13, msg=f"{case} gradient {i}")
        assert any(g.abs().max() > 1e-6 for g in single["grads"])
        for i, (a, b) in enumerate(zip(got["target"], single["target"])):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13, msg=f"{case} EMA target tensor {i}")
    torch.testing.assert_close(ranks["dino"]["center"], single["center"], rtol=1e-12, atol=1e-14)
    # The check can fail: a centre from rank 0's half of the batch alone is a different centre.
    assert not torch.allclose(ranks["dino"]["local_center"], single["center"], atol=1e-6)
