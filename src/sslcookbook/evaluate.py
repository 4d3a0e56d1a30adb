"""Evaluation protocol: how good are frozen self-supervised features?

Embed a dataset with a frozen encoder, then measure

* **kNN accuracy** — weighted cosine k-nearest-neighbour vote (Wu et al. 2018, *InstDisc*; the
  protocol DINO uses),
* **linear probe** — logistic regression on standardised frozen features, with all labels or only
  ``k`` labels per class (label efficiency),
* **RankMe** — effective rank of the embedding (Garrido et al. 2023),
* **alignment / uniformity** — Wang & Isola 2020,
* **feature std** — a cheap collapse monitor,

and compare the SSL encoder with two baselines: raw pixels and the same architecture at random
initialisation (:func:`compare_baselines`). Everything is plain PyTorch and runs on CPU or CUDA
tensors; :func:`embed` returns features on the CPU.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "embed",
    "raw_pixel_features",
    "knn_predict",
    "knn_accuracy",
    "few_shot_indices",
    "linear_probe",
    "label_efficiency",
    "rankme",
    "alignment",
    "uniformity",
    "feature_std",
    "random_encoder_like",
    "evaluate_features",
    "compare_baselines",
    "DEFAULT_PROBE_WEIGHT_DECAY",
    "DEFAULT_PROBE_MAX_ITER",
    "FEW_SHOT_REPEATS",
    "RANDOM_INIT_SEED",
    "PROBE_GRAD_TOLERANCE",
]

#: L2 strength of the linear probe, on standardised features: loss = CE + (wd / 2)·‖W‖².
DEFAULT_PROBE_WEIGHT_DECAY = 1e-2
#: L-BFGS iterations of the linear probe (each one a full pass over the labelled subset).
DEFAULT_PROBE_MAX_ITER = 200
#: Seed of :func:`random_encoder_like`; deliberately not 0, the seed a training run most likely used.
RANDOM_INIT_SEED = 1234
#: The probe's L-BFGS stops when every entry of the gradient is below this (accuracy is stable by then).
PROBE_GRAD_TOLERANCE = 1e-5
#: Number of label draws averaged by the few-shot probe when ``labels_per_class < 10``.
FEW_SHOT_REPEATS = 5


# ----------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------


def _as_tensor(x: Any, name: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")


def _check_features(x: Any, name: str = "features") -> Tensor:
    """2-D, floating, finite features (integer input is converted to float32)."""
    x = _as_tensor(x, name)
    if x.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (N×D), got shape {tuple(x.shape)}: flatten them with x.flatten(1)"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}): embed at least one example")
    if not x.is_floating_point():
        x = x.float()
    if torch.isnan(x).any():
        raise ValueError(f"{name} contain NaN: the encoder diverged — lower the learning rate")
    if torch.isinf(x).any():
        raise ValueError(f"{name} contain inf: the encoder diverged — lower the learning rate")
    return x


def _check_labels(y: Any, n: int, name: str = "labels", features_name: str = "features") -> Tensor:
    y = _as_tensor(y, name)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D (N,), got shape {tuple(y.shape)}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} must be integer class indices, got dtype {y.dtype}: use labels.long()")
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} entries but {features_name} has {n} rows: they must match")
    if y.numel() and int(y.min()) < 0:
        raise ValueError(f"{name} must be non-negative class indices, found {int(y.min())}")
    return y.long()


def _check_pair(train_features, train_labels, test_features, test_labels):
    train_features = _check_features(train_features, "train_features")
    test_features = _check_features(test_features, "test_features")
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            f"train_features has {train_features.shape[1]} dims but test_features has "
            f"{test_features.shape[1]}: embed both with the same encoder"
        )
    train_labels = _check_labels(train_labels, train_features.shape[0], "train_labels", "train_features")
    test_labels = _check_labels(test_labels, test_features.shape[0], "test_labels", "test_features")
    device = train_features.device
    return (
        train_features.float(),
        train_labels.to(device),
        test_features.float().to(device),
        test_labels.to(device),
    )


def _num_classes(num_classes: int | None, *labels: Tensor) -> int:
    needed = max(int(y.max()) + 1 for y in labels if y.numel())
    if num_classes is None:
        return needed
    if num_classes < needed:
        raise ValueError(f"num_classes={num_classes} but the labels go up to {needed - 1}")
    return num_classes


# ----------------------------------------------------------------------------------------------
# embedding
# ----------------------------------------------------------------------------------------------


def _module_device(module: Any) -> torch.device | None:
    if isinstance(module, nn.Module):
        for tensor in module.parameters():
            return tensor.device
        for tensor in module.buffers():
            return tensor.device
    return None


def _modules_behind(encoder: Any) -> list[nn.Module]:
    """The nn.Modules that ``encoder`` runs: itself if it is one, else those a plain function reaches
    directly — a bound method's owner, a ``functools.partial``'s function and arguments, closure
    variables and default arguments (``lambda x: m.projector(m.backbone(x))`` finds ``m``)."""
    if isinstance(encoder, nn.Module):
        return [encoder]
    candidates: list[Any] = []
    if hasattr(encoder, "__self__"):
        candidates.append(encoder.__self__)
    if isinstance(encoder, functools.partial):
        candidates += [encoder.func, *encoder.args, *encoder.keywords.values()]
    for cell in getattr(encoder, "__closure__", None) or ():
        try:
            candidates.append(cell.cell_contents)
        except ValueError:  # an empty cell
            pass
    candidates += list(getattr(encoder, "__defaults__", None) or ())
    found: list[nn.Module] = []
    for candidate in candidates:
        for module in _modules_behind(candidate) if isinstance(candidate, functools.partial) else [candidate]:
            if isinstance(module, nn.Module) and all(module is not m for m in found):
                found.append(module)
    return found


def embed(
    encoder: Callable[[Tensor], Tensor],
    images: Tensor,
    batch_size: int = 512,
    device: str | torch.device | None = None,
) -> Tensor:
    """Frozen features of ``images``: float32 N×D on the CPU.

    Runs under ``torch.no_grad()`` with ``encoder`` in eval mode — BatchNorm uses, and does not
    update, its running statistics — and restores every module's train/eval mode afterwards.
    ``encoder`` is an nn.Module or a function of modules; for a function, the modules it holds in
    closure variables, default arguments, a bound method's owner or a ``functools.partial`` are
    switched (a function that reaches its modules through globals is not seen: pass an nn.Module,
    e.g. ``nn.Sequential(backbone, projector)``). uint8 images are scaled to [0, 1]; float images
    are used as given. Outputs with more than two dims (e.g. N×C×h×w feature maps) are flattened.
    ``device`` defaults to the encoder's device, else the images' device.
    """
    images = _as_tensor(images, "images")
    if images.ndim < 2:
        raise ValueError(f"images must be batched (N×C×H×W), got shape {tuple(images.shape)}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise TypeError(f"images must be uint8 (0..255) or float, got dtype {images.dtype}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not callable(encoder):
        raise TypeError(f"encoder must be callable (an nn.Module), got {type(encoder).__name__}")
    modules = _modules_behind(encoder)
    if device is None:
        device = next(filter(None, map(_module_device, modules)), None) or images.device
    device = torch.device(device)

    # Every submodule's own flag, so that a model with some parts frozen in eval mode gets them back.
    modes = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.eval()
    chunks = []
    try:
        with torch.no_grad():
            for start in range(0, images.shape[0], batch_size):
                batch = images[start : start + batch_size].to(device, non_blocking=True)
                batch = batch.float().div_(255.0) if batch.dtype == torch.uint8 else batch.float()
                out = encoder(batch)
                if not isinstance(out, Tensor):
                    raise TypeError(
                        f"encoder must return a Tensor of features, got {type(out).__name__}: "
                        "wrap it so that it returns the backbone features"
                    )
                if out.shape[0] != batch.shape[0]:
                    raise ValueError(
                        f"encoder returned {out.shape[0]} rows for a batch of {batch.shape[0]} images"
                    )
                chunks.append(out.reshape(out.shape[0], -1).float().cpu())
    finally:
        for module, training in modes:
            module.training = training
    if not chunks:
        raise ValueError("images is empty: nothing to embed")
    return torch.cat(chunks)


def raw_pixel_features(images: Tensor) -> Tensor:
    """The raw-pixels baseline: images flattened to N×(C·H·W) float32, uint8 scaled by 1/255."""
    images = _as_tensor(images, "images")
    if images.ndim < 2:
        raise ValueError(f"images must be batched (N×...), got shape {tuple(images.shape)}")
    flat = images.reshape(images.shape[0], -1)
    return flat.float() / 255.0 if images.dtype == torch.uint8 else flat.float()


# ----------------------------------------------------------------------------------------------
# kNN
# ----------------------------------------------------------------------------------------------


def knn_predict(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    batch_size: int = 1024,
) -> Tensor:
    """Weighted kNN class predictions for ``test_features`` (int64, on the features' device).

    Cosine similarity s_i between a test point and each train point; the k most similar vote with
    weight exp(s_i / τ), and the class with the largest summed weight wins (Wu et al. 2018).
    """
    train_features = _check_features(train_features, "train_features").float()
    test_features = _check_features(test_features, "test_features").float().to(train_features.device)
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            f"train_features has {train_features.shape[1]} dims but test_features has "
            f"{test_features.shape[1]}: embed both with the same encoder"
        )
    train_labels = _check_labels(train_labels, train_features.shape[0], "train_labels", "train_features")
    train_labels = train_labels.to(train_features.device)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    num_classes = _num_classes(num_classes, train_labels)
    k = min(k, train_features.shape[0])

    train = F.normalize(train_features, dim=1)
    test = F.normalize(test_features, dim=1)
    predictions = []
    for start in range(0, test.shape[0], batch_size):
        sim = test[start : start + batch_size] @ train.T
        top_sim, top_idx = sim.topk(k, dim=1)
        # Subtracting the row maximum rescales all weights of a row equally (no overflow for tiny τ).
        weights = ((top_sim - top_sim[:, :1]) / temperature).exp()
        votes = torch.zeros(top_sim.shape[0], num_classes, device=sim.device, dtype=weights.dtype)
        votes.scatter_add_(1, train_labels[top_idx], weights)
        predictions.append(votes.argmax(dim=1))
    return torch.cat(predictions)


def knn_accuracy(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    batch_size: int = 1024,
) -> float:
    """Top-1 accuracy in [0, 1] of the weighted cosine kNN classifier (see :func:`knn_predict`)."""
    train_features, train_labels, test_features, test_labels = _check_pair(
        train_features, train_labels, test_features, test_labels
    )
    num_classes = _num_classes(num_classes, train_labels, test_labels)
    predictions = knn_predict(
        train_features, train_labels, test_features, k, temperature, num_classes, batch_size
    )
    return (predictions == test_labels).float().mean().item()


# ----------------------------------------------------------------------------------------------
# linear probe
# ----------------------------------------------------------------------------------------------


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
    labels = _check_labels(labels, _as_tensor(labels, "labels").shape[0], "labels").cpu()
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
    epochs: int = DEFAULT_PROBE_MAX_ITER,
) -> float:
    """Test accuracy in [0, 1] of a linear classifier on frozen features.

    Multinomial logistic regression, min_W,b mean CE(x W + b, y) + (λ/2)‖W‖², fitted full-batch with
    L-BFGS (``epochs`` iterations at most, in float64) on features standardised with the mean/std of the
    labelled training subset. ``labels_per_class``: ``None``/``"all"`` uses every training label; an
    int k draws k examples per class (:func:`few_shot_indices`, seeds ``seed, seed+1, ...``) and the
    accuracy is averaged over ``repeats`` draws — by default ``FEW_SHOT_REPEATS`` (5) when k < 10,
    else 1, since few-shot accuracy varies a lot from one draw to the next.
    """
    train_features, train_labels, test_features, test_labels = _check_pair(
        train_features, train_labels, test_features, test_labels
    )
    k = _parse_labels_per_class(labels_per_class)
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if repeats is None:
        repeats = FEW_SHOT_REPEATS if k is not None and k < 10 else 1
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if k is None:
        repeats = 1  # every label is used: nothing to redraw
    num_classes = _num_classes(None, train_labels, test_labels)

    scores = []
    for draw in range(repeats):
        if k is None:
            x, y = train_features, train_labels
        else:
            idx = few_shot_indices(train_labels, k, seed + draw).to(train_features.device)
            x, y = train_features[idx], train_labels[idx]
        scores.append(_fit_and_score(x, y, test_features, test_labels, num_classes, weight_decay, epochs))
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


# ----------------------------------------------------------------------------------------------
# representation statistics
# ----------------------------------------------------------------------------------------------


def rankme(features: Tensor, eps: float = 1e-7) -> float:
    """Effective rank exp(−Σ p_k log p_k), p_k = σ_k / ‖σ‖₁ + ε (Garrido et al. 2023, RankMe).

    σ are the singular values of the N×D feature matrix; the result lies in [1, min(N, D)].
    """
    features = _check_features(features)
    sigma = torch.linalg.svdvals(features.double())
    total = sigma.sum()
    if total <= 0:
        return 1.0  # all-zero features: fully collapsed
    p = sigma / total + eps
    value = math.exp(-(p * p.log()).sum().item())
    return float(min(max(value, 1.0), min(features.shape)))


def alignment(z1: Tensor, z2: Tensor, alpha: float = 2) -> float:
    """E ‖f(x) − f(y)‖₂^α over positive pairs of L2-normalised features (Wang & Isola 2020); 0 is best."""
    z1 = _check_features(z1, "z1")
    z2 = _check_features(z2, "z2")
    if z1.shape != z2.shape:
        raise ValueError(
            f"z1 and z2 must have the same shape (pairs of views), got {tuple(z1.shape)} "
            f"and {tuple(z2.shape)}"
        )
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    z1 = F.normalize(z1.float(), dim=1)
    z2 = F.normalize(z2.float().to(z1.device), dim=1)
    return (z1 - z2).norm(dim=1).pow(alpha).mean().item()


def uniformity(z: Tensor, t: float = 2, batch_size: int = 1024) -> float:
    """log E exp(−t ‖f(x) − f(y)‖₂²) over distinct pairs of L2-normalised features (Wang & Isola 2020).

    ≤ 0; 0 (the maximum) for fully collapsed features, lower for features spread on the sphere.
    Computed in row chunks, so N×N distances are never held at once.
    """
    z = _check_features(z, "z")
    n = z.shape[0]
    if n < 2:
        raise ValueError("uniformity needs at least 2 feature vectors")
    if t <= 0:
        raise ValueError(f"t must be > 0, got {t}")
    z = F.normalize(z.double() if z.device.type == "cpu" else z.float(), dim=1)
    partial = []
    for start in range(0, n, batch_size):
        rows = z[start : start + batch_size]
        sq_dist = (2 - 2 * rows @ z.T).clamp_min(0)
        logits = -t * sq_dist
        diagonal = torch.arange(rows.shape[0], device=z.device)
        logits[diagonal, diagonal + start] = -math.inf  # a point is not paired with itself
        partial.append(logits.logsumexp(dim=1))
    return (torch.cat(partial).logsumexp(0) - math.log(n * (n - 1))).item()


def feature_std(z: Tensor) -> float:
    """Collapse monitor: mean over dims of the per-dim std (over the batch) of L2-normalised features.

    About 1/√D when the features spread over all D dims, → 0 when they collapse to one point
    (as used in SimSiam, Chen & He 2021).
    """
    z = _check_features(z, "z")
    if z.shape[0] < 2:
        raise ValueError("feature_std needs at least 2 feature vectors")
    return F.normalize(z.float(), dim=1).std(dim=0).mean().item()


# ----------------------------------------------------------------------------------------------
# baselines and the full report
# ----------------------------------------------------------------------------------------------


def random_encoder_like(encoder: nn.Module, seed: int = RANDOM_INIT_SEED) -> nn.Module:
    """The random-init baseline: a deep copy of ``encoder`` with every submodule that has
    ``reset_parameters()`` re-initialised under ``torch.manual_seed(seed)``.

    The draw happens on the CPU, so the baseline is the same whatever device ``encoder`` is on; the
    copy stays on the encoder's devices. ``encoder`` and the global RNG state are untouched.
    Parameters owned by modules without ``reset_parameters`` keep the encoder's values.
    """
    if not isinstance(encoder, nn.Module):
        raise TypeError(f"encoder must be an nn.Module, got {type(encoder).__name__}")
    fresh = copy.deepcopy(encoder).cpu()
    reset = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in fresh.modules():
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
                reset += 1
    if reset == 0 and any(True for _ in fresh.parameters()):
        raise ValueError(
            f"{type(encoder).__name__} has parameters but no submodule with reset_parameters(): "
            "cannot build a random-init baseline"
        )
    clone = copy.deepcopy(encoder)
    clone.load_state_dict(fresh.state_dict())  # copies into the clone's tensors, on their devices
    return clone


def evaluate_features(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    labels_per_class: Iterable[int | str | None] = (1, 10, None),
    k: int = 20,
) -> dict[str, Any]:
    """The full report for one set of features.

    ``{"probe": {"1": .., "10": .., "all": ..}, "knn": float, "rankme": float, "feature_std": float}``;
    RankMe and feature std are measured on the test features.
    """
    train_features, train_labels, test_features, test_labels = _check_pair(
        train_features, train_labels, test_features, test_labels
    )
    return {
        "probe": label_efficiency(train_features, train_labels, test_features, test_labels, labels_per_class),
        "knn": knn_accuracy(train_features, train_labels, test_features, test_labels, k=k),
        "rankme": rankme(test_features),
        "feature_std": feature_std(test_features),
    }


def _dataset_tensors(dataset: Any, name: str) -> tuple[Tensor, Tensor]:
    for attribute in ("images", "labels"):
        if not hasattr(dataset, attribute):
            raise TypeError(
                f"{name} must have .images (uint8 N×C×H×W) and .labels (int64 N), "
                f"got {type(dataset).__name__} without .{attribute}"
            )
    images = _as_tensor(dataset.images, f"{name}.images")
    labels = _check_labels(dataset.labels, images.shape[0], f"{name}.labels", f"{name}.images")
    return images, labels


def compare_baselines(
    encoder: nn.Module,
    train_ds: Any,
    test_ds: Any,
    device: str | torch.device | None = None,
    labels_per_class: Iterable[int | str | None] = (1, 10, None),
    k: int = 20,
) -> dict[str, dict[str, Any]]:
    """:func:`evaluate_features` for the SSL encoder, raw pixels and a random-init copy of the encoder.

    Returns ``{"ssl": report, "raw": report, "random": report}`` (what the CLI writes to results.json).
    """
    train_images, train_labels = _dataset_tensors(train_ds, "train_ds")
    test_images, test_labels = _dataset_tensors(test_ds, "test_ds")
    labels_per_class = tuple(labels_per_class)

    def report(train_features: Tensor, test_features: Tensor) -> dict[str, Any]:
        return evaluate_features(
            train_features, train_labels, test_features, test_labels, labels_per_class, k
        )

    random_encoder = random_encoder_like(encoder)
    return {
        "ssl": report(
            embed(encoder, train_images, device=device), embed(encoder, test_images, device=device)
        ),
        "raw": report(raw_pixel_features(train_images), raw_pixel_features(test_images)),
        "random": report(
            embed(random_encoder, train_images, device=device),
            embed(random_encoder, test_images, device=device),
        ),
    }
