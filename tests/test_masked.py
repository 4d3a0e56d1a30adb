"""MAE and SimMIM: patches, masks and losses against independent fp64 computations (values and gradients),
the encoder on visible tokens against the full encoder with the hidden tokens' attention cut, a short fit
on the digits whose loss falls, and bad inputs."""

from __future__ import annotations

import math

import pytest
import torch

from sslcookbook import data
from sslcookbook.losses import (
    block_masking,
    default_mask_patch,
    mae_loss,
    mask_to_pixels,
    normalise_patches,
    patchify,
    random_masking,
    simmim_loss,
    unnormalise_patches,
    unpatchify,
)
from sslcookbook.methods import MAE, SimMIM
from sslcookbook.models import SmallCNN, select_tokens, vit_tiny
from sslcookbook.recipes import RECIPES
from sslcookbook.train import fit


def rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()


def grads(loss, *inputs):
    return torch.autograd.grad(loss, inputs, retain_graph=True)


# ------------------------------------------------------------------------------------------------
# Patches
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, p", [((2, 3, 8, 12), 4), ((1, 1, 8, 8), 2), ((2, 2, 6, 6), 3)])
def test_patchify_matches_the_entrywise_definition_and_unpatchify_inverts_it(shape, p):
    images = rand(*shape).detach()
    b, c, h, w = shape
    patches = patchify(images, p)
    assert patches.shape == (b, (h // p) * (w // p), p * p * c)
    for n in range(patches.shape[1]):
        i, j = divmod(n, w // p)
        for r in range(p):
            for col in range(p):
                for k in range(c):
                    assert patches[1 % b, n, (r * p + col) * c + k] == images[1 % b, k, i * p + r, j * p + col]
    assert torch.equal(unpatchify(patches, p, (h // p, w // p)), images)
    assert torch.equal(patchify(unpatchify(patches, p, (h // p, w // p)), p), patches)


def test_patch_order_is_the_vits_token_order():
    # the ViT's patch embedding is a stride-P convolution, i.e. a linear map of each patchify row
    vit = vit_tiny(in_channels=3, image_size=8, patch_size=4, depth=1).double()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    weight = vit.patch_embed.weight.permute(0, 2, 3, 1).reshape(vit.dim, -1)  # (D, P·P·C), rows as patchify
    by_rows = patchify(x * 2 - 1, 4) @ weight.T + vit.patch_embed.bias + vit.pos_embed
    torch.testing.assert_close(vit.embed_patches(x), by_rows)


# ------------------------------------------------------------------------------------------------
# Masks
# ------------------------------------------------------------------------------------------------


def test_random_masking_hides_an_exact_random_subset_per_sample_and_restores_the_order():
    m = random_masking(64, 16, 0.75, generator=torch.Generator().manual_seed(0))
    assert m.keep.shape == (64, 4) and m.mask.shape == (64, 16) and m.restore.shape == (64, 16)
    assert torch.equal(m.mask.sum(1), torch.full((64,), 12.0))  # exactly floor(16 · 0.25) kept
    assert torch.all(torch.gather(m.mask, 1, m.keep) == 0)  # the kept patches are the visible ones
    shuffled = torch.cat([m.keep, torch.full((64, 12), -1)], dim=1)  # [visible; mask tokens]
    restored = torch.gather(shuffled, 1, m.restore)
    assert torch.equal(restored == -1, m.mask.bool())  # restore puts each visible index back in place
    assert torch.equal(restored[restored >= 0], torch.arange(16).expand(64, -1)[~m.mask.bool()])
    assert len({tuple(row.tolist()) for row in m.mask}) > 50  # different masks for different samples
    again = random_masking(64, 16, 0.75, generator=torch.Generator().manual_seed(0))
    other = random_masking(64, 16, 0.75, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.mask, m.mask) and not torch.equal(other.mask, m.mask)
    # every patch is hidden about equally often (uniform subsets): 12/16 of 64 000 draws each
    freq = random_masking(4000, 16, 0.75, generator=torch.Generator().manual_seed(2)).mask.mean(0)
    assert torch.allclose(freq, torch.full((16,), 0.75), atol=0.03)


def test_block_masking_hides_whole_squares_ceil_of_the_ratio():
    mask = block_masking(32, 8, 0.6, mask_patch=2, generator=torch.Generator().manual_seed(0))
    squares = mask.reshape(32, 4, 2, 4, 2)
    assert torch.all(squares.amin(dim=(2, 4)) == squares.amax(dim=(2, 4)))  # constant on each 2×2 square
    assert torch.equal(squares[:, :, 0, :, 0].sum(dim=(1, 2)), torch.full((32,), 10.0))  # ceil(0.6 · 16)
    assert len({tuple(row.tolist()) for row in mask}) > 25
    again = block_masking(32, 8, 0.6, mask_patch=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, mask)
    assert default_mask_patch(8) == 2 and default_mask_patch(4) == 1 and default_mask_patch((8, 6)) == 1
    assert torch.equal(block_masking(5, 4, 0.6).sum(1), torch.full((5,), 10.0))  # digits: 10 of 16 tokens
    pixels = mask_to_pixels(mask, 4, 8)
    assert pixels.shape == (32, 1, 32, 32) and torch.equal(pixels[:, 0, ::4, ::4].reshape(32, 64), mask)


# ------------------------------------------------------------------------------------------------
# Losses against sums written out one patch at a time, in fp64, with gradients
# ------------------------------------------------------------------------------------------------


def mae_by_patches(pred, target, mask, norm_pix):
    b, n, d = pred.shape
    total, count = 0, 0
    for i in range(b):
        for j in range(n):
            t = target[i, j]
            if norm_pix:
                mu = sum(t) / d
                var = sum((v - mu) ** 2 for v in t) / (d - 1)
                t = (t - mu) / (var + 1e-6) ** 0.5
            if mask[i, j]:
                total = total + sum((pred[i, j, k] - t[k]) ** 2 for k in range(d)) / d
                count += 1
    return total / count


@pytest.mark.parametrize("norm_pix", [False, True])
def test_mae_loss_is_the_mse_over_hidden_patches(norm_pix):
    pred, target = rand(3, 5, 4, seed=0), rand(3, 5, 4, seed=1)
    mask = (torch.rand(3, 5, generator=torch.Generator().manual_seed(2)) < 0.6).double()
    mask[0, 0] = 1
    ours = mae_loss(pred, target, mask, norm_pix=norm_pix)
    reference = mae_by_patches(pred, target, mask, norm_pix)
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-14)
    for a, b in zip(grads(ours, pred, target), grads(reference, pred, target)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)
    # nothing flows into visible patches, and a perfect prediction costs nothing
    assert torch.all(grads(ours, pred)[0][mask == 0] == 0)
    perfect = normalise_patches(target) if norm_pix else target
    assert mae_loss(perfect, target, mask, norm_pix=norm_pix).abs() < 1e-12
    assert mae_loss(pred.float(), target.float(), mask.bool()).dtype == torch.float32


def test_unnormalise_patches_inverts_the_normalised_target():
    target = rand(2, 6, 12).detach()
    torch.testing.assert_close(unnormalise_patches(normalise_patches(target), target), target)


def test_simmim_loss_is_the_l1_over_hidden_pixels_per_channel():
    pred, target = rand(2, 3, 4, 4, seed=0), rand(2, 3, 4, 4, seed=1)
    token_mask = torch.tensor([[1.0, 0, 0, 1], [0, 1, 1, 1]], dtype=torch.float64)
    pixels = mask_to_pixels(token_mask, 2, 2)
    ours = simmim_loss(pred, target, pixels)
    total, count = 0, 0
    for b in range(2):
        for h in range(4):
            for w in range(4):
                if token_mask[b, (h // 2) * 2 + w // 2]:
                    total = total + sum(abs(pred[b, c, h, w] - target[b, c, h, w]) for c in range(3))
                    count += 1
    reference = total / (count + 1e-5) / 3
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-14)
    for a, b in zip(grads(ours, pred, target), grads(reference, pred, target)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(simmim_loss(pred, target, pixels[:, 0]), ours)  # B×H×W masks too


# ------------------------------------------------------------------------------------------------
# The encoder on the visible tokens
# ------------------------------------------------------------------------------------------------


def encode_with_hidden_keys_cut(vit, tokens, mask):
    """All tokens through the blocks, written out, with every query's attention to hidden keys cut."""
    x = torch.cat([vit.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
    hidden = torch.cat([torch.zeros(mask.shape[0], 1, dtype=torch.bool), mask.bool()], dim=1)
    for block in vit.blocks:
        attn = block.attention
        b, n, d = x.shape
        q, k, v = attn.qkv(block.norm1(x)).reshape(b, n, 3, attn.heads, d // attn.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // attn.heads)
        scores = scores.masked_fill(hidden[:, None, None, :], float("-inf"))
        x = x + attn.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d))
        x = x + block.mlp(block.norm2(x))
    return vit.norm(x)


def test_encoding_the_visible_tokens_equals_the_full_encoder_blind_to_the_hidden_ones():
    torch.manual_seed(0)
    vit = vit_tiny(in_channels=1, image_size=8, depth=2).double().eval()
    x = torch.rand(4, 1, 8, 8, dtype=torch.float64)
    m = random_masking(4, 16, 0.75, generator=torch.Generator().manual_seed(0))
    tokens = vit.embed_patches(x)
    visible = vit.encode(select_tokens(tokens, m.keep))
    full = encode_with_hidden_keys_cut(vit, tokens, m.mask)
    torch.testing.assert_close(visible[:, 0], full[:, 0])  # CLS
    torch.testing.assert_close(visible[:, 1:], select_tokens(full[:, 1:], m.keep))
    # without the cut the full encoder differs: the check can fail
    assert not torch.allclose(vit.encode(tokens)[:, 0], visible[:, 0], atol=1e-4)


@pytest.mark.parametrize(
    "make",
    [
        lambda vit: MAE(vit, 32, 1, 2),
        lambda vit: MAE(vit, 32, 1, 2, encode_visible_only=False),
        lambda vit: SimMIM(vit),
    ],
    ids=["MAE", "MAE with mask tokens in the encoder", "SimMIM"],
)
def test_the_prediction_does_not_see_the_hidden_pixels(make):
    torch.manual_seed(0)
    method = make(vit_tiny(in_channels=1, image_size=8, depth=1)).eval()
    x = torch.rand(6, 1, 8, 8)
    torch.manual_seed(1)
    out = method.forward_masked(x)
    hidden_pixels = mask_to_pixels(out["mask"], 2, 4).bool()
    changed = torch.where(hidden_pixels, torch.rand_like(x), x)
    torch.manual_seed(1)  # the same masks
    again = method.forward_masked(changed)
    torch.testing.assert_close(again["pred"], out["pred"])
    torch.manual_seed(1)
    visible_changed = torch.where(hidden_pixels, x, torch.rand_like(x))
    assert not torch.allclose(method.forward_masked(visible_changed)["pred"], out["pred"])


# ------------------------------------------------------------------------------------------------
# The methods: a short fit on the digits, reconstructions, bad inputs
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mae", "simmim"])
def test_method_trains_on_tiny_digits_and_its_loss_falls(name):
    resolved = RECIPES[name].resolve("smoke", {})
    train = data.load("digits", "train").subset(256, seed=0)
    torch.manual_seed(0)
    method = resolved.build(in_channels=1, image_size=8)
    config = resolved.setting.train.replace(epochs=3, batch_size=64)
    history = fit(method, train, resolved.views(train.image_shape), config, device="cpu", progress=False)
    losses = history.losses
    assert all(math.isfinite(v) for v in losses) and len(losses) == 12
    assert sum(losses[-3:]) < sum(losses[:3]), losses
    assert method.embed(torch.rand(3, 1, 8, 8)).shape == (3, method.backbone.feature_dim)
    pictures = method.reconstruct(train.images[:5].float() / 255)
    assert {"masked", "reconstruction", "prediction"} <= set(pictures)
    assert all(pictures[k].shape == (5, 1, 8, 8) for k in ("masked", "reconstruction", "prediction"))


def test_bad_inputs_say_what_to_do():
    with pytest.raises(TypeError, match="needs a Vision Transformer backbone.*vit_tiny"):
        MAE(SmallCNN(in_channels=1))
    with pytest.raises(TypeError, match="needs a Vision Transformer backbone"):
        SimMIM(SmallCNN(in_channels=1))
    vit = vit_tiny(in_channels=1, image_size=8, depth=1)
    with pytest.raises(ValueError, match="keeps 0 of 16"):
        MAE(vit, mask_ratio=0.95)
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        random_masking(2, 16, 1.0)
    with pytest.raises(ValueError, match="hides all 4 squares"):
        block_masking(2, 4, 0.9, mask_patch=2)
    with pytest.raises(ValueError, match="cannot be tiled"):
        block_masking(2, 6, 0.6, mask_patch=4)
    with pytest.raises(ValueError, match="whole 3×3 patches"):
        patchify(torch.rand(1, 1, 8, 8), 3)
    with pytest.raises(ValueError, match="pass the grid"):
        unpatchify(torch.rand(1, 16, 4), 2, 3)
    pred = torch.rand(2, 16, 4)
    with pytest.raises(ValueError, match="differ"):
        mae_loss(pred, torch.rand(2, 16, 8), torch.ones(2, 16))
    with pytest.raises(ValueError, match="mask must be B×N"):
        mae_loss(pred, pred, torch.ones(2, 15))
    with pytest.raises(ValueError, match="hides nothing"):
        mae_loss(pred, pred, torch.zeros(2, 16))
    with pytest.raises(ValueError, match="0/1"):
        mae_loss(pred, pred, torch.full((2, 16), 0.5))
    with pytest.raises(ValueError, match="B×1×H×W"):
        simmim_loss(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4), torch.ones(1, 3, 4, 4))
    with pytest.raises(ValueError, match="multiple of the ViT's"):
        MAE(vit).training_step([torch.rand(2, 1, 7, 7)])
    with pytest.raises(ValueError, match="float B×C×H×W"):
        SimMIM(vit).training_step([torch.rand(2, 8, 8)])
