"""The semi-supervised training loop ``train_semi``, and the pipelines built on it (Noisy Student, SimCLRv2).

Each step draws a labelled batch of ``batch_size`` images (with replacement: with 1 label per class there
are only 10 of them) and an unlabelled batch of ``mu × batch_size``, makes the views on the device (the
labelled batch's weak view, the unlabelled batch's ``[weak, strong]``), calls the method's
``training_step`` and steps the optimiser on FixMatch's schedule lr·cos(7πk / 16K). Everything random in
step k (the two batches, the views, dropout) comes from generators seeded with (seed, k), so a run
stopped and resumed from its checkpoint (atomic, ``train.save_checkpoint``) gives bit-identical weights.
The checkpoint holds the labelled split (budget, seed, rows): resuming with another split is refused.

The loop also measures what the notebook plots: on each logged step, the *mask rate* (the share of the
unlabelled batch whose pseudo-label is used) and the *pseudo-label accuracy* (of those used, how many are
right), computed with the unlabelled images' true labels, which the method never sees.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .augment.convert import to_float
from .data.semi import LabelledSplit, check_same_split
from .methods.semi import Classifier, Distillation, SemiSupervisedMethod, SupervisedOnly
from .profiles import default_device
from .train import as_channels_last, load_checkpoint, save_checkpoint


@dataclass
class SemiConfig:
    """Hyper-parameters of one semi-supervised training (``semi_recipes`` holds one per profile).

    FixMatch's CIFAR-10 values: SGD (Nesterov, momentum 0.9), lr 0.03, weight decay 5e-4, batch 64, μ 7,
    2²⁰ steps. ``batch_size`` is the labelled batch, ``mu`` the ratio of unlabelled to labelled images.
    """

    steps: int = 1000
    batch_size: int = 64
    mu: int = 7
    optimizer: str = "sgd"  # "sgd" (Nesterov) or "adamw"
    lr: float = 0.03
    weight_decay: float = 5e-4
    momentum: float = 0.9
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 200
    # NHWC convolutions (the model's 4-D weights and every view), as TrainConfig.channels_last: the same
    # fp32 arithmetic up to rounding. Off in the semi recipes: notebook 11's cpu run took 55 s either way
    channels_last: bool = False

    def replace(self, **changes) -> SemiConfig:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass
class SemiHistory:
    """Logged rows: ``steps`` (loss terms, lr, mask rate, pseudo-label accuracy), ``evals`` (accuracy)."""

    steps: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)

    def column(self, key: str) -> list[float]:
        return [row[key] for row in self.steps if key in row]

    def to_dict(self) -> dict:
        return {"steps": self.steps, "evals": self.evals}


def fixmatch_lr(step: int, total_steps: int, base_lr: float) -> float:
    """FixMatch's schedule: ``base_lr · cos(7πk / 16K)``, from base_lr down to about 0.2·base_lr."""
    return base_lr * math.cos(7.0 * math.pi * step / (16.0 * total_steps))


def _generator(seed: int, stream: int, step: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed((seed * 1_000_003 + stream * 7_919 + step) % (2**63))


def _check_config(config: SemiConfig) -> None:
    for name in ("steps", "batch_size", "mu", "log_every", "checkpoint_every"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"SemiConfig.{name} must be a positive int, got {value!r}")
    if config.optimizer not in ("sgd", "adamw"):
        raise ValueError(f"SemiConfig.optimizer must be 'sgd' or 'adamw', got {config.optimizer!r}")
    if not config.lr > 0 or config.weight_decay < 0:
        raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {config.lr}, {config.weight_decay}")
    if not isinstance(config.channels_last, bool):
        raise ValueError(f"SemiConfig.channels_last must be True or False, got {config.channels_last!r}")


def _optimizer(model: torch.nn.Module, config: SemiConfig) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1]
    plain = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim <= 1]  # biases, BatchNorm
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, foreach=True)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True, foreach=True)


@torch.no_grad()
def predict_labels(method: torch.nn.Module, images: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """Predicted classes of uint8 or float ``images`` (eval mode, no augmentation), on the CPU."""
    predict = method.predict if hasattr(method, "predict") else method
    was_training = method.training
    method.eval()
    device = next(method.parameters()).device
    out = [
        predict(to_float(images[i : i + batch].to(device))).argmax(1).cpu()
        for i in range(0, len(images), batch)
    ]
    method.train(was_training)
    return torch.cat(out)


def accuracy(method: torch.nn.Module, dataset) -> float:
    """Top-1 accuracy of ``method.predict`` (or of a classifier) on a labelled ``dataset``, in [0, 1]."""
    return (predict_labels(method, dataset.images) == dataset.labels.cpu()).double().mean().item()


def train_semi(
    method: SemiSupervisedMethod,
    split: LabelledSplit,
    views,
    config: SemiConfig | None = None,
    *,
    device: str | torch.device | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = True,
    stop_after: int | None = None,
    eval_data=None,
    eval_every: int = 0,
    progress: bool = True,
    **overrides,
) -> SemiHistory:
    """Train ``method`` on ``split`` (labelled and unlabelled images) with ``views`` for ``config.steps``.

    Args:
        views: ``views(images, generator=g) -> [weak, strong]`` (``augment.strong.weak_strong_views``).
        checkpoint_dir: ``last.pt`` is written there (atomically) every ``checkpoint_every`` steps and at
            the end; with ``resume`` an existing one is loaded and training continues bit-exactly. Its
            split must be ``split`` (``data.semi.split_from_state`` rebuilds it).
        stop_after: stop (and checkpoint) after this many steps in all, as if interrupted.
        eval_data: a labelled data set scored every ``eval_every`` steps and at the end (``evals``).
    """
    config = (config or SemiConfig()).replace(**overrides)
    _check_config(config)
    if not isinstance(split, LabelledSplit):
        raise TypeError(
            "split must be a data.semi.LabelledSplit (labelled_split(train, k, seed)), "
            f"got {type(split).__name__}"
        )
    if not isinstance(method, SemiSupervisedMethod):
        raise TypeError(f"method must be a methods.semi method (FixMatch, MeanTeacher, ...), got {method!r}")
    device = default_device(device)
    method.to(device)
    if config.channels_last:
        method.to(memory_format=torch.channels_last)  # 4-D weights only; the rest is unchanged
    optimizer = _optimizer(method, config)
    images_l, labels_l = split.labelled.images.to(device), split.labelled.labels.to(device)
    images_u, labels_u = split.unlabelled.images.to(device), split.unlabelled.labels.to(device)
    n_l, n_u, batch_u = len(images_l), len(images_u), config.mu * config.batch_size
    history, step = SemiHistory(), 0
    ckpt = Path(checkpoint_dir) / "last.pt" if checkpoint_dir is not None else None
    if ckpt is not None and resume and ckpt.is_file():
        state = load_checkpoint(ckpt)
        check_same_split(split, state["split"])
        if state["config"] != dataclasses.asdict(config):
            raise ValueError(
                f"{ckpt} was written with {state['config']}, not {dataclasses.asdict(config)}: resume with "
                "the same SemiConfig, or start afresh in another checkpoint_dir"
            )
        method.load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
        history = SemiHistory(**state["history"])
        step = state["step"]

    def checkpoint() -> None:
        if ckpt is not None:
            save_checkpoint(
                ckpt,
                {
                    "method": method.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "step": step,
                    "history": history.to_dict(),
                    "split": split.state_dict(),
                    "config": dataclasses.asdict(config),
                    "kind": type(method).__name__,
                },
            )

    end = config.steps if stop_after is None else min(config.steps, stop_after)
    bar = tqdm(
        total=config.steps, initial=step, disable=not progress, desc=type(method).__name__, unit="step"
    )
    method.train()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        while step < end:
            # batches: labelled and unlabelled rows of step k, with replacement, from a (seed, k) generator
            rows = _generator(config.seed, 0, step, torch.device("cpu"))
            idx_l = torch.randint(n_l, (config.batch_size,), generator=rows).to(device)
            idx_u = torch.randint(n_u, (batch_u,), generator=rows).to(device)
            # views on the device, and dropout, from (seed, k) too
            view_generator = _generator(config.seed, 1, step, device)
            torch.manual_seed((config.seed * 1_000_003 + 2 * 7_919 + step) % (2**63))
            labelled = views(images_l[idx_l], generator=view_generator)[0]
            unlabelled = views(images_u[idx_u], generator=view_generator) if method.uses_unlabelled else None
            if config.channels_last:  # the views the step uses, in the model's layout
                labelled = as_channels_last(labelled)
                unlabelled = None if unlabelled is None else [as_channels_last(v) for v in unlabelled]
            for group in optimizer.param_groups:
                group["lr"] = fixmatch_lr(step, config.steps, config.lr)
            method.progress = step / config.steps  # ramp-ups read it; kept out of the state: step says it
            out = method.training_step(labelled, labels_l[idx_l], unlabelled)
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            optimizer.step()
            step += 1
            method.after_step(step / config.steps)
            bar.update(1)
            if step % config.log_every == 0 or step == config.steps:
                history.steps.append(_row(step, out, labels_u[idx_u], optimizer))
                bar.set_postfix(loss=f"{history.steps[-1]['loss']:.3f}")
            if eval_data is not None and ((eval_every and step % eval_every == 0) or step == config.steps):
                history.evals.append({"step": step, "accuracy": accuracy(method, eval_data)})
                method.train()
            if step % config.checkpoint_every == 0 and step < end:
                checkpoint()
    bar.close()
    if not math.isfinite(history.steps[-1]["loss"] if history.steps else 0.0):
        raise FloatingPointError(f"the loss became {history.steps[-1]['loss']}: lower lr (got {config.lr})")
    checkpoint()
    return history


def _row(step: int, out: dict, true_labels: torch.Tensor, optimizer) -> dict:
    row = {
        "step": step,
        "lr": optimizer.param_groups[0]["lr"],
        **{k: float(out[k].detach()) for k in ("loss", "supervised", "unlabelled")},
    }
    if "pseudo_labels" in out:
        mask, right = out["mask"].bool(), out["pseudo_labels"] == true_labels
        row["mask_rate"] = mask.float().mean().item()
        row["pseudo_accuracy"] = right[mask].float().mean().item() if mask.any() else float("nan")
        row["pseudo_accuracy_all"] = right.float().mean().item()
    return row


# --------------------------------------------------------------------------------------------------
# Pipelines of several trainings
# --------------------------------------------------------------------------------------------------


def noisy_student(
    split: LabelledSplit,
    views,
    config: SemiConfig,
    build_model,
    iterations: int = 2,
    temperature: float = 1.0,
    eval_data=None,
    device=None,
    progress: bool = False,
    teacher: Classifier | None = None,
) -> tuple[Classifier, list[float]]:
    """Noisy Student (Xie et al. 2020): a teacher trained on the labels, then ``iterations`` times a fresh
    *noised* student (strong views, dropout) trained on the labels and the teacher's soft labels of the
    unlabelled images (:class:`~sslcookbook.methods.semi.Distillation`), which becomes the next teacher.

    ``build_model()`` makes a fresh classifier; ``teacher`` (a classifier already trained on the labels)
    skips the first training. Returns the last student and, when ``eval_data`` is given, its accuracy
    after each stage (teacher first).
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive int, got {iterations!r}")
    if teacher is None:
        teacher = build_model()
        train_semi(SupervisedOnly(teacher), split, views, config, device=device, progress=progress)
    scores = [accuracy(teacher, eval_data)] if eval_data is not None else []
    model = teacher
    for i in range(iterations):
        student = Distillation(build_model(), model, temperature=temperature, noised=True)
        train_semi(
            student, split, views, config.replace(seed=config.seed + i + 1), device=device, progress=progress
        )
        model = student.model
        if eval_data is not None:
            scores.append(accuracy(student, eval_data))
    return model, scores


def simclrv2(
    split: LabelledSplit,
    views,
    config: SemiConfig,
    pretrained_backbone: torch.nn.Module,
    build_model,
    num_classes: int,
    fine_tune_lr: float | None = None,
    temperature: float = 1.0,
    device=None,
    progress: bool = False,
    fine_tuned: Classifier | None = None,
) -> dict:
    """SimCLRv2's semi-supervised recipe (Chen et al. 2020, *Big self-supervised models are strong
    semi-supervised learners*): (1) a self-supervised backbone (``pretrained_backbone``, e.g. the simclr
    recipe's) → (2) fine-tuned with a fresh head on the few labels → (3) distilled into a student
    (``build_model()``, from scratch) on the unlabelled images with −Σ p_T log p_S only.

    ``fine_tuned`` (a classifier already fine-tuned from ``pretrained_backbone`` on the labels, e.g. the
    "SSL + fine-tune" model of a comparison) skips stage 2, so that the distilled teacher is that very
    model. Returns ``{"fine_tuned": classifier, "student": classifier}``.
    """
    if fine_tuned is None:
        fine = SupervisedOnly(
            Classifier(copy.deepcopy(pretrained_backbone).requires_grad_(True), num_classes)
        )
        train_semi(fine, split, views, config.replace(lr=fine_tune_lr), device=device, progress=progress)
        fine_tuned = fine.model
    student = Distillation(
        build_model(), fine_tuned, temperature=temperature, noised=False, supervised_weight=0.0
    )
    train_semi(student, split, views, config.replace(seed=config.seed + 1), device=device, progress=progress)
    return {"fine_tuned": fine_tuned, "student": student.model}
