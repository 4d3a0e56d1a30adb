"""benchmarks/bench_cpu_attention.py: times the op and a real fit step in its three variants, and the
PyTorch-attention variant really swaps out ``attend``."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_cpu_attention  # noqa: E402

from sslcookbook.models import vit  # noqa: E402
from sslcookbook.models.attention import attend  # noqa: E402


def test_patched_attention_swaps_the_vits_call_and_restores_it():
    calls = []

    def counting(q, k, v, attn_mask=None, is_causal=False):
        calls.append(q.dtype)
        return attend(q, k, v)

    with bench_cpu_attention.patched_attention(counting):
        vit.vit_tiny(in_channels=1, image_size=8, depth=1)(torch.rand(2, 1, 8, 8))
    assert calls == [torch.float32] and vit.attend is attend


def test_a_quick_run_measures_every_variant(monkeypatch):
    monkeypatch.setattr(bench_cpu_attention, "SHAPES", [(2, 1, 5, 8), (2, 1, 9, 8)])
    result = bench_cpu_attention.main(["--quick", "--recipes", "mae", "--no-write"])
    assert [row["shape"] for row in result["op"]] == [[2, 1, 5, 8], [2, 1, 9, 8]]
    (row,) = result["steps"]
    assert row["recipe"] == "mae" and row["steps"] == 8
    assert all(row[name] > 0 for name in bench_cpu_attention.STEP_VARIANTS)
    assert row["speed-up over fp32"]["fp32"] == 1.0
