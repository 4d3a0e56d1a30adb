"""Barlow Twins, VICReg and W-MSE against references written one entry at a time in fp64 (values and
gradients), their bad inputs, and 2 gloo processes × B/2 == 1 process × B for Barlow Twins and VICReg."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.distributed as dist
from gloo_group import run_on_ranks

from sslcookbook import data
from sslcookbook.losses import barlow_twins_loss, vicreg_loss, vicreg_terms, whiten, wmse_loss
from sslcookbook.methods import WMSE, BarlowTwins, VICReg
from sslcookbook.models import SmallCNN
from sslcookbook.recipes import RECIPES
from sslcookbook.train import fit


def rand(*shape, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_()


# ------------------------------------------------------------------------------------------------
# References from the papers' equations, one entry at a time
# ------------------------------------------------------------------------------------------------


def column_stats(z, unbiased):
    n, d = z.shape
    means = [sum(z[b, i] for b in range(n)) / n for i in range(d)]
    var = [sum((z[b, i] - means[i]) ** 2 for b in range(n)) / (n - 1 if unbiased else n) for i in range(d)]
    return means, var


def barlow_by_entries(z1, z2, lam):
    n, d = z1.shape
    m1, v1 = column_stats(z1, unbiased=False)
    m2, v2 = column_stats(z2, unbiased=False)
    loss = 0
    for i in range(d):
        for j in range(d):
            c = (
                sum(
                    (z1[b, i] - m1[i]) / (v1[i] + 1e-5).sqrt() * (z2[b, j] - m2[j]) / (v2[j] + 1e-5).sqrt()
                    for b in range(n)
                )
                / n
            )
            loss = loss + ((1 - c) ** 2 if i == j else lam * c**2)
    return loss


def vicreg_by_entries(z1, z2, lam=25.0, mu=25.0, nu=1.0):
    n, d = z1.shape
    invariance = sum((z1[b, i] - z2[b, i]) ** 2 for b in range(n) for i in range(d)) / (n * d)
    variance = covariance = torch.zeros((), dtype=torch.float64)
    for z in (z1, z2):
        means, var = column_stats(z, unbiased=True)
        variance = variance + sum(torch.relu(1 - (v + 1e-4).sqrt()) for v in var) / d / 2
        for i in range(d):
            for j in range(d):
                if i != j:
                    cov = sum((z[b, i] - means[i]) * (z[b, j] - means[j]) for b in range(n)) / (n - 1)
                    covariance = covariance + cov**2 / d
    return lam * invariance + mu * variance + nu * covariance, (invariance, variance, covariance)


def whiten_by_gram_schmidt(z):
    """Cholesky whitening is Gram–Schmidt on the centred columns: z̄ = Q R (R upper triangular) makes
    Σ = z̄ᵀz̄/(N−1) = L Lᵀ with L = Rᵀ/√(N−1), so z̄ L^{-T} = √(N−1) Q, one column at a time."""
    n, d = z.shape
    centred = z - z.sum(0) / n
    columns = []
    for i in range(d):
        v = centred[:, i]
        for q in columns:
            v = v - (v * q).sum() * q
        columns.append(v / (v * v).sum().sqrt())
    return torch.stack(columns, dim=1) * math.sqrt(n - 1)


def wmse_by_blocks(views, w_size):
    n = views[0].shape[0]
    pairs = list(itertools.combinations(range(len(views)), 2))
    whitened = [
        torch.cat([whiten_by_gram_schmidt(v[s : s + w_size]) for s in range(0, n, w_size)]) for v in views
    ]
    total = 0
    for a, b in pairs:
        for i in range(n):
            x, y = whitened[a][i], whitened[b][i]
            total = total + (2 - 2 * (x * y).sum() / (x.norm() * y.norm())) / n
    return total / len(pairs)


def assert_same_loss_and_grads(ours, reference, inputs, rtol=1e-10):
    torch.testing.assert_close(ours, reference, rtol=rtol, atol=1e-12)
    for a, b in zip(torch.autograd.grad(ours, inputs), torch.autograd.grad(reference, inputs)):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-11)


# ------------------------------------------------------------------------------------------------
# Values and gradients
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, d, lam", [(7, 5, 0.0051), (3, 6, 0.3), (2, 1, 1.0)])
def test_barlow_twins_equals_the_reference(n, d, lam):
    z1, z2 = rand(n, d, seed=1, scale=3.0), rand(n, d, seed=2) + 1.5
    ours = barlow_twins_loss(z1, z2, off_diagonal_weight=lam)
    assert ours.dtype == torch.float64
    assert_same_loss_and_grads(ours, barlow_by_entries(z1, z2, lam), (z1, z2))


def test_barlow_twins_of_identical_decorrelated_views_is_almost_zero_and_float32_by_default():
    a = rand(64, 8, seed=30).detach()
    z = torch.linalg.qr(a - a.mean(0))[0] * 8  # centred orthogonal columns of biased variance 1: C = I
    assert barlow_twins_loss(z, z).item() < 1e-8
    assert barlow_twins_loss(z.float().bfloat16(), z.float().bfloat16()).dtype == torch.float32


@pytest.mark.parametrize("n, d", [(6, 4), (2, 3), (9, 1)])
def test_vicreg_equals_the_reference_with_the_official_half_on_the_variance(n, d):
    z1, z2 = rand(n, d, seed=3, scale=0.4), rand(n, d, seed=4, scale=0.3)  # std < 1: the hinge is active
    weights = dict(invariance_weight=2.0, variance_weight=3.0, covariance_weight=0.5)
    ours = vicreg_loss(z1, z2, **weights)
    reference, terms = vicreg_by_entries(z1, z2, 2.0, 3.0, 0.5)
    assert_same_loss_and_grads(ours, reference, (z1, z2))
    for got, want in zip(vicreg_terms(z1, z2), terms):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_vicreg_defaults_are_the_papers():
    z1, z2 = rand(5, 3, seed=5, scale=0.2), rand(5, 3, seed=6, scale=0.2)
    torch.testing.assert_close(vicreg_loss(z1, z2), vicreg_by_entries(z1, z2)[0], rtol=1e-10, atol=1e-12)
    # A collapsed embedding pays the full variance hinge: (1 − 1e-2)/2 per branch, times μ = 25.
    constant = torch.ones(4, 3, dtype=torch.float64)
    assert vicreg_loss(constant, constant).item() == pytest.approx(25 * 2 * (1 - 1e-2) / 2)


def test_whiten_equals_gram_schmidt_and_has_identity_covariance():
    z = rand(9, 4, seed=7, scale=2.0) @ rand(4, 4, seed=8).detach() + 3.0
    ours, weights = whiten(z), rand(9, 4, seed=9).detach()
    torch.testing.assert_close(ours, whiten_by_gram_schmidt(z), rtol=1e-10, atol=1e-11)
    assert_same_loss_and_grads((ours * weights).sum(), (whiten_by_gram_schmidt(z) * weights).sum(), (z,))
    torch.testing.assert_close(ours.T @ ours / 8, torch.eye(4, dtype=torch.float64), rtol=0, atol=1e-10)
    torch.testing.assert_close(ours.mean(0), torch.zeros(4, dtype=torch.float64), rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_views, n, d, w_size", [(2, 12, 3, 6), (4, 10, 2, 5), (3, 7, 4, 7)])
def test_wmse_equals_the_reference(n_views, n, d, w_size):
    views = [rand(n, d, seed=10 + v) for v in range(n_views)]
    assert_same_loss_and_grads(wmse_loss(views, w_size=w_size), wmse_by_blocks(views, w_size), views)


def test_wmse_of_one_view_twice_is_zero_and_whitening_prevents_collapse():
    z = rand(16, 3, seed=20).detach()
    assert wmse_loss([z, z], w_size=8).item() == pytest.approx(0.0, abs=1e-12)
    # Two views that agree only up to a per-image scale still whiten to different points: not 0.
    assert wmse_loss([z, z * torch.linspace(0.5, 2, 16)[:, None].double()], w_size=8).item() > 1e-3


def test_wmse_eps_regularises_a_singular_block():
    z = rand(8, 3, seed=21).detach()
    degenerate = torch.cat([z[:, :2], z[:, :1]], dim=1)  # the third dimension repeats the first
    assert torch.isfinite(wmse_loss([degenerate, degenerate + 0.1], w_size=8, eps=1e-4))


# ------------------------------------------------------------------------------------------------
# Bad inputs: the message names the problem and the fix
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", [barlow_twins_loss, vicreg_loss])
def test_bad_inputs_of_barlow_twins_and_vicreg(loss):
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="shapes differ"):
        loss(z, torch.randn(5, 3))
    with pytest.raises(ValueError, match="2-D"):
        loss(z[None], z[None])
    with pytest.raises(ValueError, match="NaN"):
        loss(z, torch.full((4, 3), float("nan")))
    with pytest.raises(ValueError, match="at least 2"):
        loss(z[:1], z[:1])
    with pytest.raises(TypeError, match="floating point"):
        loss(z.long(), z.long())


def test_bad_weights():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="off_diagonal_weight must be a finite number >= 0"):
        barlow_twins_loss(z, z, off_diagonal_weight=-1.0)
    with pytest.raises(ValueError, match="variance_weight"):
        vicreg_loss(z, z, variance_weight=float("nan"))
    with pytest.raises(TypeError, match="covariance_weight must be a Python number"):
        vicreg_loss(z, z, covariance_weight=torch.tensor(1.0))


def test_wmse_singular_covariance_says_what_to_do():
    z = rand(8, 3, seed=31).detach()
    collapsed = torch.cat([z[:, :2], z[:, :1]], dim=1)
    with pytest.raises(ValueError, match=r"singular.*collapsed.*eps > 0"):
        wmse_loss([collapsed, collapsed], w_size=8)
    with pytest.raises(ValueError, match=r"w_size=4 rows cannot be whitened in 4 dimensions.*w_size > 4"):
        wmse_loss([torch.randn(8, 4), torch.randn(8, 4)], w_size=4)
    with pytest.raises(ValueError, match=r"3 rows cannot span 4 dimensions.*w_size > 4"):
        whiten(torch.randn(3, 4))
    with pytest.raises(ValueError, match="not a multiple of w_size=4"):
        wmse_loss([torch.randn(10, 2), torch.randn(10, 2)], w_size=4)
    with pytest.raises(ValueError, match="at least 2 views"):
        wmse_loss([torch.randn(8, 2)], w_size=4)
    with pytest.raises(TypeError, match="list of N×D tensors"):
        wmse_loss(torch.randn(2, 8, 2), w_size=4)
    with pytest.raises(ValueError, match="NaN"):
        wmse_loss([torch.randn(8, 2), torch.full((8, 2), float("inf"))], w_size=4)


# ------------------------------------------------------------------------------------------------
# 2 gloo processes × B/2 == 1 process × B: loss and encoder gradients
# ------------------------------------------------------------------------------------------------

B, WORLD = 8, 2


def encoder_and_views():
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Tanh(), torch.nn.Linear(6, 4)).double()
    g = torch.Generator().manual_seed(1)
    x1, x2 = (torch.randn(B, 5, generator=g, dtype=torch.float64) for _ in range(2))
    return encoder, x1, x2


LOSSES = {
    "barlow_twins": lambda z1, z2, gather: barlow_twins_loss(z1, z2, 0.2, gather_distributed=gather),
    "vicreg": lambda z1, z2, gather: vicreg_loss(z1, z2, gather_distributed=gather),
}


def loss_and_grads(case: str, part: slice, gather: bool):
    encoder, x1, x2 = encoder_and_views()
    loss = LOSSES[case](encoder(x1[part]), encoder(x2[part]), gather)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in encoder.parameters()]


def _worker(rank: int, out: str):
    half = slice(rank * B // WORLD, (rank + 1) * B // WORLD)
    results = {}
    for case in LOSSES:
        loss, grads = loss_and_grads(case, half, gather=True)
        for t in (loss, *grads):  # DDP's average over ranks
            dist.all_reduce(t)
            t /= WORLD
        results[case] = (loss, grads)
    if rank == 0:
        torch.save(results, out)


def test_two_ranks_on_half_batches_equal_one_process_on_the_batch(tmp_path):
    run_on_ranks(_worker, str(tmp_path / "ranks.pt"), world=WORLD)
    ranks = torch.load(tmp_path / "ranks.pt")
    for case in LOSSES:
        loss, grads = loss_and_grads(case, slice(0, B), gather=False)
        got_loss, got_grads = ranks[case]
        torch.testing.assert_close(got_loss, loss, rtol=1e-12, atol=1e-13, msg=case)
        for i, (a, b) in enumerate(zip(got_grads, grads)):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13, msg=f"{case} gradient {i}")
        # The check can fail: the statistics of each half alone give another loss and gradient.
        halves = [loss_and_grads(case, s, gather=False) for s in (slice(0, B // 2), slice(B // 2, B))]
        averaged = [(a + b) / 2 for a, b in zip(halves[0][1], halves[1][1])]
        assert not all(torch.allclose(a, b, rtol=1e-3) for a, b in zip(averaged, grads)), case


# ------------------------------------------------------------------------------------------------
# The methods: a short fit on the digits, and their arguments
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["barlow_twins", "vicreg", "wmse"])
def test_method_trains_on_tiny_digits_and_its_loss_falls(name):
    resolved = RECIPES[name].resolve("smoke", {})
    train = data.load("digits", "train").subset(256, seed=0)
    torch.manual_seed(0)
    method = resolved.build(in_channels=1)
    config = resolved.setting.train.replace(epochs=2, batch_size=64)
    history = fit(method, train, resolved.views(train.image_shape), config, device="cpu", progress=False)
    losses = history.losses
    assert all(math.isfinite(x) for x in losses) and len(losses) == 8
    assert sum(losses[-2:]) < sum(losses[:2]), losses
    assert method.embed(torch.rand(3, 1, 8, 8)).shape == (3, method.backbone.feature_dim)


def test_methods_log_their_terms_and_check_their_arguments():
    backbone = SmallCNN(in_channels=1, width=8)
    views = [torch.rand(16, 1, 8, 8), torch.rand(16, 1, 8, 8)]
    out = BarlowTwins(backbone, 32, 16).training_step(views)
    assert {"on_diagonal", "off_diagonal"} <= set(out) and out["loss"].requires_grad
    out = VICReg(SmallCNN(in_channels=1, width=8), 32, 16).training_step(views)
    assert out["loss"].item() == pytest.approx(
        25 * out["invariance"] + 25 * out["variance"] + out["covariance"]
    )
    # a batch of 16 below w_size is whitened as one sub-batch; four views make six pairs
    assert WMSE(SmallCNN(in_channels=1, width=8), 32, 8, w_size=64).training_step(views * 2)["loss"] > 0
    with pytest.raises(ValueError, match="w_size=16 must exceed projector_dim=16"):
        WMSE(backbone, 32, 16, w_size=16)
    with pytest.raises(ValueError, match="variance_weight must be >= 0"):
        VICReg(backbone, variance_weight=-1)
    with pytest.raises(ValueError, match="exactly 2 views"):
        BarlowTwins(backbone, 32, 16).training_step(views * 2)
