"""Triton kernels, each behind a public function with ``backend="auto" | "triton" | "torch"``.

Every kernel module keeps a pure-PyTorch reference next to it. ``backend="auto"`` picks Triton for CUDA
tensors when Triton imports, the reference otherwise. On a CPU the kernels run under the Triton
interpreter, which must be switched on (``TRITON_INTERPRET=1``) *before* a kernel module is imported.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

BACKENDS = ("auto", "triton", "torch")
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@functools.cache
def triton_available() -> bool:
    """True when ``import triton`` works (the GPU itself is checked per call, from the tensors' device)."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # ImportError, or a broken install failing at import time (RuntimeError, OSError)
        return False
    return True


def resolve_backend(backend: str, tensors: Sequence[torch.Tensor], interpreted: bool, module: str) -> str:
    """'triton' or 'torch' for a kernel's input ``tensors``.

    ``"auto"`` picks Triton for CUDA tensors in a kernel dtype when Triton imports. ``"triton"`` is
    honoured or refused with an error that says why and what to do: no triton package, CPU tensors
    without the interpreter (``interpreted``: the calling kernel module was imported under
    ``TRITON_INTERPRET=1``), a dtype the kernels do not take, or bfloat16 in the interpreter.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch"
    on_cuda = tensors[0].is_cuda
    dtypes = [t.dtype for t in tensors]
    dtypes_ok = all(dtype in KERNEL_DTYPES for dtype in dtypes)
    if backend == "auto":
        return "triton" if on_cuda and triton_available() and dtypes_ok else "torch"
    if not triton_available():
        raise RuntimeError("backend='triton' needs the triton package, which cannot be imported here")
    if not on_cuda and not interpreted:
        raise RuntimeError(
            "backend='triton' on CPU tensors needs the Triton interpreter: set the environment variable "
            f"TRITON_INTERPRET=1 before sslcookbook.kernels.{module} is imported, or use backend='torch'"
        )
    if not dtypes_ok:
        raise TypeError(
            "the Triton kernel supports float32, float16 and bfloat16, got "
            f"{', '.join(map(str, dtypes))}; use backend='torch' for other dtypes"
        )
    if interpreted and torch.bfloat16 in dtypes:
        raise TypeError(
            "the Triton interpreter does not support bfloat16; use float16/float32, backend='torch', "
            "or run on a GPU"
        )
    return "triton"


__all__ = ["BACKENDS", "KERNEL_DTYPES", "resolve_backend", "triton_available"]
