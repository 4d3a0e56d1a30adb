import os

# Triton kernels run on the CPU through the interpreter; it must be chosen before triton is imported.
os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("SSLCOOKBOOK_PROFILE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")


import pytest  # noqa: E402  (after the environment above, which must precede any triton import)
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded_global_rng():
    """Every test starts from the same global random state, so one that draws unseeded numbers gives the
    same result on every run and in any order (a process otherwise starts from a random seed)."""
    torch.manual_seed(0)
