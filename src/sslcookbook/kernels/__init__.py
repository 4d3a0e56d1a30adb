"""Triton kernels, each behind a public function with ``backend="auto" | "triton" | "torch"``.

Every kernel module keeps a pure-PyTorch reference next to it. ``backend="auto"`` picks Triton for CUDA
tensors when Triton imports, the reference otherwise. On a CPU the kernels run under the Triton
interpreter, which must be switched on (``TRITON_INTERPRET=1``) *before* a kernel module is imported.
"""

from __future__ import annotations

import functools


@functools.cache
def triton_available() -> bool:
    """True when ``import triton`` works (the GPU itself is checked per call, from the tensors' device)."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # ImportError, or a broken install failing at import time (RuntimeError, OSError)
        return False
    return True


__all__ = ["triton_available"]
