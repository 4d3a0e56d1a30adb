r"""Fused InfoNCE / NT-Xent: a contrastive loss that never builds the N×M matrix of logits.

The loss
--------
Queries :math:`q_i` (N×D) and keys :math:`k_j` (M×D) are L2-normalised, so :math:`s_{ij}=q_i\cdot k_j` is
a cosine similarity. With temperature :math:`\tau` and the positive key :math:`p(i)` of query i,

.. math::  \mathcal{L} = \frac1N \sum_i \Big[ -\frac{s_{i,p(i)}}{\tau} + \log\sum_j e^{s_{ij}/\tau} \Big]

InfoNCE / CPC (van den Oord et al., 2018, arXiv:1807.03748), MoCo (He et al., 2020). NT-Xent, the SimCLR
loss (Chen et al., 2020, arXiv:2002.05709), is the special case where the two views z1, z2 (N×D each) are
stacked into z (2N×D), queries = keys = z, the self-pair j = i is left out of the sum, and the positive
of row i is its other view, i ± N.

Why a kernel
------------
The plain PyTorch version (the formula ``nt_xent_reference`` in :mod:`sslcookbook.losses.contrastive`,
which is this kernel's reference) materialises the R×R logits (R = 2N rows), their
softmax and its gradient: at R = 65,536 that is 16 GiB per fp32 matrix. Only two things per row are
needed, though: the positive logit (a dot product, computed in torch) and the log-sum-exp over the row.
The log-sum-exp can be streamed, exactly as FlashAttention (Dao et al., 2022, arXiv:2205.14135) streams
the softmax normaliser, so memory stays O((N + M)·D).

Forward (``_row_lse_fwd_kernel``): one program owns BLOCK_OUT query rows and keeps them on chip. It
walks over the keys BLOCK_LOOP at a time; for each tile it computes the logits with one ``tl.dot``
(fp32 accumulation), and updates a running maximum m and a running sum l per row (online log-sum-exp,
Milakov & Gimelshein 2018)::

    m_new = max(m, max_j s_ij)            # the exponentials below never overflow
    l     = l · exp(m − m_new) + Σ_j exp(s_ij − m_new)
    lse   = m + log(l)                      # after the last tile

The self-pair (NT-Xent) and the padding columns past M are set to −inf before the update. Only the
per-row ``lse`` (fp32, N values) is written to memory. Exponentials are taken in base 2 (``exp2`` is the
native instruction): the logits are multiplied by log2(e)/τ instead of 1/τ and the result is converted
back with ln 2.

Backward: with :math:`P_{ij}=e^{s_{ij}/\tau-\mathrm{lse}_i}` (the row softmax) and the incoming gradient
:math:`g_i=\partial\mathcal{L}/\partial\,\mathrm{lse}_i` (1/N for the mean loss),

.. math::  \frac{\partial\mathcal{L}}{\partial q_i} = \frac1\tau \sum_j g_i P_{ij} k_j, \qquad
           \frac{\partial\mathcal{L}}{\partial k_j} = \frac1\tau \sum_i g_i P_{ij} q_i .

P is not stored: each tile is recomputed from q, k and the saved lse (cheaper than reading an R×R
matrix back). Two kernels, so that every program writes its own output block and no atomics are needed:
``_row_lse_bwd_dq_kernel`` owns a block of query rows and loops over key blocks (dQ = G K / τ), and
``_row_lse_bwd_dk_kernel`` owns a block of key rows and loops over query blocks (dK = Gᵀ Q / τ), using
the transposed tile :math:`s^T = k q^T`. For NT-Xent the same tensor z is both queries and keys, and
autograd adds the two: dz = dQ + dK.

What stays in torch: the L2 normalisation (cheap, O(R·D), and autograd differentiates it), the
positive term (a gather and a row-wise dot product) and the mean. The autograd.Function wraps only the
normalised embeddings → per-row lse step (``info_nce_lse``). ``info_nce``, ``nt_xent`` and ``info_nce_lse``
here are the Triton twins of ``info_nce_reference``, ``nt_xent_reference`` and ``info_nce_lse_reference``
in :mod:`sslcookbook.losses.contrastive`: same arguments, inputs already checked by the public loss, which
also chooses between the two (:func:`sslcookbook.kernels.resolve_backend`, with :func:`unsupported`;
``backend="auto"`` takes the kernel only where it was measured faster than eager, :func:`auto_backend`).

Precision
---------
Inputs may be fp32, fp16 or bf16; tiles are multiplied with fp32 accumulation and the softmax
statistics are fp32. The loss is returned in fp32 whatever the input dtype; gradients come back in the
input dtype. In the backward the tile :math:`g_i P_{ij}` is cast to the input dtype before its second
``tl.dot`` (as FlashAttention does). It is first divided by max|g| so its entries are at most 1, and for
fp16 multiplied by 2^15, so that values like P/N at N = 262,144 do not underflow fp16 (the factors are
undone on the fp32 accumulator). fp32 tiles use TF32 tensor cores only when PyTorch's own matmuls do
(``torch.backends.cuda.matmul.allow_tf32``), otherwise exact fp32 ("ieee"). For 16-bit inputs the kernel
keeps the logits in fp32 while the reference rounds them to the input dtype, so the kernel is the more
accurate of the two.

Tile sizes
----------
By default a small table (``_tile_config``) picks the tile from the bytes per embedding row,
BLOCK_D · element size, where BLOCK_D = next_power_of_2(D) ≥ 16 (padding features are masked to zero).
Wider rows get smaller tiles so that the resident block, the pipelined stream of loop tiles and the
fp32 accumulator fit in shared memory and registers. Every tile dimension is ≥ 16, as ``tl.dot``
requires on a GPU. If a GPU still reports too little shared memory, the launch retries with smaller
tiles. Under the interpreter (CPU) tiles are 32×32: numpy does the arithmetic, so fewer, larger steps
run faster. Rows wider than 2 KiB (D > 1024 in 16-bit, D > 512 in fp32) are not supported by the
kernel (:func:`unsupported`); ``backend="auto"`` uses the reference for them. With
``SSLCOOKBOOK_AUTOTUNE=1`` (GPU only, opt-in until measured) the first launch per kernel, row width and
problem size times the table's entry and its neighbours and keeps the fastest (``_tiles.launch``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from . import measured_backend, require_triton, triton_available
from ._tiles import TileConfig as _TileConfig
from ._tiles import dot_precision as _dot_precision
from ._tiles import launch
from ._tiles import smaller as _smaller  # noqa: F401  (the tests step through the fallback sizes)

__all__ = [
    "AUTO_MIN_ROWS",
    "AUTO_SOURCE",
    "AVAILABLE",
    "INTERPRETED",
    "auto_backend",
    "info_nce",
    "info_nce_lse",
    "logits_rows",
    "nt_xent",
    "unsupported",
]

# False where `import triton` fails: the kernels then raise a RuntimeError saying why (require_triton).
AVAILABLE = triton_available()
_WHAT = "the fused InfoNCE kernel (sslcookbook.kernels.infonce)"

_MAX_ROW_BYTES = 2048  # BLOCK_D * element size; see _tile_config
_LOG2E = math.log2(math.e)
_FP16_TILE_SCALE = 2.0**15  # g·P ≤ 1 is multiplied by this before the cast to fp16 (max 65504)

if triton_available():
    import triton
    import triton.language as tl
    from triton.runtime.errors import OutOfResources  # noqa: F401  (what a launch that does not fit raises)

    @triton.jit
    def _load_rows(ptr, rows, row_ok, stride, feats, feat_ok):
        """The [len(rows), BLOCK_D] tile of a row-major matrix; rows and features out of range read 0."""
        offsets = rows.to(tl.int64)[:, None] * stride + feats[None, :]
        return tl.load(ptr + offsets, mask=row_ok[:, None] & feat_ok[None, :], other=0.0)

    @triton.jit
    def _store_rows(ptr, rows, row_ok, stride, feats, feat_ok, tile):
        """Write ``tile`` into the given rows of a row-major matrix, skipping out-of-range entries."""
        offsets = rows.to(tl.int64)[:, None] * stride + feats[None, :]
        tl.store(ptr + offsets, tile, mask=row_ok[:, None] & feat_ok[None, :])

    @triton.jit
    def _row_lse_fwd_kernel(
        Q,
        K,
        LSE,
        n_rows,
        n_cols,
        dim,
        stride_q,
        stride_k,
        scale_log2,  # log2(e) / temperature
        MASK_SELF: tl.constexpr,
        DOT_PRECISION: tl.constexpr,
        BLOCK_OUT: tl.constexpr,
        BLOCK_LOOP: tl.constexpr,
        BLOCK_D: tl.constexpr,
    ):
        """LSE[i] = logsumexp_j (Q[i]·K[j] / τ) over j < n_cols (and j ≠ i when MASK_SELF)."""
        rows = tl.program_id(0) * BLOCK_OUT + tl.arange(0, BLOCK_OUT)
        feats = tl.arange(0, BLOCK_D)
        row_ok = rows < n_rows
        feat_ok = feats < dim
        q = _load_rows(Q, rows, row_ok, stride_q, feats, feat_ok)
        # A finite floor instead of -inf: a row whose first tile is fully masked must not compute
        # exp2(-inf - -inf) = nan in the rescaling factor below.
        row_max = tl.full([BLOCK_OUT], -1.0e30, dtype=tl.float32)
        row_sum = tl.zeros([BLOCK_OUT], dtype=tl.float32)
        for start in range(0, n_cols, BLOCK_LOOP):
            cols = start + tl.arange(0, BLOCK_LOOP)
            col_ok = cols < n_cols
            k = _load_rows(K, cols, col_ok, stride_k, feats, feat_ok)
            s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale_log2
            keep = col_ok[None, :]
            if MASK_SELF:
                keep = keep & (rows[:, None] != cols[None, :])
            s = tl.where(keep, s, float("-inf"))
            new_max = tl.maximum(row_max, tl.max(s, axis=1))
            row_sum = row_sum * tl.exp2(row_max - new_max) + tl.sum(tl.exp2(s - new_max[:, None]), axis=1)
            row_max = new_max
        lse = (row_max + tl.log2(row_sum)) * 0.6931471805599453  # back from base 2: · ln 2
        tl.store(LSE + rows, lse, mask=row_ok)

    @triton.jit
    def _row_lse_bwd_dq_kernel(
        Q,
        K,
        LSE,
        W,  # incoming gradient of each row's lse, divided by G_MAX
        G_MAX,  # 1-element tensor, max |dL/dlse|
        DQ,
        n_rows,
        n_cols,
        dim,
        stride_q,
        stride_k,
        stride_dq,
        scale_log2,
        out_scale,  # 1 / (temperature · tile_scale); G_MAX is applied on top
        tile_scale,  # 2^15 for fp16, else 1
        MASK_SELF: tl.constexpr,
        DOT_PRECISION: tl.constexpr,
        BLOCK_OUT: tl.constexpr,
        BLOCK_LOOP: tl.constexpr,
        BLOCK_D: tl.constexpr,
    ):
        """DQ[i] = (1/τ) Σ_j g_i P_ij K[j]: this program owns BLOCK_OUT query rows, loops over keys."""
        rows = tl.program_id(0) * BLOCK_OUT + tl.arange(0, BLOCK_OUT)
        feats = tl.arange(0, BLOCK_D)
        row_ok = rows < n_rows
        feat_ok = feats < dim
        q = _load_rows(Q, rows, row_ok, stride_q, feats, feat_ok)
        lse2 = tl.load(LSE + rows, mask=row_ok, other=0.0) * 1.4426950408889634  # · log2(e)
        w = tl.load(W + rows, mask=row_ok, other=0.0) * tile_scale
        acc = tl.zeros([BLOCK_OUT, BLOCK_D], dtype=tl.float32)
        for start in range(0, n_cols, BLOCK_LOOP):
            cols = start + tl.arange(0, BLOCK_LOOP)
            col_ok = cols < n_cols
            k = _load_rows(K, cols, col_ok, stride_k, feats, feat_ok)
            s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale_log2
            keep = col_ok[None, :]
            if MASK_SELF:
                keep = keep & (rows[:, None] != cols[None, :])
            p = tl.where(keep, tl.exp2(s - lse2[:, None]), 0.0)
            g = p * w[:, None]
            acc = tl.dot(g.to(k.dtype), k, acc, input_precision=DOT_PRECISION)
        acc = acc * (out_scale * tl.load(G_MAX))
        _store_rows(DQ, rows, row_ok, stride_dq, feats, feat_ok, acc.to(DQ.dtype.element_ty))

    @triton.jit
    def _row_lse_bwd_dk_kernel(
        Q,
        K,
        LSE,
        W,
        G_MAX,
        DK,
        n_rows,
        n_cols,
        dim,
        stride_q,
        stride_k,
        stride_dk,
        scale_log2,
        out_scale,
        tile_scale,
        MASK_SELF: tl.constexpr,
        DOT_PRECISION: tl.constexpr,
        BLOCK_OUT: tl.constexpr,
        BLOCK_LOOP: tl.constexpr,
        BLOCK_D: tl.constexpr,
    ):
        """DK[j] = (1/τ) Σ_i g_i P_ij Q[i]: this program owns BLOCK_OUT key rows, loops over queries."""
        cols = tl.program_id(0) * BLOCK_OUT + tl.arange(0, BLOCK_OUT)
        feats = tl.arange(0, BLOCK_D)
        col_ok = cols < n_cols
        feat_ok = feats < dim
        k = _load_rows(K, cols, col_ok, stride_k, feats, feat_ok)
        acc = tl.zeros([BLOCK_OUT, BLOCK_D], dtype=tl.float32)
        for start in range(0, n_rows, BLOCK_LOOP):
            rows = start + tl.arange(0, BLOCK_LOOP)
            row_ok = rows < n_rows
            q = _load_rows(Q, rows, row_ok, stride_q, feats, feat_ok)
            lse2 = tl.load(LSE + rows, mask=row_ok, other=0.0) * 1.4426950408889634
            w = tl.load(W + rows, mask=row_ok, other=0.0) * tile_scale
            # Transposed tile: s_t[j, i] = s[i, j], so the softmax statistics run along axis 1.
            s_t = tl.dot(k, tl.trans(q), input_precision=DOT_PRECISION) * scale_log2
            keep = row_ok[None, :]
            if MASK_SELF:
                keep = keep & (cols[:, None] != rows[None, :])
            p_t = tl.where(keep, tl.exp2(s_t - lse2[None, :]), 0.0)
            g_t = p_t * w[None, :]
            acc = tl.dot(g_t.to(q.dtype), q, acc, input_precision=DOT_PRECISION)
        acc = acc * (out_scale * tl.load(G_MAX))
        _store_rows(DK, cols, col_ok, stride_dk, feats, feat_ok, acc.to(DK.dtype.element_ty))

    # The interpreter is chosen when @triton.jit runs, i.e. when this module is imported.
    INTERPRETED = type(_row_lse_fwd_kernel).__name__ == "InterpretedFunction"
else:
    INTERPRETED = False


# ----------------------------------------------------------------------------------------------------
# Tile configuration and launching
# ----------------------------------------------------------------------------------------------------


def _tile_config(block_d: int, element_size: int) -> _TileConfig:
    """Tile sizes for one embedding row of ``block_d · element_size`` bytes (no autotuning).

    Shared memory holds roughly ``(block_out + num_stages · block_loop) · row_bytes``; the fp32
    accumulator of the backward kernels is ``block_out · block_d`` values spread over the warps' registers.
    The table keeps both well inside an A100/H100 SM.
    """
    if INTERPRETED:
        return _TileConfig(32, 32, 1, 1)
    row_bytes = block_d * element_size
    if row_bytes <= 256:  # D ≤ 128 in 16-bit, D ≤ 64 in fp32
        return _TileConfig(64, 64, 4, 3)
    if row_bytes <= 512:  # D ≤ 256 in 16-bit, D ≤ 128 in fp32
        return _TileConfig(64, 32, 8, 2)
    if row_bytes <= 1024:
        return _TileConfig(32, 32, 8, 2)
    return _TileConfig(16, 16, 4, 2)


_working_configs: dict[tuple, _TileConfig] = {}


def _launch(kernel, n_rows: int, block_d: int, element_size: int, args: tuple, constants: dict) -> None:
    """Launch ``kernel`` over blocks of ``n_rows`` rows from this module's tile table (``_tiles.launch``)."""
    launch(
        kernel, n_rows, block_d, element_size, args, constants,
        tile_config=_tile_config, working=_working_configs,
    )


def _block_d(dim: int) -> int:
    """Features padded to a power of two, at least 16 (tl.dot's minimum); the padding is masked."""
    return max(16, 1 << (dim - 1).bit_length())


def _lse_forward_triton(
    q: torch.Tensor, k: torch.Tensor, temperature: float, mask_self: bool
) -> torch.Tensor:
    n_rows, dim = q.shape
    lse = torch.empty(n_rows, device=q.device, dtype=torch.float32)
    block_d = _block_d(dim)
    _launch(
        _row_lse_fwd_kernel,
        n_rows,
        block_d,
        q.element_size(),
        (q, k, lse, n_rows, k.shape[0], dim, q.stride(0), k.stride(0), _LOG2E / temperature),
        {"MASK_SELF": mask_self, "DOT_PRECISION": _dot_precision(q.dtype)},
    )
    return lse


def _lse_backward_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    lse: torch.Tensor,
    grad_lse: torch.Tensor,
    temperature: float,
    mask_self: bool,
    need_dq: bool,
    need_dk: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    n_rows, dim = q.shape
    n_cols = k.shape[0]
    grad_lse = grad_lse.float().contiguous()
    # Normalise the incoming gradient so that |g_i P_ij| ≤ 1 in the tile cast to 16-bit (see module doc).
    g_max = grad_lse.abs().amax().clamp_min(torch.finfo(torch.float32).tiny).reshape(1)
    w = grad_lse / g_max
    tile_scale = _FP16_TILE_SCALE if q.dtype == torch.float16 else 1.0
    block_d = _block_d(dim)
    scalars = (_LOG2E / temperature, 1.0 / (temperature * tile_scale), tile_scale)
    constants = {"MASK_SELF": mask_self, "DOT_PRECISION": _dot_precision(q.dtype)}
    dq = dk = None
    if need_dq:
        dq = torch.empty_like(q)
        _launch(
            _row_lse_bwd_dq_kernel,
            n_rows,
            block_d,
            q.element_size(),
            (q, k, lse, w, g_max, dq, n_rows, n_cols, dim, q.stride(0), k.stride(0), dq.stride(0), *scalars),
            constants,
        )
    if need_dk:
        dk = torch.empty_like(k)
        _launch(
            _row_lse_bwd_dk_kernel,
            n_cols,
            block_d,
            q.element_size(),
            (q, k, lse, w, g_max, dk, n_rows, n_cols, dim, q.stride(0), k.stride(0), dk.stride(0), *scalars),
            constants,
        )
    return dq, dk


class _RowLogSumExp(torch.autograd.Function):
    """lse_i = logsumexp_j (q_i·k_j / τ) with the Triton kernels; forward stores only lse (fp32, N)."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, temperature: float, mask_self: bool) -> torch.Tensor:
        q = q.contiguous()
        k = k.contiguous()
        lse = _lse_forward_triton(q, k, temperature, mask_self)
        ctx.save_for_backward(q, k, lse)
        ctx.temperature = temperature
        ctx.mask_self = mask_self
        return lse

    @staticmethod
    def backward(ctx, grad_lse: torch.Tensor):
        q, k, lse = ctx.saved_tensors
        need_dq, need_dk = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        dq, dk = _lse_backward_triton(q, k, lse, grad_lse, ctx.temperature, ctx.mask_self, need_dq, need_dk)
        return dq, dk, None, None


# ----------------------------------------------------------------------------------------------------
# Public API: the Triton twins of the references in sslcookbook.losses.contrastive (inputs checked there)
# ----------------------------------------------------------------------------------------------------


def unsupported(tensors: Sequence[torch.Tensor]) -> str | None:
    """Why the kernel cannot take embeddings like ``tensors[0]`` (too wide a row), or None."""
    x = tensors[0]
    if _block_d(x.shape[1]) * x.element_size() > _MAX_ROW_BYTES:
        return (
            f"D={x.shape[1]} in {x.dtype} is too wide for the kernel (at most {_MAX_ROW_BYTES} bytes per "
            "padded row: D ≤ 1024 in 16-bit, D ≤ 512 in fp32)"
        )
    return None


# backend="auto": from how many rows R (R×R logits) the kernel beat eager PyTorch, forward + backward, on an
# H100 (python benchmarks/kernel_crossover.py reads these figures off AUTO_SOURCE; tests/test_kernels_auto.py
# checks that the table still agrees with it).
AUTO_SOURCE = "benchmarks/results/infonce_nvidia-h100-80gb-hbm3.csv"
AUTO_MIN_ROWS = {
    # Eager faster at R ≤ 4,096 (Triton 0.56-0.80×), Triton faster from 16,384 (1.69-8.97×), D = 128 and
    # 256; interpolated crossing 6,212 (D = 256) and 6,718 (D = 128), rounded up to a power of two.
    # fp16 was not measured: same 2-byte tiles and tensor-core rate as bf16.
    torch.bfloat16: 8_192,
    torch.float16: 8_192,
    # TF32 off: eager faster at every measured R (Triton 0.12-0.62×, R = 1,024 to 65,536). Above 65,536
    # rows eager's fp32 R×R logits, softmax and gradient (49 GB peak at 65,536, growing as R²) no longer
    # fit one 80 GB GPU while the kernel needs O(R·D) memory, so the kernel takes over there.
    torch.float32: 65_537,
}


def logits_rows(n: int, m: int) -> int:
    """The R of an R×R logits matrix with as many entries as N×M: the size :data:`AUTO_MIN_ROWS` is in.

    NT-Xent on 2N rows is R = 2N; the crossover was measured on square logits only, so for N ≠ M (a MoCo
    queue) this is an extrapolation by work, N·M·D.
    """
    return math.isqrt(n * m)


def auto_backend(rows: int, dtype: torch.dtype, device_type: str) -> str:
    """'triton' or 'torch': ``backend="auto"``'s choice for ``rows`` = :func:`logits_rows` of the logits.

    Measured crossover (H100, forward + backward, D = 128 and 256; :data:`AUTO_SOURCE`): in bf16 / fp16 the
    kernel from 8,192 rows (eager faster at ≤ 4,096, the kernel 1.7-9× faster at ≥ 16,384); in fp32 with
    TF32 off eager up to 65,536 rows (the kernel was 0.12-0.62× at every measured size) and the kernel
    above, where eager's R×R matrices no longer fit the GPU. Non-CUDA devices and other dtypes: 'torch'.
    """
    return measured_backend(rows, dtype, device_type, AUTO_MIN_ROWS)


def info_nce_lse(
    q: torch.Tensor, k: torch.Tensor, temperature: float, mask_self: bool = False
) -> torch.Tensor:
    r"""Per-row :math:`\mathrm{lse}_i = \log\sum_j e^{q_i\cdot k_j/\tau}` (j ≠ i with ``mask_self``).

    fp32, shape (N,); never stores the N×M logits; differentiable with respect to q and k.
    """
    require_triton(_WHAT)
    return _RowLogSumExp.apply(q, k, temperature, bool(mask_self))


def info_nce(
    query: torch.Tensor, keys: torch.Tensor, temperature: float, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """InfoNCE: the per-row lse from the kernel minus the positive logit, a row-wise dot product (fp32)."""
    require_triton(_WHAT)
    qn, kn = _normalize(query), _normalize(keys)
    lse = _RowLogSumExp.apply(qn, kn, temperature, False)
    positives = kn[: query.shape[0]] if labels is None else kn.index_select(0, labels)
    positive_logits = (qn.float() * positives.float()).sum(dim=1) / temperature
    return (lse - positive_logits).mean()


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent: InfoNCE of z = [z1; z2] against itself without the self-pair; the positive of i is i ± N."""
    require_triton(_WHAT)
    n = z1.shape[0]
    z = _normalize(torch.cat([z1, z2]))
    lse = _RowLogSumExp.apply(z, z, temperature, True)
    # Row i and row i + N share the same positive logit z_i · z_{i+N}.
    positive_logits = (z[:n].float() * z[n:].float()).sum(dim=1) / temperature
    return lse.mean() - positive_logits.mean()


def _normalize(x: torch.Tensor) -> torch.Tensor:
    """Row-wise L2 normalisation in (at least) fp32, returned in the input dtype, as the references do."""
    return F.normalize(x.to(torch.promote_types(x.dtype, torch.float32)), dim=1).to(x.dtype)
