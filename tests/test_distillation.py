"""Self-distillation: losses against independent fp64 computations, the EMA target, BYOL, SimSiam and DINO."""

import copy
import math
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from sslcookbook.ema import EMATarget, cosine_momentum, ema_update_
from sslcookbook.losses import dino_loss, negative_cosine, update_center
from sslcookbook.methods import BYOL, DINO, DINOHead, SimSiam
from sslcookbook.models import SmallCNN
from sslcookbook.optim import build_optimizer
from sslcookbook.profiles import PROFILES
from sslcookbook.recipes import get_recipe
from sslcookbook.train import TrainConfig, fit

# --------------------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------------------


def negative_cosine_by_loops(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """−(1/N) Σ_i p_i·z_i / (|p_i| |z_i|), one row at a time with explicit sums, in fp64."""
    total = p.new_zeros((), dtype=torch.float64)
    for i in range(p.shape[0]):
        a, b = p[i].double(), z[i].double()
        dot = sum(a[k] * b[k] for k in range(a.shape[0]))
        norm_a = torch.sqrt(sum(a[k] * a[k] for k in range(a.shape[0])))
        norm_b = torch.sqrt(sum(b[k] * b[k] for k in range(b.shape[0])))
        total = total - dot / (norm_a * norm_b)
    return total / p.shape[0]


@pytest.mark.parametrize("n,d", [(1, 3), (5, 8), (7, 1), (12, 16)])
def test_negative_cosine_matches_loops_values_and_gradients(n, d):
    g = torch.Generator().manual_seed(10 * n + d)
    p = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    z = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    ours = negative_cosine(p, z)
    ref = negative_cosine_by_loops(p, z)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    # The target is detached: the gradient reaches p only (the reference, undetached, would reach z too).
    g_ours = torch.autograd.grad(ours, p)[0]
    g_ref = torch.autograd.grad(ref, p)[0]
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-10, atol=1e-13)
    ours = negative_cosine(p, z)
    ours.backward()
    assert z.grad is None


def test_negative_cosine_without_stop_gradient_reaches_both_and_is_symmetric():
    p = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    z = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    gp, gz = torch.autograd.grad(negative_cosine(p, z, stop_gradient=False), (p, z))
    gp_ref, gz_ref = torch.autograd.grad(negative_cosine_by_loops(p, z), (p, z))
    torch.testing.assert_close(gp, gp_ref, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(gz, gz_ref, rtol=1e-10, atol=1e-13)
    assert torch.autograd.gradcheck(lambda a, b: negative_cosine(a, b, stop_gradient=False), (p, z))


def test_negative_cosine_extremes_and_byol_form():
    x = torch.randn(4, 8, dtype=torch.float64)
    assert negative_cosine(x, 3 * x).item() == pytest.approx(-1.0, abs=1e-12)
    assert negative_cosine(x, -x).item() == pytest.approx(1.0, abs=1e-12)
    y = torch.randn(4, 8, dtype=torch.float64)
    byol = ((x / x.norm(dim=1, keepdim=True) - y / y.norm(dim=1, keepdim=True)) ** 2).sum(1).mean()
    torch.testing.assert_close(byol, 2 + 2 * negative_cosine(x, y))  # 2 − 2cos


@pytest.mark.parametrize(
    "p,z,match",
    [
        (torch.randn(4), torch.randn(4), "2-D"),
        (torch.randn(4, 3), torch.randn(4, 2), "shapes differ"),
        (torch.full((2, 3), float("nan")), torch.randn(2, 3), "NaN"),
        (torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.long), "floating point"),
    ],
)
def test_negative_cosine_rejects_bad_input(p, z, match):
    with pytest.raises((ValueError, TypeError), match=match):
        negative_cosine(p, z)


def dino_by_pairs(student, teacher, center, tau_s, tau_t):
    """DINO's loss as the paper's double loop over (teacher crop, other student crop), in fp64."""
    total, pairs = student.new_zeros((), dtype=torch.float64), 0
    for t in range(teacher.shape[0]):
        p = torch.softmax((teacher[t].double() - center.double()) / tau_t, dim=-1)
        for s in range(student.shape[0]):
            if s == t:
                continue
            log_q = torch.log_softmax(student[s].double() / tau_s, dim=-1)
            total = total + (-(p * log_q).sum(dim=-1)).mean()
            pairs += 1
    return total / pairs


@pytest.mark.parametrize("s,t,b,k", [(2, 2, 3, 5), (6, 2, 4, 17), (3, 1, 1, 9)])
def test_dino_loss_equals_loop_over_pairs(s, t, b, k):
    g = torch.Generator().manual_seed(s * 100 + k)
    student = torch.randn(s, b, k, generator=g, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(t, b, k, generator=g, dtype=torch.float64)
    center = 0.3 * torch.randn(k, generator=g, dtype=torch.float64)
    ours = dino_loss(student, teacher, center, 0.1, 0.04)
    ref = dino_by_pairs(student, teacher, center, 0.1, 0.04)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        torch.autograd.grad(ours, student)[0], torch.autograd.grad(ref, student)[0], rtol=1e-10, atol=1e-12
    )


def test_update_center_is_an_ema_of_the_teacher_mean():
    center = torch.randn(7, dtype=torch.float64)
    logits = torch.randn(2, 5, 7, dtype=torch.float64)
    new = update_center(center, logits, momentum=0.9)
    expected = 0.9 * center + 0.1 * logits.reshape(-1, 7).mean(0)
    torch.testing.assert_close(new, expected, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(update_center(center, logits, 0.0), logits.reshape(-1, 7).mean(0))
    torch.testing.assert_close(update_center(center, logits, 1.0), center)
    with pytest.raises(ValueError, match="prototypes"):
        update_center(center, torch.randn(3, 6))
    with pytest.raises(ValueError, match="NaN"):
        update_center(center, torch.full((3, 7), float("nan"), dtype=torch.float64))
    with pytest.raises(ValueError, match="momentum"):
        update_center(center, logits, 1.5)


# --------------------------------------------------------------------------------------------------
# EMA
# --------------------------------------------------------------------------------------------------


def test_foreach_ema_equals_the_per_parameter_loop_exactly():
    torch.manual_seed(0)
    online = [torch.randn(5, 3), torch.randn(7), torch.randn(2, 2, 3, 3), torch.randn(1)]
    target = [torch.randn_like(t) for t in online]
    looped = [t.clone() for t in target]
    for m in (0.996, 0.5, 0.3, 0.0):  # lerp switches formula at weight 0.5: cover both branches
        ema_update_(target, online, m)
        for t, o in zip(looped, online):
            t.lerp_(o, 1 - m)
        for a, b in zip(target, looped):
            assert torch.equal(a, b)


def test_ema_formula_in_fp64_and_edge_momenta():
    online = [torch.randn(4, 4, dtype=torch.float64)]
    target = [torch.randn(4, 4, dtype=torch.float64)]
    before = target[0].clone()
    ema_update_(target, online, 0.9)
    torch.testing.assert_close(target[0], 0.9 * before + 0.1 * online[0], rtol=1e-14, atol=1e-14)
    snapshot = target[0].clone()
    ema_update_(target, online, 1.0)
    assert torch.equal(target[0], snapshot)
    ema_update_(target, online, 0.0)
    assert torch.equal(target[0], online[0])


def test_ema_rejects_mismatched_networks():
    with pytest.raises(ValueError, match="tensors"):
        ema_update_([torch.zeros(2)], [torch.zeros(2), torch.zeros(3)], 0.9)
    with pytest.raises(ValueError, match="must match"):
        ema_update_([torch.zeros(2)], [torch.zeros(3)], 0.9)
    with pytest.raises(ValueError, match="momentum"):
        ema_update_([torch.zeros(2)], [torch.zeros(2)], 1.1)


def test_cosine_momentum_schedule():
    assert cosine_momentum(0.0, 0.996, 1.0) == pytest.approx(0.996, abs=1e-15)
    assert cosine_momentum(1.0, 0.996, 1.0) == pytest.approx(1.0, abs=1e-15)
    assert cosine_momentum(0.5, 0.99, 1.0) == pytest.approx(0.995, abs=1e-15)
    values = [cosine_momentum(i / 10) for i in range(11)]
    assert values == sorted(values)
    with pytest.raises(ValueError, match="progress"):
        cosine_momentum(1.5)


class WithTarget(nn.Module):
    """What a method does with an EMATarget: registers the online modules itself, the target beside them."""

    def __init__(self, base_momentum=0.9, final_momentum=1.0, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.backbone = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU())
        self.projector = nn.Linear(6, 3)
        self.target = EMATarget(
            {"backbone": self.backbone, "projector": self.projector}, base_momentum, final_momentum
        )

    def online(self):
        return [*self.backbone.parameters(), *self.projector.parameters()]

    def perturb_online(self, seed=1):
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.online():
                p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype))


def test_ema_target_copies_without_gradient_reachable_by_name():
    model = WithTarget()
    x = torch.randn(5, 4)
    torch.testing.assert_close(
        model.target.projector(model.target.backbone(x)), model.projector(model.backbone(x))
    )
    assert all(not p.requires_grad for p in model.target.parameters())
    assert all(p.requires_grad for p in model.online())
    assert not model.target.projector(model.target.backbone(x)).requires_grad  # no graph, no gradient


def test_ema_target_schedule_values():
    target = WithTarget(base_momentum=0.99, final_momentum=1.0).target
    assert target.progress == 0.0 and target.momentum == 0.99
    expected = {0.25: 1 - 0.01 * (math.cos(math.pi / 4) + 1) / 2, 0.5: 0.995, 1.0: 1.0}
    for progress, m in expected.items():
        target.update(progress)
        assert target.progress == progress
        assert target.momentum == pytest.approx(m, abs=1e-15)
    constant = WithTarget(base_momentum=0.9, final_momentum=0.9).target  # MoCo v2: a fixed momentum
    for progress in (0.0, 0.3, 1.0):
        constant.update(progress)
        assert constant.momentum == 0.9


def test_ema_target_update_sets_the_progress_then_averages_with_its_momentum(monkeypatch):
    model = WithTarget(base_momentum=0.9).double()
    model.perturb_online()
    before = [p.clone() for p in model.target.parameters()]
    calls = []
    lerp = torch._foreach_lerp_
    monkeypatch.setattr(torch, "_foreach_lerp_", lambda *args: calls.append(len(args[0])) or lerp(*args))
    model.target.update(0.4)
    assert calls == [6]  # one fused call for all six tensors
    m = cosine_momentum(0.4, 0.9, 1.0)
    assert model.target.momentum == m  # the momentum of this update, what the next step logs
    for after, old, online in zip(model.target.parameters(), before, model.online()):
        torch.testing.assert_close(after, m * old + (1 - m) * online, rtol=1e-14, atol=1e-15)
    assert len(before) == len(model.online()) == 6
    # Buffers are not averaged: the target's BatchNorm keeps its own running statistics.
    assert torch.equal(model.target.backbone[1].running_mean, torch.zeros(6))
    with pytest.raises(ValueError, match="progress"):
        model.target.update(1.5)


def test_ema_target_state_dict_round_trip_restores_the_momentum():
    model = WithTarget(base_momentum=0.9)
    model.perturb_online()
    model.target.update(0.3)
    fresh = WithTarget(base_momentum=0.9, seed=5)
    assert fresh.target.momentum != model.target.momentum
    fresh.load_state_dict(model.state_dict())
    assert fresh.target.progress == 0.3 and fresh.target.momentum == model.target.momentum
    for a, b in zip(fresh.target.parameters(), model.target.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(RuntimeError, match="_extra_state"):  # a state dict without the progress is refused
        fresh.load_state_dict({k: v for k, v in model.state_dict().items() if "extra_state" not in k})


def test_ema_target_holds_no_second_copy_of_the_online_modules():
    model = WithTarget()
    online_ids = {id(p) for p in model.online()}
    target_params = list(model.target.parameters())
    assert len(target_params) == len(online_ids) and not online_ids & {id(p) for p in target_params}
    assert len(list(model.parameters())) == 2 * len(online_ids)
    assert sorted(k for k in model.target.state_dict() if not k.startswith(("backbone.", "projector."))) == [
        "_extra_state"
    ]
    pointers = [
        v.data_ptr() for k, v in model.state_dict().items() if k.startswith("target.") and "extra" not in k
    ]
    assert not set(pointers) & {p.data_ptr() for p in model.online()}


def test_ema_target_keeps_modules_shared_between_online_modules_shared():
    torch.manual_seed(0)
    encoder, head = nn.Linear(3, 3), nn.Linear(3, 2)
    target = EMATarget({"encoder": encoder, "model": nn.Sequential(encoder, head)}, 0.5, 0.5)
    assert target.model[0] is target.encoder
    before = [p.detach().clone() for p in target.parameters()]
    with torch.no_grad():
        encoder.weight.add_(1.0)
    target.update(0.5)  # the shared weight moves once, not twice
    online = [*encoder.parameters(), *head.parameters()]
    for after, old, o in zip(target.parameters(), before, online):
        torch.testing.assert_close(after, 0.5 * old + 0.5 * o)


def test_ema_target_survives_deepcopy_and_to():
    model = WithTarget()
    clone = copy.deepcopy(model)
    clone.perturb_online()
    snapshot = [p.clone() for p in model.target.parameters()]
    clone.target.update(0.5)  # follows the clone's online modules, not the original's
    assert all(torch.equal(a, b) for a, b in zip(model.target.parameters(), snapshot))
    assert [id(p) for p in clone.target.online_parameters()] == [id(p) for p in clone.online()]
    assert not any(torch.equal(a, b) for a, b in zip(clone.target.parameters(), snapshot))

    model.double()
    model.perturb_online()
    model.target.update(0.2)  # still paired with the moved online parameters
    assert all(p.dtype == torch.float64 for p in model.target.parameters())
    assert [id(p) for p in model.target.online_parameters()] == [id(p) for p in model.online()]


def test_ema_target_rejects_bad_arguments():
    with pytest.raises(ValueError, match="base momentum"):
        EMATarget({"backbone": nn.Linear(2, 2)}, base_momentum=1.5)
    with pytest.raises(ValueError, match="final momentum"):
        EMATarget({"backbone": nn.Linear(2, 2)}, final_momentum=-0.1)
    with pytest.raises(ValueError, match="cannot name a copy"):
        EMATarget({"update": nn.Linear(2, 2)})
    with pytest.raises(TypeError, match="dict of the online modules"):
        EMATarget({})
    with pytest.raises(TypeError, match="not an nn.Module"):
        EMATarget({"backbone": torch.zeros(2)})


# --------------------------------------------------------------------------------------------------
# methods
# --------------------------------------------------------------------------------------------------


class TinyEncoder(nn.Module):
    def __init__(self, in_features=16, feature_dim=8):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, feature_dim), nn.ReLU())
        self.feature_dim = feature_dim

    def forward(self, x):
        return self.net(x)


class PooledEncoder(nn.Module):
    """Works on any image size (global average pooling), for multi-crop tests."""

    def __init__(self, feature_dim=8):
        super().__init__()
        self.conv = nn.Conv2d(1, feature_dim, 3, padding=1)
        self.feature_dim = feature_dim

    def forward(self, x):
        return self.conv(x).relu().mean(dim=(2, 3))


def two_views(b=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(b, 1, 4, 4, generator=g) for _ in range(2)]


def sgd_step(method, lr=0.5):
    with torch.no_grad():
        for p in method.parameters():
            if p.grad is not None:
                p -= lr * p.grad


def test_byol_target_gets_no_gradient_and_moves_toward_online():
    torch.manual_seed(0)
    method = BYOL(TinyEncoder(), 16, 8, 16, base_momentum=0.9)
    target, online_params = method.target, method.target.online_parameters
    assert online_params() == [*method.backbone.parameters(), *method.projector.parameters()]
    out = method.training_step(two_views())
    out["loss"].backward()
    assert out["momentum"] == 0.9
    assert all(p.grad is None and not p.requires_grad for p in target.parameters())
    assert all(p.grad is not None for p in online_params())
    assert all(p.grad is not None for p in method.predictor.parameters())
    sgd_step(method)
    online = [p.detach().clone() for p in online_params()]
    before = [p.detach().clone() for p in target.parameters()]
    method.after_step(0.0)  # momentum 0.9 at progress 0
    for t, b, o in zip(target.parameters(), before, online):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * o)
    distance = lambda: sum((t - o).norm() for t, o in zip(target.parameters(), online))
    d0 = sum((b - o).norm() for b, o in zip(before, online))
    assert 0 < distance() < d0
    assert target.momentum == 0.9
    method.after_step(1.0)  # momentum 1 at the end: the target stops
    assert target.momentum == 1.0 and method.training_step(two_views())["momentum"] == 1.0


def test_byol_progress_is_saved_in_the_state_dict():
    method = BYOL(TinyEncoder(), 16, 8, 16, base_momentum=0.9)
    method.after_step(0.4)
    clone = BYOL(TinyEncoder(), 16, 8, 16, base_momentum=0.9)
    clone.load_state_dict(method.state_dict())
    assert clone.target.progress == 0.4 and clone.target.momentum == method.target.momentum


def test_byol_and_simsiam_reject_wrong_view_counts():
    for method in (BYOL(TinyEncoder(), 8, 4, 8), SimSiam(TinyEncoder(), 8, 4)):
        with pytest.raises(ValueError, match="exactly 2 views"):
            method.training_step(two_views() + two_views())
        with pytest.raises(ValueError, match="batch sizes"):
            method.training_step([torch.rand(3, 1, 4, 4), torch.rand(4, 1, 4, 4)])
    with pytest.raises(TypeError, match="feature_dim"):
        BYOL(nn.Linear(3, 3))


def test_simsiam_stop_gradient_controls_the_target_branch():
    """With the stop-gradient, z receives gradient only through the predictor branch; without it,
    through both. Measured on z directly: the loss's gradient w.r.t. z is the sum of the two paths."""
    torch.manual_seed(0)
    views = two_views()
    grads = {}
    for stop in (True, False):
        torch.manual_seed(0)
        method = SimSiam(TinyEncoder(), 8, 4, stop_gradient=stop, batch_norm=False)
        z = method.projector(method.backbone(torch.cat(views)))
        z.retain_grad()
        p1, p2 = method.predictor(z).chunk(2)
        z1, z2 = z.chunk(2)
        loss = 0.5 * (negative_cosine(p1, z2, stop) + negative_cosine(p2, z1, stop))
        loss.backward()
        grads[stop] = z.grad.clone()
        # and the method's own loss is this one
        torch.testing.assert_close(method.training_step(views)["loss"], loss)
    # The target-branch gradient is −(1/2N)·(I − ẑẑᵀ)p̂/|z|: recompute it independently and compare.
    torch.manual_seed(0)
    method = SimSiam(TinyEncoder(), 8, 4, batch_norm=False)
    z = method.projector(method.backbone(torch.cat(views))).detach().requires_grad_(True)
    p = method.predictor(z).detach()
    p1, p2 = p.chunk(2)
    z1, z2 = z.chunk(2)
    target_path = torch.autograd.grad(
        0.5 * (negative_cosine_by_loops(p1, z2) + negative_cosine_by_loops(p2, z1)), z
    )[0].float()
    torch.testing.assert_close(grads[False] - grads[True], target_path, rtol=1e-4, atol=1e-6)
    assert target_path.abs().max() > 1e-3


def test_simsiam_without_predictor_or_stop_gradient_still_trains_and_logs_z_std():
    for kwargs in ({"use_predictor": False}, {"stop_gradient": False}):
        method = SimSiam(TinyEncoder(), 8, 4, **kwargs)
        out = method.training_step(two_views())
        out["loss"].backward()
        assert torch.isfinite(out["loss"]) and 0 <= out["z_std"] <= 1
    assert isinstance(SimSiam(TinyEncoder(), 8, 4, use_predictor=False).predictor, nn.Identity)


def test_dino_head_outputs_cosines_and_freezes_prototypes():
    head = DINOHead(8, out_dim=11, hidden_dim=16, bottleneck_dim=4)
    x = torch.randn(5, 8)
    logits = head(x)
    assert logits.shape == (5, 11) and logits.abs().max() <= 1 + 1e-6
    head(x, freeze_prototypes=True).sum().backward()
    assert head.prototypes.weight.grad is None and head.mlp[0].weight.grad is not None
    # Scaling a prototype's row changes nothing: the rows are normalised (weight norm with g = 1).
    with torch.no_grad():
        head.prototypes.weight[3] *= 7
    torch.testing.assert_close(head(x), logits)


def dino_views(b=5, n_local=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(b, 1, 8, 8, generator=g) for _ in range(2)] + [
        torch.rand(b, 1, 4, 4, generator=g) for _ in range(n_local)
    ]


def test_dino_multicrop_shapes_teacher_and_center():
    torch.manual_seed(0)
    method = DINO(PooledEncoder(), out_dim=13, hidden_dim=16, bottleneck_dim=6, center_momentum=0.8)
    views = dino_views()
    student = method._logits(method.backbone, method.head, views)
    teacher = method._logits(method.target.backbone, method.target.head, views[:2])
    assert student.shape == (5, 5, 13) and teacher.shape == (2, 5, 13)
    # The batched, grouped forward equals running each view on its own.
    for i, v in enumerate(views):
        torch.testing.assert_close(student[i], method.head(method.backbone(v)))
    # At initialisation the teacher is the student: identical logits on the global crops.
    torch.testing.assert_close(teacher, student[:2])

    out = method.training_step(views)
    expected = dino_by_pairs(student, teacher, method.center, 0.1, 0.04)
    torch.testing.assert_close(out["loss"].double(), expected, rtol=1e-5, atol=1e-6)
    out["loss"].backward()
    teacher_params = list(method.target.parameters())
    assert teacher_params == [*method.target.backbone.parameters(), *method.target.head.parameters()]
    assert all(p.grad is None and not p.requires_grad for p in teacher_params)
    assert method.backbone.conv.weight.grad is not None and method.head.prototypes.weight.grad is not None

    center_before = method.center.clone()
    teacher_before = [p.detach().clone() for p in teacher_params]
    sgd_step(method)
    method.after_step(0.5)
    torch.testing.assert_close(method.center, 0.8 * center_before + 0.2 * teacher.mean(dim=(0, 1)))
    assert not torch.equal(method.center, center_before)
    # The teacher is the EMA of the stepped student, with the momentum of the schedule at progress 0.5.
    m = cosine_momentum(0.5, 0.996, 1.0)
    student_params = [*method.backbone.parameters(), *method.head.parameters()]
    for after, before, s in zip(teacher_params, teacher_before, student_params):
        torch.testing.assert_close(after, m * before + (1 - m) * s.detach())
    assert any(not torch.equal(a, b) for a, b in zip(teacher_params, teacher_before))


def test_dino_temperature_schedule_and_ablation_switches():
    method = DINO(
        TinyEncoder(), out_dim=9, hidden_dim=8, bottleneck_dim=4,
        teacher_temperature=0.07, warmup_teacher_temperature=0.04, teacher_temperature_warmup=0.5,
    )  # fmt: skip
    assert method.teacher_temperature == pytest.approx(0.04)
    method.after_step(0.25)
    assert method.teacher_temperature == pytest.approx(0.055)
    method.after_step(0.75)
    assert method.teacher_temperature == pytest.approx(0.07)

    no_sharpening = DINO(TinyEncoder(), out_dim=9, hidden_dim=8, bottleneck_dim=4, use_sharpening=False)
    assert no_sharpening.teacher_temperature == no_sharpening.student_temperature
    views = two_views(b=4)
    no_centering = DINO(TinyEncoder(), out_dim=9, hidden_dim=8, bottleneck_dim=4, use_centering=False)
    with torch.no_grad():
        no_centering.center.fill_(5.0)  # must be ignored
    out = no_centering.training_step(views)
    student = no_centering._logits(no_centering.backbone, no_centering.head, views)
    teacher = no_centering._logits(no_centering.target.backbone, no_centering.target.head, views)
    torch.testing.assert_close(
        out["loss"].double(), dino_by_pairs(student, teacher, torch.zeros(9), 0.1, 0.04), rtol=1e-5, atol=1e-6
    )
    no_centering.after_step(0.1)
    assert torch.all(no_centering.center == 5.0)
    assert 0 <= out["teacher_entropy"] <= math.log(9) + 1e-5
    with pytest.raises(ValueError, match="at least 2 views"):
        no_centering.training_step(views[:1])


def test_dino_freezes_prototypes_early():
    method = DINO(TinyEncoder(), out_dim=9, hidden_dim=8, bottleneck_dim=4, freeze_prototypes=0.1)
    method.training_step(two_views())["loss"].backward()
    assert method.head.prototypes.weight.grad is None
    method.zero_grad()
    method.after_step(0.2)
    method.training_step(two_views())["loss"].backward()
    assert method.head.prototypes.weight.grad is not None


# --------------------------------------------------------------------------------------------------
# training with fit, and the recipes
# --------------------------------------------------------------------------------------------------


@dataclass
class TinyData:
    images: torch.Tensor
    labels: torch.Tensor


def noisy_views(num_views):
    def make(images, generator=None):
        x = images.float() / 255
        return [x + 0.1 * torch.randn(x.shape, generator=generator) for _ in range(num_views)]

    return make


@pytest.mark.parametrize(
    "build,num_views",
    [
        (lambda net: BYOL(net, 32, 16, 32, base_momentum=0.99), 2),
        (lambda net: SimSiam(net, 32, 8), 2),
        (lambda net: DINO(net, out_dim=64, hidden_dim=32, bottleneck_dim=16, base_momentum=0.99), 4),
    ],
    ids=["byol", "simsiam", "dino"],
)
def test_each_method_trains_with_fit(build, num_views):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (32, 1, 8, 8), dtype=torch.uint8, generator=g)
    data = TinyData(images, torch.arange(32) % 4)
    torch.manual_seed(0)
    method = build(SmallCNN(in_channels=1, width=4))
    config = TrainConfig(epochs=1, batch_size=16, optimizer="adamw", lr=1e-3, seed=0)
    history = fit(method, data, noisy_views(num_views), config, device="cpu", progress=False)
    assert len(history.losses) == 2 and all(math.isfinite(x) for x in history.losses)
    if not isinstance(method, SimSiam):  # the EMA methods saw the trainer's progress reach 1
        assert method.target.progress == 1.0


@pytest.mark.parametrize("name", ["byol", "simsiam", "dino"])
@pytest.mark.parametrize("profile", PROFILES)
def test_recipes_build_in_every_profile(name, profile):
    recipe = get_recipe(name)
    setting = recipe.setting(profile)
    # The full profile's ResNet-18 is tested in test_models; a small CNN keeps this test fast.
    method = recipe.build(profile, in_channels=1 if setting.data == "digits" else 3, backbone="small_cnn")
    assert isinstance(method, (BYOL, SimSiam, DINO))
    shape = (1, 8, 8) if setting.data == "digits" else (3, 32, 32)
    views = recipe.views(shape, profile)(torch.randint(0, 256, (4, *shape), dtype=torch.uint8))
    if profile == "smoke":  # one real step on the recipe's own views
        out = method.training_step(views)
        assert torch.isfinite(out["loss"])
    else:
        assert len(views) >= 2


def test_simsiam_keeps_the_predictor_lr_fixed_as_the_paper_unless_told_not_to():
    """SimSiam's Table 1, last row (the official --fix-pred-lr): the predictor's lr is not decayed."""
    method = SimSiam(SmallCNN(1, width=8), projector_dim=16, predictor_hidden_dim=4)
    assert method.fixed_lr_modules() == [method.predictor]
    groups = build_optimizer(method, "sgd", lr=0.1, weight_decay=5e-4).param_groups
    fixed = {id(p) for g in groups if g.get("fixed_lr") for p in g["params"]}
    assert fixed == {id(p) for p in method.predictor.parameters()}
    scheduled = SimSiam(SmallCNN(1, width=8), 16, 4, fixed_predictor_lr=False)
    assert scheduled.fixed_lr_modules() == []
    assert SimSiam(SmallCNN(1, width=8), projector_dim=16, use_predictor=False).fixed_lr_modules() == []
