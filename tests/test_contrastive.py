"""Contrastive losses against independent fp64 computations (values and gradients); the family's methods
and recipes."""

import math
from dataclasses import dataclass

import pytest
import torch

from sslcookbook.losses import (
    MemoryQueue,
    dcl,
    info_nce,
    moco_loss,
    moco_v3_loss,
    nearest_neighbour,
    nnclr_loss,
    nt_xent,
    supcon,
)
from sslcookbook.methods import DCL, NNCLR, MoCoV2, MoCoV3, SimCLR, SupCon
from sslcookbook.methods.momentum import sub_batch_forward
from sslcookbook.models import SmallCNN
from sslcookbook.profiles import PROFILES
from sslcookbook.recipes import get_recipe
from sslcookbook.train import TrainConfig, fit


def nt_xent_by_loops(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent written as the paper's sum, one anchor at a time, in fp64."""
    z = torch.cat([z1, z2]).double()
    z = z / z.norm(dim=1, keepdim=True)
    n2 = z.shape[0]
    n = n2 // 2
    total = z.new_zeros(())
    for i in range(n2):
        positive = (i + n) % n2
        sims = [torch.dot(z[i], z[j]) / temperature for j in range(n2) if j != i]
        log_denominator = torch.logsumexp(torch.stack(sims), dim=0)
        total = total + log_denominator - torch.dot(z[i], z[positive]) / temperature
    return total / n2


@pytest.mark.parametrize("n,d,temperature", [(1, 3, 0.5), (5, 8, 0.1), (16, 4, 1.0), (9, 32, 0.05)])
def test_nt_xent_matches_loops_values_and_gradients(n, d, temperature):
    g = torch.Generator().manual_seed(n * 100 + d)
    z1 = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    ours = nt_xent(z1, z2, temperature)
    ref = nt_xent_by_loops(z1, z2, temperature)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    g_ours = torch.autograd.grad(ours, (z1, z2))
    g_ref = torch.autograd.grad(ref, (z1, z2))
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_nt_xent_gradcheck():
    z1 = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: nt_xent(a, b, 0.3), (z1, z2))


def test_nt_xent_is_scale_invariant_and_known_extremes():
    z = torch.randn(8, 16, dtype=torch.float64)
    assert torch.allclose(nt_xent(z, z), nt_xent(3 * z, 0.5 * z))
    # Perfect alignment with orthogonal negatives: loss = log(1 + (2N-2) e^{-1/τ} / e^{0}) analytically.
    n, tau = 4, 0.5
    e = torch.eye(2 * n, dtype=torch.float64)[:n]
    expected = -1 / tau + math.log(math.exp(1 / tau) + (2 * n - 2) * math.exp(0))
    torch.testing.assert_close(nt_xent(e, e, tau), torch.tensor(expected, dtype=torch.float64))


def test_nt_xent_low_precision_is_computed_in_fp32():
    z1, z2 = torch.randn(6, 8), torch.randn(6, 8)
    loss = nt_xent(z1.bfloat16(), z2.bfloat16())
    assert loss.dtype == torch.float32
    assert abs(loss.item() - nt_xent(z1, z2).item()) < 0.05


@pytest.mark.parametrize(
    "z1,z2,match",
    [
        (torch.randn(4), torch.randn(4), "2-D"),
        (torch.randn(4, 3), torch.randn(5, 3), "shapes differ"),
        (torch.ones(4, 3, dtype=torch.long), torch.ones(4, 3, dtype=torch.long), "floating point"),
        (torch.full((4, 3), float("nan")), torch.randn(4, 3), "NaN"),
        (torch.randn(0, 3), torch.randn(0, 3), "empty"),
    ],
)
def test_nt_xent_rejects_bad_input(z1, z2, match):
    with pytest.raises((ValueError, TypeError), match=match):
        nt_xent(z1, z2)


def test_nt_xent_rejects_bad_temperature():
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(torch.randn(2, 3), torch.randn(2, 3), temperature=0.0)


# ---- the rest of the family, each against a loop written from the paper's equation (fp64) ----


def unit(x):
    return x / x.norm(dim=1, keepdim=True)


def rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)


def assert_same_value_and_grad(ours, ref, inputs):
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    for a, b in zip(torch.autograd.grad(ours, inputs), torch.autograd.grad(ref, inputs)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def info_nce_by_loops(q, k, tau, labels):
    q, k = unit(q), unit(k)
    terms = []
    for i in range(len(q)):
        logits = torch.stack([torch.dot(q[i], k[j]) / tau for j in range(len(k))])
        terms.append(torch.logsumexp(logits, 0) - logits[labels[i]])
    return torch.stack(terms).mean()


def test_info_nce_with_labels():
    q, k = rand(5, 6, seed=1), rand(9, 6, seed=2)
    labels = torch.tensor([3, 0, 8, 3, 1])
    assert_same_value_and_grad(info_nce(q, k, 0.2, labels), info_nce_by_loops(q, k, 0.2, labels), (q, k))
    default = info_nce(q, k, 0.2)
    torch.testing.assert_close(default, info_nce_by_loops(q, k, 0.2, torch.arange(5)))


def supcon_by_loops(z, labels, tau):
    z = unit(z)
    per_anchor = []
    for i in range(len(z)):
        others = [a for a in range(len(z)) if a != i]
        positives = [p for p in others if labels[p] == labels[i]]
        if not positives:
            continue
        log_denominator = torch.logsumexp(torch.stack([torch.dot(z[i], z[a]) / tau for a in others]), 0)
        per_anchor.append(
            -sum(torch.dot(z[i], z[p]) / tau - log_denominator for p in positives) / len(positives)
        )
    return torch.stack(per_anchor).mean()


def test_supcon_matches_loops():
    z = rand(10, 4, seed=3)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 3, 1, 2, 0])  # class 3 has no positive: skipped
    assert_same_value_and_grad(supcon(z, labels, 0.3), supcon_by_loops(z, labels, 0.3), (z,))


def test_supcon_with_unique_labels_reduces_to_nt_xent():
    z1, z2 = rand(6, 5, seed=4), rand(6, 5, seed=5)
    labels = torch.arange(6).repeat(2)
    torch.testing.assert_close(supcon(torch.cat([z1, z2]), labels, 0.5), nt_xent(z1, z2, 0.5))


def test_supcon_errors():
    with pytest.raises(ValueError, match="no anchor has a positive"):
        supcon(torch.randn(4, 3), torch.arange(4))
    with pytest.raises(ValueError, match="shape"):
        supcon(torch.randn(4, 3), torch.arange(3))
    with pytest.raises(ValueError, match="real class labels"):
        supcon(torch.randn(4, 3), torch.full((4,), -1))


def dcl_by_loops(z1, z2, tau):
    z = unit(torch.cat([z1, z2]))
    n2, n = len(z), len(z1)
    terms = []
    for i in range(n2):
        p = (i + n) % n2
        negatives = torch.stack([torch.dot(z[i], z[j]) / tau for j in range(n2) if j not in (i, p)])
        terms.append(torch.logsumexp(negatives, 0) - torch.dot(z[i], z[p]) / tau)
    return torch.stack(terms).mean()


def test_dcl_matches_loops():
    z1, z2 = rand(5, 7, seed=6), rand(5, 7, seed=7)
    assert_same_value_and_grad(dcl(z1, z2, 0.2), dcl_by_loops(z1, z2, 0.2), (z1, z2))
    with pytest.raises(ValueError, match="at least 2"):
        dcl(torch.randn(1, 3), torch.randn(1, 3))


def test_moco_loss_matches_loops_and_sends_no_gradient_to_keys():
    q, k = rand(4, 6, seed=8), rand(4, 6, seed=9)
    queue = unit(torch.randn(11, 6, dtype=torch.float64))
    ours = moco_loss(q, k, queue, 0.2)
    # the paper's dictionary for query i: its own key k_i (label 0) followed by the queue
    ref = torch.stack(
        [
            info_nce_by_loops(q[i : i + 1], torch.cat([k[i : i + 1].detach(), queue]), 0.2, [0])
            for i in range(4)
        ]
    ).mean()
    assert_same_value_and_grad(ours, ref, (q,))
    assert torch.autograd.grad(moco_loss(q, k, queue), k, allow_unused=True)[0] is None


def test_moco_v3_loss_is_scaled_info_nce_on_detached_keys():
    q, k = rand(6, 5, seed=10), rand(6, 5, seed=11)
    ours = moco_v3_loss(q, k, 0.2)
    ref = 2 * 0.2 * info_nce_by_loops(q, k.detach(), 0.2, torch.arange(6))
    assert_same_value_and_grad(ours, ref, (q,))


def test_nnclr_uses_nearest_support_rows_as_positives():
    support = unit(torch.randn(20, 6, dtype=torch.float64))
    z = support[[3, 7, 3, 12]] + 1e-3 * torch.randn(4, 6, dtype=torch.float64)
    torch.testing.assert_close(nearest_neighbour(z, support), support[[3, 7, 3, 12]])
    p = rand(4, 6, seed=12)
    ours = nnclr_loss(z, p, support, 0.1)
    ref = info_nce_by_loops(support[[3, 7, 3, 12]], p, 0.1, torch.arange(4))
    assert_same_value_and_grad(ours, ref, (p,))


def test_memory_queue_is_fifo_and_normalised():
    queue = MemoryQueue(size=5, dim=3)
    assert torch.allclose(queue.queue.norm(dim=1), torch.ones(5))
    first, second = torch.randn(3, 3), torch.randn(4, 3)
    queue.push(first)
    torch.testing.assert_close(queue.queue[:3], unit(first))
    queue.push(second)  # wraps around: rows 3, 4, 0, 1
    torch.testing.assert_close(queue.queue[[3, 4, 0, 1]], unit(second))
    torch.testing.assert_close(queue.queue[2], unit(first)[2])
    assert int(queue.pointer) == 2


# ---- methods and recipes of the family ----


FAMILY = {
    "simclr": SimCLR,
    "dcl": DCL,
    "supcon": SupCon,
    "nnclr": NNCLR,
    "moco_v2": MoCoV2,
    "moco_v3": MoCoV3,
}


@dataclass
class Tiny:
    images: torch.Tensor
    labels: torch.Tensor


def tiny_views(images, generator=None):
    x = images.float() / 255
    return [x + 0.05 * torch.randn(x.shape, generator=generator) for _ in range(2)]


@pytest.mark.parametrize("name", sorted(FAMILY))
def test_recipe_builds_in_every_profile_and_trains(name):
    recipe = get_recipe(name)
    for profile in PROFILES:
        assert recipe.setting(profile).train.epochs >= 1
    method = recipe.build("smoke", in_channels=1)
    assert isinstance(method, FAMILY[name])
    g = torch.Generator().manual_seed(0)
    data = Tiny(torch.randint(0, 256, (32, 1, 8, 8), dtype=torch.uint8, generator=g), torch.arange(32) % 4)
    history = fit(
        method, data, tiny_views, TrainConfig(epochs=1, batch_size=16), device="cpu", progress=False
    )
    assert len(history.losses) == 2 and all(math.isfinite(v) for v in history.losses)


def test_momentum_encoder_gets_no_gradient_and_follows_the_online_one():
    torch.manual_seed(0)
    method = MoCoV3(SmallCNN(1, width=8), 32, 16, 32)
    views = tiny_views(torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8))
    out = method.training_step(views)
    out["loss"].backward()
    assert out["momentum"] == 0.99  # base_momentum before any update
    assert all(p.grad is None and not p.requires_grad for p in method.target.parameters())
    with torch.no_grad():
        for p in method.backbone.parameters():
            p.add_(1.0)
    before = [p.clone() for p in method.target.backbone.parameters()]
    method.after_step(0.5)
    m = 1 - 0.01 * (math.cos(math.pi * 0.5) + 1) / 2  # the cosine schedule 0.99 -> 1 at progress 0.5
    assert method.target.momentum == pytest.approx(m, abs=1e-15)
    for old, new, online in zip(before, method.target.backbone.parameters(), method.backbone.parameters()):
        torch.testing.assert_close(new, m * old + (1 - m) * online)
    assert method.training_step(views)["momentum"] == method.target.momentum


@pytest.mark.parametrize(
    "build,expected",
    [
        (lambda: MoCoV2(SmallCNN(1, width=8), 32, 16, queue_size=64, momentum=0.9), 0.9),
        (lambda: MoCoV3(SmallCNN(1, width=8), 32, 16, 32), 1 - 0.01 * (math.cos(math.pi * 0.4) + 1) / 2),
    ],
    ids=["moco_v2", "moco_v3"],
)
def test_moco_momentum_schedule_is_restored_from_the_state_dict(build, expected):
    """Before the EMA target, MoCo kept its momentum in a plain attribute that a resume reset to the base."""
    method = build()
    method.after_step(0.4)
    fresh = build()
    fresh.load_state_dict(method.state_dict())
    assert fresh.target.momentum == method.target.momentum == pytest.approx(expected, abs=1e-15)


def test_moco_v2_queue_receives_the_keys():
    torch.manual_seed(0)
    method = MoCoV2(SmallCNN(1, width=8), 32, 16, queue_size=64)
    views = tiny_views(torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8))
    out = method.training_step(views)
    assert int(method.queue.pointer) == 16
    assert method.queue.queue.requires_grad is False and out["loss"].requires_grad


def test_supcon_method_needs_labels():
    method = SupCon(SmallCNN(1, width=8), 32, 16)
    with pytest.raises(ValueError, match="needs the labels"):
        method.training_step(tiny_views(torch.zeros(4, 1, 8, 8, dtype=torch.uint8)))


def test_nnclr_support_queue_fills():
    torch.manual_seed(0)
    method = NNCLR(SmallCNN(1, width=8), 32, 16, 32, queue_size=20)
    method.training_step(tiny_views(torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8)))
    assert int(method.support.pointer) == 8


def test_methods_reject_the_wrong_number_of_views():
    with pytest.raises(ValueError, match="exactly 2 views"):
        SimCLR(SmallCNN(1, width=8), 32, 16).training_step([torch.rand(4, 1, 8, 8)] * 3)


def test_the_kit_rejects_bad_views_backbones_and_arguments():
    method = SimCLR(SmallCNN(1, width=8), 32, 16)
    with pytest.raises(ValueError, match="float B×C×H×W"):
        method.training_step([torch.zeros(4, 1, 8, 8, dtype=torch.uint8)] * 2)
    with pytest.raises(ValueError, match="batch sizes"):
        method.training_step([torch.rand(4, 1, 8, 8), torch.rand(3, 1, 8, 8)])
    with pytest.raises(TypeError, match="list of view tensors"):
        method.training_step(torch.rand(2, 4, 1, 8, 8))
    with pytest.raises(TypeError, match="feature_dim"):
        MoCoV2(torch.nn.Linear(3, 3))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        SimCLR(SmallCNN(1, width=8), temperature=0.0)
    with pytest.raises(ValueError, match="momentum must be in"):
        MoCoV2(SmallCNN(1, width=8), momentum=1.5)


# -- Shuffle-BN on one device (MoCoV2(bn_splits=...)) ------------------------------------------------


def by_hand_batch_norm(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5)


def test_sub_batch_forward_normalises_each_shuffled_sub_batch_and_restores_the_order():
    torch.manual_seed(0)
    x = torch.randn(12, 5) * 3 + 1
    bn = torch.nn.BatchNorm1d(5, affine=False)
    order = torch.randperm(12)
    got = sub_batch_forward(bn, x, 3, [bn], order)
    expected = torch.empty_like(x)
    for rows in order.chunk(3):  # the sub-batches are the shuffled rows, 4 at a time
        expected[rows] = by_hand_batch_norm(x[rows])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # the row order comes back: an encoder without BN returns x itself
    torch.testing.assert_close(sub_batch_forward(torch.nn.Identity(), x, 3, [], order), x, rtol=0, atol=0)
    # the running averages move once, by the mean of the three sub-batches' statistics
    means = torch.stack([x[rows].mean(0) for rows in order.chunk(3)]).mean(0)
    variances = torch.stack([x[rows].var(0) for rows in order.chunk(3)]).mean(0)
    torch.testing.assert_close(bn.running_mean, 0.1 * means, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * variances, rtol=1e-5, atol=1e-6)
    assert int(bn.num_batches_tracked) == 1 and bn.momentum == 0.1


def test_moco_v2_shuffle_bn_keys_use_per_sub_batch_statistics_and_keep_the_state_dict():
    torch.manual_seed(0)
    views = tiny_views(torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8))
    plain = MoCoV2(SmallCNN(1, width=8), 32, 16, queue_size=64)
    split = MoCoV2(SmallCNN(1, width=8), 32, 16, queue_size=64, bn_splits=4)
    split.load_state_dict(plain.state_dict())  # same weights and buffers: the option adds no state
    assert list(split.state_dict()) == list(plain.state_dict())
    both = torch.cat(views)
    torch.manual_seed(1)
    order = torch.randperm(both.shape[0])
    by_hand = torch.cat([split.keys(both[rows]) for rows in order.chunk(4)])[torch.argsort(order)]
    split.load_state_dict(plain.state_dict())  # undo the running statistics by_hand moved
    torch.manual_seed(1)  # training_step draws the same permutation
    split.training_step(views)
    pushed = split.queue.queue[:16]
    torch.testing.assert_close(pushed, torch.nn.functional.normalize(by_hand, dim=1), rtol=1e-5, atol=1e-6)
    plain.training_step(views)
    assert not torch.allclose(plain.queue.queue[:16], pushed, atol=1e-3)  # whole-batch BN differs
    with pytest.raises(ValueError, match="4 equal sub-batches"):
        split.training_step(tiny_views(torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)))
    with pytest.raises(ValueError, match="bn_splits must be > 0"):
        MoCoV2(SmallCNN(1, width=8), bn_splits=0)
