"""Fused SigLIP sigmoid-loss kernel: Triton (interpreter on CPU) against its PyTorch reference computed in
float64, and that reference against an independent float64 implementation written with explicit loops."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sslcookbook import kernels

pytest.importorskip("triton", reason="triton is not importable; the Triton kernels cannot be tested")

from sslcookbook.kernels import siglip as K  # noqa: E402  (after the importorskip above)

if not K.INTERPRETED and not torch.cuda.is_available():
    pytest.skip(
        "the Triton interpreter is off (TRITON_INTERPRET=1 must be set before the kernels are imported) "
        "and there is no GPU",
        allow_module_level=True,
    )

DEVICE = "cuda" if (torch.cuda.is_available() and not K.INTERPRETED) else "cpu"


def pairs(n: int, d: int, *, seed: int, normalise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Image and text features (fp64, CPU) whose row i are related, so positives score above negatives."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = x + 0.7 * torch.randn(n, d, generator=g, dtype=torch.float64)
    if normalise:
        return torch.nn.functional.normalize(x, dim=1), torch.nn.functional.normalize(y, dim=1)
    return x * (0.5 + 3 * torch.rand(n, 1, generator=g)), y


def leaves(x, y, scale, bias, dtype=torch.float32, scalar_dtype=torch.float32, grad=(True,) * 4):
    """The four inputs on DEVICE as fresh leaves (features in ``dtype``, t and b 0-d in ``scalar_dtype``)."""
    values = (
        x.to(dtype),
        y.to(dtype),
        torch.as_tensor(scale, dtype=torch.float64).to(scalar_dtype),
        torch.as_tensor(bias, dtype=torch.float64).to(scalar_dtype),
    )
    return [v.detach().to(DEVICE).requires_grad_(g) for v, g in zip(values, grad)]


def loss_and_grads(fn, inputs, grad_output=None):
    loss = fn(*inputs)
    wanted = [v for v in inputs if v.requires_grad]
    return loss, torch.autograd.grad(loss, wanted, grad_output)


def truth(inputs):
    """The reference in float64 on the same (rounded) input values: the ground truth for every dtype."""
    exact = [v.detach().double().requires_grad_(v.requires_grad) for v in inputs]
    return loss_and_grads(K.siglip_loss_reference, exact)


def assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor, rel: float) -> None:
    """max |actual − expected| ≤ rel · max |expected| (gradients are small and of varying magnitude)."""
    actual, expected = actual.double().cpu(), expected.double().cpu()
    assert actual.shape == expected.shape
    err = (actual - expected).abs().max().item()
    scale = expected.abs().max().item()
    assert err <= rel * scale + 1e-12, f"max error {err:.3g} > {rel:g} × max |expected| {scale:.3g}"


# ----------------------------------------------------------------------------------------------------
# Triton against the float64 reference
# ----------------------------------------------------------------------------------------------------

# Interpreter tiles are 32 × 32: B = 1 (a single pair), 7 (one partial tile), 32 (exactly one), 33 (a
# 1-row tail), 70 (three tiles, partial last); D = 3 and 5 are tiny odd widths padded to 16 features,
# 48 pads to 64. Scales and biases: SigLIP's initialisation (10, −10), a sharp t = 100 with b = −10, a
# flat t = 0.1 with b = +5 (every pair called a match), and t = 1, b = 0.
CASES = [
    (1, 16, 10.0, -10.0),
    (1, 3, 100.0, -10.0),
    (7, 3, 10.0, -10.0),
    (7, 48, 0.1, 5.0),
    (32, 16, 1.0, 0.0),
    (33, 5, 100.0, -10.0),
    (70, 48, 10.0, -10.0),
    (70, 16, 0.1, 5.0),
]


@pytest.mark.parametrize(("n", "d", "scale", "bias"), CASES)
def test_fp32_forward_and_backward_match_fp64(n, d, scale, bias):
    inputs = leaves(*pairs(n, d, seed=10 * n + d), scale, bias)
    loss_t, grads_t = loss_and_grads(K.siglip_loss_triton, inputs)
    loss_e, grads_e = truth(inputs)
    assert loss_t.dtype == torch.float32 and loss_t.shape == ()
    assert loss_t.item() == pytest.approx(loss_e.item(), rel=2e-6)
    for name, g_t, g_e, v in zip("xytb", grads_t, grads_e, inputs):
        assert g_t.dtype == v.dtype and g_t.shape == v.shape, name
        assert_close_scaled(g_t, g_e, rel=2e-5)


@pytest.mark.parametrize(("n", "d", "scale", "bias"), [(33, 48, 10.0, -10.0), (7, 5, 100.0, -10.0)])
def test_fp16_forward_and_backward_match_fp64(n, d, scale, bias):
    inputs = leaves(*pairs(n, d, seed=n + d), scale, bias, dtype=torch.float16)
    loss_t, grads_t = loss_and_grads(K.siglip_loss_triton, inputs)
    loss_e, grads_e = truth(inputs)  # the same fp16 values, computed in fp64
    assert loss_t.dtype == torch.float32
    # Logits are fp32 dot products of the fp16 values (exact products), so the loss stays accurate.
    assert loss_t.item() == pytest.approx(loss_e.item(), rel=1e-5)
    assert grads_t[0].dtype == torch.float16 and grads_t[2].dtype == torch.float32
    for g_t, g_e in zip(grads_t, grads_e):
        assert_close_scaled(g_t, g_e, rel=5e-3)  # the q tile is rounded to fp16 for its tl.dot


def test_fp16_keeps_gradients_of_easy_negatives():
    # Orthonormal features, x_i = y_i: positives score u = t + b = 30 (q ≈ −1e-13) and negatives u ≈ b = −20,
    # so the feature gradients come only from negatives whose q = σ(−20) ≈ 2e-9 is below fp16's smallest
    # subnormal (6e-8). Without the 2^15 factor before the cast they would be flushed to zero. The incoming
    # gradient is 2^16, as under a GradScaler, so that the gradients themselves are representable in fp16.
    basis = torch.linalg.qr(
        torch.randn(64, 40, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    )
    x = basis[0].T.contiguous()  # 40 orthonormal rows of 64 features
    inputs = leaves(x, x, 50.0, -20.0, dtype=torch.float16)
    grad_scale = torch.tensor(2.0**16, device=DEVICE)
    _, grads_t = loss_and_grads(K.siglip_loss_triton, inputs, grad_scale)
    _, grads_e = truth(inputs)
    for g_t, g_e in zip(grads_t, grads_e):
        assert g_e.abs().max() > 0
        assert_close_scaled(g_t, 2.0**16 * g_e, rel=1e-2)


def test_huge_logits_stay_finite():
    # Unnormalised features (norms up to ~20) at t = 100: |u| reaches thousands; nothing overflows.
    inputs = leaves(*pairs(20, 16, seed=4, normalise=False), 100.0, -10.0)
    loss_t, grads_t = loss_and_grads(K.siglip_loss_triton, inputs)
    loss_e, grads_e = truth(inputs)
    assert math.isfinite(loss_t.item()) and loss_e.item() > 100
    assert loss_t.item() == pytest.approx(loss_e.item(), rel=2e-6)
    for g_t, g_e in zip(grads_t, grads_e):
        assert torch.isfinite(g_t).all()
        assert_close_scaled(g_t, g_e, rel=2e-5)


def test_known_answers():
    # Zero features: every logit is b; B positives and B(B − 1) negatives, over B, give
    # L = softplus(−b) + (B − 1)·softplus(b), dL/dt = 0 and dL/db = (σ(b) − 1) + (B − 1)σ(b).
    n, b = 5, -3.0
    inputs = leaves(torch.zeros(n, 8, dtype=torch.float64), torch.zeros(n, 8, dtype=torch.float64), 10.0, b)
    loss, (_, _, g_t, g_b) = loss_and_grads(K.siglip_loss_triton, inputs)
    softplus = lambda v: math.log1p(math.exp(v))  # noqa: E731
    sigmoid = 1 / (1 + math.exp(-b))
    assert loss.item() == pytest.approx(softplus(-b) + (n - 1) * softplus(b), rel=1e-6)
    assert g_t.item() == 0.0
    assert g_b.item() == pytest.approx((sigmoid - 1) + (n - 1) * sigmoid, rel=1e-6)

    # Every pair confidently right: one-hot x_i = y_i = e_i, t = 30, b = −15 gives |u| = 15 for all B² pairs,
    # each term log1p(e^{−15}) ≈ 3.06e-7. log(1 + w) in fp32 would be ~3 % off here (1 + w rounds).
    n = 6
    eye = torch.eye(n, 16, dtype=torch.float64)
    loss = K.siglip_loss_triton(*leaves(eye, eye, 30.0, -15.0, grad=(False,) * 4))
    assert loss.item() == pytest.approx(n * math.log1p(math.exp(-15.0)), rel=1e-5)


@pytest.mark.parametrize(
    ("n", "m", "dtype"), [(33, 70, torch.float32), (7, 1, torch.float32), (20, 9, torch.float16)]
)
def test_negative_only_blocks(n, m, dtype):
    # The chunked distributed loss scores this rank's images against another rank's texts: all negatives.
    x, _ = pairs(n, 16, seed=n)
    _, y = pairs(m, 16, seed=m + 1)
    inputs = leaves(x, y, 10.0, -10.0, dtype=dtype)
    neg = lambda *a: K.siglip_loss_triton(*a, negative_only=True)  # noqa: E731
    loss_t, grads_t = loss_and_grads(neg, inputs)
    exact = [v.detach().double().requires_grad_() for v in inputs]
    loss_e, grads_e = loss_and_grads(lambda *a: K.siglip_loss_reference(*a, negative_only=True), exact)
    assert loss_t.item() == pytest.approx(loss_e.item(), rel=1e-5)
    for g_t, g_e in zip(grads_t, grads_e):
        assert_close_scaled(g_t, g_e, rel=2e-5 if dtype == torch.float32 else 5e-3)


def test_chunked_decomposition_equals_the_whole_batch():
    # B·L(x, y) = Σ over blocks of rows: each block against its own texts (positives on the diagonal) and,
    # negative-only, against the others' texts: what 2 ranks of 20 and 25 pairs compute.
    x, y = pairs(45, 16, seed=40)
    whole = K.siglip_loss_triton(*leaves(x, y, 10.0, -10.0))
    a, b = slice(0, 20), slice(20, 45)
    parts = 0.0
    for mine, other in ((a, b), (b, a)):
        rows = mine.stop - mine.start
        parts += rows * K.siglip_loss_triton(*leaves(x[mine], y[mine], 10.0, -10.0)).item()
        parts += (
            rows * K.siglip_loss_triton(*leaves(x[mine], y[other], 10.0, -10.0), negative_only=True).item()
        )
    assert parts / 45 == pytest.approx(whole.item(), rel=1e-6)


# ----------------------------------------------------------------------------------------------------
# Autograd: which inputs want gradients, incoming gradients, no_grad, layouts
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "grad",
    [
        (False, True, True, True),  # LiT: frozen image tower, the dx accumulation is skipped
        (True, False, False, False),  # fixed t and b (plain tensors): no scalar sums
        (False, False, True, True),  # only t and b learn
        (True, True, False, True),
    ],
)
def test_partial_gradients(grad):
    inputs = leaves(*pairs(37, 16, seed=5), 10.0, -10.0, grad=grad)
    loss_t, grads_t = loss_and_grads(K.siglip_loss_triton, inputs)
    loss_e, grads_e = truth(inputs)
    assert loss_t.item() == pytest.approx(loss_e.item(), rel=2e-6)
    assert len(grads_t) == sum(grad)
    for g_t, g_e in zip(grads_t, grads_e):
        assert_close_scaled(g_t, g_e, rel=2e-5)


def test_incoming_gradient_and_backward_twice():
    inputs = leaves(*pairs(9, 16, seed=6), 10.0, -10.0)
    loss = K.siglip_loss_triton(*inputs)
    first = torch.autograd.grad(loss, inputs, torch.tensor(3.5, device=DEVICE), retain_graph=True)
    second = torch.autograd.grad(loss, inputs, torch.tensor(-0.25, device=DEVICE))
    _, grads_e = truth(inputs)
    for g1, g2, g_e in zip(first, second, grads_e):
        assert_close_scaled(g1, 3.5 * g_e, rel=2e-5)
        assert_close_scaled(g2, -0.25 * g_e, rel=2e-5)


def test_no_grad_and_scalars_in_other_dtypes():
    x, y = pairs(12, 16, seed=7)
    inputs = leaves(x, y, 10.0, -10.0, scalar_dtype=torch.float64)
    with torch.no_grad():
        loss = K.siglip_loss_triton(*inputs)
    assert not loss.requires_grad
    loss_e, _ = truth(inputs)
    assert loss.item() == pytest.approx(loss_e.item(), rel=2e-6)
    _, (_, _, g_t, g_b) = loss_and_grads(K.siglip_loss_triton, inputs)
    assert g_t.dtype == g_b.dtype == torch.float64 and g_t.shape == ()


def test_non_contiguous_features():
    x, y = pairs(10, 32, seed=8)
    wide_x, wide_y = torch.cat([x, x], dim=1), torch.cat([y, y], dim=1)
    inputs = leaves(wide_x, wide_y, 10.0, -10.0)
    strided = [inputs[0][:, ::2], inputs[1][:, ::2], inputs[2], inputs[3]]  # columns 0, 2, …: not contiguous
    loss_t, grads_t = loss_and_grads(K.siglip_loss_triton, strided)
    loss_e, grads_e = truth(strided)
    assert loss_t.item() == pytest.approx(loss_e.item(), rel=2e-6)
    for g_t, g_e in zip(grads_t, grads_e):
        assert_close_scaled(g_t, g_e, rel=2e-5)


@pytest.mark.skipif(DEVICE != "cuda", reason="bf16 needs a GPU: the Triton interpreter has no bfloat16")
def test_bf16_on_gpu():
    inputs = leaves(*pairs(1000, 256, seed=9), 10.0, -10.0, dtype=torch.bfloat16)
    loss_t, grads_t = loss_and_grads(K.siglip_loss_triton, inputs)
    loss_e, grads_e = truth(inputs)
    assert loss_t.item() == pytest.approx(loss_e.item(), rel=1e-4)
    for g_t, g_e in zip(grads_t, grads_e):
        assert_close_scaled(g_t, g_e, rel=3e-2)


# ----------------------------------------------------------------------------------------------------
# The reference against an independent float64 implementation
# ----------------------------------------------------------------------------------------------------


def siglip_loops(x, y, scale, bias, negative_only=False):
    """SigLIP's loss pair by pair: −Σ log σ(z (t x_i·y_j + b)) / B with σ(v) = 1 / (1 + e^{−v})."""
    n = x.shape[0]
    total = x.new_zeros(())
    for i in range(n):
        for j in range(y.shape[0]):
            z = 1.0 if i == j and not negative_only else -1.0
            total = total - torch.log(1 / (1 + torch.exp(-z * (scale * (x[i] @ y[j]) + bias))))
    return total / n


@pytest.mark.parametrize(("n", "scale", "bias"), [(1, 10.0, -10.0), (4, 3.0, -2.0), (5, 0.1, 5.0)])
def test_reference_matches_loops_in_fp64(n, scale, bias):
    x, y = pairs(n, 6, seed=20 + n)
    exact = [v.detach().double().requires_grad_() for v in leaves(x, y, scale, bias, dtype=torch.float64)]
    loss_r, grads_r = loss_and_grads(K.siglip_loss_reference, exact)
    loss_l, grads_l = loss_and_grads(siglip_loops, exact)
    assert loss_r.dtype == torch.float64
    torch.testing.assert_close(loss_r, loss_l, rtol=1e-12, atol=1e-12)
    for g_r, g_l in zip(grads_r, grads_l):
        torch.testing.assert_close(g_r, g_l, rtol=1e-10, atol=1e-12)


def test_negative_only_reference_matches_loops_in_fp64():
    x, _ = pairs(4, 6, seed=50)
    _, y = pairs(3, 6, seed=51)
    exact = [v.detach().double().requires_grad_() for v in leaves(x, y, 3.0, -2.0, dtype=torch.float64)]
    loss_r, grads_r = loss_and_grads(lambda *a: K.siglip_loss_reference(*a, negative_only=True), exact)
    loss_l, grads_l = loss_and_grads(lambda *a: siglip_loops(*a, negative_only=True), exact)
    torch.testing.assert_close(loss_r, loss_l, rtol=1e-12, atol=1e-12)
    for g_r, g_l in zip(grads_r, grads_l):
        torch.testing.assert_close(g_r, g_l, rtol=1e-10, atol=1e-12)


def test_reference_passes_gradcheck():
    x, y = pairs(3, 4, seed=30)
    exact = [v.detach().double().requires_grad_() for v in leaves(x, y, 2.0, -1.0, dtype=torch.float64)]
    assert torch.autograd.gradcheck(K.siglip_loss_reference, exact)


def test_triton_matches_the_fp64_loops_directly():
    inputs = leaves(*pairs(6, 20, seed=31), 10.0, -10.0)
    loss_t, grads_t = loss_and_grads(K.siglip_loss_triton, inputs)
    exact = [v.detach().double().requires_grad_() for v in inputs]
    loss_l, grads_l = loss_and_grads(siglip_loops, exact)
    assert loss_t.item() == pytest.approx(loss_l.item(), rel=2e-6)
    for g_t, g_l in zip(grads_t, grads_l):
        assert_close_scaled(g_t, g_l, rel=2e-5)


# ----------------------------------------------------------------------------------------------------
# Input checks and the backend choice
# ----------------------------------------------------------------------------------------------------


def _call(x=None, y=None, scale=None, bias=None):
    x = torch.randn(4, 8) if x is None else x
    y = torch.randn(4, 8) if y is None else y
    scale = torch.tensor(10.0) if scale is None else scale
    bias = torch.tensor(-10.0) if bias is None else bias
    return K.siglip_loss_triton(x, y, scale, bias)


SCALARS = (torch.tensor(10.0), torch.tensor(-10.0))
BAD_INPUTS = [
    (lambda: _call(x=torch.randn(8)), ValueError, "2-D"),
    (lambda: _call(x=torch.randn(4, 8).tolist()), TypeError, "torch.Tensor"),
    (lambda: _call(x=torch.randn(0, 8), y=torch.randn(0, 8)), ValueError, "empty"),
    (lambda: _call(y=torch.randn(5, 8)), ValueError, "equal shapes"),
    (lambda: _call(y=torch.randn(4, 9)), ValueError, "same number of features"),
    (
        lambda: K.siglip_loss_triton(torch.randn(4, 8), torch.randn(5, 9), *SCALARS, True),
        ValueError,
        "features",
    ),
    (lambda: _call(y=torch.randn(4, 8).half()), TypeError, "cast both to one dtype"),
    (
        lambda: _call(x=torch.randn(4, 8).double(), y=torch.randn(4, 8).double()),
        TypeError,
        "float32, float16",
    ),
    (
        lambda: _call(x=torch.ones(4, 8, dtype=torch.long), y=torch.ones(4, 8, dtype=torch.long)),
        TypeError,
        "float16",
    ),
    (lambda: _call(y=torch.randn(4, 8, device="meta")), ValueError, "move both"),
    (lambda: _call(x=torch.randn(4, 8).bfloat16(), y=torch.randn(4, 8).bfloat16()), TypeError, "bfloat16"),
    (lambda: _call(x=torch.randn(2, 513), y=torch.randn(2, 513)), ValueError, "too wide"),
    (lambda: _call(scale=10.0), TypeError, "0-d floating-point tensor"),
    (lambda: _call(scale=torch.tensor([10.0])), TypeError, r"shape \(1,\)"),
    (lambda: _call(bias=torch.tensor(-10)), TypeError, "0-d floating-point"),
    (lambda: _call(bias=torch.tensor(-10.0, device="meta")), ValueError, "bias is on meta"),
    (lambda: _call(x=torch.full((4, 8), math.nan)), ValueError, "image_features contains NaN"),
    (lambda: _call(y=torch.full((4, 8), math.inf)), ValueError, "text_features contains NaN or inf"),
    (lambda: _call(scale=torch.tensor(math.inf)), ValueError, "scale contains NaN or inf"),
]


@pytest.mark.skipif(DEVICE != "cpu", reason="the inputs are CPU tensors, for the interpreter")
@pytest.mark.parametrize(("call", "error", "message"), BAD_INPUTS)
def test_bad_inputs_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_cpu_tensors_without_the_interpreter_say_how(monkeypatch):
    monkeypatch.setattr(K, "INTERPRETED", False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        _call()


def test_backend_choice_for_a_loss_built_on_this_kernel():
    x = torch.randn(4, 8)
    assert kernels.resolve_backend("auto", (x, x), K) == "torch"  # CPU tensors: the reference
    if K.INTERPRETED:
        assert kernels.resolve_backend("triton", (x, x), K) == "triton"  # honoured under the interpreter
    else:  # on a GPU machine, CPU tensors cannot take the compiled kernel
        with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
            kernels.resolve_backend("triton", (x, x), K)
    wide = torch.randn(2, 1025, dtype=torch.float16)
    assert "too wide" in K.unsupported((wide,))
    assert K.unsupported((torch.randn(2, 1024, dtype=torch.float16),)) is None


def test_tile_configs_are_valid_for_tl_dot(monkeypatch):
    monkeypatch.setattr(K, "INTERPRETED", False)  # the GPU table
    for element_size in (2, 4):
        for block_d in (16, 32, 64, 128, 256, 512, 1024):
            if block_d * element_size > K._MAX_ROW_BYTES:
                continue
            config = K._tile_config(block_d, element_size)
            while config is not None:
                assert config.block_out >= 16 and config.block_loop >= 16 and config.num_stages >= 1
                config = K._smaller(config)


def test_launch_retries_with_smaller_tiles_on_out_of_resources(monkeypatch):
    launches = []

    class FakeKernel:
        def __getitem__(self, grid):
            def run(*args, BLOCK_OUT, BLOCK_LOOP, BLOCK_D, num_warps, num_stages, **constants):
                launches.append((grid, BLOCK_OUT, BLOCK_LOOP, num_stages))
                if BLOCK_OUT * BLOCK_LOOP * num_stages > 16 * 16 * 2:
                    raise K.OutOfResources(200_000, 100_000, "shared memory")

            return run

    monkeypatch.setattr(K, "_tile_config", lambda block_d, element_size: K._TileConfig(128, 64, 8, 3))
    monkeypatch.setattr(K, "_working_configs", {})
    kernel = FakeKernel()
    K._launch(kernel, 100, 256, 2, (), {"COMPUTE_DX": True})
    assert launches[-1] == ((7,), 16, 16, 2)  # 100 rows in blocks of 16 → 7 programs
    assert [launch[1:] for launch in launches[:3]] == [(128, 64, 3), (128, 64, 2), (128, 32, 2)]
    launches.clear()
    K._launch(kernel, 100, 256, 2, (), {"COMPUTE_DX": True})  # the working configuration is remembered
    assert launches == [((7,), 16, 16, 2)]
    launches.clear()
    K._launch(kernel, 100, 256, 2, (), {"COMPUTE_DX": False})  # another variant starts from the table
    assert launches[0][1:] == (128, 64, 3)


def test_kernels_compile_for_a_gpu_without_one():
    # The interpreter runs numpy, which accepts code that Triton's GPU compiler may not: compile the two
    # kernels for sm_90 (ptxas ships in the triton wheel) in a process without TRITON_INTERPRET.
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"} | {"OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        str(root / "benchmarks" / "kernel_resources.py"),
        "--dims",
        "48",
        "--dtypes",
        "fp16",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("registers") == 2 and "FAILED" not in result.stdout, result.stdout
