"""Contrastive losses against independent fp64 computations (values and gradients)."""

import math

import pytest
import torch

from sslcookbook.losses import nt_xent


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
