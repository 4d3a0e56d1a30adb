"""Tests of the evaluation protocol (sslcookbook.evaluate)."""

from __future__ import annotations

import functools
import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from sslcookbook import augment
from sslcookbook.evaluate import (
    DEFAULT_PROBE_MAX_ITER,
    alignment,
    compare_baselines,
    embed,
    evaluate_features,
    feature_std,
    few_shot_indices,
    fine_tune,
    knn_accuracy,
    knn_predict,
    label_efficiency,
    linear_probe,
    random_encoder_like,
    rankme,
    raw_pixel_features,
    supervised_baseline,
    uniformity,
)


def _blobs(n_train: int, n_test: int, num_classes: int, dim: int, spread: float, seed: int):
    """Gaussian clusters around random unit-norm centres, split into train and test (per class counts).

    Returns train_x, train_y, test_x, test_y."""
    g = torch.Generator().manual_seed(seed)
    centres = nn.functional.normalize(torch.randn(num_classes, dim, generator=g), dim=1)

    def draw(n_per_class):
        labels = torch.arange(num_classes).repeat_interleave(n_per_class)
        labels = labels[torch.randperm(labels.shape[0], generator=g)]
        return centres[labels] + spread * torch.randn(labels.shape[0], dim, generator=g), labels

    return (*draw(n_train), *draw(n_test))


def _brute_force_knn(train_x, train_y, test_x, k, temperature, num_classes):
    """Loop-over-test-points reference in float64 numpy: sort, weight, vote."""
    train = train_x.numpy().astype(np.float64)
    test = test_x.numpy().astype(np.float64)
    train /= np.linalg.norm(train, axis=1, keepdims=True)
    test /= np.linalg.norm(test, axis=1, keepdims=True)
    predictions = []
    for row in test:
        sims = train @ row
        nearest = np.argsort(-sims)[:k]
        votes = np.zeros(num_classes)
        for j in nearest:
            votes[train_y[j]] += math.exp(sims[j] / temperature)
        predictions.append(int(np.argmax(votes)))
    return np.array(predictions)


# ---------------------------------------------------------------------------------------------- kNN


@pytest.mark.parametrize("k,temperature", [(1, 0.07), (5, 0.07), (20, 0.5), (200, 0.1)])
def test_knn_matches_brute_force(k, temperature):
    g = torch.Generator().manual_seed(k)
    train_x, test_x = torch.randn(60, 7, generator=g), torch.randn(23, 7, generator=g)
    train_y, test_y = torch.randint(0, 4, (60,), generator=g), torch.randint(0, 4, (23,), generator=g)
    expected = _brute_force_knn(train_x, train_y.numpy(), test_x, min(k, 60), temperature, 4)
    # a small chunk size exercises the chunking over test rows
    predicted = knn_predict(train_x, train_y, test_x, k=k, temperature=temperature, batch_size=5)
    np.testing.assert_array_equal(predicted.numpy(), expected)
    accuracy = knn_accuracy(train_x, train_y, test_x, test_y, k=k, temperature=temperature, batch_size=5)
    assert accuracy == pytest.approx(float((expected == test_y.numpy()).mean()), abs=1e-7)


def test_knn_separable_clusters_and_random_labels():
    train_x, train_y, test_x, test_y = _blobs(40, 20, 5, 16, spread=0.05, seed=0)
    assert knn_accuracy(train_x, train_y, test_x, test_y) == 1.0

    g = torch.Generator().manual_seed(1)
    noise_train, noise_test = torch.randn(2000, 16, generator=g), torch.randn(1000, 16, generator=g)
    random_train_y = torch.randint(0, 10, (2000,), generator=g)
    random_test_y = torch.randint(0, 10, (1000,), generator=g)
    chance = knn_accuracy(noise_train, random_train_y, noise_test, random_test_y)
    assert 0.03 < chance < 0.18


def test_knn_k_larger_than_train_set_is_clamped():
    train_x, train_y, _, _ = _blobs(2, 1, 3, 4, spread=0.01, seed=2)
    assert knn_accuracy(train_x, train_y, train_x, train_y, k=100) == 1.0


# --------------------------------------------------------------------------------------- linear probe


def test_linear_probe_separable_and_random_labels():
    train_x, train_y, test_x, test_y = _blobs(60, 30, 4, 12, spread=0.05, seed=3)
    assert linear_probe(train_x, train_y, test_x, test_y) == 1.0

    g = torch.Generator().manual_seed(4)
    x_train, x_test = torch.randn(500, 24, generator=g), torch.randn(500, 24, generator=g)
    y_train, y_test = torch.randint(0, 5, (500,), generator=g), torch.randint(0, 5, (500,), generator=g)
    assert linear_probe(x_train, y_train, x_test, y_test) < 0.3  # chance: 0.2


def test_more_labels_not_worse_on_average():
    train_x, train_y, test_x, test_y = _blobs(100, 60, 6, 20, spread=0.35, seed=5)
    scores = label_efficiency(train_x, train_y, test_x, test_y, labels_per_class=(1, 10, None))
    assert list(scores) == ["1", "10", "all"]
    assert scores["1"] <= scores["10"] + 0.02 <= scores["all"] + 0.04
    assert scores["all"] > 0.8
    assert linear_probe(train_x, train_y, test_x, test_y, "all") == scores["all"]


def test_probe_max_iter_bounds_the_lbfgs_iterations():
    train_x, train_y, test_x, test_y = _blobs(100, 60, 6, 20, spread=0.35, seed=5)
    one_step = linear_probe(train_x, train_y, test_x, test_y, max_iter=1)
    converged = linear_probe(train_x, train_y, test_x, test_y, max_iter=DEFAULT_PROBE_MAX_ITER)
    assert one_step < converged == linear_probe(train_x, train_y, test_x, test_y)
    with pytest.raises(ValueError, match="max_iter"):
        linear_probe(train_x, train_y, test_x, test_y, max_iter=0)
    with pytest.raises(TypeError, match="epochs"):  # the old name, which counted no epochs, is gone
        linear_probe(train_x, train_y, test_x, test_y, epochs=10)


def test_few_shot_indices_exact_and_deterministic():
    labels = torch.tensor([0] * 7 + [1] * 5 + [2] * 9)[
        torch.randperm(21, generator=torch.Generator().manual_seed(0))
    ]
    idx = few_shot_indices(labels, 3, seed=11)
    assert torch.bincount(labels[idx]).tolist() == [3, 3, 3]
    assert idx.unique().numel() == idx.numel()
    assert torch.equal(idx, few_shot_indices(labels, 3, seed=11))
    assert any(not torch.equal(idx, few_shot_indices(labels, 3, seed=s)) for s in range(12, 20))


def test_few_shot_probe_deterministic_by_seed():
    train_x, train_y, test_x, test_y = _blobs(30, 30, 3, 8, spread=0.6, seed=7)
    a = linear_probe(train_x, train_y, test_x, test_y, labels_per_class=2, seed=3)
    assert a == linear_probe(train_x, train_y, test_x, test_y, labels_per_class=2, seed=3)
    draws = {linear_probe(train_x, train_y, test_x, test_y, 1, seed=s, repeats=1) for s in range(6)}
    assert len(draws) > 1  # different draws really differ


def test_labels_per_class_larger_than_available_raises():
    train_x, train_y, _, _ = _blobs(4, 1, 3, 5, spread=0.1, seed=9)
    with pytest.raises(ValueError, match="has only 4 training examples"):
        linear_probe(train_x, train_y, train_x, train_y, labels_per_class=5)


# ------------------------------------------------------------------------------------ statistics


def test_rankme_full_and_rank_one():
    d = 16
    full = torch.eye(d).repeat(4, 1) + 1e-4 * torch.randn(
        4 * d, d, generator=torch.Generator().manual_seed(0)
    )
    assert rankme(full) == pytest.approx(d, rel=1e-3)
    rank_one = torch.randn(50, 1) @ torch.randn(1, d)
    assert rankme(rank_one) == pytest.approx(1.0, abs=1e-3)
    mid = torch.randn(200, 4) @ torch.randn(4, d)
    assert 1.5 < rankme(mid) <= 4.0 + 1e-6


def test_alignment_uniformity_feature_std():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(300, 8, generator=g)
    assert alignment(z, z) == pytest.approx(0.0, abs=1e-6)
    assert alignment(z, -z) == pytest.approx(4.0, abs=1e-5)  # antipodal: ‖2u‖² = 4

    collapsed = torch.ones(300, 8) + 1e-9 * torch.randn(300, 8, generator=g)
    assert uniformity(collapsed) == pytest.approx(0.0, abs=1e-6)
    spread = uniformity(z)
    assert spread < -1.0
    # independent check on a small sample: mean over distinct pairs
    small = nn.functional.normalize(z[:40].double(), dim=1)
    expected = torch.pdist(small).pow(2).mul(-2).exp().mean().log().item()
    assert uniformity(z[:40], batch_size=7) == pytest.approx(expected, abs=1e-9)

    assert feature_std(collapsed) < 1e-6
    healthy = feature_std(torch.randn(2000, 64, generator=g))
    assert healthy == pytest.approx(1 / math.sqrt(64), rel=0.05)


# --------------------------------------------------------------------------------------- encoders


def _tiny_encoder() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
    )


def test_random_encoder_like():
    encoder = _tiny_encoder()
    encoder[1].running_mean.fill_(3.0)  # as if trained
    before = {name: t.clone() for name, t in encoder.state_dict().items()}
    rng_state = torch.get_rng_state()
    clone = random_encoder_like(encoder)
    assert torch.equal(torch.get_rng_state(), rng_state)  # the global RNG is left alone
    for name, t in encoder.state_dict().items():
        assert torch.equal(t, before[name]), f"original {name} changed"
    assert [type(m) for m in clone.modules()] == [type(m) for m in encoder.modules()]
    assert {n: t.shape for n, t in clone.state_dict().items()} == {n: t.shape for n, t in before.items()}
    assert not torch.equal(clone[0].weight, encoder[0].weight)
    assert not torch.equal(clone[0].bias, encoder[0].bias)
    assert torch.equal(clone[1].running_mean, torch.zeros(8))  # BatchNorm statistics reset too
    assert clone[0].weight is not encoder[0].weight
    assert torch.equal(clone[0].weight, random_encoder_like(encoder)[0].weight)  # fixed seed
    assert not torch.equal(clone[0].weight, random_encoder_like(encoder, seed=7)[0].weight)
    with pytest.raises(TypeError):
        random_encoder_like(lambda x: x)


def test_embed_modes_dtypes_and_batching():
    encoder = _tiny_encoder()
    encoder.train()
    images = torch.randint(0, 256, (37, 1, 8, 8), dtype=torch.uint8)
    features = embed(encoder, images, batch_size=10)
    assert encoder.training  # mode restored
    assert features.dtype == torch.float32 and features.shape == (37, 32) and features.device.type == "cpu"
    encoder.eval()
    assert torch.allclose(features, encoder(images.float() / 255))
    assert torch.allclose(embed(encoder, images.float() / 255, batch_size=100), features)
    assert not encoder.training
    # grads are not tracked, plain callables work, outputs are flattened
    assert not embed(encoder, images).requires_grad
    assert embed(lambda x: x, images).shape == (37, 64)
    assert torch.equal(raw_pixel_features(images), images.reshape(37, -1).float() / 255)

    class Exploding(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    exploding = Exploding().train()
    with pytest.raises(RuntimeError, match="boom"):
        embed(exploding, images)
    assert exploding.training  # restored even when the forward pass fails


# --------------------------------------------------------------------------------------- validation


def test_embed_switches_the_modules_behind_a_function_to_eval_mode():
    """A lambda over a model with BatchNorm must see running statistics and leave them untouched."""
    torch.manual_seed(0)
    model = nn.Module()
    model.backbone = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16))
    model.head = nn.Sequential(nn.Linear(16, 4), nn.BatchNorm1d(4))
    model.head[1].eval()  # a part frozen in eval mode must come back frozen
    with torch.no_grad():  # non-trivial running statistics
        model.backbone[2].running_mean.uniform_(-1, 1)
        model.backbone[2].running_var.uniform_(0.5, 2)
    images = torch.randn(20, 1, 8, 8)
    model.eval()
    expected = model.head(model.backbone(images))
    expected_backbone = model.backbone(images)
    model.train()
    model.head[1].eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def forward(x):
        return model.head(model.backbone(x))

    encoders = {
        "closure": forward,
        "lambda with a default": lambda x, m=model: m.head(m.backbone(x)),
        "bound method": model.backbone.forward,
        "partial": functools.partial(lambda m, x: m.head(m.backbone(x)), model),
    }
    for name, encoder in encoders.items():
        features = embed(encoder, images)
        for key, value in model.state_dict().items():
            assert torch.equal(value, before[key]), f"{name}: {key} changed"
        assert model.training and model.backbone[2].training and not model.head[1].training, name
        want = expected_backbone if name == "bound method" else expected
        torch.testing.assert_close(features, want, msg=name)


def test_clear_errors():
    x, y = torch.randn(10, 4), torch.randint(0, 2, (10,))
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN: the encoder diverged"):
        knn_accuracy(bad, y, x, y)
    with pytest.raises(ValueError, match="NaN"):
        linear_probe(x, y, bad, y)
    with pytest.raises(ValueError, match="NaN"):
        rankme(bad)
    with pytest.raises(ValueError, match="inf"):
        uniformity(x.masked_fill(x > 1, float("inf")))
    with pytest.raises(ValueError, match="must match"):
        knn_accuracy(x, y[:9], x, y)
    with pytest.raises(ValueError, match="2-D"):
        linear_probe(x.reshape(10, 2, 2), y, x, y)
    with pytest.raises(ValueError, match="dims"):
        knn_accuracy(x, y, x[:, :3], y)
    with pytest.raises(TypeError, match="integer"):
        knn_accuracy(x, y.float(), x, y)


# ------------------------------------------------------------------------------------ end to end


def _digits_splits():
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    images = torch.from_numpy(digits.images * (255 / 16)).round().to(torch.uint8).unsqueeze(1)
    labels = torch.from_numpy(digits.target).long()
    perm = torch.randperm(labels.shape[0], generator=torch.Generator().manual_seed(0))
    train, test = perm[:1437], perm[1437:]
    return (
        SimpleNamespace(images=images[train], labels=labels[train]),
        SimpleNamespace(images=images[test], labels=labels[test]),
    )


def test_compare_baselines_on_digits():
    train_ds, test_ds = _digits_splits()
    results = compare_baselines(_tiny_encoder(), train_ds, test_ds)
    assert set(results) == {"ssl", "raw", "random"}
    for report in results.values():
        assert set(report) == {"probe", "knn", "rankme", "feature_std"}
        assert set(report["probe"]) == {"1", "10", "all"}
        assert all(0.0 <= v <= 1.0 for v in report["probe"].values())
        assert 0.0 <= report["knn"] <= 1.0 and report["rankme"] >= 1.0 and report["feature_std"] > 0
    raw = results["raw"]
    assert raw["probe"]["all"] > 0.9 and raw["knn"] > 0.9
    assert raw["probe"]["1"] < raw["probe"]["10"] < raw["probe"]["all"]
    assert results["ssl"] != results["random"]  # the random baseline really is a different encoder
    # evaluate_features on the same raw features gives the same report
    again = evaluate_features(
        raw_pixel_features(train_ds.images),
        train_ds.labels,
        raw_pixel_features(test_ds.images),
        test_ds.labels,
    )
    assert again == raw


# ------------------------------------------------------------------------------------ supervised baseline


def _halves(n_per_class: int, seed: int):
    """1×6×6 uint8 images: class 0 is bright on the left half, class 1 on the right, plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(2).repeat_interleave(n_per_class)
    images = torch.rand(labels.shape[0], 1, 6, 6, generator=g) * 0.3
    images[labels == 0, :, :, :3] += 0.6
    images[labels == 1, :, :, 3:] += 0.6
    return (images.clamp(0, 1) * 255).round().to(torch.uint8), labels


def _conv_backbone():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()
    )


def _every_encoder():
    """One small instance of every encoder architecture the library builds (images, series, text)."""
    from sslcookbook.models import build_backbone
    from sslcookbook.models.char_lm import CharLM
    from sslcookbook.models.sequence import ConvEncoder1d, PatchTransformer
    from sslcookbook.models.text import TextEncoder

    return {
        "small_cnn": lambda: build_backbone("small_cnn", 3, 32, width=8),
        "resnet18_cifar": lambda: build_backbone("resnet18_cifar", 3, 32),
        "vit_tiny (learned positions)": lambda: build_backbone("vit_tiny", 1, 8, depth=1, position="learned"),
        "ConvEncoder1d": lambda: ConvEncoder1d(3, width=8, depth=2),
        "PatchTransformer": lambda: PatchTransformer(3, 4, dim=16, depth=1, heads=2),
        "TextEncoder": lambda: TextEncoder(20, 8, width=16, depth=1, heads=2),
        "CharLM": lambda: CharLM(20, 8, width=16, depth=1, heads=2),
    }


@pytest.mark.parametrize("name", list(_every_encoder()))
def test_the_random_init_baseline_redraws_every_parameter_of_every_encoder(name):
    # No trained value may leak into the random-init baseline: the text encoder's and the character LM's
    # position embeddings (bare parameters no submodule resets) had kept theirs.
    trained = _every_encoder()[name]()
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)  # as if trained
    fresh = random_encoder_like(trained)
    for (parameter, before), after in zip(trained.named_parameters(), fresh.parameters()):
        assert not torch.equal(before, after), f"{name}: {parameter} kept its trained value"


def test_the_random_init_baseline_resets_children_before_parents():
    # A parent's reset_parameters (a ViT's, the text encoder's) re-draws its subtree as its constructor
    # does, so it must come after its children's defaults; modules shared by two parents are reset once.
    order = []

    class Recording(nn.Linear):
        def reset_parameters(self):
            order.append(getattr(self, "tag", None))  # None: nn.Linear.__init__ calling it
            super().reset_parameters()

    class Parent(nn.Module):
        def __init__(self, shared):
            super().__init__()
            self.a, self.b, self.shared = Recording(2, 2), Recording(2, 2), shared

        def reset_parameters(self):
            order.append("parent")

    shared = Recording(2, 2)
    model = nn.Sequential(Parent(shared), shared)
    for module, tag in [(model[0].a, "a"), (model[0].b, "b"), (shared, "shared")]:
        module.tag = tag
    order.clear()
    random_encoder_like(model)
    assert order == ["a", "b", "shared", "parent"]


def test_supervised_baseline_learns_a_separable_toy_set_and_leaves_the_backbone_alone():
    train_x, train_y = _halves(20, seed=0)
    test_x, test_y = _halves(20, seed=1)
    backbone = _conv_backbone()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    results = supervised_baseline(
        backbone, train_x, train_y, test_x, test_y, labels_per_class=(2, None), steps=40, lr=1e-2
    )
    assert set(results) == {"2", "all"}
    assert results["all"] >= 0.95 and results["2"] >= 0.75
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())  # trained a fresh copy
    # a network that sees shuffled labels cannot generalise: the test accuracy falls to about chance
    shuffled = train_y[torch.randperm(train_y.shape[0], generator=torch.Generator().manual_seed(3))]
    assert (
        supervised_baseline(backbone, train_x, shuffled, test_x, test_y, [None], steps=40, lr=1e-2)["all"]
        < 0.8
    )


def test_a_frozen_encoder_is_trained_all_the_same_from_scratch_and_fine_tuned(monkeypatch):
    """An EMA target (I-JEPA's evaluation encoder) has requires_grad off; both protocols must still train
    its copy end to end, not only the head (the from-scratch ViT of I-JEPA's runs had stayed at random
    init)."""
    from sslcookbook.evaluate import supervised as module

    trained = []
    score = module._accuracy
    monkeypatch.setattr(module, "_accuracy", lambda model, *a: trained.append(model) or score(model, *a))
    train_x, train_y = _halves(20, seed=0)
    test_x, test_y = _halves(20, seed=1)
    frozen = _conv_backbone().requires_grad_(False)
    scratch_init = random_encoder_like(frozen, seed=module.SUPERVISED_INIT_SEED)
    starts = {supervised_baseline: scratch_init, fine_tune: frozen}
    for protocol, start in starts.items():
        protocol(frozen, train_x, train_y, test_x, test_y, labels_per_class=[None], steps=5, lr=1e-2)
        weight, before = trained[-1].backbone[0].weight, start[0].weight
        assert weight.requires_grad and not torch.allclose(weight, before), protocol.__name__
    assert not any(p.requires_grad for p in frozen.parameters())  # the original stays frozen


def test_supervised_baseline_is_deterministic_and_trains_on_the_probe_draws():
    train_x, train_y = _halves(10, seed=0)
    test_x, test_y = _halves(10, seed=1)
    seen = []

    def views(images, generator=None):  # a two-view preset: the baseline trains on the first view
        seen.append(images.clone())
        x = images.float() / 255
        return [x + 0.05 * torch.randn(x.shape, generator=generator), x]

    kwargs = dict(labels_per_class=(1, None), steps=5, views=views, seed=4)
    first = supervised_baseline(_conv_backbone(), train_x, train_y, test_x, test_y, **kwargs)
    assert first == supervised_baseline(_conv_backbone(), train_x, train_y, test_x, test_y, **kwargs)
    # 1 label per class: FEW_SHOT_REPEATS (5) draws, 5 steps each, on the linear probe's draws (seeds 4..8);
    # then all 20 images in one batch (fewer than batch_size) for 5 steps
    assert [len(x) for x in seen[:30]] == [2] * 25 + [20] * 5
    for draw in range(5):
        probe_images = train_x[few_shot_indices(train_y, 1, 4 + draw)]
        trained = seen[5 * draw]
        assert sorted(map(bytes, trained.flatten(1).numpy())) == sorted(
            map(bytes, probe_images.flatten(1).numpy())
        )
    one = supervised_baseline(_conv_backbone(), train_x, train_y, test_x, test_y, [1], steps=5, repeats=1)
    assert set(one) == {"1"} and 0.0 <= one["1"] <= 1.0
    # a two-view preset (MultiView) trains on its first pipeline's views only
    preset = augment.preset("digits", train_x.shape[1:])
    args = (train_x, train_y, test_x, test_y, [None])
    assert supervised_baseline(_conv_backbone(), *args, steps=5, views=preset) == supervised_baseline(
        _conv_backbone(), *args, steps=5, views=preset.pipelines[0]
    )


def test_supervised_baseline_rejects_bad_input_with_the_fix():
    x, y = _halves(3, seed=0)
    backbone = _conv_backbone()
    with pytest.raises(ValueError, match="labels_per_class must be >= 1"):
        supervised_baseline(backbone, x, y, x, y, labels_per_class=[0])
    with pytest.raises(TypeError, match="labels_per_class must be an int"):
        supervised_baseline(backbone, x, y, x, y, labels_per_class=["ten"])
    with pytest.raises(ValueError, match="class 0 has only 3 training examples"):
        supervised_baseline(backbone, x, y, x, y, labels_per_class=[5])
    with pytest.raises(ValueError, match="labels_per_class is empty"):
        supervised_baseline(backbone, x, y, x, y, labels_per_class=[])
    with pytest.raises(ValueError, match="train_images must be N×C×H×W"):
        supervised_baseline(backbone, x[:, 0], y, x, y)
    with pytest.raises(ValueError, match="train_labels has 5 entries"):
        supervised_baseline(backbone, x, y[:5], x, y)
    with pytest.raises(TypeError, match="backbone must be an nn.Module"):
        supervised_baseline(lambda t: t, x, y, x, y)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        supervised_baseline(backbone, x, y, x, y, steps=0)
    with pytest.raises(TypeError, match="views must be callable"):
        supervised_baseline(backbone, x, y, x, y, views="digits")


class _Projection(nn.Module):
    """Features = the pixels' (centred) projection on ``direction``: a backbone 'pre-trained' for the task."""

    def __init__(self, direction: torch.Tensor):
        super().__init__()
        self.linear = nn.Linear(direction.numel(), 1, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(direction.view(1, -1))

    def forward(self, x):
        return self.linear(x.flatten(1) - 0.5)


def _projection_task(n: int, seed: int, direction: torch.Tensor):
    """Random 1×6×6 images labelled by the side of a hyperplane through the centre."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 6, 6, generator=g)
    return images, ((images.flatten(1) - 0.5) @ direction.flatten() > 0).long()


def test_fine_tune_starts_from_the_trained_weights_and_leaves_them_alone():
    direction = torch.randn(36, generator=torch.Generator().manual_seed(0))
    train_x, train_y = _projection_task(200, 1, direction)
    test_x, test_y = _projection_task(400, 2, direction)
    trained = _Projection(direction)
    before = trained.linear.weight.clone()
    kwargs = dict(labels_per_class=[2], steps=30, lr=1e-2, repeats=3)
    tuned = fine_tune(trained, train_x, train_y, test_x, test_y, **kwargs)["2"]
    scratch = supervised_baseline(trained, train_x, train_y, test_x, test_y, **kwargs)["2"]
    # Two labelled images per class pin a threshold on the trained feature, not a direction in 36-D.
    assert tuned >= 0.85 > 0.7 >= scratch, (tuned, scratch)
    assert torch.equal(trained.linear.weight, before) and trained.linear.weight.requires_grad
    assert fine_tune(trained, train_x, train_y, test_x, test_y, **kwargs)["2"] == tuned  # deterministic
    with pytest.raises(ValueError, match="steps must be a positive int"):
        fine_tune(trained, train_x, train_y, test_x, test_y, steps=0)


def test_fine_tune_gives_a_vit_a_batchnorm_head_that_leaves_the_chance_plateau():
    # A ViT's LayerNormed, mean-pooled features barely vary across images: a plain linear head sat at
    # chance (the all-labels "collapse" of MAE's fine-tuning, 2026-12-01); head_norm="batch" learns.
    from sslcookbook.data import load
    from sslcookbook.models.vit import VisionTransformer

    train, test = load("digits", "train"), load("digits", "test")
    torch.manual_seed(0)
    vit = VisionTransformer(1, 8, 2, dim=32, depth=1, heads=2, pool="mean")
    kwargs = dict(labels_per_class=[None], steps=60, batch_size=64, lr=2e-3)  # ~3 s a fine-tuning alone
    args = (train.images[:400], train.labels[:400], test.images, test.labels)
    plain = fine_tune(vit, *args, head_norm=None, **kwargs)["all"]
    auto = fine_tune(vit, *args, **kwargs)["all"]  # "auto": BatchNorm for a ViT (measured 0.67 vs 0.16)
    assert auto >= 0.5 and plain <= 0.3, (auto, plain)
    with pytest.raises(ValueError, match="head_norm must be one of"):
        fine_tune(vit, *args, head_norm="layer")
    with pytest.raises(ValueError, match="layer_decay needs a ViT"):
        fine_tune(_conv_backbone(), *args, layer_decay=0.75)


class _RecordsAutocast(nn.Module):
    """The projection backbone, noting for each call whether bf16 autocast was on and its output's dtype."""

    def __init__(self, direction):
        super().__init__()
        self.inner = _Projection(direction)
        self.calls = []

    def forward(self, x):
        out = self.inner(x)
        self.calls.append((torch.is_autocast_enabled("cpu"), out.dtype, self.training))
        return out


@pytest.mark.parametrize("protocol", [fine_tune, supervised_baseline])
def test_amp_trains_under_bf16_autocast_and_scores_in_fp32(protocol, monkeypatch):
    from sslcookbook.evaluate import supervised as module

    trained = []
    score = module._accuracy
    monkeypatch.setattr(module, "_accuracy", lambda model, *a: trained.append(model) or score(model, *a))
    direction = torch.randn(36, generator=torch.Generator().manual_seed(0))
    train_x, train_y = _projection_task(200, 1, direction)
    test_x, test_y = _projection_task(400, 2, direction)
    kwargs = dict(labels_per_class=[None], steps=30, lr=1e-2)
    fp32 = protocol(_RecordsAutocast(direction), train_x, train_y, test_x, test_y, **kwargs)["all"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a CPU without native bf16 warns that autocast is slow there
        bf16 = protocol(_RecordsAutocast(direction), train_x, train_y, test_x, test_y, amp=True, **kwargs)
    bf16 = bf16["all"]
    calls = trained[-1].backbone.calls
    training = [(on, dtype) for on, dtype, mode in calls if mode]
    scoring = [(on, dtype) for on, dtype, mode in calls if not mode]  # sizing the head, then scoring
    assert training == [(True, torch.bfloat16)] * 30
    assert scoring and set(scoring) == {(False, torch.float32)}
    assert all(p.dtype == torch.float32 for p in trained[-1].parameters())  # fp32 weights and optimiser
    fp32_calls = trained[0].backbone.calls
    assert {(on, dtype) for on, dtype, _ in fp32_calls} == {(False, torch.float32)}
    assert abs(bf16 - fp32) <= 0.05, (bf16, fp32)
    with pytest.raises(TypeError, match="amp must be True or False"):
        protocol(_RecordsAutocast(direction), train_x, train_y, test_x, test_y, amp="bf16")


def test_amp_on_a_cpu_without_native_bf16_warns(monkeypatch):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    x, y = _halves(3, seed=0)
    with pytest.warns(UserWarning, match="amp=True on a CPU without native bf16"):
        fine_tune(_conv_backbone(), x, y, x, y, labels_per_class=[None], steps=1, amp=True)


def test_layer_decay_scales_a_vits_learning_rate_from_head_to_patch_embedding():
    from sslcookbook.evaluate.supervised import _Classifier, _plain_groups, _resolve_layer_decay
    from sslcookbook.models.vit import VisionTransformer

    vit = VisionTransformer(1, 8, 2, dim=16, depth=3, heads=2)
    groups = _plain_groups(_Classifier(vit, 16, 10), 0.05, layer_decay=0.5)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert scale[id(vit.patch_embed.weight)] == 0.5**4 and scale[id(vit.cls_token)] == 0.5**4
    assert scale[id(vit.blocks[0].mlp[0].weight)] == 0.5**3 and scale[id(vit.blocks[2].norm1.bias)] == 0.5
    assert scale[id(vit.norm.weight)] == 1.0
    qkv = vit.blocks[1].attention.qkv
    assert decay[id(qkv.weight)] == 0.05 and decay[id(qkv.bias)] == 0.0
    assert len(scale) == sum(1 for _ in _Classifier(vit, 16, 10).parameters())
    assert _resolve_layer_decay(1.0, _conv_backbone(), False) is None  # 1.0: one rate, whatever the backbone
    assert _resolve_layer_decay(1.0, vit, False) is None and _resolve_layer_decay(0.5, vit, False) == 0.5
