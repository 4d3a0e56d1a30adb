"""Sequences: generated and UCR/UEA data, time-series views, 1-D backbones, CPC / TS2Vec / masked-patch
losses (fp64, against independent loops, gradients too), the three methods, fit_series and the evaluation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sslcookbook import data
from sslcookbook.augment import series as views
from sslcookbook.data.series import SERIES_CLASSES, SeriesDataset, load_ucr, make_series
from sslcookbook.evaluate import sequence as seq_eval
from sslcookbook.losses import cpc_loss, masked_patch_loss, patchify_series, ts2vec_loss
from sslcookbook.methods.sequence import (
    CPC,
    SEQUENCE_RECIPES,
    MaskedPatchModel,
    TS2Vec,
    build_sequence_method,
    fit_series,
    sequence_recipe,
)
from sslcookbook.models import ConvEncoder1d, PatchTransformer
from sslcookbook.models.sequence import instance_normalise, masked_pool
from sslcookbook.train import TrainConfig

# ---------------------------------------------------------------- generated data


def test_make_series_is_deterministic_balanced_and_marks_anomalies():
    a, b = make_series(60, seed=3), make_series(60, seed=3)
    assert torch.equal(a.series, b.series) and torch.equal(a.labels, b.labels)
    assert a.series.shape == (60, 3, 128) and a.series.dtype == torch.float32
    assert a.class_counts().tolist() == [10] * len(SERIES_CLASSES)
    assert not torch.equal(a.series, make_series(60, seed=4).series)
    anomalous = make_series(200, seed=0, anomaly_fraction=0.5)
    hit = anomalous.is_anomalous
    assert 60 < int(hit.sum()) < 140 and not bool(a.is_anomalous.any())
    assert anomalous.anomalies.shape == (200, 128) and anomalous.anomalies.dtype == torch.bool
    assert make_series(20, seed=0).anomalies is None


def test_switch_classes_double_channel_0_frequency_after_the_change():
    d = make_series(120, seed=0, noise=0.0, drift=0.0)
    tail = d.series[:, 0, -44:]  # after every change point (at most 65% of 128 steps)
    centred = tail - tail.mean(-1, keepdim=True)
    crossings = (centred[:, 1:].sign() != centred[:, :-1].sign()).sum(-1).float()
    steady, switch = d.labels % 2 == 0, d.labels % 2 == 1
    for pattern in range(3):  # switch classes cross zero twice as often at the end (few crossings: ≥ 1.3×)
        same = d.labels // 2 == pattern
        assert crossings[switch & same].mean() > 1.3 * crossings[steady & same].mean()


def test_registry_split_and_subset_of_series():
    train, test = data.load("series", "train"), data.load("series_anomalies", "test")
    assert isinstance(train, SeriesDataset) and len(train) == 1500 and len(test) == 600
    assert "series" in data.available() and "ucr:<path>" in data.available()
    fit_part, val = train.split(0.2, seed=0)
    assert len(val) == 300 and val.class_counts().tolist() == [50] * 6
    assert len(train.subset(120)) == 120 and test.is_anomalous.any()
    with pytest.raises(ValueError, match="needs a path"):
        data.load("ucr:")


def test_series_dataset_rejects_bad_input():
    with pytest.raises(ValueError, match="N×C×L"):
        SeriesDataset(torch.zeros(4, 10), torch.zeros(4, dtype=torch.long), ["a"])
    with pytest.raises(ValueError, match="NaN"):
        SeriesDataset(torch.full((2, 1, 5), math.nan), torch.zeros(2, dtype=torch.long), ["a"])
    with pytest.raises(ValueError, match="labels must lie"):
        SeriesDataset(torch.zeros(2, 1, 5), torch.tensor([0, 3]), ["a", "b"])


# ---------------------------------------------------------------- UCR / UEA files


def test_ucr_tsv_pads_shorter_series_with_a_mask(tmp_path):
    (tmp_path / "Toy_TRAIN.tsv").write_text("1\t0.5\t1.0\t1.5\t2.0\n2\t3.0\t4.0\tNaN\tNaN\n1.0\t1\t2\t3\t4\n")
    (tmp_path / "Toy_TEST.tsv").write_text("2\t1\tNaN\t3\t4\t5\n")
    train, test = data.load(f"ucr:{tmp_path}", "train"), load_ucr(tmp_path / "Toy_TEST.tsv", "test")
    assert train.classes == ["1", "2"] and train.labels.tolist() == [0, 1, 0]
    assert train.series.shape == (3, 1, 5) and test.series.shape == (1, 1, 5)  # both padded to 5 steps
    assert train.mask[1].tolist() == [True, True, False, False, False]
    assert train.series[1, 0].tolist() == [3.0, 4.0, 0.0, 0.0, 0.0]
    assert test.mask[0].tolist() == [True, False, True, True, True]  # a missing value inside the series


def test_ucr_ts_multivariate_with_missing_values(tmp_path):
    header = (
        "# comment\n@problemName toy\n@timeStamps false\n@univariate false\n@classLabel true up down\n@data\n"
    )
    (tmp_path / "Toy_TRAIN.ts").write_text(header + "1,2,3:4,5,6:up\n1,?:2,3:down\n")
    (tmp_path / "Toy_TEST.ts").write_text(header + "9,8,7,6:1,2,3,4:down\n")
    train = load_ucr(tmp_path / "Toy_TRAIN.ts", "train")
    test = load_ucr(tmp_path, "test")
    assert train.classes == ["down", "up"] and train.labels.tolist() == [1, 0]
    assert train.series.shape == (2, 2, 4) and test.series.shape == (1, 2, 4)
    assert train.series[0].tolist() == [[1, 2, 3, 0], [4, 5, 6, 0]]
    assert train.mask.tolist() == [[True, True, True, False], [True, False, False, False]]


def test_ucr_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="_TRAIN"):
        load_ucr(tmp_path)
    bad = tmp_path / "Bad_TRAIN.tsv"
    bad.write_text("1\t0.5\tabc\n")
    with pytest.raises(ValueError, match="line 1.*'abc' is not a number"):
        load_ucr(bad)
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"\.tsv \(UCR\) or \.ts"):
        load_ucr(tmp_path / "x.csv")
    bad.write_text("1\t1\t2\n")
    (tmp_path / "Bad_TEST.tsv").write_text("7\t1\t2\n")
    with pytest.raises(ValueError, match=r"labels \['7'\] never appear"):
        load_ucr(bad, "test")
    ts = tmp_path / "T_TRAIN.ts"
    ts.write_text("@problemName t\n1,2:a\n")
    with pytest.raises(ValueError, match="header lines start with @"):
        load_ucr(ts)


# ---------------------------------------------------------------- views


def test_series_views_are_seeded_shaped_and_keep_what_they_should():
    x = torch.randn(5, 3, 40)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    for op in (
        views.jitter,
        views.scaling,
        views.time_shift,
        views.crop_resize,
        views.mask_steps,
        views.permute_segments,
        views.time_warp,
    ):
        a, b = op(x, generator=g()), op(x, generator=g())
        assert a.shape == x.shape and torch.equal(a, b), op.__name__
    permuted = views.permute_segments(x, 5, generator=g())
    assert torch.equal(permuted.sort(-1).values, x.sort(-1).values)  # the same values, other order
    assert torch.equal(views.time_shift(x, 0.0, generator=g()), x)
    assert torch.allclose(views.time_warp(x, 0.0, generator=g()), x, atol=1e-5)
    assert torch.allclose(views.crop_resize(x, (1.0, 1.0), generator=g()), x, atol=1e-5)
    ramp = torch.arange(40.0).expand(2, 1, 40)
    assert (views.time_warp(ramp, 0.5, generator=g()).diff(dim=-1) >= -1e-5).all()  # monotone
    masked = views.mask_steps(torch.ones(100, 2, 50), 0.3, generator=g())
    assert 0.25 < float((masked == 0).float().mean()) < 0.35 and torch.equal(masked[:, 0], masked[:, 1])
    pair = views.series_preset("series")(x, generator=g())
    assert len(pair) == 2 and not torch.equal(pair[0], pair[1])
    with pytest.raises(ValueError, match="B×C×L"):
        views.jitter(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="unknown time-series view preset"):
        views.series_preset("simclr")


# ---------------------------------------------------------------- backbones


def test_backbones_give_per_step_and_pooled_features_and_the_cnn_can_be_causal():
    x = torch.randn(2, 3, 50)
    cnn = ConvEncoder1d(3, width=8, depth=3)
    assert cnn.steps(x).shape == (2, 50, 8) and cnn(x).shape == (2, cnn.feature_dim)
    causal = ConvEncoder1d(3, width=8, depth=3, causal=True)
    y = x.clone()
    y[:, :, 30:] += 5.0
    causal.instance_norm = False  # the per-series statistics see every step: compare the convolutions only
    assert torch.allclose(causal.steps(x)[:, :30], causal.steps(y)[:, :30], atol=1e-6)
    assert not torch.allclose(causal.steps(x)[:, 30:], causal.steps(y)[:, 30:])
    patch = PatchTransformer(3, patch_len=8, dim=16, depth=1, heads=2)
    assert patch.patches(x).shape == (6, 7, 8)  # 50 steps → 7 patches, the last padded
    assert patch.steps(x).shape == (2, 7, 48) and patch(x).shape == (2, patch.feature_dim) == (2, 48)
    mask = torch.ones(2, 50, dtype=torch.bool)
    mask[1, 20:] = False
    cut = x.clone()
    cut[1, :, 20:] = 123.0  # padding: its values must not enter the statistics or the pooling
    normalised = instance_normalise(cut, mask)
    assert torch.allclose(normalised[1, :, :20], instance_normalise(x[1:, :, :20])[0], atol=1e-5)
    assert torch.equal(normalised[1, :, 20:], torch.zeros(3, 30))
    steps = torch.randn(2, 50, 4)
    steps_cut = steps.clone()
    steps_cut[1, 20:] = 1e6
    for how in ("mean", "max"):
        assert torch.allclose(masked_pool(steps_cut, mask, how)[1], masked_pool(steps[1:, :20], None, how)[0])
    with pytest.raises(ValueError, match="in_channels=2"):
        cnn(torch.randn(1, 2, 20))


# ---------------------------------------------------------------- losses (fp64, independent loops)


def _cpc_by_loops(pred: torch.Tensor, z: torch.Tensor, tau: float) -> torch.Tensor:
    b, t, k_max, _ = pred.shape
    per_k = []
    for k in range(1, k_max + 1):
        pairs = [(i, s) for i in range(b) for s in range(t - k)]
        terms = []
        for i, s in pairs:
            q = pred[i, s, k - 1]
            scores = torch.stack([F.cosine_similarity(q, z[j, u + k], dim=0) / tau for j, u in pairs])
            terms.append(-(scores[pairs.index((i, s))] - torch.logsumexp(scores, 0)))
        per_k.append(torch.stack(terms).mean())
    return torch.stack(per_k).mean()


def test_cpc_loss_equals_loops_with_gradients_fp64():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 5, 2, 4, generator=g, dtype=torch.float64, requires_grad=True)
    z = torch.randn(3, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    ours, ref = cpc_loss(pred, z, 0.3), _cpc_by_loops(pred, z, 0.3)
    assert ours.dtype == torch.float64 and torch.allclose(ours, ref, atol=1e-12)
    assert all(
        torch.allclose(a, b, atol=1e-12)
        for a, b in zip(torch.autograd.grad(ours, (pred, z)), torch.autograd.grad(ref, (pred, z)))
    )
    with pytest.raises(ValueError, match="steps ahead"):
        cpc_loss(torch.randn(2, 3, 3, 4), torch.randn(2, 3, 4))


def _contrast_by_loops(rows: list[torch.Tensor], half: int) -> torch.Tensor:
    """−log p(partner) of each of 2·half vectors among the others, by explicit sums."""
    terms = []
    for i in range(2 * half):
        others = [j for j in range(2 * half) if j != i]
        scores = torch.stack([rows[i] @ rows[j] for j in others])
        partner = others.index((i + half) % (2 * half))
        terms.append(torch.logsumexp(scores, 0) - scores[partner])
    return torch.stack(terms).mean()


def _ts2vec_by_loops(z1: torch.Tensor, z2: torch.Tensor, alpha: float) -> torch.Tensor:
    total, scales = 0.0, 0
    while True:
        b, t, _ = z1.shape
        inst = (
            torch.stack([_contrast_by_loops([*z1[:, s], *z2[:, s]], b) for s in range(t)]).mean()
            if b > 1
            else 0
        )
        total = total + alpha * inst
        if t == 1:
            return total / (scales + 1)
        temp = torch.stack([_contrast_by_loops([*z1[i], *z2[i]], t) for i in range(b)]).mean()
        total, scales = total + (1 - alpha) * temp, scales + 1
        pool = lambda z: torch.stack([z[:, 2 * s : 2 * s + 2].amax(1) for s in range(z.shape[1] // 2)], 1)  # noqa: E731
        z1, z2 = pool(z1), pool(z2)


def test_ts2vec_loss_equals_loops_with_gradients_fp64():
    g = torch.Generator().manual_seed(1)
    z1 = torch.randn(3, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)  # 5 → 2 → 1 timestamps
    z2 = torch.randn(3, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    ours, ref = ts2vec_loss(z1, z2, alpha=0.3), _ts2vec_by_loops(z1, z2, 0.3)
    assert ours.dtype == torch.float64 and torch.allclose(ours, ref, atol=1e-12)
    assert all(
        torch.allclose(a, b, atol=1e-12)
        for a, b in zip(torch.autograd.grad(ours, (z1, z2)), torch.autograd.grad(ref, (z1, z2)))
    )
    with pytest.raises(ValueError, match="same timestamps"):
        ts2vec_loss(torch.randn(2, 4, 3), torch.randn(2, 5, 3))


def test_masked_patch_loss_is_the_mse_of_the_hidden_patches():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 12, generator=g, dtype=torch.float64)
    target = patchify_series(x, 4)
    assert target.shape == (6, 3, 4) and torch.equal(target[4, 1], x[1, 1, 4:8])
    pred = torch.randn(6, 3, 4, generator=g, dtype=torch.float64)
    mask = torch.zeros(6, 3)
    mask[0, 1] = mask[5, 2] = 1
    expected = ((pred[0, 1] - target[0, 1]).pow(2).mean() + (pred[5, 2] - target[5, 2]).pow(2).mean()) / 2
    assert torch.allclose(masked_patch_loss(pred, target, mask), expected, atol=1e-12)
    with pytest.raises(ValueError, match="whole patches"):
        patchify_series(x, 5)


# ---------------------------------------------------------------- methods and training


@pytest.mark.parametrize("name", ["cpc", "patchtst", "ts2vec"])
def test_every_method_trains_in_the_smoke_recipe_and_backpropagates(name):
    torch.manual_seed(0)
    recipe = sequence_recipe(name, "smoke")
    assert set(SEQUENCE_RECIPES[name]) == {"smoke", "cpu", "gpu"}
    method = recipe.build(3)
    x = torch.randn(8, 3, 64)
    out = method.training_step(recipe.view_maker()(x, generator=torch.Generator().manual_seed(0)))
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(p.grad is not None for p in method.backbone.parameters())
    assert method.embed(x).shape == (8, method.embed(x).shape[1])


def test_constructors_reject_what_does_not_fit():
    with pytest.raises(ValueError, match="causal"):
        CPC(ConvEncoder1d(3, 8))
    with pytest.raises(TypeError, match="PatchTransformer"):
        MaskedPatchModel(ConvEncoder1d(3, 8))
    with pytest.raises(TypeError, match="ConvEncoder1d"):
        TS2Vec(PatchTransformer(3, 8, 16, 1, 2))
    with pytest.raises(ValueError, match="unknown sequence method"):
        build_sequence_method("simclr", 3)


def test_fit_series_resumes_exactly(tmp_path):
    dataset = make_series(48, length=32, seed=0)
    config = TrainConfig(epochs=2, batch_size=16, optimizer="adamw", lr=1e-3, max_steps_per_epoch=2)
    view_maker = views.series_preset("series")

    def fresh():
        torch.manual_seed(0)
        return build_sequence_method("ts2vec", 3, {"width": 8, "depth": 2})

    straight = fresh()
    fit_series(straight, dataset, view_maker, config, progress=False)

    calls = []

    def interrupted(x, generator=None):  # stops the run at the first step of epoch 2
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return view_maker(x, generator=generator)

    with pytest.raises(KeyboardInterrupt):
        fit_series(fresh(), dataset, interrupted, config, checkpoint_dir=tmp_path, progress=False)
    resumed = fresh()
    history = fit_series(resumed, dataset, view_maker, config, checkpoint_dir=tmp_path, progress=False)
    assert len(history.steps) == 4 and len(history.epochs) == 2
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(TypeError, match=r"\.series"):
        fit_series(straight, data.load("digits"), view_maker, config, progress=False)


# ---------------------------------------------------------------- evaluation


def test_forecasting_windows_naive_and_ridge():
    t = torch.arange(40.0)
    series = torch.stack([torch.sin(t / 3 + p) for p in torch.linspace(0, 6, 30)])[:, None, :]
    context, future = seq_eval.forecast_windows(series, context=32, horizon=8)
    assert context.shape == (30, 1, 32) and future.shape == (30, 1, 8)
    assert torch.equal(future, series[:, :, 32:])
    naive = seq_eval.naive_forecast_mse(context, future)
    assert math.isclose(naive, float((future - context[:, :, -1:]).pow(2).mean()), rel_tol=1e-6)
    # a ridge on the raw context forecasts a pure sine almost exactly
    raw = seq_eval.ridge_forecast_mse(context.flatten(1), future, context.flatten(1), future, ridge=1e-6)
    assert raw < 1e-3 < naive


def test_auroc_and_anomaly_scores():
    assert seq_eval.auroc(torch.tensor([0.1, 0.2, 0.9, 0.8]), torch.tensor([0, 0, 1, 1]).bool()) == 1.0
    assert seq_eval.auroc(torch.tensor([1.0, 1.0]), torch.tensor([0, 1]).bool()) == 0.5
    normal = torch.randn(50, 4, generator=torch.Generator().manual_seed(0)) + torch.tensor([6.0, 0, 0, 0])
    queries = torch.cat([normal[:5] + 0.01, torch.tensor([[0.0, 6.0, 0, 0]])])
    scores = seq_eval.knn_anomaly_scores(normal, queries, k=3)
    assert scores.shape == (6,) and int(scores.argmax()) == 5
