"""The text encoder, CLIP and SigLIP on the method kit (fit hands them the captions' tokens), their
recipes, and the zero-shot and retrieval evaluation."""

import math

import pytest
import torch

from sslcookbook.data import make_shape_pairs, make_shapes
from sslcookbook.data.text import EOT, PAD, SOT
from sslcookbook.evaluate import retrieval_recall, zero_shot_accuracy, zero_shot_classifier
from sslcookbook.methods import CLIP, SigLIP
from sslcookbook.models import SmallCNN, TextEncoder
from sslcookbook.profiles import PROFILES
from sslcookbook.recipes import get_recipe
from sslcookbook.train import fit


@pytest.mark.parametrize("pool", ["eot", "mean"])
def test_text_encoder_ignores_padding_and_pools_where_asked(pool):
    torch.manual_seed(0)
    encoder = TextEncoder(vocab_size=10, context_length=8, width=16, depth=2, heads=4, pool=pool).eval()
    short = torch.tensor([[SOT, 5, 6, EOT, PAD, PAD], [SOT, 7, EOT, PAD, PAD, PAD]])
    padded = torch.cat([short, torch.zeros(2, 2, dtype=torch.long)], dim=1)
    out = encoder(short)
    assert out.shape == (2, 16) and encoder.feature_dim == 16
    torch.testing.assert_close(encoder(padded), out, rtol=1e-5, atol=1e-6)  # more padding, same features
    changed = short.clone()
    changed[0, 1] = 8
    assert not torch.allclose(encoder(changed)[0], out[0]) and torch.allclose(encoder(changed)[1], out[1])
    out[:, 0].sum().backward()  # (a plain sum after the LayerNorm has no gradient)
    assert encoder.token_embedding.weight.grad.abs().sum() > 0


def test_text_encoder_bad_inputs():
    encoder = TextEncoder(10, 4, width=8, heads=2)
    with pytest.raises(ValueError, match="longer than context_length=4"):
        encoder(torch.ones(1, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="int64 token ids"):
        encoder(torch.ones(1, 4))
    with pytest.raises(ValueError, match="heads .* must divide width"):
        TextEncoder(10, 4, width=10, heads=4)


def small(method_class, **kwargs):
    torch.manual_seed(0)
    return method_class(
        SmallCNN(3, 8), vocab_size=40, context_length=16, embed_dim=16, text_width=16, **kwargs
    )


def test_training_step_logs_the_learnable_scale_and_bias_and_gets_gradients_for_them():
    pairs = make_shape_pairs(16, "train", seed=0)
    views = [pairs.images.float() / 255]
    clip, siglip = small(CLIP), small(SigLIP)
    out = clip.training_step(views, pairs.labels, tokens=pairs.tokens)
    assert math.isclose(float(out["scale"]), 1 / 0.07, rel_tol=1e-5)
    out["loss"].backward()
    assert clip.log_scale.grad is not None and clip.text_encoder.token_embedding.weight.grad is not None
    out = siglip.training_step(views, pairs.labels, tokens=pairs.tokens)
    assert math.isclose(float(out["scale"]), 10, rel_tol=1e-5) and float(out["bias"]) == -10
    out["loss"].backward()
    assert siglip.bias.grad is not None and siglip.log_scale.grad is not None
    clip.log_scale.data.fill_(10.0)
    assert float(clip.scale.detach()) == 100.0  # the clamp
    with pytest.raises(ValueError, match="learns from captions.*shape_pairs"):
        clip.training_step(views, pairs.labels)
    with pytest.raises(ValueError, match="vocab_size=40.*len\\(dataset.tokenizer\\)"):
        clip.training_step(views, tokens=pairs.tokens.clamp(min=41))


def test_fit_hands_the_captions_to_the_method_and_refuses_a_data_set_without_them():
    pairs = make_shape_pairs(128, "train", seed=0)
    method = small(SigLIP)
    resolved = get_recipe("siglip").resolve("smoke")
    views = resolved.views(pairs.image_shape)
    history = fit(
        method,
        pairs,
        views,
        resolved.setting.train.replace(epochs=2, batch_size=32),
        device="cpu",
        progress=False,
    )
    assert len(history.losses) == 8 and all(math.isfinite(x) for x in history.losses)
    assert "bias" in history.steps[0] and history.steps[-1]["bias"] != -10.0
    with pytest.raises(TypeError, match="no .tokens.*paired data set"):
        fit(
            method,
            make_shapes(64, size=24),
            views,
            epochs=1,
            batch_size=32,
            device="cpu",
            progress=False,
        )


def test_zero_shot_and_retrieval_are_perfect_for_a_model_that_reads_the_caption_from_the_image():
    # A stand-in model: the image embedding is one-hot of the image's label, the text embedding one-hot of
    # the class named in the caption: zero-shot accuracy 1; retrieval by class only finds the right caption
    # text when every caption of a class is the same, which it is not (so recall@1 < 1).
    pairs = make_shape_pairs(64, "test", seed=1)
    shape_ids = {word: i for i, word in enumerate(pairs.classes)}
    lookup = {tuple(t.tolist()): shape_ids[c.split()[3]] for t, c in zip(pairs.tokens, pairs.captions)}
    lookup.update(
        {tuple(pairs.tokenizer.encode(p, 16).tolist()): c for c, ps in enumerate(pairs.prompts) for p in ps}
    )
    image_class = {
        img.numpy().tobytes(): int(y) for img, y in zip((pairs.images.float() / 255), pairs.labels)
    }

    class Oracle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(()))

        def encode_image(self, images):
            ids = [image_class[img.numpy().tobytes()] for img in images]
            return torch.nn.functional.one_hot(torch.tensor(ids), 8).float()

        def encode_text(self, tokens):
            return torch.nn.functional.one_hot(
                torch.tensor([lookup[tuple(t.tolist())] for t in tokens]), 8
            ).float()

    oracle = Oracle()
    assert zero_shot_classifier(oracle, pairs.prompts, pairs.tokenizer, 16).shape == (8, 8)
    assert (
        zero_shot_accuracy(oracle, pairs) == 1.0 and zero_shot_accuracy(oracle, pairs, pairs.held_out) == 1.0
    )
    recall = retrieval_recall(oracle, pairs, ks=(1, 5))
    assert set(recall) == {"image_to_text@1", "text_to_image@1", "image_to_text@5", "text_to_image@5"}
    assert recall["text_to_image@5"] >= recall["text_to_image@1"] and 0 < recall["image_to_text@1"] < 1
    assert zero_shot_accuracy(oracle, pairs, pairs.held_out, ensemble="max") == 1.0
    with pytest.raises(ValueError, match="ensemble must be one of"):
        zero_shot_accuracy(oracle, pairs, ensemble="median")
    with pytest.raises(ValueError, match="mask keeps no image"):
        zero_shot_accuracy(oracle, pairs, torch.zeros(64, dtype=torch.bool))
    with pytest.raises(TypeError, match="language–image model"):
        zero_shot_accuracy(torch.nn.Linear(2, 2), pairs)


@pytest.mark.parametrize("name", ["clip", "siglip"])
def test_recipes_have_every_profile_and_build_for_their_data(name):
    recipe = get_recipe(name)
    assert set(recipe.settings) == set(PROFILES)
    for profile in PROFILES:
        setting = recipe.setting(profile)
        assert setting.data in ("shape_pairs", "digit_pairs")
    method = recipe.resolve("smoke").build(in_channels=3)
    assert isinstance(method, CLIP if name == "clip" else SigLIP)
