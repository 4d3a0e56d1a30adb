"""Fused InfoNCE / NT-Xent kernel: Triton (interpreter on CPU) against the PyTorch formulas of
losses/contrastive.py, its references, and those against an independent float64 implementation written
with explicit loops."""

from __future__ import annotations

import math

import pytest
import torch

from sslcookbook.losses import info_nce, nt_xent
from sslcookbook.losses.contrastive import info_nce_lse_reference, info_nce_reference, nt_xent_reference

pytest.importorskip("triton", reason="triton is not importable; the Triton kernels cannot be tested")

from sslcookbook.kernels import infonce as K  # noqa: E402  (after the importorskip above)

if not K.INTERPRETED and not torch.cuda.is_available():
    pytest.skip(
        "the Triton interpreter is off (TRITON_INTERPRET=1 must be set before the kernels are imported) "
        "and there is no GPU",
        allow_module_level=True,
    )

DEVICE = "cuda" if (torch.cuda.is_available() and not K.INTERPRETED) else "cpu"


def raw_embeddings(n: int, d: int, *, seed: int, dtype=torch.float32) -> torch.Tensor:
    """Unnormalised rows with different norms, so the normalisation's backward is exercised."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * (0.5 + 3 * torch.rand(n, 1, generator=g))
    return x.to(dtype).to(DEVICE).requires_grad_()


def loss_and_grads(fn, *inputs, **kwargs):
    loss = fn(*inputs, **kwargs)
    return loss, torch.autograd.grad(loss, [x for x in inputs if x.requires_grad])


def assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor, rel: float) -> None:
    """max |actual − expected| ≤ rel · max |expected| (gradients are small and of varying magnitude)."""
    actual, expected = actual.double(), expected.double()
    err = (actual - expected).abs().max().item()
    scale = expected.abs().max().item()
    assert err <= rel * scale + 1e-12, f"max error {err:.3g} > {rel:g} × max |expected| {scale:.3g}"


# ----------------------------------------------------------------------------------------------------
# Triton against the reference
# ----------------------------------------------------------------------------------------------------

# Not the full cartesian product (the interpreter is slow): every N, D and temperature appears, with
# N = 1 (a single pair), N = 7 (one partial tile), 64 (R = 128: exactly four 32-row tiles) and 130
# (R = 260: a 4-row tail tile); D = 3 is a tiny odd width padded to 16 features.
NT_XENT_CASES = [
    (1, 16, 0.2),
    (1, 48, 1.0),
    (7, 48, 0.05),
    (7, 64, 1.0),
    (7, 3, 0.2),
    (64, 64, 0.05),
    (64, 16, 0.2),
    (130, 16, 1.0),
]


@pytest.mark.parametrize(("n", "d", "temperature"), NT_XENT_CASES)
def test_nt_xent_triton_matches_reference(n, d, temperature):
    z1, z2 = raw_embeddings(n, d, seed=n * 100 + d), raw_embeddings(n, d, seed=n * 100 + d + 1)
    loss_t, grads_t = loss_and_grads(nt_xent, z1, z2, temperature=temperature, backend="triton")
    loss_r, grads_r = loss_and_grads(nt_xent, z1, z2, temperature=temperature, backend="torch")
    assert loss_t.dtype == torch.float32 and loss_t.shape == ()
    torch.testing.assert_close(loss_t, loss_r, rtol=1e-5, atol=1e-5)
    for g_t, g_r in zip(grads_t, grads_r):
        assert g_t.dtype == torch.float32
        assert_close_scaled(g_t, g_r, rel=1e-4)


@pytest.mark.parametrize(
    ("n", "m", "d", "with_labels"),
    [(40, 100, 32, True), (20, 70, 16, False), (5, 37, 48, True)],
)
def test_info_nce_triton_matches_reference_asymmetric(n, m, d, with_labels):
    query, keys = raw_embeddings(n, d, seed=1), raw_embeddings(m, d, seed=2)
    labels = None
    if with_labels:
        labels = torch.randint(0, m, (n,), generator=torch.Generator().manual_seed(3)).to(DEVICE)
    loss_t, grads_t = loss_and_grads(info_nce, query, keys, temperature=0.07, labels=labels, backend="triton")
    loss_r, grads_r = loss_and_grads(info_nce, query, keys, temperature=0.07, labels=labels, backend="torch")
    torch.testing.assert_close(loss_t, loss_r, rtol=1e-5, atol=1e-5)
    for g_t, g_r in zip(grads_t, grads_r):
        assert_close_scaled(g_t, g_r, rel=1e-4)


def test_info_nce_triton_with_detached_keys_like_a_moco_queue():
    query = raw_embeddings(24, 32, seed=4)
    keys = raw_embeddings(90, 32, seed=5).detach()  # a queue: no gradient, so the dK kernel is skipped
    loss_t, (g_t,) = loss_and_grads(info_nce, query, keys, temperature=0.2, backend="triton")
    loss_r, (g_r,) = loss_and_grads(info_nce, query, keys, temperature=0.2, backend="torch")
    torch.testing.assert_close(loss_t, loss_r, rtol=1e-5, atol=1e-5)
    assert_close_scaled(g_t, g_r, rel=1e-4)


@pytest.mark.parametrize("mask_self", [False, True])
def test_info_nce_lse_triton_matches_reference(mask_self):
    q = torch.nn.functional.normalize(raw_embeddings(33, 24, seed=6).detach(), dim=1).requires_grad_()
    k = torch.nn.functional.normalize(raw_embeddings(50, 24, seed=7).detach(), dim=1)
    k = torch.cat([q.detach(), k]).requires_grad_() if mask_self else k.requires_grad_()
    weights = torch.linspace(-1.0, 2.0, q.shape[0], device=DEVICE)  # an arbitrary incoming gradient
    outs = {}
    for backend, lse_fn in (("triton", K.info_nce_lse), ("torch", info_nce_lse_reference)):
        lse = lse_fn(q, k, 0.1, mask_self=mask_self)
        outs[backend] = (lse, *torch.autograd.grad((lse * weights).sum(), [q, k]))
    torch.testing.assert_close(outs["triton"][0], outs["torch"][0], rtol=1e-5, atol=1e-5)
    for g_t, g_r in zip(outs["triton"][1:], outs["torch"][1:]):
        assert_close_scaled(g_t, g_r, rel=1e-4)


def test_duplicate_embeddings():
    # Every row identical: all logits equal 1/τ, so each row's loss is log(2N − 1) exactly.
    n, d, temperature = 9, 16, 0.1
    row = torch.randn(1, d)
    z1 = row.repeat(n, 1).to(DEVICE).requires_grad_()
    z2 = (2.0 * row).repeat(n, 1).to(DEVICE).requires_grad_()  # same direction, different norm
    loss_t, grads_t = loss_and_grads(nt_xent, z1, z2, temperature=temperature, backend="triton")
    loss_r, grads_r = loss_and_grads(nt_xent, z1, z2, temperature=temperature, backend="torch")
    assert loss_t.item() == pytest.approx(math.log(2 * n - 1), rel=1e-5)
    torch.testing.assert_close(loss_t, loss_r, rtol=1e-5, atol=1e-5)
    for g_t, g_r in zip(grads_t, grads_r):
        assert torch.isfinite(g_t).all()
        torch.testing.assert_close(g_t, g_r, rtol=0, atol=1e-5)

    # Duplicated pairs inside a larger batch (ties between positives and negatives).
    z1 = raw_embeddings(20, 32, seed=8).detach()
    z1[10:] = z1[:10]
    z1.requires_grad_()
    z2 = raw_embeddings(20, 32, seed=9)
    loss_t, grads_t = loss_and_grads(nt_xent, z1, z2, temperature=0.5, backend="triton")
    loss_r, grads_r = loss_and_grads(nt_xent, z1, z2, temperature=0.5, backend="torch")
    torch.testing.assert_close(loss_t, loss_r, rtol=1e-5, atol=1e-5)
    for g_t, g_r in zip(grads_t, grads_r):
        assert_close_scaled(g_t, g_r, rel=1e-4)


def test_fp16_inputs():
    z1 = raw_embeddings(40, 48, seed=10, dtype=torch.float16)
    z2 = raw_embeddings(40, 48, seed=11, dtype=torch.float16)
    loss_t, grads_t = loss_and_grads(nt_xent, z1, z2, temperature=0.1, backend="triton")
    # Ground truth: the same fp16 inputs, computed in fp32 by the reference.
    z1_32, z2_32 = (z.detach().float().requires_grad_() for z in (z1, z2))
    loss_r, grads_r = loss_and_grads(nt_xent, z1_32, z2_32, temperature=0.1, backend="torch")
    assert loss_t.dtype == torch.float32
    torch.testing.assert_close(loss_t, loss_r, rtol=1e-3, atol=1e-3)
    for g_t, g_r in zip(grads_t, grads_r):
        assert g_t.dtype == torch.float16
        assert_close_scaled(g_t, g_r, rel=5e-3)


def test_fp16_backward_keeps_small_gradients():
    # With dL/dlse = 1e-5 the products g·P (~1e-7) are below fp16's normal range; the kernel rescales the
    # tile before casting it, so the (representable, ~1e-5) gradient keeps its precision.
    q = torch.nn.functional.normalize(raw_embeddings(64, 32, seed=12).detach(), dim=1).half()
    k = torch.nn.functional.normalize(raw_embeddings(64, 32, seed=13).detach(), dim=1).half()
    q16, k16 = q.clone().requires_grad_(), k.clone().requires_grad_()
    lse = K.info_nce_lse(q16, k16, 0.2)
    grads_t = torch.autograd.grad(lse, [q16, k16], torch.full_like(lse, 1e-5))
    q32, k32 = q.float().requires_grad_(), k.float().requires_grad_()
    lse = info_nce_lse_reference(q32, k32, 0.2)
    grads_r = torch.autograd.grad(lse, [q32, k32], torch.full_like(lse, 1e-5))
    for g_t, g_r in zip(grads_t, grads_r):
        assert_close_scaled(g_t, g_r, rel=2e-2)


def test_no_grad_and_inputs_without_grad():
    z1, z2 = raw_embeddings(10, 16, seed=14), raw_embeddings(10, 16, seed=15)
    with torch.no_grad():
        loss_t = nt_xent(z1, z2, backend="triton")
        loss_r = nt_xent(z1, z2, backend="torch")
    assert not loss_t.requires_grad
    torch.testing.assert_close(loss_t, loss_r, rtol=1e-5, atol=1e-5)
    loss_plain = nt_xent(z1.detach(), z2.detach(), backend="triton")
    assert not loss_plain.requires_grad
    torch.testing.assert_close(loss_plain, loss_r, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------------
# The references against an independent float64 implementation
# ----------------------------------------------------------------------------------------------------


def nt_xent_loops(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss, row by row: −log( e^{s_ip/τ} / Σ_{j≠i} e^{s_ij/τ} ), plain exp (fine in fp64)."""
    z = torch.cat([z1, z2])
    z = z / z.pow(2).sum(dim=1, keepdim=True).sqrt()
    rows, n = z.shape[0], z1.shape[0]
    total = z.new_zeros(())
    for i in range(rows):
        positive = (i + n) % rows
        denominator = sum(torch.exp(z[i] @ z[j] / temperature) for j in range(rows) if j != i)
        total = total - torch.log(torch.exp(z[i] @ z[positive] / temperature) / denominator)
    return total / rows


def info_nce_loops(query, keys, temperature, labels):
    q = query / query.pow(2).sum(dim=1, keepdim=True).sqrt()
    k = keys / keys.pow(2).sum(dim=1, keepdim=True).sqrt()
    total = q.new_zeros(())
    for i in range(q.shape[0]):
        denominator = sum(torch.exp(q[i] @ k[j] / temperature) for j in range(k.shape[0]))
        total = total - torch.log(torch.exp(q[i] @ k[labels[i]] / temperature) / denominator)
    return total / q.shape[0]


@pytest.mark.parametrize(("n", "temperature"), [(1, 0.5), (4, 0.1), (6, 1.0)])
def test_nt_xent_reference_matches_loops_in_fp64(n, temperature):
    z1 = raw_embeddings(n, 5, seed=20 + n, dtype=torch.float64)
    z2 = raw_embeddings(n, 5, seed=30 + n, dtype=torch.float64)
    loss_r, grads_r = loss_and_grads(nt_xent_reference, z1, z2, temperature=temperature)
    loss_l, grads_l = loss_and_grads(nt_xent_loops, z1, z2, temperature=temperature)
    assert loss_r.dtype == torch.float64
    torch.testing.assert_close(loss_r, loss_l, rtol=1e-12, atol=1e-12)
    for g_r, g_l in zip(grads_r, grads_l):
        torch.testing.assert_close(g_r, g_l, rtol=1e-10, atol=1e-12)


def test_info_nce_reference_matches_loops_in_fp64():
    query = raw_embeddings(5, 7, seed=40, dtype=torch.float64)
    keys = raw_embeddings(11, 7, seed=41, dtype=torch.float64)
    labels = torch.tensor([3, 0, 10, 3, 7], device=DEVICE)
    loss_r, grads_r = loss_and_grads(info_nce_reference, query, keys, temperature=0.2, labels=labels)
    loss_l, grads_l = loss_and_grads(info_nce_loops, query, keys, temperature=0.2, labels=labels)
    torch.testing.assert_close(loss_r, loss_l, rtol=1e-12, atol=1e-12)
    for g_r, g_l in zip(grads_r, grads_l):
        torch.testing.assert_close(g_r, g_l, rtol=1e-10, atol=1e-12)


def test_references_pass_gradcheck():
    z1 = raw_embeddings(3, 4, seed=50, dtype=torch.float64)
    z2 = raw_embeddings(3, 4, seed=51, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: nt_xent_reference(a, b, 0.3), (z1, z2))
    query = raw_embeddings(3, 4, seed=52, dtype=torch.float64)
    keys = raw_embeddings(5, 4, seed=53, dtype=torch.float64)
    labels = torch.tensor([4, 4, 1], device=DEVICE)
    assert torch.autograd.gradcheck(lambda a, b: info_nce_reference(a, b, 0.3, labels), (query, keys))


def test_triton_matches_the_fp64_loops_directly():
    z1, z2 = raw_embeddings(6, 20, seed=60), raw_embeddings(6, 20, seed=61)
    loss_t, grads_t = loss_and_grads(nt_xent, z1, z2, temperature=0.1, backend="triton")
    z1_64, z2_64 = (z.detach().double().requires_grad_() for z in (z1, z2))
    loss_l, grads_l = loss_and_grads(nt_xent_loops, z1_64, z2_64, temperature=0.1)
    assert loss_t.item() == pytest.approx(loss_l.item(), rel=1e-5)
    for g_t, g_l in zip(grads_t, grads_l):
        assert_close_scaled(g_t, g_l, rel=1e-4)


# ----------------------------------------------------------------------------------------------------
# Backend choice and input checks
# ----------------------------------------------------------------------------------------------------


def test_auto_backend_uses_the_reference_for_cpu_tensors(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the Triton path ran for CPU tensors under backend='auto'")

    monkeypatch.setattr(K._RowLogSumExp, "apply", fail)
    z1, z2 = torch.randn(4, 8), torch.randn(4, 8)
    assert torch.isfinite(nt_xent(z1, z2, backend="auto"))
    assert torch.isfinite(info_nce(z1, z2, backend="auto"))
    with pytest.raises(AssertionError, match="Triton path ran"):
        nt_xent(z1, z2, backend="triton")


def test_backend_errors(monkeypatch):
    z = torch.randn(4, 8)
    with pytest.raises(ValueError, match="backend must be one of"):
        nt_xent(z, z, backend="cuda")
    with pytest.raises(TypeError, match="bfloat16"):
        nt_xent(z.bfloat16(), z.bfloat16(), backend="triton")
    with pytest.raises(TypeError, match="float32, float16 and bfloat16"):
        nt_xent(z.double(), z.double(), backend="triton")
    wide = torch.randn(2, 1025, dtype=torch.float16)
    with pytest.raises(ValueError, match="too wide"):
        nt_xent(wide, wide, backend="triton")
    monkeypatch.setattr(K, "INTERPRETED", False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        nt_xent(z, z, backend="triton")


BAD_INPUTS = [  # each call takes the backend, so that both paths check the same things
    (lambda b: nt_xent(torch.randn(8), torch.randn(8), backend=b), ValueError, "2-D"),
    (
        lambda b: info_nce(torch.randn(4, 8), torch.randn(6, 9), backend=b),
        ValueError,
        "same number of features",
    ),
    (lambda b: nt_xent(torch.randn(4, 8), torch.randn(5, 8), backend=b), ValueError, "equal shapes"),
    (lambda b: nt_xent(torch.randn(4, 8), torch.randn(4, 8).double(), backend=b), TypeError, "same dtype"),
    (
        lambda b: nt_xent(torch.ones(4, 8, dtype=torch.long), torch.ones(4, 8, dtype=torch.long), backend=b),
        TypeError,
        "floating point",
    ),
    (lambda b: nt_xent(torch.randn(0, 8), torch.randn(0, 8), backend=b), ValueError, "at least one row"),
    (
        lambda b: nt_xent(torch.randn(4, 8), torch.randn(4, 8), temperature=0.0, backend=b),
        ValueError,
        "finite number > 0",
    ),
    (lambda b: nt_xent(torch.randn(4, 8), torch.randn(4, 8), temperature=-0.1, backend=b), ValueError, "> 0"),
    (
        lambda b: nt_xent(torch.randn(4, 8), torch.randn(4, 8), temperature=math.nan, backend=b),
        ValueError,
        "finite",
    ),
    (
        lambda b: nt_xent(torch.randn(4, 8), torch.randn(4, 8), temperature=math.inf, backend=b),
        ValueError,
        "finite",
    ),
    (
        lambda b: nt_xent(torch.randn(4, 8), torch.randn(4, 8), temperature=torch.tensor(0.1), backend=b),
        TypeError,
        "Python number",
    ),
    (lambda b: info_nce(torch.randn(4, 8), torch.randn(3, 8), backend=b), ValueError, "pass labels="),
    (
        lambda b: info_nce(
            torch.randn(4, 8), torch.randn(6, 8), labels=torch.tensor([0, 1, 2, 6]), backend=b
        ),
        ValueError,
        r"in \[0, 6\)",
    ),
    (
        lambda b: info_nce(
            torch.randn(4, 8), torch.randn(6, 8), labels=torch.tensor([0, -1, 2, 3]), backend=b
        ),
        ValueError,
        r"in \[0, 6\)",
    ),
    (
        lambda b: info_nce(torch.randn(4, 8), torch.randn(6, 8), labels=torch.zeros(4), backend=b),
        TypeError,
        "integer",
    ),
    (
        lambda b: info_nce(
            torch.randn(4, 8), torch.randn(6, 8), labels=torch.zeros(3, dtype=torch.long), backend=b
        ),
        ValueError,
        r"shape \(4,\)",
    ),
]


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize(("call", "error", "message"), BAD_INPUTS)
def test_bad_inputs_raise_clear_errors(call, error, message, backend):
    with pytest.raises(error, match=message):
        call(backend)


def test_custom_labels_with_fewer_keys_than_queries():
    # Labels lift the M ≥ N requirement: several queries may share one positive key.
    query, keys = raw_embeddings(6, 16, seed=70), raw_embeddings(3, 16, seed=71)
    labels = torch.tensor([0, 1, 2, 2, 1, 0], device=DEVICE)
    loss_t, grads_t = loss_and_grads(info_nce, query, keys, temperature=0.3, labels=labels, backend="triton")
    loss_r, grads_r = loss_and_grads(info_nce, query, keys, temperature=0.3, labels=labels, backend="torch")
    torch.testing.assert_close(loss_t, loss_r, rtol=1e-5, atol=1e-5)
    for g_t, g_r in zip(grads_t, grads_r):
        assert_close_scaled(g_t, g_r, rel=1e-4)


# ----------------------------------------------------------------------------------------------------
# Tile configuration (the GPU fallback path, simulated)
# ----------------------------------------------------------------------------------------------------


def test_tile_configs_are_valid_for_tl_dot():
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

    monkeypatch.setattr(K, "_tile_config", lambda block_d, element_size: K._TileConfig(64, 64, 4, 3))
    monkeypatch.setattr(K, "_working_configs", {})
    kernel = FakeKernel()
    K._launch(kernel, 100, 64, 2, (), {})
    assert launches[-1] == ((7,), 16, 16, 2)  # 100 rows in blocks of 16 → 7 programs
    assert [launch[1:] for launch in launches[:3]] == [(64, 64, 3), (64, 64, 2), (64, 32, 2)]
    launches.clear()
    K._launch(kernel, 100, 64, 2, (), {})  # the working configuration is remembered
    assert launches == [((7,), 16, 16, 2)]


def test_autotune_times_the_neighbours_and_caches_the_fastest_per_size():
    from sslcookbook.kernels import _tiles

    launches = []

    class FakeKernel:
        def __getitem__(self, grid):
            def run(*args, BLOCK_OUT, BLOCK_LOOP, BLOCK_D, num_warps, num_stages, **constants):
                launches.append(_tiles.TileConfig(BLOCK_OUT, BLOCK_LOOP, num_warps, num_stages))
                if BLOCK_OUT == 128:
                    raise K.OutOfResources(200_000, 100_000, "shared memory")  # a candidate that cannot run

            return run

    start = _tiles.TileConfig(64, 32, 4, 2)
    assert _tiles.candidates(start) == [
        start, _tiles.TileConfig(32, 32, 4, 2), _tiles.TileConfig(128, 32, 4, 2),
        _tiles.TileConfig(64, 16, 4, 2), _tiles.TileConfig(64, 64, 4, 2), _tiles.TileConfig(64, 32, 8, 2),
    ]
    fastest = _tiles.TileConfig(64, 64, 4, 2)

    def timer(fn):
        fn()
        return 1.0 if launches[-1] == fastest else 2.0

    kernel, working = FakeKernel(), {}
    kw = dict(tile_config=lambda block_d, element_size: start, working=working, autotune=True, timer=timer)
    _tiles.launch(kernel, 1000, 64, 2, (), {}, **kw)
    assert launches[-1] == fastest and len(launches) == 7  # six timed (one out of resources), then the run
    launches.clear()
    _tiles.launch(kernel, 900, 64, 2, (), {}, **kw)  # 900 and 1000 rows: the same power-of-two bucket
    assert launches == [fastest]
    launches.clear()
    _tiles.launch(kernel, 5000, 64, 2, (), {}, **kw)  # another size is tuned again
    assert len(launches) == 7
    launches.clear()
    kw.update(working={}, autotune=False)
    _tiles.launch(kernel, 5000, 64, 2, (), {}, **kw)
    assert launches == [start]  # without autotuning: the table's entry only


def test_autotune_is_off_unless_the_environment_asks(monkeypatch):
    from sslcookbook.kernels import _tiles

    monkeypatch.delenv("SSLCOOKBOOK_AUTOTUNE", raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not _tiles.autotune_enabled()
    monkeypatch.setenv("SSLCOOKBOOK_AUTOTUNE", "1")
    assert _tiles.autotune_enabled()
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # the interpreter's tiles are fixed
    assert not _tiles.autotune_enabled()
    monkeypatch.delenv("TRITON_INTERPRET")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not _tiles.autotune_enabled()
