"""Triton kernels for the expensive losses; the losses in :mod:`sslcookbook.losses` choose when to use them.

A kernel module holds Triton code, its launch logic and an autograd Function, behind functions that
take inputs the calling loss has already checked. Its PyTorch reference is the loss's formula in
``losses/`` (e.g. ``losses.contrastive.nt_xent_reference``): the public loss validates its inputs, picks a
backend with :func:`resolve_backend` and calls either the formula or the kernel. On a CPU the kernels run
under the Triton interpreter, which must be switched on (``TRITON_INTERPRET=1``) *before* a kernel module
is imported.

Triton is optional: it has no macOS wheel and is absent from CPU-only PyTorch builds. Without it the
package imports, ``backend="auto"`` uses the PyTorch formulas, and a kernel module's ``AVAILABLE`` is False;
calling a kernel (or ``backend="triton"``) raises a RuntimeError from :func:`require_triton` that says so.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from types import ModuleType

import torch

BACKENDS = ("auto", "triton", "torch")
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@functools.cache
def _triton_import_error() -> str | None:
    """None when ``import triton`` works, else the error it raised, as ``Type: message``."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception as err:  # ImportError, or a broken install failing at import (RuntimeError, OSError)
        return f"{type(err).__name__}: {err}"
    return None


def triton_available() -> bool:
    """True when ``import triton`` works (the GPU itself is checked per call, from the tensors' device)."""
    return _triton_import_error() is None


def triton_unavailable_message(what: str = "the Triton kernels") -> str:
    """Why ``what`` cannot run without Triton and what to do instead (empty when Triton imports)."""
    error = _triton_import_error()
    if error is None:
        return ""
    return (
        f"{what} cannot run: the triton package cannot be imported here ({error}). Triton ships with "
        "PyTorch's CUDA builds on Linux; it has no macOS wheel and is absent from CPU-only builds. Use "
        "backend='torch' or backend='auto' (the PyTorch formula, same loss and gradients), or install "
        "triton on Linux (pip install triton)"
    )


def require_triton(what: str = "the Triton kernels") -> None:
    """Raise a RuntimeError that says why and what to do when ``import triton`` fails."""
    if not triton_available():
        raise RuntimeError(triton_unavailable_message(what))


def measured_backend(
    rows: int, dtype: torch.dtype, device_type: str, min_rows: Mapping[torch.dtype, int]
) -> str:
    """``backend="auto"``'s choice from a kernel's measured crossover: 'triton' where it beat eager PyTorch.

    ``min_rows[dtype]`` is the size, in the kernel's own measure of ``rows`` (for InfoNCE the R of an R×R
    logits matrix), from which the kernel was measured faster than the eager formula on a GPU. Tensors
    that are not on a CUDA device, and dtypes absent from ``min_rows``, get 'torch'.
    """
    if device_type != "cuda" or dtype not in min_rows:
        return "torch"
    return "triton" if rows >= min_rows[dtype] else "torch"


def resolve_backend(
    backend: str, tensors: Sequence[torch.Tensor], kernel: ModuleType, rows: int | None = None
) -> str:
    """'triton' or 'torch' for the input ``tensors`` of a loss whose fused version is in ``kernel``.

    ``kernel`` is the kernel module (e.g. ``sslcookbook.kernels.infonce``); its ``INTERPRETED`` says whether
    its kernels were built for the Triton interpreter (``TRITON_INTERPRET=1`` at its import) and its
    ``unsupported(tensors)`` names inputs it cannot take (None when it can take them).

    ``"auto"`` picks Triton for CUDA tensors in a kernel dtype when Triton imports, the kernel supports
    the inputs and, where the kernel states a measured crossover (an ``auto_backend(rows, dtype,
    device_type)`` function, given the problem size ``rows`` by the calling loss), the kernel was measured
    faster than eager PyTorch at that size and dtype. InfoNCE / NT-Xent have one (eager below 8,192 rows in
    16-bit and in fp32 up to 65,536 rows, from benchmarks/results/infonce_nvidia-h100-80gb-hbm3.csv; see
    :func:`sslcookbook.kernels.infonce.auto_backend`). DINO has none: its kernel was measured 1.8-12×
    faster than eager at every size (640 to 8,190 student rows, K = 4,096 and 65,536, bf16 and fp32;
    benchmarks/results/dino_nvidia-h100-80gb-hbm3.csv). SigLIP was not measured on a GPU. The tensors'
    dtype for the crossover is their promoted dtype.

    ``"triton"`` is honoured or refused with an error that says why and what to do: no triton
    package, CPU tensors without the interpreter, a dtype the kernels do not take, bfloat16 in the
    interpreter, or inputs the kernel does not support.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch"
    on_cuda = tensors[0].is_cuda
    dtypes = [t.dtype for t in tensors]
    dtypes_ok = all(dtype in KERNEL_DTYPES for dtype in dtypes)
    if backend == "auto":
        usable = on_cuda and triton_available() and dtypes_ok and kernel.unsupported(tensors) is None
        if not usable:
            return "torch"
        measured = getattr(kernel, "auto_backend", None)
        if rows is None or measured is None:
            return "triton"
        return measured(rows, functools.reduce(torch.promote_types, dtypes), tensors[0].device.type)
    require_triton("backend='triton'")
    if not on_cuda and not kernel.INTERPRETED:
        raise RuntimeError(
            "backend='triton' on CPU tensors needs the Triton interpreter: set the environment variable "
            f"TRITON_INTERPRET=1 before {kernel.__name__} is imported, or use backend='torch'"
        )
    if not dtypes_ok:
        raise TypeError(
            "the Triton kernel supports float32, float16 and bfloat16, got "
            f"{', '.join(map(str, dtypes))}; use backend='torch' for other dtypes"
        )
    if kernel.INTERPRETED and torch.bfloat16 in dtypes:
        raise TypeError(
            "the Triton interpreter does not support bfloat16; use float16/float32, backend='torch', "
            "or run on a GPU"
        )
    reason = kernel.unsupported(tensors)
    if reason is not None:
        raise ValueError(f"{reason}; use backend='torch' or 'auto'")
    return "triton"


__all__ = [
    "BACKENDS",
    "KERNEL_DTYPES",
    "measured_backend",
    "require_triton",
    "resolve_backend",
    "triton_available",
    "triton_unavailable_message",
]
