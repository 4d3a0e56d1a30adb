"""The Vision Transformer backbone: shapes for every image size, fused attention equal to the written-out
formula, token subsets, position embeddings, attention maps, and every recipe running on it."""

import pytest
import torch

from sslcookbook import runner
from sslcookbook.models import VisionTransformer, build_backbone, load_backbone, select_tokens, vit_tiny
from sslcookbook.models.vit import default_patch_size, sincos_position_embedding
from sslcookbook.recipes import get_recipe, list_recipes


def tiny_vit(**kwargs) -> VisionTransformer:
    torch.manual_seed(0)
    defaults = dict(in_channels=1, image_size=8, dim=16, depth=2, heads=2)
    return VisionTransformer(**{**defaults, **kwargs}).double().eval()


@pytest.mark.parametrize(
    "channels, size, patch, tokens", [(1, 8, 2, 16), (3, 32, 4, 64), (3, 96, 16, 36), (3, 224, 16, 196)]
)
def test_patch_grid_and_feature_shapes(channels, size, patch, tokens):
    assert default_patch_size(size) == patch
    net = vit_tiny(in_channels=channels, image_size=size, depth=1)
    x = torch.rand(2, channels, size, size)
    assert net.num_patches == tokens and net.feature_dim == 192
    assert net.embed_patches(x).shape == (2, tokens, 192)
    assert net(x).shape == (2, 192)
    assert net.patch_features(x).shape == (2, tokens, 192)


def test_fused_attention_equals_the_written_out_softmax():
    fused, plain = tiny_vit(attention="sdpa"), tiny_vit(attention="plain")
    plain.load_state_dict(fused.state_dict())
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(fused(x), plain(x))


def test_encoder_is_permutation_equivariant_so_token_subsets_are_exact():
    # Position lives in the embedding, not in the order: encoding a shuffled subset of the tokens gives
    # the same CLS output and the same (shuffled) patch outputs as encoding it in grid order.
    net = tiny_vit(pool="mean")
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    tokens = net.embed_patches(x)
    keep = torch.stack([torch.randperm(16, generator=torch.Generator().manual_seed(i))[:4] for i in range(2)])
    ordered = keep.sort(dim=1).values
    shuffled_out = net.encode(select_tokens(tokens, keep))
    ordered_out = net.encode(select_tokens(tokens, ordered))
    torch.testing.assert_close(shuffled_out[:, 0], ordered_out[:, 0])
    back = keep.argsort(dim=1)  # ordered[j] is shuffled[back[j]]
    torch.testing.assert_close(select_tokens(shuffled_out[:, 1:], back), ordered_out[:, 1:])
    assert select_tokens(tokens, keep)[0, 1].equal(tokens[0, keep[0, 1]])


def test_encode_returns_every_block_output():
    net = tiny_vit(depth=3)
    tokens = net.embed_patches(torch.rand(2, 1, 8, 8, dtype=torch.float64))
    out, layers = net.encode(tokens, return_layers=True)
    assert len(layers) == 3 and all(layer.shape == (2, 17, 16) for layer in layers)
    torch.testing.assert_close(out, net.norm(layers[-1]))


def test_sincos_embedding_is_what_the_formula_says():
    pos = sincos_position_embedding(2, 3, 8)  # 2 frequencies per axis: 1 and 1/100
    row, col = 1, 2
    token = pos[row * 3 + col]
    expected = torch.tensor(
        [torch.sin(torch.tensor(row * f)) for f in (1.0, 0.01)]
        + [torch.cos(torch.tensor(row * f)) for f in (1.0, 0.01)]
        + [torch.sin(torch.tensor(col * f)) for f in (1.0, 0.01)]
        + [torch.cos(torch.tensor(col * f)) for f in (1.0, 0.01)]
    )
    torch.testing.assert_close(token, expected)


@pytest.mark.parametrize("position", ["sincos", "learned"])
def test_other_image_sizes_get_a_matching_position_embedding(position):
    net = tiny_vit(position=position)
    same = net.position_embedding(4, 4)
    assert same.shape == (1, 16, 16)
    bigger = net.position_embedding(6, 6)
    assert bigger.shape == (1, 36, 16)
    if position == "sincos":
        torch.testing.assert_close(bigger[0], sincos_position_embedding(6, 6, 16).double())
    assert net(torch.rand(2, 1, 12, 12, dtype=torch.float64)).shape == (2, 16)


def test_sides_that_are_not_whole_patches_are_padded_with_grey():
    net = tiny_vit()
    x = torch.rand(2, 1, 7, 5, dtype=torch.float64)
    padded = torch.nn.functional.pad(x, (0, 1, 0, 1), value=0.5)  # 0.5 is 0 after centring
    assert net.grid_size(x) == (4, 3)
    torch.testing.assert_close(net(x), net(padded))


def test_attention_maps_match_the_weights_of_the_last_block():
    net = tiny_vit(heads=2)
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    maps = net.attention_maps(x)
    assert maps.shape == (2, 2, 4, 4)
    assert (maps >= 0).all() and (maps.flatten(2).sum(-1) <= 1 + 1e-12).all()
    # Recompute the CLS row of the last block by hand.
    h = torch.cat([net.cls_token.expand(2, -1, -1), net.embed_patches(x)], dim=1)
    h = net.blocks[0](h)
    block = net.blocks[1]
    q, k, _ = block.attention.qkv(block.norm1(h)).reshape(2, 17, 3, 2, 8).permute(2, 0, 3, 1, 4)
    weights = (q @ k.transpose(-2, -1) / 8**0.5).softmax(-1)
    torch.testing.assert_close(maps, weights[:, :, 0, 1:].reshape(2, 2, 4, 4))


@pytest.mark.parametrize("position", ["sincos", "learned"])
def test_the_random_init_baseline_redraws_every_vit_parameter(position):
    """evaluate.random_encoder_like re-initialises a trained ViT completely: the CLS token (and a learned
    position embedding) too, not only the submodules' weights, so no trained value leaks into the baseline."""
    from sslcookbook.evaluate import random_encoder_like

    trained = vit_tiny(in_channels=1, image_size=8, depth=1, position=position)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)  # as if trained
    fresh = random_encoder_like(trained)
    for (name, before), after in zip(trained.named_parameters(), fresh.parameters()):
        assert not torch.equal(before, after), f"{name} kept its trained value"
    assert fresh.cls_token.abs().max() < 0.1  # trunc-normal, std 0.02
    # the ViT's own (MAE) initialisation has the last word over each nn.Linear's default: zero biases
    linears = [m for m in fresh.blocks.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(torch.count_nonzero(m.bias) == 0 for m in linears)


def test_bad_inputs_say_what_to_change():
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        VisionTransformer(image_size=10, patch_size=4)
    with pytest.raises(ValueError, match="divisible by 3 heads"):
        VisionTransformer(dim=16, heads=3)
    with pytest.raises(ValueError, match="unknown position embedding"):
        VisionTransformer(position="rope")
    net = tiny_vit()
    with pytest.raises(ValueError, match="in_channels=3"):
        net(torch.rand(2, 3, 8, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="indices must be B×n"):
        select_tokens(torch.zeros(2, 4, 3), torch.zeros(4, dtype=torch.long))


def test_build_backbone_passes_the_image_size_only_to_backbones_that_need_it():
    assert build_backbone("vit_tiny", 1, image_size=8, depth=1).patch_size == 2
    assert build_backbone("vit_tiny", 1, image_size=8, depth=1, patch_size=4).num_patches == 4
    assert build_backbone("small_cnn", 1, image_size=8).feature_dim == 128


@pytest.mark.parametrize("name", [name for name, _ in list_recipes()])
def test_every_recipe_builds_and_steps_with_a_vit(name):
    # `--set backbone=vit_tiny`: the recipe's backbone arguments are dropped, the ViT sized to the data.
    resolved = get_recipe(name).resolve("smoke", {"backbone": "vit_tiny", "backbone.depth": 1})
    torch.manual_seed(0)
    method = resolved.build(in_channels=1, image_size=8)
    assert method.backbone.patch_size == 2
    views = resolved.views((1, 8, 8))
    n = 64  # DeepCluster v2 clusters its bank into up to 50 clusters
    images = torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8)
    generator = torch.Generator().manual_seed(0)
    labels, extra = torch.arange(n) % 2, {}
    if method.uses_indices:
        method.set_num_instances(n)
        extra = {"indices": torch.arange(n)}
    if method.uses_text:  # CLIP, SigLIP: a caption of token ids per image
        shape = (n, method.context_length)
        extra = {"tokens": torch.randint(1, method.vocab_size, shape, generator=generator)}
    method.before_epoch(0, images, seed=0)
    out = method.training_step(views(images, generator=generator), labels, **extra)
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    assert method.backbone.patch_embed.weight.grad is not None


def test_a_vit_recipe_runs_exports_and_reloads(tmp_path):
    results = runner.run_recipe(
        "simclr",
        profile="smoke",
        out=tmp_path,
        progress=False,
        figures=False,
        overrides={
            "backbone": "vit_tiny",
            "backbone.depth": 1,
            "train.epochs": 1,
            "train.max_steps_per_epoch": 2,
        },
    )
    assert results["image_size"] == 8
    checkpoint = next((tmp_path / "checkpoints").glob("*.pt"))
    method, _, _ = runner.load_trained_method(checkpoint)
    assert method.backbone.patch_size == 2
    encoder = load_backbone(runner.export_checkpoint(checkpoint, tmp_path / "vit.safetensors"))
    images = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(encoder(images), method.backbone.eval()(images))

