r"""Fused SigLIP sigmoid loss: the image–text loss that never builds the B×B matrix of logits.

The loss
--------
SigLIP (Zhai et al., 2023, "Sigmoid Loss for Language Image Pre-Training", arXiv:2303.15343) scores every
image–text pair of a batch on its own, as a binary "do these match?" question. With image features
:math:`x_i` and text features :math:`y_j` (B×D each, row i of both from the same pair), the learnable
scale t (the multiplier itself, :math:`t = e^{t'}`, 10 at initialisation) and bias b (−10):

.. math::  \ell_{ij} = -\log\sigma\big(z_{ij}\,(t\,x_i\cdot y_j + b)\big), \qquad
           \mathcal{L} = \frac1B \sum_{i}\sum_{j} \ell_{ij}, \qquad
           z_{ij} = \begin{cases} +1 & i = j \\ -1 & i \ne j \end{cases}

Unlike the softmax of CLIP, nothing couples the pairs: no row normaliser, so each term and its gradient
depend on its own logit :math:`u_{ij} = t\,s_{ij} + b` (:math:`s_{ij} = x_i\cdot y_j`) alone. With
:math:`q_{ij} = \partial\ell_{ij}/\partial u_{ij} = \sigma(u_{ij}) - [i = j]` (a number in [−1, 1]):

.. math::  \frac{\partial\mathcal{L}}{\partial x_i} = \frac tB \sum_j q_{ij}\,y_j, \quad
           \frac{\partial\mathcal{L}}{\partial y_j} = \frac tB \sum_i q_{ij}\,x_i, \quad
           \frac{\partial\mathcal{L}}{\partial t} = \frac1B \sum_{ij} q_{ij}\,s_{ij}, \quad
           \frac{\partial\mathcal{L}}{\partial b} = \frac1B \sum_{ij} q_{ij}

Why a kernel: the memory model
------------------------------
Written in PyTorch (:func:`~sslcookbook.losses.language_image.siglip_loss_reference`) the loss
materialises the B×B logits, the labels, the log-sigmoid and, in the backward, the B×B gradient: each
matrix is B²·4 bytes in fp32, 16 GiB
at B = 65,536, and autograd keeps several. The kernels below keep only tiles of BLOCK_OUT × BLOCK_LOOP
logits on chip and write O(B·D) numbers: memory grows like B, not B², so the batch can grow to where
SigLIP's gains saturate (about 32k, the paper finds) on one device.

Two kernels, and why the forward computes gradients
---------------------------------------------------
Because :math:`q_{ij}` needs no row statistic (no log-sum-exp to finish first, as InfoNCE does), the pass
that computes the loss can also accumulate the gradients along its rows:

* ``_siglip_rows_kernel``: one program owns BLOCK_OUT image rows :math:`x_i` and keeps them on chip; it
  streams the text rows BLOCK_LOOP at a time. Per tile: the logits with one ``tl.dot`` (fp32
  accumulation), the loss terms (summed per row), and, when gradients are wanted, q and a second
  ``tl.dot`` that adds :math:`\sum_j q_{ij} y_j` into an fp32 accumulator. After the loop it writes the
  row's loss, :math:`\sum_j q_{ij}` (for db), :math:`\sum_j q_{ij} s_{ij}` (for dt) and
  :math:`t \sum_j q_{ij} y_j` (dx up to the incoming gradient), all in fp32. The two scalar sums are
  reduced from the fp32 tile: taking :math:`x_i\cdot\sum_j q_{ij} y_j` from the accumulator instead
  would save a reduction per tile but inherit the 16-bit rounding of q, and dt is a sum of terms of
  both signs that cancel.
* ``_siglip_cols_kernel`` (backward): one program owns BLOCK_OUT text rows :math:`y_j` and streams the
  image rows; it recomputes the transposed tile :math:`s^T = y\,x^T` and accumulates
  :math:`\sum_i q_{ij} x_i` (dy). The incoming gradient is read from device memory (no host sync).

Every program writes only its own rows, so there are no atomics: the result is deterministic and needs
no zero-initialised buffers. Atomics (one kernel adding each tile's :math:`q^T x` into dy) would save
the recomputation, but they cost B²·D / BLOCK_OUT atomic additions (~10¹⁰ at B = 65,536, D = 256) and make the
gradient depend on the order of the additions. Counting multiply-adds ×2, the pair of kernels does
8·B²·D FLOPs per training step (forward logits and dx, then recomputed logits and dy) where a separate
forward, dx and dy kernel would do 10·B²·D. The price: a forward with gradients enabled that is never
followed by a backward (evaluation outside ``torch.no_grad``) does the dx work for nothing, and the
B×D fp32 dx is held from forward to backward. Under ``torch.no_grad`` the forward computes the loss only;
with frozen image features (LiT) the dx accumulation is skipped.

Negative-only blocks
--------------------
The chunked distributed loss (big_vision's, open_clip's) scores each rank's B images against its own
texts, then against every other rank's texts, where all pairs are negatives. ``negative_only=True``
drops the diagonal (z = −1 everywhere) and allows M ≠ B texts; the sum is still divided by B, so the
blocks of one rank add up to its share of the whole batch's loss.

Numerically stable log-sigmoid
------------------------------
:math:`\ell = -\log\sigma(z u) = \max(-z u, 0) + \log(1 + e^{-|u|})` (the same as
:math:`\log\sigma(v) = \min(v, 0) - \log1p(e^{-|v|})`): the exponential never overflows, and for a
confidently right pair (|u| large) the term is the tiny log1p, not a difference of large numbers. Triton
has no log1p that also runs in the interpreter (libdevice calls are GPU-only), and ``log(1 + w)`` loses
everything for small w (1 + w rounds to 1), exactly the regime of SigLIP's ~B² easy negatives at
b = −10, where w ≈ e⁻¹⁰. ``_log1p`` evaluates :math:`\log(1+w) = 2\,\mathrm{atanh}(s)`,
:math:`s = w/(2 + w) \le 1/3`, by its odd series in s (nine terms: the rest is below 2·10⁻¹⁰ relative),
with no logarithm at all, accurate to fp32 rounding on [0, 1]. The sigmoid comes from the same
:math:`w = e^{-|u|}`: :math:`\sigma(u) = 1/(1 + w)` for u ≥ 0 and :math:`w/(1 + w)` otherwise, and
:math:`1 - \sigma(u)` is computed the other way round, never by a subtraction.

Precision
---------
Inputs may be fp32, fp16 or bf16 (both feature sets the same dtype); t and b are read as fp32 from
device memory; logits, loss terms and accumulators are fp32. The loss is returned in fp32, gradients in
their inputs' dtypes. The q tile is cast to the input dtype for its ``tl.dot`` (as FlashAttention does);
for fp16 it is first multiplied by 2^15 (|q| ≤ 1, so it stays below fp16's 65,504) so that the
σ(−10) ≈ 4.5·10⁻⁵ of the easy negatives are not fp16 subnormals; the factor is undone on the fp32
accumulator. fp32 tiles use TF32 only when PyTorch's own matmuls do
(``torch.backends.cuda.matmul.allow_tf32``). The reference rounds the logits to the input dtype before
scaling them (what an eager bf16 step does), so in 16-bit the kernel is the more accurate of the two.

Tiles
-----
By default ``_tile_config`` picks the tile from the padded row's bytes, BLOCK_D · element size
(BLOCK_D = next_power_of_2(D) ≥ 16; padding features read as zero). The resident block, the stream of
loop tiles and the BLOCK_OUT × BLOCK_D fp32 accumulator must fit in shared memory and registers; on an
out-of-resources error the launch retries with smaller tiles. Rows wider than 2 KiB (D > 1024 in 16-bit,
D > 512 in fp32) are not supported (:func:`unsupported`). Under the interpreter (CPU tests) tiles are
32 × 32: numpy does the arithmetic, so fewer, larger steps run faster. ``SSLCOOKBOOK_AUTOTUNE=1`` (GPU
only, opt-in) times the table's entry and its neighbours at the first launch of each size instead.

Interpreter: set ``TRITON_INTERPRET=1`` *before* this module is imported to run the kernels on CPU
tensors (``INTERPRETED`` says whether it was); bf16 does not exist there.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.autograd.function import once_differentiable

from ..losses.language_image import siglip_loss_reference  # the kernel's reference, in losses/
from . import KERNEL_DTYPES, require_triton, triton_available
from ._tiles import TileConfig as _TileConfig
from ._tiles import dot_precision as _dot_precision
from ._tiles import launch
from ._tiles import smaller as _smaller  # noqa: F401  (the tests step through the fallback sizes)

__all__ = ["AVAILABLE", "INTERPRETED", "siglip_loss_reference", "siglip_loss_triton", "unsupported"]

# False where `import triton` fails: siglip_loss_triton then raises a RuntimeError saying why.
AVAILABLE = triton_available()
_WHAT = "the fused SigLIP kernel (sslcookbook.kernels.siglip)"

_MAX_ROW_BYTES = 2048  # BLOCK_D * element size; see _tile_config
_FP16_TILE_SCALE = 2.0**15  # |q| ≤ 1 is multiplied by this before the cast to fp16 (max 65504)

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
    def _log1p(w):
        """log(1 + w) for 0 ≤ w ≤ 1, as 2·atanh(s) = 2(s + s³/3 + s⁵/5 + …), s = w / (2 + w) ≤ 1/3."""
        s = w / (2.0 + w)
        s2 = s * s
        # Horner's rule from the s¹⁷/17 term down; for s ≤ 1/3 the next term is < 2e-10 of the sum.
        p = 0.058823529411764705  # 1/17
        p = p * s2 + 0.06666666666666667  # 1/15
        p = p * s2 + 0.07692307692307693  # 1/13
        p = p * s2 + 0.09090909090909091  # 1/11
        p = p * s2 + 0.1111111111111111  # 1/9
        p = p * s2 + 0.14285714285714285  # 1/7
        p = p * s2 + 0.2
        p = p * s2 + 0.3333333333333333
        p = p * s2 + 1.0
        return 2.0 * s * p

    @triton.jit
    def _pair_terms(s, t, b, positive, keep):
        """For a tile of dot products s: (u, w, q) with w = e^{−|u|} and q = dℓ/du = σ(u) − [positive].

        u = t·s + b is the logit; q is 0 where ``keep`` is false (padding rows or columns).
        """
        u = t * s + b
        w = tl.exp(-tl.abs(u))  # ≤ 1: never overflows, whatever t and b
        r = 1.0 / (1.0 + w)
        nonneg = u >= 0
        sig = tl.where(nonneg, r, w * r)  # σ(u)
        sig_neg = tl.where(nonneg, w * r, r)  # σ(−u) = 1 − σ(u), without the cancellation
        q = tl.where(positive, -sig_neg, sig)
        return u, w, tl.where(keep, q, 0.0)

    @triton.jit
    def _siglip_rows_kernel(
        X,  # (B, D) image features
        Y,  # (B, D) text features
        SCALE,  # 1-element fp32: t
        BIAS,  # 1-element fp32: b
        ROW_LOSS,  # out (B,) fp32: Σ_j ℓ_ij
        ROW_DT,  # out (B,) fp32: Σ_j q_ij s_ij          (COMPUTE_SCALARS)
        ROW_DB,  # out (B,) fp32: Σ_j q_ij               (COMPUTE_SCALARS)
        DX,  # out (B, D) fp32: t Σ_j q_ij y_j            (COMPUTE_DX)
        n_rows,  # image rows B
        n_cols,  # text rows: B, or another rank's count with NEGATIVE_ONLY
        dim,
        stride_x,
        stride_y,
        stride_dx,
        tile_scale,  # 2^15 for fp16, else 1: applied to q before its cast to the input dtype
        COMPUTE_DX: tl.constexpr,
        COMPUTE_SCALARS: tl.constexpr,
        NEGATIVE_ONLY: tl.constexpr,  # z = −1 everywhere (texts of other pairs only: no diagonal)
        DOT_PRECISION: tl.constexpr,
        BLOCK_OUT: tl.constexpr,
        BLOCK_LOOP: tl.constexpr,
        BLOCK_D: tl.constexpr,
    ):
        """Loss (and dx, dt, db terms) of BLOCK_OUT image rows against all B texts, streamed in tiles."""
        rows = tl.program_id(0) * BLOCK_OUT + tl.arange(0, BLOCK_OUT)
        feats = tl.arange(0, BLOCK_D)
        row_ok = rows < n_rows
        feat_ok = feats < dim
        x = _load_rows(X, rows, row_ok, stride_x, feats, feat_ok)  # stays on chip for the whole loop
        t = tl.load(SCALE)
        b = tl.load(BIAS)
        loss = tl.zeros([BLOCK_OUT], dtype=tl.float32)
        sum_q = tl.zeros([BLOCK_OUT], dtype=tl.float32)
        sum_qs = tl.zeros([BLOCK_OUT], dtype=tl.float32)
        acc = tl.zeros([BLOCK_OUT, BLOCK_D], dtype=tl.float32)  # Σ_j q_ij y_j (× tile_scale)
        for start in range(0, n_cols, BLOCK_LOOP):
            cols = start + tl.arange(0, BLOCK_LOOP)
            col_ok = cols < n_cols
            y = _load_rows(Y, cols, col_ok, stride_y, feats, feat_ok)
            s = tl.dot(x, tl.trans(y), input_precision=DOT_PRECISION)  # [BLOCK_OUT, BLOCK_LOOP], fp32
            positive = (rows[:, None] == cols[None, :]) & (not NEGATIVE_ONLY)  # z = +1 on the diagonal
            keep = col_ok[None, :]  # padding columns add nothing; padding rows are never stored
            u, w, q = _pair_terms(s, t, b, positive, keep)
            # ℓ = −log σ(z u) = max(−z u, 0) + log1p(e^{−|u|}), with z u = u on the diagonal, −u off it.
            term = tl.where(positive, tl.maximum(-u, 0.0), tl.maximum(u, 0.0)) + _log1p(w)
            loss += tl.sum(tl.where(keep, term, 0.0), axis=1)
            if COMPUTE_SCALARS:  # in fp32 from the tile, not from the 16-bit-rounded q of the dot below
                sum_q += tl.sum(q, axis=1)
                sum_qs += tl.sum(q * s, axis=1)
            if COMPUTE_DX:
                acc = tl.dot((q * tile_scale).to(y.dtype), y, acc, input_precision=DOT_PRECISION)
        tl.store(ROW_LOSS + rows, loss, mask=row_ok)
        if COMPUTE_SCALARS:
            tl.store(ROW_DT + rows, sum_qs, mask=row_ok)
            tl.store(ROW_DB + rows, sum_q, mask=row_ok)
        if COMPUTE_DX:
            _store_rows(DX, rows, row_ok, stride_dx, feats, feat_ok, acc * (t / tile_scale))

    @triton.jit
    def _siglip_cols_kernel(
        X,
        Y,
        SCALE,
        BIAS,
        GRAD,  # 1-element fp32: dOut/dL / B (the incoming gradient and the mean's 1/B)
        DY,  # out (M, D), the input dtype
        n_rows,
        n_cols,
        dim,
        stride_x,
        stride_y,
        stride_dy,
        tile_scale,
        NEGATIVE_ONLY: tl.constexpr,
        DOT_PRECISION: tl.constexpr,
        BLOCK_OUT: tl.constexpr,
        BLOCK_LOOP: tl.constexpr,
        BLOCK_D: tl.constexpr,
    ):
        """DY[j] = g·(t/B) Σ_i q_ij x_i: this program owns BLOCK_OUT text rows and streams the images."""
        cols = tl.program_id(0) * BLOCK_OUT + tl.arange(0, BLOCK_OUT)
        feats = tl.arange(0, BLOCK_D)
        col_ok = cols < n_cols
        feat_ok = feats < dim
        y = _load_rows(Y, cols, col_ok, stride_y, feats, feat_ok)
        t = tl.load(SCALE)
        b = tl.load(BIAS)
        acc = tl.zeros([BLOCK_OUT, BLOCK_D], dtype=tl.float32)
        for start in range(0, n_rows, BLOCK_LOOP):
            rows = start + tl.arange(0, BLOCK_LOOP)
            row_ok = rows < n_rows
            x = _load_rows(X, rows, row_ok, stride_x, feats, feat_ok)
            # Transposed tile: s_t[j, i] = x_i · y_j, so the sum over images runs along axis 1.
            s_t = tl.dot(y, tl.trans(x), input_precision=DOT_PRECISION)
            positive = (cols[:, None] == rows[None, :]) & (not NEGATIVE_ONLY)
            _, _, q_t = _pair_terms(s_t, t, b, positive, row_ok[None, :])
            acc = tl.dot((q_t * tile_scale).to(x.dtype), x, acc, input_precision=DOT_PRECISION)
        acc = acc * (t * tl.load(GRAD) / tile_scale)
        _store_rows(DY, cols, col_ok, stride_dy, feats, feat_ok, acc.to(DY.dtype.element_ty))

    # The interpreter is chosen when @triton.jit runs, i.e. when this module is imported.
    INTERPRETED = type(_siglip_rows_kernel).__name__ == "InterpretedFunction"
else:
    INTERPRETED = False


# ----------------------------------------------------------------------------------------------------
# Tile configuration and launching
# ----------------------------------------------------------------------------------------------------


def _tile_config(block_d: int, element_size: int) -> _TileConfig:
    """Tile sizes for one feature row of ``block_d · element_size`` bytes (no autotuning).

    Shared memory holds roughly ``(block_out + num_stages · block_loop) · row_bytes``; the fp32
    accumulator is ``block_out · block_d`` values over the warps' registers. Each entry is the largest
    tile that compiles for sm_90 without register spills (``benchmarks/kernel_resources.py`` prints the
    registers, spills and shared memory of every entry, no GPU needed); which is fastest is measured on a
    GPU by ``benchmarks/bench_siglip.py --tile-sweep``. fp32 tiles multiply without tensor cores
    ("ieee", unless TF32 is allowed), which needs more registers: they get smaller tiles.
    """
    if INTERPRETED:
        return _TileConfig(32, 32, 1, 1)
    row_bytes = block_d * element_size
    if element_size == 2:
        if row_bytes <= 256:  # D ≤ 128
            return _TileConfig(128, 64, 8, 3)
        if row_bytes <= 512:  # D ≤ 256
            return _TileConfig(64, 64, 8, 2)
        if row_bytes <= 1024:  # D ≤ 512
            return _TileConfig(32, 32, 8, 2)
        return _TileConfig(16, 16, 8, 2)  # D ≤ 1024
    if row_bytes <= 256:  # D ≤ 64
        return _TileConfig(64, 64, 8, 3)
    if row_bytes <= 512:  # D ≤ 128
        return _TileConfig(64, 32, 8, 2)
    if row_bytes <= 1024:  # D ≤ 256
        return _TileConfig(32, 32, 8, 2)
    return _TileConfig(16, 16, 4, 2)  # D ≤ 512


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


def _tile_scale(dtype: torch.dtype) -> float:
    return _FP16_TILE_SCALE if dtype == torch.float16 else 1.0


def _rows_forward(x, y, t, b, compute_dx: bool, compute_scalars: bool, negative_only: bool):
    """(row loss, row Σq·s or None, row Σq or None, t·Σ_j q_ij y_j (fp32) or None) from the row kernel."""
    n, dim = x.shape
    fp32 = {"device": x.device, "dtype": torch.float32}
    row_loss = torch.empty(n, **fp32)
    row_dt = torch.empty(n, **fp32) if compute_scalars else row_loss  # an unused pointer otherwise
    row_db = torch.empty(n, **fp32) if compute_scalars else row_loss
    dx = torch.empty(n, dim, **fp32) if compute_dx else row_loss
    outputs = (row_loss, row_dt, row_db, dx)
    _launch(
        _siglip_rows_kernel,
        n,
        _block_d(dim),
        x.element_size(),
        (x, y, t, b, *outputs, n, y.shape[0], dim, x.stride(0), y.stride(0), dim, _tile_scale(x.dtype)),
        {
            "COMPUTE_DX": compute_dx,
            "COMPUTE_SCALARS": compute_scalars,
            "NEGATIVE_ONLY": negative_only,
            "DOT_PRECISION": _dot_precision(x.dtype),
        },
    )
    return (
        row_loss,
        row_dt if compute_scalars else None,
        row_db if compute_scalars else None,
        dx if compute_dx else None,
    )


def _cols_backward(x, y, t, b, grad_over_n, negative_only: bool):
    """dy = g·(t/B) Σ_i q_ij x_i from the column kernel, in y's dtype."""
    m, dim = y.shape
    dy = torch.empty_like(y)
    strides = (x.stride(0), y.stride(0), dy.stride(0))
    _launch(
        _siglip_cols_kernel,
        m,
        _block_d(dim),
        y.element_size(),
        (x, y, t, b, grad_over_n, dy, x.shape[0], m, dim, *strides, _tile_scale(y.dtype)),
        {"NEGATIVE_ONLY": negative_only, "DOT_PRECISION": _dot_precision(y.dtype)},
    )
    return dy


class _SigLipLossTriton(torch.autograd.Function):
    """The mean SigLIP loss with the Triton kernels; differentiable in x, y, t and b."""

    @staticmethod
    def forward(ctx, x, y, scale, bias, wanted: tuple[bool, bool, bool, bool], negative_only: bool):
        x, y = x.contiguous(), y.contiguous()
        t = scale.detach().to(torch.float32).reshape(1)
        b = bias.detach().to(torch.float32).reshape(1)
        want_dx, want_dy, want_dt, want_db = wanted
        row_loss, row_dt, row_db, dx = _rows_forward(x, y, t, b, want_dx, want_dt or want_db, negative_only)
        ctx.save_for_backward(x, y, t, b, dx, row_dt, row_db)
        ctx.wanted = wanted
        ctx.negative_only = negative_only
        ctx.scalar_like = (scale.dtype, scale.shape, bias.dtype, bias.shape)
        return row_loss.sum() / x.shape[0]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):
        x, y, t, b, dx, row_dt, row_db = ctx.saved_tensors
        want_dx, want_dy, want_dt, want_db = ctx.wanted
        scale_dtype, scale_shape, bias_dtype, bias_shape = ctx.scalar_like
        g = grad_loss.detach().to(torch.float32).reshape(1) / x.shape[0]  # stays on the device
        grad_x = grad_y = grad_t = grad_b = None
        if want_dx and ctx.needs_input_grad[0]:
            grad_x = (dx * g).to(x.dtype)
        if want_dy and ctx.needs_input_grad[1]:
            grad_y = _cols_backward(x, y, t, b, g, ctx.negative_only)
        if want_dt and ctx.needs_input_grad[2]:
            grad_t = (row_dt.sum() * g).to(scale_dtype).reshape(scale_shape)
        if want_db and ctx.needs_input_grad[3]:
            grad_b = (row_db.sum() * g).to(bias_dtype).reshape(bias_shape)
        return grad_x, grad_y, grad_t, grad_b, None, None


# ----------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------


def unsupported(tensors: Sequence[torch.Tensor]) -> str | None:
    """Why the kernel cannot take features like ``tensors[0]`` (too wide a row), or None."""
    x = tensors[0]
    if _block_d(x.shape[1]) * x.element_size() > _MAX_ROW_BYTES:
        return (
            f"D={x.shape[1]} in {x.dtype} is too wide for the kernel (at most {_MAX_ROW_BYTES} bytes per "
            "padded row: D ≤ 1024 in 16-bit, D ≤ 512 in fp32)"
        )
    return None


def siglip_loss_triton(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor,
    negative_only: bool = False,
) -> torch.Tensor:
    r"""The mean SigLIP loss :math:`-\frac1B\sum_{ij}\log\sigma(z_{ij}(t\,x_i\cdot y_j + b))` in Triton.

    Args:
        image_features: B×D, fp32, fp16 or bf16, on a CUDA device (or the CPU under the interpreter);
            row i is paired with ``text_features[i]``. Used as given: normalise them first if wanted.
        text_features: B×D, same dtype and device (M×D with ``negative_only``).
        scale: 0-d tensor, the multiplier t itself (e.g. ``logit_scale.exp()``; SigLIP starts at 10).
        bias: 0-d tensor, b (SigLIP starts at −10).
        negative_only: every pair is a negative (z = −1), for the blocks of the chunked distributed loss
            that score this rank's images against another rank's M texts; still divided by B.
    Returns:
        the scalar loss, fp32; differentiable with respect to all four inputs, never storing B×B values.
    """
    require_triton(_WHAT)
    _check_inputs(image_features, text_features, scale, bias, bool(negative_only))
    grad_on = torch.is_grad_enabled()
    inputs = (image_features, text_features, scale, bias)
    wanted = tuple(grad_on and t.requires_grad for t in inputs)
    return _SigLipLossTriton.apply(*inputs, wanted, bool(negative_only))


def _check_inputs(x, y, scale, bias, negative_only: bool = False) -> None:
    """Shapes, dtypes and devices the kernel takes; each error names the problem and the fix."""
    for name, t in (("image_features", x), ("text_features", y)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 2:
            raise ValueError(
                f"{name} must be 2-D (batch × dim), got shape {tuple(t.shape)}; flatten it first"
            )
        if t.shape[0] == 0 or t.shape[1] == 0:
            raise ValueError(
                f"{name} is empty (shape {tuple(t.shape)}): it needs at least one row and feature"
            )
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"image_features {tuple(x.shape)} and text_features {tuple(y.shape)} must have the same number "
            "of features: project both to one dimension"
        )
    if x.shape != y.shape and not negative_only:
        raise ValueError(
            f"image_features {tuple(x.shape)} and text_features {tuple(y.shape)} must have equal shapes: "
            "row i of each is one image–text pair (unequal counts only with negative_only=True)"
        )
    if x.dtype != y.dtype:
        raise TypeError(f"image_features is {x.dtype} but text_features is {y.dtype}; cast both to one dtype")
    if x.dtype not in KERNEL_DTYPES:
        raise TypeError(
            f"the Triton kernel supports float32, float16 and bfloat16, got {x.dtype}; cast the features "
            "or use siglip_loss_reference"
        )
    if x.device != y.device:
        raise ValueError(f"image_features is on {x.device} but text_features is on {y.device}; move both")
    if not x.is_cuda:
        if not INTERPRETED:
            raise RuntimeError(
                f"the SigLIP kernel needs CUDA tensors, got {x.device}; on the CPU set TRITON_INTERPRET=1 "
                "before sslcookbook.kernels.siglip is imported, or use siglip_loss_reference"
            )
        if x.dtype == torch.bfloat16:
            raise TypeError(
                "the Triton interpreter does not support bfloat16; use float16/float32 or run on a GPU"
            )
    reason = unsupported((x,))
    if reason is not None:
        raise ValueError(f"{reason}; use siglip_loss_reference")
    for name, t in (("scale", scale), ("bias", bias)):
        if not isinstance(t, torch.Tensor) or t.dim() != 0 or not t.is_floating_point():
            shown = f"shape {tuple(t.shape)} {t.dtype}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise TypeError(
                f"{name} must be a 0-d floating-point tensor, got {shown}; use torch.tensor(value) "
                "(or a learnable nn.Parameter(torch.tensor(value)))"
            )
        if t.device != x.device:
            raise ValueError(f"{name} is on {t.device} but the features are on {x.device}; move it")
    # Reading values would wait for a GPU on every call; on the CPU it is cheap (as losses/_checks does).
    if x.device.type == "cpu" and not torch.compiler.is_compiling():
        for name, t in (("image_features", x), ("text_features", y), ("scale", scale), ("bias", bias)):
            if not torch.isfinite(t).all():
                raise ValueError(
                    f"{name} contains NaN or inf: training diverged — lower the learning rate or check the "
                    "inputs"
                )
