"""models/attention.attend: PyTorch's SDPA unchanged in fp32; in fp32 on the CPU for bf16 inputs and under
CPU autocast (values and gradients against an fp64 reference), with masks; every transformer calls it."""

import math

import pytest
import torch
import torch.nn.functional as F

from sslcookbook.models import TextEncoder, vit_tiny
from sslcookbook.models import attention as attention_module
from sslcookbook.models.attention import attend


def qkv(dtype=torch.float32, shape=(2, 3, 5, 8), seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator).to(dtype).requires_grad_() for _ in range(3)]


def reference(q, k, v, mask=None, causal=False):
    """softmax(QKᵀ/√d + mask)V written out in fp64."""
    q, k, v = (t.double() for t in (q, k, v))
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    length = scores.shape[-1]
    if causal:
        mask = torch.ones(length, length, dtype=torch.bool).tril()
    if mask is not None and mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask, float("-inf"))
    elif mask is not None:
        scores = scores + mask.double()
    return scores.softmax(-1) @ v


def test_fp32_is_pytorchs_sdpa_bit_for_bit():
    q, k, v = qkv()
    assert torch.equal(attend(q, k, v), F.scaled_dot_product_attention(q, k, v))


@pytest.mark.parametrize("mask_kind", [None, "bool", "float", "causal"])
def test_bf16_on_the_cpu_runs_in_fp32_values_and_gradients(mask_kind):
    q, k, v = qkv(torch.bfloat16)
    mask = None
    if mask_kind == "bool":
        mask = torch.tensor([True, True, False, True, False]).view(1, 1, 1, 5)
    elif mask_kind == "float":
        mask = torch.linspace(-2, 0, 5).view(1, 1, 1, 5).to(torch.bfloat16)
    out = attend(q, k, v, attn_mask=mask, is_causal=mask_kind == "causal")
    assert out.dtype == torch.bfloat16
    want = reference(q, k, v, mask, causal=mask_kind == "causal")
    # fp32 attention of the bf16 inputs, rounded once to bf16: within bf16's rounding of the exact value
    torch.testing.assert_close(out.double(), want, atol=0, rtol=2**-8)
    grads = torch.autograd.grad(out.float().pow(2).sum(), (q, k, v))
    leaves = [t.detach().double().requires_grad_() for t in (q, k, v)]
    want_grads = torch.autograd.grad(reference(*leaves, mask, mask_kind == "causal").pow(2).sum(), leaves)
    for got, expected in zip(grads, want_grads, strict=True):
        assert got.dtype == torch.bfloat16
        torch.testing.assert_close(got.double(), expected, atol=2e-2, rtol=2e-2)


def test_under_cpu_autocast_attention_stays_fp32(monkeypatch):
    """Autocast would send fp32 inputs back to bf16 SDPA: attend switches it off around the call."""
    seen = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, **kwargs):
        seen.append(q.dtype)
        return real(q, k, v, **kwargs)

    monkeypatch.setattr(attention_module.F, "scaled_dot_product_attention", spy)
    q, k, v = qkv()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attend(q, k, v)
        attend(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert seen == [torch.float32, torch.float32]
    assert out.dtype == torch.float32  # q's dtype; the next autocast op casts it as it needs
    torch.testing.assert_close(out.double(), reference(q, k, v), atol=1e-5, rtol=1e-5)


def test_every_transformer_attends_through_it(monkeypatch):
    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return F.scaled_dot_product_attention(*args, **kwargs)

    from sslcookbook.models import text, vit

    monkeypatch.setattr(vit, "attend", counting)
    monkeypatch.setattr(text, "attend", counting)
    vit_tiny(in_channels=1, image_size=8, depth=2)(torch.rand(2, 1, 8, 8))
    assert len(calls) == 2
    TextEncoder(vocab_size=20, context_length=6, width=16, depth=1, heads=2)(torch.randint(1, 20, (2, 6)))
    assert len(calls) == 3


def test_a_vit_under_bf16_autocast_matches_fp32():
    torch.manual_seed(0)
    net = vit_tiny(in_channels=1, image_size=8, depth=2).eval()
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        want = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = net(x)
    assert torch.nn.functional.cosine_similarity(got.float(), want).min() > 0.99


def test_long_sequences_keep_pytorchs_bf16_kernel(monkeypatch):
    """Past CPU_FP32_MAX_KEYS keys bf16 attention is faster in bf16 (the measured crossover)."""
    seen = []
    real = F.scaled_dot_product_attention
    monkeypatch.setattr(
        attention_module.F,
        "scaled_dot_product_attention",
        lambda q, k, v, **kw: seen.append(q.dtype) or real(q, k, v, **kw),
    )
    monkeypatch.setattr(attention_module, "CPU_FP32_MAX_KEYS", 8)
    for length in (8, 9):
        q, k, v = qkv(torch.bfloat16, shape=(1, 1, length, 4))
        assert attend(q, k, v).dtype == torch.bfloat16
    assert seen == [torch.float32, torch.bfloat16]
