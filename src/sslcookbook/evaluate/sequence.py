"""Evaluation of frozen time-series features: classification, forecasting and anomaly scores.

- Classification: :func:`classification_scores`, the linear probe and kNN of ``evaluate`` on pooled
  features (they take any N×D feature tensors), with :func:`raw_series_features` (the series flattened)
  as the raw-feature baseline.
- Forecasting (:func:`forecasting_scores`): from the first ``context`` steps of a series predict the
  next ``horizon``. Every forecaster predicts the future in the context's own units, ``(y − μ) / σ``
  with μ, σ each channel's mean and std over the context (PatchTST's instance normalisation; the encoders
  normalise their input the same way, so their features know no level or scale), and its MSE is measured
  in the series' units. A *linear head on frozen features* (closed-form ridge) is compared with the
  *naive last-value* forecast and a *supervised* linear model on the raw context (the same ridge on the
  normalised context values: DLinear/NLinear's linear forecaster).
- Anomalies (:func:`knn_anomaly_scores`, :func:`anomaly_auroc`): a series' score is its mean cosine
  distance to its k nearest normal training series in feature space; AUROC against the injected anomalies.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .embedding import embed
from .knn import knn_accuracy
from .probe import linear_probe

FORECAST_RIDGE = 1e-1  # L2 of the forecasting heads, on standardised features (chosen on validation data)


def raw_series_features(series: Tensor) -> Tensor:
    """The raw-feature baseline: each series flattened to C·L values, float32."""
    if series.dim() != 3:
        raise ValueError(f"series must be N×C×L, got shape {tuple(series.shape)}")
    return series.flatten(1).float()


def series_features(encoder: Callable[[Tensor], Tensor], series: Tensor, batch_size: int = 256) -> Tensor:
    """Pooled frozen features N×D of series N×C×L (``evaluate.embed``: eval mode, no gradients, CPU)."""
    return embed(encoder, series, batch_size=batch_size)


def classification_scores(
    train_features: Tensor, train_labels: Tensor, test_features: Tensor, test_labels: Tensor
) -> dict[str, float]:
    """``{"probe": linear-probe accuracy, "knn": weighted 20-NN accuracy}`` of frozen features."""
    return {
        "probe": linear_probe(train_features, train_labels, test_features, test_labels),
        "knn": knn_accuracy(train_features, train_labels, test_features, test_labels),
    }


# ---------------------------------------------------------------------------------- forecasting
def forecast_windows(series: Tensor, context: int, horizon: int) -> tuple[Tensor, Tensor]:
    """(the first ``context`` steps, the ``horizon`` steps after them) of series N×C×L."""
    if context < 2 or horizon < 1 or context + horizon > series.shape[-1]:
        raise ValueError(
            f"context {context} + horizon {horizon} must fit in the series' {series.shape[-1]} steps "
            "(context >= 2, horizon >= 1)"
        )
    return series[..., :context], series[..., context : context + horizon]


def _context_stats(context: Tensor) -> tuple[Tensor, Tensor]:
    mean = context.mean(dim=-1, keepdim=True)
    return mean, context.std(dim=-1, keepdim=True, unbiased=False).clamp(min=1e-5)


def naive_forecast_mse(context: Tensor, future: Tensor) -> float:
    """MSE of repeating each channel's last context value over the horizon."""
    return float((future - context[..., -1:]).pow(2).mean())


def ridge_fit(x: Tensor, y: Tensor, ridge: float = FORECAST_RIDGE) -> Callable[[Tensor], Tensor]:
    r"""Closed-form ridge regression on standardised ``x`` (N×D) to ``y`` (N×M), in float64:
    :math:`W = (\tilde X^\top \tilde X + n\lambda I)^{-1}\tilde X^\top (Y - \bar Y)`. Returns the
    predictor."""
    x, y = x.double(), y.double()
    mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
    xs, y_mean = (x - mean) / std, y.mean(0)
    gram = xs.T @ xs + x.shape[0] * ridge * torch.eye(x.shape[1], dtype=x.dtype)
    weight = torch.linalg.solve(gram, xs.T @ (y - y_mean))
    return lambda z: (((z.double() - mean) / std) @ weight + y_mean).float()


def ridge_forecast_mse(
    train_features: Tensor,
    train_future: Tensor,
    test_features: Tensor,
    test_future: Tensor,
    train_context: Tensor | None = None,
    test_context: Tensor | None = None,
    ridge: float = FORECAST_RIDGE,
) -> float:
    """Test MSE of a ridge head from features to the future (N×C×H). With the contexts given, the head
    predicts the future in each context's units and is mapped back (see the module docstring)."""
    shape = test_future.shape
    if train_context is None:
        head = ridge_fit(train_features, train_future.flatten(1), ridge)
        return float((head(test_features).view(shape) - test_future).pow(2).mean())
    mu, sigma = _context_stats(train_context)
    head = ridge_fit(train_features, ((train_future - mu) / sigma).flatten(1), ridge)
    mu, sigma = _context_stats(test_context)
    prediction = head(test_features).view(shape) * sigma + mu
    return float((prediction - test_future).pow(2).mean())


def forecasting_scores(
    encoders: dict[str, Callable[[Tensor], Tensor]],
    train_series: Tensor,
    test_series: Tensor,
    context: int,
    horizon: int,
    ridge: float = FORECAST_RIDGE,
) -> dict[str, float]:
    """Forecasting MSEs: ``naive`` (last value), ``supervised linear`` (ridge on the normalised raw
    context), and for each named encoder a ridge head on its frozen features of the context."""
    train_ctx, train_fut = forecast_windows(train_series, context, horizon)
    test_ctx, test_fut = forecast_windows(test_series, context, horizon)
    mu, sigma = _context_stats(train_ctx)
    raw_train = ((train_ctx - mu) / sigma).flatten(1)
    mu, sigma = _context_stats(test_ctx)
    raw_test = ((test_ctx - mu) / sigma).flatten(1)
    scores = {
        "naive": naive_forecast_mse(test_ctx, test_fut),
        "supervised linear": ridge_forecast_mse(
            raw_train, train_fut, raw_test, test_fut, train_ctx, test_ctx, ridge
        ),
    }
    for name, encoder in encoders.items():
        a, b = series_features(encoder, train_ctx), series_features(encoder, test_ctx)
        scores[name] = ridge_forecast_mse(a, train_fut, b, test_fut, train_ctx, test_ctx, ridge)
    return scores


# ---------------------------------------------------------------------------------- anomalies
def knn_anomaly_scores(normal_features: Tensor, query_features: Tensor, k: int = 5) -> Tensor:
    """Each query's mean cosine distance (1 − cos) to its ``k`` nearest normal features: N_query floats."""
    normal = torch.nn.functional.normalize(normal_features.float(), dim=1)
    query = torch.nn.functional.normalize(query_features.float(), dim=1)
    k = min(k, normal.shape[0])
    return (1 - (query @ normal.T).topk(k, dim=1).values).mean(dim=1)


def auroc(scores: Tensor, positives: Tensor) -> float:
    """Area under the ROC curve: the chance a positive scores above a negative (ties count one half;
    the Mann–Whitney U statistic over its maximum)."""
    scores, positives = scores.double().flatten(), positives.bool().flatten()
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs at least one positive and one negative")
    order = scores.argsort()
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=scores.dtype)
    for value in scores.unique():  # ties share their mean rank
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def anomaly_auroc(encoder: Callable[[Tensor], Tensor], train, test, k: int = 5) -> float:
    """AUROC of :func:`knn_anomaly_scores` on ``test`` (a SeriesDataset with ``anomalies``), the memory
    being the normal series of ``train``."""
    if test.anomalies is None:
        raise ValueError("the test set has no anomalies to score: load 'series_anomalies'")
    normal = train.series[~train.is_anomalous]
    scores = knn_anomaly_scores(series_features(encoder, normal), series_features(encoder, test.series), k)
    return auroc(scores, test.is_anomalous)


__all__ = [
    "FORECAST_RIDGE",
    "anomaly_auroc",
    "auroc",
    "classification_scores",
    "forecast_windows",
    "forecasting_scores",
    "knn_anomaly_scores",
    "naive_forecast_mse",
    "raw_series_features",
    "ridge_fit",
    "ridge_forecast_mse",
    "series_features",
]
