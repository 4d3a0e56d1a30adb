"""CLIP and SigLIP losses against independent fp64 sums (values and gradients, with the learnable scale and
bias), their backend choice, their bad inputs, and 2 gloo processes × B/2 == 1 process × B."""

import math
import sys
import types

import pytest
import torch
import torch.distributed as dist
from gloo_group import run_on_ranks

from sslcookbook.data import make_shape_pairs
from sslcookbook.losses import clip_loss, siglip_loss
from sslcookbook.losses.language_image import SIGLIP_KERNEL, _siglip_block
from sslcookbook.methods import SigLIP
from sslcookbook.train import TrainConfig, fit


def clip_by_loops(x, y, scale):
    """CLIP's loss as the paper's two sums of softmax cross-entropies, one row at a time, in fp64."""
    x = x / x.norm(dim=1, keepdim=True)
    y = y / y.norm(dim=1, keepdim=True)
    b = x.shape[0]
    total = x.new_zeros(())
    for i in range(b):
        image_row = torch.stack([scale * torch.dot(x[i], y[j]) for j in range(b)])
        text_row = torch.stack([scale * torch.dot(y[i], x[j]) for j in range(b)])
        total = (
            total
            + (torch.logsumexp(image_row, 0) - image_row[i])
            + (torch.logsumexp(text_row, 0) - text_row[i])
        )
    return total / (2 * b)


def siglip_by_loops(x, y, scale, bias):
    """SigLIP's loss as the paper's double sum of log-sigmoids, in fp64: log σ(u) = −log(1 + e^{−u})."""
    x = x / x.norm(dim=1, keepdim=True)
    y = y / y.norm(dim=1, keepdim=True)
    b = x.shape[0]
    total = x.new_zeros(())
    for i in range(b):
        for j in range(b):
            z = 1.0 if i == j else -1.0
            total = total + torch.log1p(torch.exp(-z * (scale * torch.dot(x[i], y[j]) + bias)))
    return total / b


def features(b, d, seed, requires_grad=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, d, generator=g, dtype=torch.float64, requires_grad=requires_grad)
    y = torch.randn(b, d, generator=g, dtype=torch.float64, requires_grad=requires_grad)
    return x, y


@pytest.mark.parametrize("b,d,scale", [(1, 3, 14.3), (5, 8, 1.0), (12, 4, 100.0)])
def test_clip_loss_matches_the_sums_with_gradients_for_features_and_scale(b, d, scale):
    x, y = features(b, d, b * 10 + d)
    s = torch.tensor(scale, dtype=torch.float64, requires_grad=True)
    ours, ref = clip_loss(x, y, s), clip_by_loops(x, y, s)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    for a, r in zip(torch.autograd.grad(ours, (x, y, s)), torch.autograd.grad(ref, (x, y, s))):
        torch.testing.assert_close(a, r, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("b,d,scale,bias", [(1, 3, 10.0, -10.0), (6, 8, 3.0, 0.5), (11, 5, 20.0, -2.0)])
def test_siglip_loss_matches_the_sums_with_gradients_for_features_scale_and_bias(b, d, scale, bias):
    x, y = features(b, d, b * 10 + d)
    t = torch.tensor(scale, dtype=torch.float64, requires_grad=True)
    c = torch.tensor(bias, dtype=torch.float64, requires_grad=True)
    ours, ref = siglip_loss(x, y, t, c, backend="torch"), siglip_by_loops(x, y, t, c)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    for a, r in zip(torch.autograd.grad(ours, (x, y, t, c)), torch.autograd.grad(ref, (x, y, t, c))):
        torch.testing.assert_close(a, r, rtol=1e-9, atol=1e-12)


def test_known_values_and_number_arguments():
    # Orthonormal pairs, perfectly matched: CLIP's loss is log(1 + (B−1) e^{−s}); SigLIP's sums
    # log(1 + e^{−(s+b)}) over B positives and B(B−1) log(1 + e^{b}) over negatives, divided by B.
    b, s, bias = 4, 5.0, -2.0
    e = torch.eye(b, dtype=torch.float64)
    torch.testing.assert_close(
        clip_loss(e, 3 * e, s), torch.tensor(math.log(1 + (b - 1) * math.exp(-s)), dtype=e.dtype)
    )
    expected = math.log1p(math.exp(-(s + bias))) + (b - 1) * math.log1p(math.exp(bias))
    torch.testing.assert_close(siglip_loss(e, e, s, bias), torch.tensor(expected, dtype=e.dtype))
    # fp32 for low-precision inputs on the torch backend
    x, y = torch.randn(6, 8), torch.randn(6, 8)
    assert clip_loss(x.bfloat16(), y.bfloat16(), 10.0).dtype == torch.float32
    low = siglip_loss(x.bfloat16(), y.bfloat16(), 10.0, -10.0, backend="torch")
    assert low.dtype == torch.float32 and abs(low.item() - siglip_loss(x, y, 10.0, -10.0).item()) < 0.05


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda x, y: clip_loss(x, y[:3], 10.0), ValueError, "shapes differ"),
        (lambda x, y: clip_loss(x, y, 0.0), ValueError, "scale must be finite and > 0"),
        (lambda x, y: clip_loss(x, y, torch.ones(2)), ValueError, "0-d"),
        (lambda x, y: clip_loss(x, y, "10"), TypeError, "scale must be a number"),
        (lambda x, y: siglip_loss(x, y, 10.0, math.nan), ValueError, "bias must be finite"),
        (lambda x, y: siglip_loss(x, y, 10.0, -10.0, backend="cuda"), ValueError, "backend must be one of"),
        (lambda x, y: siglip_loss(x.double(), y, 10.0, -10.0), TypeError, "cast both"),
    ],
)
def test_bad_inputs_name_the_fix(call, error, match):
    x, y = torch.randn(4, 6), torch.randn(4, 6)
    with pytest.raises(error, match=match):
        call(x, y)


# ------------------------------------------------------------------------------------------------
# Backend choice: the fused kernel module is someone else's file; here a stand-in takes its place
# ------------------------------------------------------------------------------------------------


def stand_in_kernel(calls: list, available=True, interpreted=True):
    """A module shaped like kernels/siglip.py whose kernel is the fp64 loop sum, recording its calls."""
    module = types.ModuleType(SIGLIP_KERNEL)
    module.AVAILABLE, module.INTERPRETED = available, interpreted

    def siglip_loss_triton(x, y, scale, bias):
        calls.append(x.shape[0])
        return siglip_by_loops(x, y, scale, bias)

    module.siglip_loss_triton = siglip_loss_triton
    module.unsupported = lambda tensors: None
    return module


def test_triton_backend_calls_the_kernel_and_auto_keeps_cpu_tensors_on_torch(monkeypatch):
    pytest.importorskip("triton")
    calls = []
    monkeypatch.setitem(sys.modules, SIGLIP_KERNEL, stand_in_kernel(calls))
    x, y = (t.float() for t in features(5, 4, 0, requires_grad=False))  # a kernel dtype
    expected = siglip_by_loops(x.double(), y.double(), 10.0, -10.0).float()
    torch.testing.assert_close(siglip_loss(x, y, 10.0, -10.0, backend="triton"), expected)
    assert calls == [5]
    siglip_loss(x, y, 10.0, -10.0, backend="auto")
    assert calls == [5], "auto must not pick the kernel for CPU tensors"


def test_negative_only_block_from_the_kernel_equals_the_formula():
    # The chunked loss asks the kernel (which scores the diagonal as positives) for negative-only blocks.
    x, y = features(6, 4, 3, requires_grad=False)
    x, y = x / x.norm(dim=1, keepdim=True), y / y.norm(dim=1, keepdim=True)
    scale, bias = torch.tensor(7.0, dtype=x.dtype), torch.tensor(-3.0, dtype=x.dtype)
    kernel = stand_in_kernel([])
    for positives in (True, False):
        torch.testing.assert_close(
            _siglip_block(x, y, scale, bias, positives, kernel),
            _siglip_block(x, y, scale, bias, positives, None),
        )


def test_triton_backend_without_the_kernel_module_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, SIGLIP_KERNEL, None)  # import fails as if the file were absent
    x, y = torch.randn(4, 6), torch.randn(4, 6)
    with pytest.raises(RuntimeError, match="kernels/siglip.py.*backend='torch'"):
        siglip_loss(x, y, 10.0, -10.0, backend="triton")
    torch.testing.assert_close(
        siglip_loss(x, y, 10.0, -10.0), siglip_loss(x, y, 10.0, -10.0, backend="torch")
    )


# ------------------------------------------------------------------------------------------------
# 2 gloo processes × B/2 == 1 process × B: loss, both encoders' gradients, scale and bias gradients
# ------------------------------------------------------------------------------------------------

B, WORLD = 8, 2


def encoders_and_pairs():
    torch.manual_seed(0)
    image_encoder = torch.nn.Sequential(
        torch.nn.Linear(5, 6), torch.nn.Tanh(), torch.nn.Linear(6, 4)
    ).double()
    text_encoder = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 4)).double()
    log_scale = torch.nn.Parameter(torch.tensor(math.log(3.0), dtype=torch.float64))
    bias = torch.nn.Parameter(torch.tensor(-1.5, dtype=torch.float64))
    g = torch.Generator().manual_seed(1)
    images = torch.randn(B, 5, generator=g, dtype=torch.float64)
    texts = torch.randn(B, 3, generator=g, dtype=torch.float64)
    return image_encoder, text_encoder, log_scale, bias, images, texts


LOSSES = {
    "clip": lambda x, y, s, b, gather: clip_loss(x, y, s, gather_distributed=gather),
    "siglip": lambda x, y, s, b, gather: siglip_loss(x, y, s, b, gather_distributed=gather),
}


def loss_and_grads(case: str, part: slice, gather: bool):
    image_encoder, text_encoder, log_scale, bias, images, texts = encoders_and_pairs()
    loss = LOSSES[case](image_encoder(images[part]), text_encoder(texts[part]), log_scale.exp(), bias, gather)
    loss.backward()
    params = [*image_encoder.parameters(), *text_encoder.parameters(), log_scale, bias]
    return loss.detach(), [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]


class FlatEncoder(torch.nn.Module):
    """An image encoder without BatchNorm, so that two ranks compute what one process computes."""

    feature_dim = 8

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3 * 8 * 8, 8)

    def forward(self, x):
        return torch.tanh(self.linear(x.flatten(1)))


def siglip_fit():
    """SigLIP trained by ``fit`` for 2 epochs of batch 8 on 16 pairs: the captions reach each rank's rows."""
    pairs = make_shape_pairs(16, "train", size=8, seed=0)
    torch.manual_seed(0)
    method = SigLIP(FlatEncoder(), vocab_size=40, context_length=16, embed_dim=8, text_width=8, text_heads=2)
    # SGD: Adam would blow the rounding noise of the attention's key bias (its gradient is exactly 0) up to
    # full steps that differ between one process and two
    config = TrainConfig(epochs=2, batch_size=8, optimizer="sgd", lr=0.5, weight_decay=0.0, log_every=2)
    history = fit(
        method,
        pairs,
        lambda images, generator=None: [images.float() / 255],
        config,
        device="cpu",
        progress=False,
    )
    return method.state_dict(), history.losses


def _worker(rank: int, out: str):
    half = slice(rank * B // WORLD, (rank + 1) * B // WORLD)
    results = {}
    for case in LOSSES:
        loss, grads = loss_and_grads(case, half, gather=True)
        for t in (loss, *grads):  # DDP's average over ranks
            dist.all_reduce(t)
            t /= WORLD
        results[case] = (loss, grads)
    results["fit"] = siglip_fit()  # under DDP: fit wraps the method, each rank gets its half of each batch
    if rank == 0:
        torch.save(results, out)


def test_two_ranks_on_half_batches_equal_one_process_on_the_batch(tmp_path):
    run_on_ranks(_worker, str(tmp_path / "ranks.pt"), world=WORLD)
    ranks = torch.load(tmp_path / "ranks.pt")
    for case in LOSSES:
        loss, grads = loss_and_grads(case, slice(0, B), gather=False)
        got_loss, got_grads = ranks[case]
        torch.testing.assert_close(got_loss, loss, rtol=1e-12, atol=1e-13, msg=case)
        assert len(got_grads) == 10 and grads[-2].abs() > 0 and (case == "clip" or grads[-1].abs() > 0)
        for i, (a, b) in enumerate(zip(got_grads, grads)):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13, msg=f"{case} gradient {i}")
        # The check can fail: each half against itself alone is another loss, with other gradients.
        halves = [loss_and_grads(case, s, gather=False) for s in (slice(0, B // 2), slice(B // 2, B))]
        assert not torch.allclose((halves[0][0] + halves[1][0]) / 2, loss, rtol=1e-3), case
        averaged = [(a + b) / 2 for a, b in zip(halves[0][1], halves[1][1])]
        assert not all(torch.allclose(a, b, rtol=1e-3) for a, b in zip(averaged, grads)), case
    # fit: two ranks of 4 pairs per step train the model that one process trains on the 8 pairs
    state, losses = siglip_fit()
    got_state, got_losses = ranks["fit"]
    assert got_losses == pytest.approx(losses, rel=1e-5) and len(losses) == 4
    for name, value in state.items():
        torch.testing.assert_close(got_state[name], value, rtol=1e-4, atol=1e-5, msg=name)


def test_the_real_fused_kernel_gives_the_formula_loss_and_gradients():
    kernel = pytest.importorskip(SIGLIP_KERNEL)
    if not kernel.AVAILABLE or not (kernel.INTERPRETED or torch.cuda.is_available()):
        pytest.skip("the SigLIP kernel runs on a GPU or under TRITON_INTERPRET=1")
    x, y = (t.float() for t in features(13, 7, 3, requires_grad=False))
    results = []
    for backend in ("torch", "triton"):
        inputs = [x.clone().requires_grad_(), y.clone().requires_grad_()]
        scale, bias = torch.tensor(10.0, requires_grad=True), torch.tensor(-10.0, requires_grad=True)
        loss = siglip_loss(*inputs, scale, bias, gather_distributed=False, backend=backend)
        results.append([loss, *torch.autograd.grad(loss, [*inputs, scale, bias])])
    for expected, got in zip(*results):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
