"""Triton is optional: with ``import triton`` failing (macOS, CPU-only PyTorch builds) the package imports,
every loss with ``backend="auto"`` runs its PyTorch reference, and forcing the kernels says why they
cannot run. Simulated in a subprocess whose sitecustomize hides triton from every ``sys.meta_path`` finder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

BLOCKER = '''
import sys


class _WithoutTriton:
    """An import finder that finds nothing called triton, as on a machine where it is not installed.

    find_spec returns None (not an error) so that importlib.util.find_spec("triton") is None, as torch
    checks, and `import triton` raises ModuleNotFoundError.
    """

    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name == "triton" or name.startswith("triton."):
            return None
        find_spec = getattr(self.finder, "find_spec", None)
        return find_spec(name, path, target) if find_spec is not None else None

    def __getattr__(self, attribute):
        return getattr(self.finder, attribute)


sys.meta_path[:] = [_WithoutTriton(finder) for finder in sys.meta_path]
'''

SCRIPT = r'''
import sys

import pytest
import torch

try:
    import triton  # noqa: F401
except ImportError:
    pass
else:
    raise AssertionError("the blocker did not stop `import triton`")

import sslcookbook
from sslcookbook import kernels, losses
from sslcookbook.kernels import dino as dino_kernel
from sslcookbook.kernels import infonce as infonce_kernel
from sslcookbook.losses import contrastive, momentum
from sslcookbook.losses.dino import dino_loss_reference
from sslcookbook.recipes import get_recipe
from sslcookbook.train import fit
from sslcookbook import data

assert "triton" not in sys.modules
assert not kernels.triton_available()
assert not infonce_kernel.AVAILABLE and not dino_kernel.AVAILABLE
message = kernels.triton_unavailable_message()
for part in ("cannot be imported", "No module named 'triton'", "backend='torch'", "macOS"):
    assert part in message, (part, message)

torch.manual_seed(0)
z1, z2 = torch.randn(6, 8, requires_grad=True), torch.randn(6, 8, requires_grad=True)
queue = torch.randn(10, 8)
support = torch.randn(12, 8)
student, teacher, center = torch.randn(4, 3, 16, requires_grad=True), torch.randn(2, 3, 16), torch.zeros(16)
cases = {  # loss with backend="auto" -> the PyTorch reference it must equal
    "info_nce": (lambda b: losses.info_nce(z1, z2, 0.1, backend=b),
                 lambda: contrastive.info_nce_reference(z1, z2, 0.1)),
    "nt_xent": (lambda b: losses.nt_xent(z1, z2, 0.5, backend=b),
                lambda: contrastive.nt_xent_reference(z1, z2, 0.5)),
    "nnclr_loss": (lambda b: losses.nnclr_loss(z1, z2, support, 0.1, backend=b),
                   lambda: losses.nnclr_loss(z1, z2, support, 0.1, backend="torch")),
    "moco_loss": (lambda b: losses.moco_loss(z1, z2, queue, 0.2, backend=b),
                  lambda: losses.moco_loss(z1, z2, queue, 0.2, backend="torch")),
    "moco_v3_loss": (lambda b: losses.moco_v3_loss(z1, z2, 0.2, backend=b),
                     lambda: losses.moco_v3_loss(z1, z2, 0.2, backend="torch")),
    "dino_loss": (lambda b: losses.dino_loss(student, teacher, center, 0.1, 0.04, backend=b),
                  lambda: dino_loss_reference(student, teacher, center, 0.1, 0.04)),
}
for name, (loss, reference) in cases.items():
    value = loss("auto")
    assert torch.isfinite(value), name
    assert torch.allclose(value, reference(), atol=1e-6), name
    value.backward()  # the reference's autograd graph, not a kernel's
    with pytest.raises(RuntimeError, match="triton package cannot be imported") as info:
        loss("triton")
    assert "backend='torch'" in str(info.value), name

for call in (lambda: infonce_kernel.nt_xent(z1, z2, 0.5), lambda: infonce_kernel.info_nce(z1, z2, 0.5),
             lambda: infonce_kernel.info_nce_lse(z1, z2, 0.5),
             lambda: dino_kernel.dino_loss(student, teacher, center, 0.1, 0.04)):
    with pytest.raises(RuntimeError, match="sslcookbook.kernels.* cannot run: the triton package"):
        call()

# A method trains end to end on the reference losses (what notebook 02 does on a laptop).
recipe = get_recipe("simclr")
method = recipe.build("smoke", in_channels=1)
train = data.load("digits", "train").subset(64)
history = fit(method, train, recipe.views(train.image_shape, "smoke"), recipe.setting("smoke").train,
              epochs=1, batch_size=32, progress=False)
assert len(history.steps) == 2 and all(torch.isfinite(torch.tensor(s["loss"])) for s in history.steps)
assert "triton" not in sys.modules

# The SigLIP kernel module imports too; its reference runs and the kernel says why it cannot.
from sslcookbook.kernels import siglip as siglip_kernel
assert not siglip_kernel.AVAILABLE and not siglip_kernel.INTERPRETED
scale, bias = torch.tensor(10.0, requires_grad=True), torch.tensor(-10.0)
siglip_kernel.siglip_loss_reference(z1, z2, scale, bias).backward()
with pytest.raises(RuntimeError, match=r"kernels.siglip\) cannot run: the triton package"):
    siglip_kernel.siglip_loss_triton(z1, z2, scale, bias)
print("ok without triton", sslcookbook.__file__)
'''


def test_library_runs_and_explains_itself_without_triton(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent(BLOCKER))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(SRC)]), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok without triton" in result.stdout
    assert str(SRC) in result.stdout  # the tree under test, not another install
