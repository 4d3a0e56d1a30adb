"""Joint-embedding prediction: I-JEPA's and data2vec's masks, losses against independent fp64 computations,
and both methods (ViT only, EMA teacher without gradients, a few smoke steps that lower the loss)."""

import math

import pytest
import torch

from sslcookbook import data
from sslcookbook.losses import block_masks, data2vec_loss, data2vec_targets, ijepa_loss, multiblock_masks
from sslcookbook.methods import IJEPA, Data2Vec
from sslcookbook.models import SmallCNN, vit_tiny
from sslcookbook.recipes import get_recipe
from sslcookbook.train import fit

# --------------------------------------------------------------------------------------------------
# independent references, written out element by element in fp64
# --------------------------------------------------------------------------------------------------


def smooth_l1(u: torch.Tensor, beta: float) -> torch.Tensor:
    return torch.where(u.abs() < beta, 0.5 * u * u / beta, u.abs() - 0.5 * beta)


def normalise(v: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """(v − mean) / sqrt(biased variance + eps) of a 1-D tensor."""
    mean = v.sum() / v.numel()
    var = ((v - mean) ** 2).sum() / v.numel()
    return (v - mean) / torch.sqrt(var + eps)


def ijepa_by_loops(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    rows_p, rows_t = pred.reshape(-1, pred.shape[-1]), target.reshape(-1, target.shape[-1])
    total = pred.new_zeros(())
    for p, t in zip(rows_p, rows_t):
        total = total + smooth_l1(p - normalise(t), 1.0).sum()
    return total / pred.numel()


def data2vec_targets_by_loops(layers, top_k, block_norm):
    b, n, d = layers[0].shape
    out = torch.zeros(b, n, d, dtype=torch.float64)
    for layer in layers[-top_k:]:
        normed = torch.empty_like(layer)
        for i in range(b):
            if block_norm == "instance":  # each feature over the tokens of one image
                for k in range(d):
                    normed[i, :, k] = normalise(layer[i, :, k])
            else:
                for t in range(n):
                    normed[i, t] = normalise(layer[i, t])
        out += normed / top_k
    for i in range(b):
        for t in range(n):
            out[i, t] = normalise(out[i, t])
    return out


def data2vec_loss_by_loops(pred, target, mask, beta):
    total, count = pred.new_zeros(()), 0
    for i in range(pred.shape[0]):
        for t in range(pred.shape[1]):
            if mask[i, t]:
                total = total + smooth_l1(pred[i, t] - target[i, t], beta).sum() / math.sqrt(pred.shape[2])
                count += 1
    return total / count


# --------------------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 4, 3, 8), (5, 16), (1, 1, 1, 4)])
def test_ijepa_loss_matches_loops_values_and_gradients(shape):
    g = torch.Generator().manual_seed(sum(shape))
    pred = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    target = (3 * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_()
    ours, ref = ijepa_loss(pred, target), ijepa_by_loops(pred, target)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(
        torch.autograd.grad(ours, pred)[0], torch.autograd.grad(ref, pred, retain_graph=True)[0]
    )
    ijepa_loss(pred, target).backward()
    assert target.grad is None  # the teacher's features are detached


@pytest.mark.parametrize("block_norm", ["instance", "layer"])
@pytest.mark.parametrize("top_k", [1, 3])
def test_data2vec_targets_match_loops(block_norm, top_k):
    g = torch.Generator().manual_seed(top_k)
    layers = [torch.randn(2, 5, 6, generator=g, dtype=torch.float64) * (i + 1) + i for i in range(4)]
    ours = data2vec_targets(layers, top_k, block_norm)
    torch.testing.assert_close(
        ours, data2vec_targets_by_loops(layers, top_k, block_norm), rtol=1e-10, atol=1e-12
    )
    # Only the top-k blocks count: changing a lower one changes nothing.
    changed = [torch.randn_like(layers[0])] + layers[1:]
    torch.testing.assert_close(data2vec_targets(changed, top_k, block_norm), ours)


def test_data2vec_loss_matches_loops_values_and_gradients_only_at_masked_tokens():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 7, 8, generator=g, dtype=torch.float64, requires_grad=True)
    target = 2 * torch.randn(3, 7, 8, generator=g, dtype=torch.float64)
    mask = torch.rand(3, 7, generator=g) < 0.5
    mask[0, 0] = True
    for beta in (2.0, 0.5):
        ours, ref = data2vec_loss(pred, target, mask, beta), data2vec_loss_by_loops(pred, target, mask, beta)
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
        grad = torch.autograd.grad(ours, pred)[0]
        torch.testing.assert_close(grad, torch.autograd.grad(ref, pred)[0])
        assert (grad[~mask] == 0).all() and (grad[mask] != 0).any()


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: ijepa_loss(torch.randn(2, 3), torch.randn(2, 4)), "one shape"),
        (lambda: ijepa_loss(torch.randn(3), torch.randn(3)), "floating-point"),
        (lambda: ijepa_loss(torch.full((2, 3), float("nan")), torch.randn(2, 3)), "NaN"),
        (lambda: data2vec_loss(torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.ones(2, 3)), "bool"),
        (
            lambda: data2vec_loss(
                torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.zeros(2, 3, dtype=torch.bool)
            ),
            "masks no token",
        ),
        (
            lambda: data2vec_loss(
                torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.ones(2, 3, dtype=torch.bool), 0
            ),
            "beta",
        ),
        (lambda: data2vec_targets([torch.randn(2, 3, 4)] * 2, top_k=3), "top_k=3 exceeds"),
        (lambda: data2vec_targets([torch.randn(2, 3, 4)], block_norm="batch"), "block_norm"),
        (lambda: data2vec_targets([], 1), "non-empty"),
    ],
)
def test_losses_reject_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# --------------------------------------------------------------------------------------------------
# masks
# --------------------------------------------------------------------------------------------------


def is_rectangle(indices: torch.Tensor, cols: int) -> bool:
    r, c = indices // cols, indices % cols
    h, w = int(r.max() - r.min() + 1), int(c.max() - c.min() + 1)
    return len(indices) == h * w == len(set(indices.tolist()))


@pytest.mark.parametrize("grid", [4, 8, 14])
def test_multiblock_masks_counts_scales_and_disjointness(grid):
    n = grid * grid
    for seed in range(20):
        context, targets = multiblock_masks(16, grid, generator=torch.Generator().manual_seed(seed))
        assert context.dtype == targets.dtype == torch.long and targets.shape[:2] == (16, 4)
        n_t = targets.shape[2]
        # scale 0.15–0.2 of N patches, aspect 0.75–1.5, rounded to whole patches (at least one)
        assert 1 <= n_t <= math.ceil(0.2 * n * 1.5) + 2 * grid
        assert 1 <= context.shape[1] <= n
        for c, blocks in zip(context, targets):
            assert torch.equal(c, c.sort().values) and len(set(c.tolist())) == len(c)
            for block in blocks:
                assert is_rectangle(block, grid)
            assert not set(c.tolist()) & set(blocks.flatten().tolist())  # the context never sees a target
    if (
        grid == 14
    ):  # the paper's grid: targets of 29–39 patches (rounded blocks), a context of most of the rest
        sizes = [
            multiblock_masks(1, 14, generator=torch.Generator().manual_seed(s))[1].shape[2] for s in range(50)
        ]
        assert 20 <= min(sizes) and max(sizes) <= 49


def test_multiblock_masks_on_the_digits_grid_keep_context_and_are_seeded():
    for seed in range(50):
        context, targets = multiblock_masks(64, 4, generator=torch.Generator().manual_seed(seed))
        assert context.shape[1] >= 1 and targets.shape[2] in (1, 2, 4)  # 1×1, 1×2, 2×1 or 2×2 blocks
    a = multiblock_masks(8, 8, generator=torch.Generator().manual_seed(3))
    b = multiblock_masks(8, 8, generator=torch.Generator().manual_seed(3))
    c = multiblock_masks(8, 8, generator=torch.Generator().manual_seed(4))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, c))
    # min_context: a context block re-placed (then unconstrained) keeps at least that many patches
    context, _ = multiblock_masks(
        32,
        4,
        num_targets=8,
        target_scale=(0.3, 0.3),
        min_context=3,
        generator=torch.Generator().manual_seed(0),
    )
    assert context.shape[1] >= 3


def test_block_masks_hit_the_ratio_in_rectangles_and_are_seeded():
    for grid, ratio in ((4, 0.6), (8, 0.6), (14, 75 / 196)):
        masks = block_masks(32, grid, ratio, generator=torch.Generator().manual_seed(grid))
        assert masks.dtype == torch.bool and masks.shape == (32, grid * grid)
        assert (masks.sum(dim=1) == round(ratio * grid * grid)).all()
    a = block_masks(4, 8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, block_masks(4, 8, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(a, block_masks(4, 8, generator=torch.Generator().manual_seed(2)))
    # BEiT's blocks: on a 14×14 grid, most masked patches have a masked 4-neighbour
    m = block_masks(8, 14, 0.4, generator=torch.Generator().manual_seed(0)).reshape(8, 14, 14)
    padded = torch.nn.functional.pad(m, (1, 1, 1, 1))
    neighbour = padded[:, :-2, 1:-1] | padded[:, 2:, 1:-1] | padded[:, 1:-1, :-2] | padded[:, 1:-1, 2:]
    assert (neighbour & m).sum() >= 0.9 * m.sum()


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: multiblock_masks(2, 0), "grid"),
        (lambda: multiblock_masks(2, 4, target_scale=(0.3, 0.2)), "target_scale"),
        (lambda: multiblock_masks(2, 4, min_context=17), "min_context"),
        (lambda: block_masks(2, 4, ratio=1.0), "ratio"),
        (lambda: block_masks(0, 4), "batch_size"),
    ],
)
def test_masks_reject_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# --------------------------------------------------------------------------------------------------
# methods
# --------------------------------------------------------------------------------------------------


def tiny_vit():
    return vit_tiny(in_channels=1, image_size=8, depth=2, pool="mean")


@pytest.mark.parametrize("method", [IJEPA, Data2Vec])
def test_methods_need_a_vit(method):
    with pytest.raises(TypeError, match="vit_tiny"):
        method(SmallCNN(in_channels=1, width=8))


def test_data2vec_and_ijepa_reject_bad_options():
    with pytest.raises(ValueError, match="top_k"):
        Data2Vec(tiny_vit(), top_k=3)
    with pytest.raises(ValueError, match="predictor_dim"):
        IJEPA(tiny_vit(), predictor_dim=90, predictor_heads=4)
    with pytest.raises(ValueError, match="ratio"):
        Data2Vec(tiny_vit(), top_k=1, mask_ratio=0.0)
    with pytest.raises(ValueError, match="views"):
        IJEPA(tiny_vit(), predictor_depth=1).training_step([])


@pytest.mark.parametrize("method,kwargs", [(IJEPA, {"predictor_depth": 1}), (Data2Vec, {"top_k": 1})])
def test_the_ema_teacher_gets_no_gradient_and_follows_the_student(method, kwargs):
    torch.manual_seed(0)
    m = method(tiny_vit(), **kwargs)
    x = torch.rand(6, 1, 8, 8)
    out = m.training_step([x])
    out["loss"].backward()
    assert all(p.grad is None and not p.requires_grad for p in m.target.parameters())
    assert all(p.grad is not None for p in m.backbone.parameters() if p is not m.backbone.cls_token)
    assert not any(p is q for p in m.target.parameters() for q in m.parameters() if q.requires_grad)
    before = [p.clone() for p in m.target.parameters()]
    with torch.no_grad():
        for p in m.backbone.parameters():
            p.add_(0.1)
    m.after_step(0.0)  # momentum = base: the teacher moves a (1 − m) step towards the student
    moved = [(a - b).abs().max() for a, b in zip(m.target.parameters(), before)]
    assert all(d > 0 for d in moved)
    assert m.embed(x).shape == (6, 192)


def test_ijepa_embeds_with_the_average_pooled_target_encoder_and_data2vec_with_the_student():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 8, 8)
    ijepa = IJEPA(tiny_vit(), predictor_depth=1)
    torch.testing.assert_close(ijepa.embed(x), ijepa.target.backbone.patch_features(x).mean(1))
    d2v = Data2Vec(tiny_vit(), top_k=1)
    torch.testing.assert_close(d2v.embed(x), d2v.backbone(x))  # pool="mean": the same features
    # what a run probes, fine-tunes and exports: the network embed uses
    assert ijepa.evaluation_backbone is ijepa.target.backbone and d2v.evaluation_backbone is d2v.backbone
    torch.testing.assert_close(ijepa.evaluation_backbone(x), ijepa.embed(x))


def test_the_runner_evaluates_ijepas_target_encoder(monkeypatch):
    from sslcookbook import runner

    seen = []
    monkeypatch.setattr(runner, "compare_baselines", lambda encoder, *a, **k: seen.append(encoder) or {})
    ijepa = IJEPA(tiny_vit(), predictor_depth=1)
    runner._evaluate(ijepa, None, None, "cpu")
    assert seen == [ijepa.target.backbone]


def test_masks_resume_with_the_state_dict():
    torch.manual_seed(0)
    a = Data2Vec(tiny_vit(), top_k=1)
    for _ in range(3):
        a.sample_masks(4, (4, 4))
    b = Data2Vec(tiny_vit(), top_k=1)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.sample_masks(4, (4, 4)), b.sample_masks(4, (4, 4)))


@pytest.mark.parametrize("name", ["ijepa", "data2vec"])
def test_smoke_recipe_trains_and_the_loss_falls(name):
    resolved = get_recipe(name).resolve("smoke")
    train = data.load("digits", "train").subset(256, seed=0)
    config = resolved.setting.train.replace(batch_size=64)  # 3 epochs of 4 steps
    torch.manual_seed(0)
    method = resolved.build(in_channels=1, image_size=8)
    history = fit(method, train, resolved.views(train.image_shape), config, progress=False)
    assert history.epochs[-1]["loss"] < 0.8 * history.steps[0]["loss"]
    assert history.steps[-1]["momentum"] > method.target.base_momentum
