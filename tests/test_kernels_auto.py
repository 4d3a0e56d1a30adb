"""backend="auto": the Triton kernels only where they were measured faster than eager PyTorch.

The decision is a function of (rows, dtype, device type), so it is tested here without a GPU, against
the crossover read off the committed H100 measurements (benchmarks/kernel_crossover.py).
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

from sslcookbook import kernels
from sslcookbook.kernels import infonce
from sslcookbook.losses import contrastive, momentum

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import kernel_crossover  # noqa: E402  (a script in benchmarks/, importable once that folder is on the path)

SIXTEEN_BIT = (torch.bfloat16, torch.float16)


@pytest.mark.parametrize("dtype", SIXTEEN_BIT)
def test_16_bit_uses_the_kernel_from_8192_rows_on_cuda(dtype):
    assert infonce.auto_backend(1_024, dtype, "cuda") == "torch"
    assert infonce.auto_backend(4_096, dtype, "cuda") == "torch"
    assert infonce.auto_backend(8_191, dtype, "cuda") == "torch"
    assert infonce.auto_backend(8_192, dtype, "cuda") == "triton"
    assert infonce.auto_backend(262_144, dtype, "cuda") == "triton"


def test_fp32_uses_eager_wherever_eager_was_measured_and_fits():
    for rows in (1_024, 16_384, 65_536):
        assert infonce.auto_backend(rows, torch.float32, "cuda") == "torch"
    assert infonce.auto_backend(65_537, torch.float32, "cuda") == "triton"
    assert infonce.auto_backend(131_072, torch.float32, "cuda") == "triton"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("device_type", ["cpu", "mps", "meta"])
def test_other_devices_always_get_torch(dtype, device_type):
    assert infonce.auto_backend(10**6, dtype, device_type) == "torch"


def test_dtypes_the_kernel_does_not_take_get_torch():
    assert infonce.auto_backend(10**6, torch.float64, "cuda") == "torch"


def test_logits_rows_counts_an_n_by_m_matrix_as_its_square_side():
    assert infonce.logits_rows(4_096, 4_096) == 4_096
    assert infonce.logits_rows(256, 65_536) == 4_096  # a MoCo queue: as much work as 4,096²
    assert infonce.logits_rows(3, 5) == 3  # floor of √15


def test_the_table_agrees_with_the_committed_measurements():
    assert (ROOT / infonce.AUTO_SOURCE).is_file()
    found = kernel_crossover.crossovers(ROOT / infonce.AUTO_SOURCE)
    names = {"bf16": torch.bfloat16, "fp32": torch.float32}
    assert {c.dtype for c in found} == set(names)
    for c in found:
        threshold = infonce.AUTO_MIN_ROWS[names[c.dtype]]
        if c.dtype == "bf16":  # eager won below the threshold, the kernel at every size measured above it
            assert c.eager_faster_up_to < threshold <= c.triton_faster_from
            assert threshold >= c.crossing
            assert all(s > 1 for rows, s in c.speedups.items() if rows >= threshold)
            assert all(s <= 1 for rows, s in c.speedups.items() if rows < threshold)
        else:  # fp32, TF32 off: the kernel lost everywhere, so auto keeps eager at every measured size
            assert c.triton_faster_from is None
            assert threshold > max(c.speedups)
    assert infonce.AUTO_MIN_ROWS[torch.float16] == infonce.AUTO_MIN_ROWS[torch.bfloat16]


def test_the_crossover_script_prints_one_line_per_dtype_and_width(capsys):
    assert kernel_crossover.main([str(ROOT / infonce.AUTO_SOURCE)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 4 and "crossing ≈ 6,718" in lines[1]


def test_dino_was_measured_faster_everywhere_so_it_has_no_crossover():
    from sslcookbook.kernels import dino

    found = kernel_crossover.crossovers(ROOT / "benchmarks/results/dino_nvidia-h100-80gb-hbm3.csv")
    assert found and all(c.eager_faster_up_to is None for c in found)
    assert not hasattr(dino, "auto_backend")


# ----------------------------------------------------------------------------------------------------
# resolve_backend consults the crossover (CUDA tensors stood in for by their attributes)
# ----------------------------------------------------------------------------------------------------


def cuda_like(dtype: torch.dtype) -> types.SimpleNamespace:
    """What resolve_backend reads of a tensor, for a CUDA tensor on a machine without one."""
    return types.SimpleNamespace(is_cuda=True, dtype=dtype, device=torch.device("cuda"))


def fake_kernel(**attrs) -> types.SimpleNamespace:
    return types.SimpleNamespace(__name__="fake", INTERPRETED=False, unsupported=lambda _t: None, **attrs)


@pytest.fixture
def triton_imports(monkeypatch):
    monkeypatch.setattr(kernels, "triton_available", lambda: True)


def test_resolve_backend_auto_follows_the_kernels_crossover(triton_imports):
    kernel = fake_kernel(auto_backend=infonce.auto_backend)
    x = cuda_like(torch.bfloat16)
    assert kernels.resolve_backend("auto", (x, x), kernel, rows=4_096) == "torch"
    assert kernels.resolve_backend("auto", (x, x), kernel, rows=16_384) == "triton"
    mixed = (cuda_like(torch.bfloat16), cuda_like(torch.float32))  # promoted to fp32: eager at 16,384
    assert kernels.resolve_backend("auto", mixed, kernel, rows=16_384) == "torch"


def test_resolve_backend_auto_without_a_crossover_keeps_triton_on_cuda(triton_imports):
    x = cuda_like(torch.float32)
    assert kernels.resolve_backend("auto", (x, x), fake_kernel(), rows=16) == "triton"  # DINO, SigLIP
    with_crossover = fake_kernel(auto_backend=infonce.auto_backend)
    assert kernels.resolve_backend("auto", (x, x), with_crossover) == "triton"  # no size given


def test_explicit_backends_ignore_the_crossover(triton_imports):
    kernel = fake_kernel(auto_backend=infonce.auto_backend)
    x = cuda_like(torch.bfloat16)
    assert kernels.resolve_backend("triton", (x, x), kernel, rows=16) == "triton"
    assert kernels.resolve_backend("torch", (x, x), kernel, rows=10**6) == "torch"


def test_resolve_backend_auto_gives_cpu_tensors_torch_at_any_size(triton_imports):
    x = torch.zeros(2, 8)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        assert kernels.resolve_backend("auto", (x.to(dtype), x.to(dtype)), infonce, rows=10**6) == "torch"


@pytest.mark.parametrize(
    ("call", "rows"),
    [
        (lambda: contrastive.nt_xent(torch.randn(6, 8), torch.randn(6, 8)), 12),  # R = 2N
        (lambda: contrastive.info_nce(torch.randn(4, 8), torch.randn(9, 8)), 6),  # √(4·9)
        (lambda: contrastive.nnclr_loss(torch.randn(5, 8), torch.randn(5, 8), torch.randn(7, 8)), 5),
        (lambda: momentum.moco_loss(torch.randn(4, 8), torch.randn(4, 8), torch.randn(16, 8)), 8),
        (lambda: momentum.moco_v3_loss(torch.randn(4, 8), torch.randn(4, 8)), 4),
    ],
)
def test_the_infonce_losses_pass_the_size_of_their_logits(monkeypatch, call, rows):
    seen = []

    def record(backend, tensors, kernel, rows=None):
        seen.append((backend, kernel, rows))
        return "torch"

    monkeypatch.setattr(contrastive, "resolve_backend", record)
    monkeypatch.setattr(momentum, "resolve_backend", record)
    assert torch.isfinite(call())
    assert seen == [("auto", infonce, rows)]
