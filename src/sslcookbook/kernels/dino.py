r"""Fused DINO loss: cross-entropy between sharpened teacher and student softmaxes, in three row kernels.

The loss
--------
DINO (Caron et al., 2021, "Emerging Properties in Self-Supervised Vision Transformers", arXiv:2104.14294)
trains a student network to match a momentum teacher over K prototype logits. Each image is cut into S
crops; the student sees all S, the teacher only the first T (the global crops, usually T = 2). With
``student`` (S, B, K), ``teacher`` (T, B, K), the running ``center`` (K,) and temperatures τ_s, τ_t:

.. math::  p_{t,b} = \mathrm{softmax}\big((y_{t,b} - c)/\tau_t\big) \quad\text{(no gradient)}, \qquad
           \log q_{s,b} = \mathrm{log\_softmax}(x_{s,b}/\tau_s)

.. math::  \mathcal{L} = \frac{1}{N_\text{pairs}\,B} \sum_{t<T}\sum_{s<S,\,s\ne t}\sum_b
           \Big[-\sum_k p_{t,b,k}\,\log q_{s,b,k}\Big], \qquad N_\text{pairs} = T\,S - T

A crop is never compared with itself (s = t is skipped). Centring and sharpening (τ_t < τ_s) are what
keep the teacher from collapsing to a constant or a uniform output.

One row at a time
-----------------
Swap the sums: for a fixed student row (s, b) the T − [s < T] teacher rows it is paired with only enter
through their sum :math:`\bar P_{s,b} = \sum_{t\ne s} p_{t,b}`, a vector of total mass
:math:`n_s = T - [s<T]`. With :math:`\mathrm{LSE}_{s,b} = \log\sum_k e^{x_{s,b,k}/\tau_s}`,

.. math::  \ell_{s,b} = \sum_k \bar P_{s,b,k}\,\big(\mathrm{LSE}_{s,b} - x_{s,b,k}/\tau_s\big), \qquad
           \frac{\partial \ell_{s,b}}{\partial x_{s,b}} =
           \frac{n_s\,\mathrm{softmax}(x_{s,b}/\tau_s) - \bar P_{s,b}}{\tau_s}

and :math:`\mathcal{L} = \sum_{s,b}\ell_{s,b} / (N_\text{pairs} B)`. So the loss is a sum of independent
per-row terms, and a row needs only its own K student logits, the K logits of its (at most T) teacher
rows and the center. The plain PyTorch version (``dino_loss_reference`` in :mod:`sslcookbook.losses.dino`,
this kernel's reference) materialises x/τ_s and
log q (S·B·K each, fp32), p (T·B·K, fp32) and, in the backward, several more S·B·K temporaries. The
kernels below write nothing of size K except the gradient itself.

Kernel 1, ``_teacher_lse_kernel`` (one program per teacher row (t, b), T·B programs): stream the row in
blocks of BLOCK_K and compute the log-sum-exp of (y − c)/τ_t with the online softmax recurrence
(Milakov & Gimelshein, 2018)::

    m_new = max(m, v)                            # running maximum: the exponentials never overflow
    l     = l · 2^(m − m_new) + 2^(v − m_new)    # running sum, rescaled whenever the maximum grows
    lse   = m + log2(l)                          # after the last block (l is `sum_exp` in the code)

Only lse, one float per teacher row, is written. From it, any p_{t,b,k} = 2^(v_k − lse) can be
recomputed later from y and c on the fly, so the T·B·K teacher probabilities are never stored.

Kernel 2, ``_student_fwd_kernel`` (one program per student row (s, b), S·B programs): a single pass
over K. For each block it loads x, c and the teacher blocks of every t ≠ s (T is a compile-time
constant, so the loop over t is unrolled), forms P̄ from the stored teacher lse, and updates

* the online log-sum-exp (m, l) of the student row, as above;
* :math:`a = \sum_k \bar P_k\,(m - u_k)` with :math:`u = x\log_2 e/\tau_s` and the *running* maximum m.
  When m grows by δ every earlier term grows by δ, so ``a += δ · w`` where ``w = Σ P̄`` so far.

At the end :math:`\ell = \ln 2\,(a + n_s \log_2 l)` (because LSE − x/τ_s = ln 2 · (m + log2 l − u)).
Written this way ℓ is a sum of non-negative terms (m ≥ u, l ≥ 1). The naive
:math:`n_s\mathrm{LSE} - \langle\bar P, x/\tau_s\rangle` subtracts two numbers of size |x|/τ_s (≈ 1000 for
logits of 50 at τ_s = 0.05): its fp32 rounding error, ~1e-4, swamps a small loss (a student that already
matches a sharp teacher), which the non-negative sum keeps to its own relative precision. The program
writes ℓ and the row's LSE (two floats); torch sums the S·B values of ℓ (deterministic, no atomics).

Kernel 3, ``_student_bwd_kernel`` (one program per student row): one more pass over K writes
:math:`g\,(n_s\,2^{u - \mathrm{lse}} - \bar P)/(\tau_s N_\text{pairs} B)`, with g the incoming gradient
read from device memory (no host synchronisation; it is the GradScaler's scale under AMP).

Why recompute in the backward instead of writing the gradient during the forward? The forward could
write it (it knows LSE after its pass), but it would need a second pass over K to do so, and the backward
would still have to multiply the stored gradient by g, a read and a write of S·B·K more. Recomputing
costs one pass that reads x, y, c and writes the gradient — less memory traffic in total, no S·B·K
buffer held from forward to backward, forward-only calls (evaluation) write nothing of size K, and
``backward(retain_graph=True)`` twice stays correct. The saved state is the inputs (references, no
copies) and S·B + T·B floats of log-sum-exps. Peak memory is the same either way: the gradient buffer
is allocated at the start of the backward when all activations are still alive.

Accumulating per lane
---------------------
The recurrences above are written per *lane*: each of the BLOCK_K positions of a block keeps its own
m, l, a, w over the blocks it sees, and the BLOCK_K partial results are merged once, after the loop, with
the same rescaling rule (online softmax is associative, so any partition of the row works). This moves
the cross-thread reductions (``tl.max``, ``tl.sum``) out of the loop. Lanes past K are masked: they take
u = −1e30 (a finite floor, so that no −inf − (−inf) = NaN appears) and contribute nothing.

L2 reuse: program ids are ordered image-major (pid = b·S + s), so the S programs that read the same
teacher rows run side by side and all but the first find those rows in L2.

Precision and limits
--------------------
Inputs may be fp32, fp16 or bf16 (each of student, teacher, center independently); everything is
computed in fp32 from the loaded values, exponentials in base 2 (``exp2`` is the native instruction).
The loss is fp32; the gradient is written in the student's dtype. The reference converts its inputs
to fp32 too (fp64 stays fp64), so the two agree to fp32 rounding. The Triton interpreter (CPU tests)
has no bf16. There is no split over K: S·B programs must fill the GPU, which DINO's S·B ≥ 10·64 does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from . import require_triton, triton_available

__all__ = ["AVAILABLE", "INTERPRETED", "dino_loss", "unsupported"]

# False where `import triton` fails: dino_loss then raises a RuntimeError saying why (require_triton).
AVAILABLE = triton_available()

_LOG2E = math.log2(math.e)

if triton_available():
    import triton
    import triton.language as tl

    @triton.jit
    def _teacher_lse_kernel(
        TEACHER,  # (T·B, K), contiguous
        CENTER,  # (K,)
        TEACHER_LSE2,  # out: (T·B,) fp32, log2-sum-exp2 of v = (y − c)·log2(e)/τ_t
        K,
        teacher_scale_log2,  # log2(e) / τ_t
        BLOCK_K: tl.constexpr,
    ):
        row = tl.program_id(0)
        row_start = TEACHER + row.to(tl.int64) * K
        lanes = tl.arange(0, BLOCK_K)
        m = tl.full([BLOCK_K], -1.0e30, dtype=tl.float32)  # per-lane running max (finite floor)
        sum_exp = tl.zeros([BLOCK_K], dtype=tl.float32)  # per-lane running Σ 2^(v − m)
        for start in range(0, K, BLOCK_K):
            cols = start + lanes
            in_row = cols < K
            y = tl.load(row_start + cols, mask=in_row, other=0.0).to(tl.float32)
            c = tl.load(CENTER + cols, mask=in_row, other=0.0).to(tl.float32)
            v = tl.where(in_row, (y - c) * teacher_scale_log2, -1.0e30)
            m_new = tl.maximum(m, v)
            sum_exp = sum_exp * tl.exp2(m - m_new) + tl.where(in_row, tl.exp2(v - m_new), 0.0)
            m = m_new
        # Merge the lanes: the same rescaling, once.
        m_row = tl.max(m, axis=0)
        l_row = tl.sum(sum_exp * tl.exp2(m - m_row), axis=0)
        tl.store(TEACHER_LSE2 + row, m_row + tl.log2(l_row))

    @triton.jit
    def _summed_teacher_probs(
        TEACHER,
        CENTER,
        TEACHER_LSE2,
        s,
        b,
        B,
        K,
        cols,
        in_row,
        teacher_scale_log2,
        T: tl.constexpr,
        BLOCK_K: tl.constexpr,
    ):
        """P̄ on one block of columns: Σ_{t<T, t≠s} softmax((y_t − c)/τ_t), recomputed from lse_t."""
        c = tl.load(CENTER + cols, mask=in_row, other=0.0).to(tl.float32)
        p_sum = tl.zeros([BLOCK_K], dtype=tl.float32)
        for t in tl.static_range(T):
            # For t == s the mask is all false: the load moves no data and the term is zero.
            paired = in_row & (s != t)
            teacher_row = (t * B + b).to(tl.int64)
            y = tl.load(TEACHER + teacher_row * K + cols, mask=paired, other=0.0).to(tl.float32)
            lse2_t = tl.load(TEACHER_LSE2 + teacher_row)
            p_sum += tl.where(paired, tl.exp2((y - c) * teacher_scale_log2 - lse2_t), 0.0)
        return p_sum

    @triton.jit
    def _student_fwd_kernel(
        STUDENT,  # (S·B, K), contiguous
        TEACHER,  # (T·B, K), contiguous
        CENTER,  # (K,)
        TEACHER_LSE2,  # (T·B,) from _teacher_lse_kernel
        ROW_LOSS,  # out: (S·B,) fp32, ℓ_{s,b}
        STUDENT_LSE2,  # out: (S·B,) fp32, log2-sum-exp2 of u = x·log2(e)/τ_s, for the backward
        S,
        B,
        K,
        student_scale_log2,  # log2(e) / τ_s
        teacher_scale_log2,  # log2(e) / τ_t
        T: tl.constexpr,
        BLOCK_K: tl.constexpr,
    ):
        pid = tl.program_id(0)
        b = pid // S  # image-major order: the S crops of one image run side by side (L2 reuse)
        s = pid % S
        row = s * B + b
        row_start = STUDENT + row.to(tl.int64) * K
        n_paired = T - (s < T).to(tl.int32)  # n_s: teacher rows paired with this student row
        lanes = tl.arange(0, BLOCK_K)
        m = tl.full([BLOCK_K], -1.0e30, dtype=tl.float32)  # running max of u
        sum_exp = tl.zeros([BLOCK_K], dtype=tl.float32)  # running Σ 2^(u − m)
        a = tl.zeros([BLOCK_K], dtype=tl.float32)  # running Σ P̄ (m − u), every term ≥ 0
        w = tl.zeros([BLOCK_K], dtype=tl.float32)  # running Σ P̄
        for start in range(0, K, BLOCK_K):
            cols = start + lanes
            in_row = cols < K
            x = tl.load(row_start + cols, mask=in_row, other=0.0).to(tl.float32)
            u = tl.where(in_row, x * student_scale_log2, -1.0e30)
            p_sum = _summed_teacher_probs(
                TEACHER, CENTER, TEACHER_LSE2, s, b, B, K, cols, in_row, teacher_scale_log2, T, BLOCK_K
            )
            m_new = tl.maximum(m, u)
            sum_exp = sum_exp * tl.exp2(m - m_new) + tl.where(in_row, tl.exp2(u - m_new), 0.0)
            a = a + (m_new - m) * w + p_sum * (m_new - u)  # p_sum = 0 on masked lanes
            w = w + p_sum
            m = m_new
        m_row = tl.max(m, axis=0)
        l_row = tl.sum(sum_exp * tl.exp2(m - m_row), axis=0)
        a_row = tl.sum(a + (m_row - m) * w, axis=0)
        log2_l = tl.log2(l_row)
        # ℓ = Σ_k P̄_k (LSE − x_k/τ_s) = ln2 · (Σ_k P̄_k (m − u_k) + n_s · log2 l), using Σ_k P̄_k = n_s.
        tl.store(ROW_LOSS + row, 0.6931471805599453 * (a_row + n_paired.to(tl.float32) * log2_l))
        tl.store(STUDENT_LSE2 + row, m_row + log2_l)

    @triton.jit
    def _student_bwd_kernel(
        STUDENT,
        TEACHER,
        CENTER,
        TEACHER_LSE2,
        STUDENT_LSE2,
        GRAD_LOSS,  # 0-d: dOut/dL, read on the device
        GRAD_STUDENT,  # out: (S·B, K) in the student's dtype
        S,
        B,
        K,
        student_scale_log2,
        teacher_scale_log2,
        grad_scale,  # 1 / (τ_s · N_pairs · B)
        T: tl.constexpr,
        BLOCK_K: tl.constexpr,
    ):
        pid = tl.program_id(0)
        b = pid // S
        s = pid % S
        row = s * B + b
        row_offset = row.to(tl.int64) * K
        n_paired = (T - (s < T).to(tl.int32)).to(tl.float32)
        g = tl.load(GRAD_LOSS).to(tl.float32) * grad_scale
        lse2_s = tl.load(STUDENT_LSE2 + row)
        lanes = tl.arange(0, BLOCK_K)
        for start in range(0, K, BLOCK_K):
            cols = start + lanes
            in_row = cols < K
            x = tl.load(STUDENT + row_offset + cols, mask=in_row, other=0.0).to(tl.float32)
            q = tl.exp2(x * student_scale_log2 - lse2_s)  # softmax(x/τ_s)
            p_sum = _summed_teacher_probs(
                TEACHER, CENTER, TEACHER_LSE2, s, b, B, K, cols, in_row, teacher_scale_log2, T, BLOCK_K
            )
            grad = g * (n_paired * q - p_sum)
            tl.store(GRAD_STUDENT + row_offset + cols, grad.to(GRAD_STUDENT.dtype.element_ty), mask=in_row)

    # The interpreter is chosen when @triton.jit runs, i.e. when this module is imported.
    INTERPRETED = type(_teacher_lse_kernel).__name__ == "InterpretedFunction"
else:
    INTERPRETED = False


# ----------------------------------------------------------------------------------------------------
# Launching
# ----------------------------------------------------------------------------------------------------


def _launch_config(k: int) -> tuple[int, int]:
    """(BLOCK_K, num_warps) for rows of k logits (no autotuning).

    On a GPU a block of up to 2048 lanes (8 per thread with 8 warps) keeps enough loads in flight for
    these bandwidth-bound loops without spilling the four per-lane fp32 accumulators. Under the
    interpreter numpy does the arithmetic; 64 lanes keep the tests fast and still make K = 100 or 257
    span several blocks with a partial last one.
    """
    if INTERPRETED:
        return min(64, max(16, triton.next_power_of_2(k))), 1
    block = min(2048, max(16, triton.next_power_of_2(k)))
    return block, 8 if block >= 2048 else 4


def _forward_triton(
    student: torch.Tensor,
    teacher: torch.Tensor,
    center: torch.Tensor,
    student_temperature: float,
    teacher_temperature: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns (per-row loss ℓ (S·B,), student lse2 (S·B,), teacher lse2 (T·B,)), all fp32."""
    n_crops, batch, k = student.shape
    n_teacher = teacher.shape[0]
    block_k, num_warps = _launch_config(k)
    fp32 = {"device": student.device, "dtype": torch.float32}
    teacher_lse2 = torch.empty(n_teacher * batch, **fp32)
    row_loss = torch.empty(n_crops * batch, **fp32)
    student_lse2 = torch.empty(n_crops * batch, **fp32)
    teacher_scale = _LOG2E / teacher_temperature
    _teacher_lse_kernel[(n_teacher * batch,)](
        teacher, center, teacher_lse2, k, teacher_scale, BLOCK_K=block_k, num_warps=num_warps
    )
    _student_fwd_kernel[(n_crops * batch,)](
        student,
        teacher,
        center,
        teacher_lse2,
        row_loss,
        student_lse2,
        n_crops,
        batch,
        k,
        _LOG2E / student_temperature,
        teacher_scale,
        T=n_teacher,
        BLOCK_K=block_k,
        num_warps=num_warps,
    )
    return row_loss, student_lse2, teacher_lse2


def _num_pairs(n_crops: int, n_teacher: int) -> int:
    return n_teacher * n_crops - n_teacher


class _DinoLossTriton(torch.autograd.Function):
    """The mean DINO loss with the Triton kernels; differentiable with respect to the student only."""

    @staticmethod
    def forward(ctx, student, teacher, center, student_temperature, teacher_temperature):
        student = student.contiguous()
        teacher = teacher.contiguous()
        center = center.contiguous()
        row_loss, student_lse2, teacher_lse2 = _forward_triton(
            student, teacher, center, student_temperature, teacher_temperature
        )
        n_crops, batch, _ = student.shape
        normaliser = _num_pairs(n_crops, teacher.shape[0]) * batch
        ctx.save_for_backward(student, teacher, center, teacher_lse2, student_lse2)
        ctx.temperatures = (student_temperature, teacher_temperature)
        ctx.normaliser = normaliser
        return row_loss.sum() / normaliser

    @staticmethod
    def backward(ctx, grad_loss):
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        student, teacher, center, teacher_lse2, student_lse2 = ctx.saved_tensors
        student_temperature, teacher_temperature = ctx.temperatures
        n_crops, batch, k = student.shape
        block_k, num_warps = _launch_config(k)
        grad_student = torch.empty_like(student)
        _student_bwd_kernel[(n_crops * batch,)](
            student,
            teacher,
            center,
            teacher_lse2,
            student_lse2,
            grad_loss.contiguous(),
            grad_student,
            n_crops,
            batch,
            k,
            _LOG2E / student_temperature,
            _LOG2E / teacher_temperature,
            1.0 / (student_temperature * ctx.normaliser),
            T=teacher.shape[0],
            BLOCK_K=block_k,
            num_warps=num_warps,
        )
        return grad_student, None, None, None, None


# ----------------------------------------------------------------------------------------------------
# Public API: the Triton twin of sslcookbook.losses.dino.dino_loss_reference (inputs checked there)
# ----------------------------------------------------------------------------------------------------


def unsupported(tensors: Sequence[torch.Tensor]) -> str | None:
    """None: the kernels take any S, T, B and K (see :func:`sslcookbook.kernels.resolve_backend`)."""
    return None


def dino_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    center: torch.Tensor,
    student_temperature: float,
    teacher_temperature: float,
) -> torch.Tensor:
    """The mean DINO loss (fp32) with the three row kernels; differentiable with respect to the student."""
    require_triton("the fused DINO kernel (sslcookbook.kernels.dino)")
    return _DinoLossTriton.apply(
        student, teacher.detach(), center.detach(), student_temperature, teacher_temperature
    )
