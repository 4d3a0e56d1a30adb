"""TwoViewMethod's view_forward modes across every two-view method.

- ``"concat"`` (the default) gives bit-identical losses, gradients and BatchNorm statistics to the code
  before ``project_views`` (one forward over ``torch.cat(views)``, written out below as the reference).
- ``"split"`` gives what one forward per view gives, at every stage that sees the batch (backbone and
  projector, predictor, momentum target), and differs from ``"concat"`` only through BatchNorm.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from sslcookbook.losses import dcl, moco_loss, moco_v3_loss, negative_cosine, nnclr_loss, nt_xent, supcon
from sslcookbook.methods import BYOL, DCL, NNCLR, MoCoV2, MoCoV3, SimCLR, SimSiam, SupCon
from sslcookbook.models import SmallCNN


class NoNormCNN(nn.Sequential):
    """A backbone without BatchNorm: nothing in it mixes the rows of a batch."""

    def __init__(self):
        super().__init__(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_dim = 8


BUILDERS = {
    "simclr": lambda f, bn: SimCLR(f, 16, 8, batch_norm=bn),
    "dcl": lambda f, bn: DCL(f, 16, 8, batch_norm=bn),
    "supcon": lambda f, bn: SupCon(f, 16, 8, batch_norm=bn),
    "nnclr": lambda f, bn: NNCLR(f, 16, 8, 16, queue_size=32, batch_norm=bn),
    "moco_v2": lambda f, bn: MoCoV2(f, 16, 8, queue_size=32),  # its projector has no BatchNorm
    "moco_v3": lambda f, bn: MoCoV3(f, 16, 8, 16, batch_norm=bn),
    "byol": lambda f, bn: BYOL(f, 16, 8, 16, batch_norm=bn),
    "simsiam": lambda f, bn: SimSiam(f, projector_dim=16, predictor_hidden_dim=8, batch_norm=bn),
}


def stage(encode, both, apart):
    """The reference's forward of one stage over both views: one batch, or one batch per view."""
    return torch.cat([encode(v) for v in both.chunk(2)]) if apart else encode(both)


def reference_loss(name, m, views, labels, apart):
    """The loss as the methods computed it before project_views: f, g (and a predictor, a target) over
    ``torch.cat(views)``, each stage per view when ``apart``. Queues are read, not pushed."""
    both = torch.cat(views)
    z = stage(lambda x: m.projector(m.backbone(x)), both, apart)
    z1, z2 = z.chunk(2)
    with torch.no_grad():
        target = (
            stage(lambda x: m.target.projector(m.target.backbone(x)), both, apart)
            if hasattr(m, "target")
            else None
        )
    if name == "simclr":
        return nt_xent(z1, z2, m.temperature, backend=m.backend, gather_distributed=m.gather_distributed)
    if name == "dcl":
        return dcl(z1, z2, m.temperature)
    if name == "supcon":
        return supcon(torch.cat([z1, z2]), labels.repeat(2), m.temperature, m.gather_distributed)
    if name == "nnclr":
        p1, p2 = stage(m.predictor, z, apart).chunk(2)
        queue = m.support.queue
        return 0.5 * (
            nnclr_loss(z1, p2, queue, m.temperature, m.backend)
            + nnclr_loss(z2, p1, queue, m.temperature, m.backend)
        )
    if name == "moco_v2":
        k1, k2 = target.chunk(2)
        queue = m.queue.queue.clone()
        return 0.5 * (
            moco_loss(z1, k2, queue, m.temperature, m.backend)
            + moco_loss(z2, k1, queue, m.temperature, m.backend)
        )
    if name == "moco_v3":
        q1, q2 = stage(m.predictor, z, apart).chunk(2)
        k1, k2 = target.chunk(2)
        kwargs = dict(temperature=m.temperature, backend=m.backend, gather_distributed=m.gather_distributed)
        return moco_v3_loss(q1, k2, **kwargs) + moco_v3_loss(q2, k1, **kwargs)
    if name == "byol":
        p1, p2 = stage(m.predictor, z, apart).chunk(2)
        t1, t2 = target.chunk(2)
        return 0.5 * (negative_cosine(p1, t2) + negative_cosine(p2, t1))
    if name == "simsiam":
        p1, p2 = stage(m.predictor, z, apart).chunk(2)
        return 0.5 * (negative_cosine(p1, z2) + negative_cosine(p2, z1))
    raise AssertionError(name)


def new_method(name, backbone=None, batch_norm=True):
    torch.manual_seed(0)
    return BUILDERS[name](backbone or SmallCNN(in_channels=3, width=4), batch_norm)


def batch(seed=1, n=6):
    g = torch.Generator().manual_seed(seed)
    views = [torch.rand(n, 3, 8, 8, generator=g), 0.5 * torch.rand(n, 3, 8, 8, generator=g)]
    return views, torch.arange(n) % 3


def step(method, views, labels, mode="concat"):
    """The method's loss after one backward, on its own copy: (loss, the copy)."""
    method = copy.deepcopy(method)
    method.view_forward = mode
    loss = method.training_step(views, labels)["loss"]
    loss.backward()
    return loss.detach(), method


def reference_step(name, method, views, labels, apart):
    method = copy.deepcopy(method)
    loss = reference_loss(name, method, views, labels, apart)
    loss.backward()
    return loss.detach(), method


def grads_and_buffers(method):
    """The parameters' gradients and the BatchNorm layers' running statistics."""
    norms = [m for m in method.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    return [p.grad for p in method.parameters()], [b for m in norms for b in m.buffers()]


@pytest.mark.parametrize("name", BUILDERS)
def test_concat_gives_bit_identical_losses_gradients_and_statistics_to_one_forward_over_the_cat(name):
    method = new_method(name)
    views, labels = batch()
    loss, stepped = step(method, views, labels, "concat")
    ref_loss, ref = reference_step(name, method, views, labels, apart=False)
    assert torch.equal(loss, ref_loss), (loss.item(), ref_loss.item())
    (grads, buffers), (ref_grads, ref_buffers) = grads_and_buffers(stepped), grads_and_buffers(ref)
    assert sum(g is not None for g in grads) > 0
    for g, r in zip(grads, ref_grads):
        assert (g is None and r is None) or torch.equal(g, r)
    for b, r in zip(buffers, ref_buffers):
        assert torch.equal(b, r)  # BatchNorm's running statistics moved the same way


@pytest.mark.parametrize("name", BUILDERS)
def test_split_runs_every_stage_one_view_at_a_time(name):
    method = new_method(name)
    views, labels = batch()
    loss, stepped = step(method, views, labels, "split")
    ref_loss, ref = reference_step(name, method, views, labels, apart=True)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-7)
    for g, r in zip(grads_and_buffers(stepped)[0], grads_and_buffers(ref)[0]):
        assert (g is None and r is None) or torch.allclose(g, r, rtol=1e-5, atol=1e-7)
    concat_loss, _ = step(method, views, labels, "concat")
    assert not torch.allclose(loss, concat_loss, rtol=1e-4, atol=1e-6)  # BatchNorm saw other batches


@pytest.mark.parametrize("name", BUILDERS)
def test_split_and_concat_differ_only_through_batch_norm(name):
    views, labels = batch()
    without_norm = new_method(name, NoNormCNN(), batch_norm=False)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in without_norm.modules())
    torch.testing.assert_close(
        step(without_norm, views, labels, "split")[0], step(without_norm, views, labels, "concat")[0]
    )
    in_eval = new_method(name).eval()  # BatchNorm with running statistics: rows no longer mix
    torch.testing.assert_close(
        step(in_eval, views, labels, "split")[0], step(in_eval, views, labels, "concat")[0]
    )


def test_the_kit_calls_keep_no_state_and_check_their_input():
    method = new_method("simclr")
    views, _ = batch()
    method.view_forward = "split"
    both = method.batch(views)
    assert torch.equal(both, torch.cat(views))
    # project is plain g(f(x)) whatever the mode and wherever x came from; only project_views splits
    torch.testing.assert_close(method.project(both), method.projector(method.backbone(both)), rtol=0, atol=0)
    per_view = torch.cat([method.project(v) for v in views])
    torch.testing.assert_close(method.project_views(views), per_view)
    method.view_forward = "auto"  # the CPU's choice is split
    torch.testing.assert_close(method.project_views(views), per_view)
    assert not [k for k, v in vars(method).items() if isinstance(v, (torch.Tensor, tuple))]
    with pytest.raises(ValueError, match="exactly 2 views"):
        method.project_views(views[:1])
    with pytest.raises(ValueError, match="2B rows"):
        method.forward_views(method.projector, torch.rand(5, 16))
