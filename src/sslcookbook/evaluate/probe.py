"""Linear probe: multinomial logistic regression on standardised frozen features, fitted with L-BFGS.

With all labels or only ``k`` labels per class (:func:`few_shot_indices`, :func:`label_efficiency`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import as_tensor, check_labels, check_pair, resolve_num_classes

#: L2 strength of the linear probe, on standardised features: loss = CE + (wd / 2)·‖W‖².
DEFAULT_PROBE_WEIGHT_DECAY = 1e-2
#: L-BFGS iterations of the linear probe (each one a full pass over the labelled subset).
DEFAULT_PROBE_MAX_ITER = 200
#: The probe's L-BFGS stops when every entry of the gradient is below this (accuracy is stable by then).
PROBE_GRAD_TOLERANCE = 1e-5
#: Number of label draws averaged by the few-shot probe when ``labels_per_class < 10``.
FEW_SHOT_REPEATS = 5


def _parse_labels_per_class(labels_per_class: int | str | None) -> int | None:
    if labels_per_class is None or labels_per_class == "all":
        return None
    if isinstance(labels_per_class, bool) or not isinstance(labels_per_class, (int, np.integer)):
        raise TypeError(f"labels_per_class must be an int, None or 'all', got {labels_per_class!r}")
    if labels_per_class < 1:
        raise ValueError(f"labels_per_class must be >= 1, got {labels_per_class}")
    return int(labels_per_class)


def few_shot_indices(labels: Tensor, labels_per_class: int, seed: int = 0) -> Tensor:
    """Indices of exactly ``labels_per_class`` examples of every class present in ``labels``.

    Deterministic in ``seed``; returned sorted, on the CPU. Raises if a class has fewer examples.
    """
    labels = check_labels(labels, as_tensor(labels, "labels").shape[0], "labels").cpu()
    k = _parse_labels_per_class(labels_per_class)
    if k is None:
        return torch.arange(labels.shape[0])
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for cls in labels.unique().tolist():
        members = (labels == cls).nonzero().flatten()
        if members.numel() < k:
            raise ValueError(
                f"labels_per_class={k} but class {cls} has only {members.numel()} training examples: "
                f"use labels_per_class <= {members.numel()} or None for all labels"
            )
        chosen.append(members[torch.randperm(members.numel(), generator=generator)[:k]])
    return torch.cat(chosen).sort().values


def _softmax_regression(x: Tensor, y: Tensor, num_classes: int, weight_decay: float, max_iter: int) -> Tensor:
    """Fit min_θ mean CE(x̃ θ, y) + (λ/2)‖W‖², θ = [W; b], x̃ = [x, 1]; returns θ ((D+1)×C).

    Full-batch L-BFGS (two-loop recursion, memory 10) with a backtracking Armijo line search on the
    analytic gradient x̃ᵀ(softmax − onehot)/n + λ[W; 0]. Written out rather than torch.optim.LBFGS:
    no autograd, and no multi-second torch._dynamo import the first time an optimizer is built.
    """
    n = x.shape[0]
    x1 = torch.cat([x, torch.ones(n, 1, dtype=x.dtype, device=x.device)], dim=1)
    onehot = F.one_hot(y, num_classes).to(x.dtype)
    x1_t = x1.T.contiguous()  # the gradient's matmul is faster on a contiguous transpose
    decay = torch.full((x1.shape[1], 1), weight_decay, dtype=x.dtype, device=x.device)
    decay[-1] = 0.0  # the bias is not regularised

    def loss_and_grad(theta: Tensor) -> tuple[float, Tensor]:
        log_p = (x1 @ theta).log_softmax(dim=1)
        loss = -(onehot * log_p).sum() / n + 0.5 * (decay * theta.square()).sum()
        grad = x1_t @ (log_p.exp() - onehot) / n + decay * theta
        return loss.item(), grad

    theta = torch.zeros(x1.shape[1], num_classes, dtype=x.dtype, device=x.device)
    loss, grad = loss_and_grad(theta)
    history: list[tuple[Tensor, Tensor, float]] = []  # (s, y, 1 / yᵀs), oldest first
    for _ in range(max_iter):
        if grad.abs().max().item() <= PROBE_GRAD_TOLERANCE:
            break
        q = grad.clone()
        alphas = []
        for s_k, y_k, rho in reversed(history):
            alpha = rho * (s_k * q).sum()
            alphas.append(alpha)
            q -= alpha * y_k
        if history:
            s_k, y_k, _ = history[-1]
            q *= (s_k * y_k).sum() / y_k.square().sum()  # initial Hessian scale γ = sᵀy / yᵀy
        else:
            q /= max(1.0, grad.abs().sum().item())  # cautious first step
        for (s_k, y_k, rho), alpha in zip(history, reversed(alphas)):
            q += s_k * (alpha - rho * (y_k * q).sum())
        direction = -q
        slope = (grad * direction).sum().item()
        if slope >= 0:  # not a descent direction (numerical trouble): restart from steepest descent
            history.clear()
            direction, slope = -grad, -grad.square().sum().item()
        step = 1.0
        while True:
            new_theta = theta + step * direction
            new_loss, new_grad = loss_and_grad(new_theta)
            if new_loss <= loss + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s_k, y_k = new_theta - theta, new_grad - grad
        curvature = (s_k * y_k).sum().item()
        if curvature > 1e-12:
            history = [*history[-9:], (s_k, y_k, 1.0 / curvature)]
        converged = loss - new_loss <= 1e-10 * max(1.0, abs(loss))
        theta, loss, grad = new_theta, new_loss, new_grad
        if converged:
            break
    return theta


def _fit_and_score(
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    num_classes: int,
    weight_decay: float,
    max_iter: int,
) -> float:
    # float64 makes the tiny problem well conditioned numerically; MPS has no float64.
    dtype = torch.float32 if x_train.device.type == "mps" else torch.float64
    x_train, x_test = x_train.to(dtype), x_test.to(dtype)
    mean = x_train.mean(0)
    std = x_train.std(0, unbiased=False) if x_train.shape[0] > 1 else torch.ones_like(mean)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))  # constant dims stay centred, not blown up
    theta = _softmax_regression((x_train - mean) / std, y_train, num_classes, weight_decay, max_iter)
    predictions = (((x_test - mean) / std) @ theta[:-1] + theta[-1]).argmax(1)
    return (predictions == y_test).double().mean().item()


def linear_probe(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    labels_per_class: int | str | None = None,
    seed: int = 0,
    repeats: int | None = None,
    weight_decay: float = DEFAULT_PROBE_WEIGHT_DECAY,
    max_iter: int = DEFAULT_PROBE_MAX_ITER,
) -> float:
    """Test accuracy in [0, 1] of a linear classifier on frozen features.

    Multinomial logistic regression, min_W,b mean CE(x W + b, y) + (λ/2)‖W‖², fitted full-batch with
    L-BFGS (``max_iter`` iterations at most, in float64) on features standardised with the mean/std of the
    labelled training subset. ``labels_per_class``: ``None``/``"all"`` uses every training label; an
    int k draws k examples per class (:func:`few_shot_indices`, seeds ``seed, seed+1, ...``) and the
    accuracy is averaged over ``repeats`` draws — by default ``FEW_SHOT_REPEATS`` (5) when k < 10,
    else 1, since few-shot accuracy varies a lot from one draw to the next.
    """
    train_features, train_labels, test_features, test_labels = check_pair(
        train_features, train_labels, test_features, test_labels
    )
    k = _parse_labels_per_class(labels_per_class)
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if max_iter < 1:
        raise ValueError(f"max_iter (L-BFGS iterations) must be >= 1, got {max_iter}")
    if repeats is None:
        repeats = FEW_SHOT_REPEATS if k is not None and k < 10 else 1
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if k is None:
        repeats = 1  # every label is used: nothing to redraw
    num_classes = resolve_num_classes(None, train_labels, test_labels)

    scores = []
    for draw in range(repeats):
        if k is None:
            x, y = train_features, train_labels
        else:
            idx = few_shot_indices(train_labels, k, seed + draw).to(train_features.device)
            x, y = train_features[idx], train_labels[idx]
        scores.append(_fit_and_score(x, y, test_features, test_labels, num_classes, weight_decay, max_iter))
    return float(sum(scores) / len(scores))


def _label_key(labels_per_class: int | str | None) -> str:
    k = _parse_labels_per_class(labels_per_class)
    return "all" if k is None else str(k)


def label_efficiency(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    labels_per_class: Iterable[int | str | None] = (1, 10, None),
    seed: int = 0,
) -> dict[str, float]:
    """Linear-probe accuracy per label budget, keyed ``"1"``, ``"10"``, ..., ``"all"``."""
    return {
        _label_key(k): linear_probe(train_features, train_labels, test_features, test_labels, k, seed=seed)
        for k in labels_per_class
    }
