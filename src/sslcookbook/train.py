"""The trainer: ``fit(method, dataset, views, config)``.

One loop for every method: batches of uint8 images move to the device once, views are made there in
batches, ``method.training_step`` returns the loss, the optimiser steps on a warm-up + cosine
schedule, ``method.after_step`` updates momentum encoders. Checkpoints are written atomically after
every epoch (and on Ctrl-C) and resume exactly: the batch order of epoch e comes from a generator
seeded with (seed, e) and the views of step t from one seeded with (seed, t), so nothing depends on
how many times the run was stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import distributed
from .optim import build_optimizer, warmup_cosine
from .profiles import default_device


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (recipes hold one per profile)."""

    epochs: int = 10
    batch_size: int = 256
    optimizer: str = "sgd"
    lr: float = 0.1
    weight_decay: float = 1e-4
    final_weight_decay: float | None = None  # cosine from weight_decay to this over training (DINO)
    momentum: float = 0.9
    lars_eta: float = 0.001  # LARS trust coefficient (SimCLR, MoCo v3: 0.001; solo-learn's CIFAR: 0.02)
    lars_clip: bool = False  # LARC clipping: a layer's rate is capped at the global lr
    warmup_epochs: float = 0.0
    final_lr: float = 0.0
    seed: int = 0
    amp: bool | None = None  # None: bf16 autocast on CUDA, off on CPU
    max_steps_per_epoch: int | None = None
    grad_clip: float | None = None
    sync_bn: bool = False  # under torchrun: BatchNorm statistics over the global batch

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass
class History:
    """What happened: one row per step and one per epoch (loss, lr, time, logged scalars, metrics)."""

    steps: list[dict] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)

    @property
    def losses(self) -> list[float]:
        return [row["loss"] for row in self.steps]

    def to_dict(self) -> dict:
        return {"steps": self.steps, "epochs": self.epochs}


def _seeded(seed: int, stream: int, index: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + stream * 7_919 + index) % (2**63))
    return g


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` with torch.save to a temporary file beside ``path``, then rename it into place.

    A crash mid-write leaves the previous checkpoint intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint written by ``fit``; the error says what to do when the file is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: pass the path of a last.pt written by `fit`")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:
        raise ValueError(f"{path} is not a readable checkpoint ({e}); delete it to start afresh") from e
    if not isinstance(state, dict) or "method" not in state:
        raise ValueError(f"{path} is not an sslcookbook checkpoint (no 'method' entry)")
    return state


def fit(
    method: torch.nn.Module,
    dataset,
    views: Callable,
    config: TrainConfig | None = None,
    *,
    device: str | torch.device | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = True,
    progress: bool = True,
    on_epoch_end: Callable[[int, torch.nn.Module], dict] | None = None,
    meta: dict | None = None,
    **overrides,
) -> History:
    """Train ``method`` on ``dataset`` (``.images`` uint8 N×C×H×W, ``.labels``) with ``views``.

    Args:
        views: callable ``views(images_uint8, generator=g) -> list[Tensor]`` (an ``augment`` preset).
        config: a ``TrainConfig``; keyword ``overrides`` replace its fields (e.g. ``epochs=3``).
        checkpoint_dir: where ``last.pt`` is written after each epoch; with ``resume`` an existing one
            is loaded and training continues from where it stopped.
        on_epoch_end: optional ``f(epoch, method) -> dict`` of metrics stored in the epoch's history row.
        meta: anything JSON-like stored in the checkpoint to rebuild the method later (recipe, data...).
    Returns:
        the ``History`` (also stored in the checkpoint).
    """
    config = (config or TrainConfig()).replace(**overrides)
    device = default_device(device)
    images, labels = _device_tensors(dataset, device)
    n = images.shape[0]
    if n < 2:
        raise ValueError(f"the dataset has {n} images: self-supervised training needs at least 2")
    if config.final_weight_decay is not None and config.final_weight_decay < 0:
        raise ValueError(f"final_weight_decay must be >= 0, got {config.final_weight_decay}")
    batch_size = min(config.batch_size, n)
    world, rank = distributed.world_size(), distributed.rank()
    if batch_size % world:
        raise ValueError(f"batch size {batch_size} must be divisible by the number of processes ({world})")
    local_batch = batch_size // world
    steps_per_epoch = n // batch_size
    if config.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = round(config.warmup_epochs * steps_per_epoch)
    use_amp = device.type == "cuda" if config.amp is None else config.amp

    method.to(device)
    step_module = _data_parallel(method, device, config.sync_bn) if world > 1 else _Step(method)
    optimizer = build_optimizer(
        method,
        config.optimizer,
        config.lr,
        config.weight_decay,
        config.momentum,
        lars_eta=config.lars_eta,
        lars_clip=config.lars_clip,
    )
    # Indices, not dicts: loading a checkpoint replaces the optimizer's param-group dicts.
    decaying_groups = [i for i, group in enumerate(optimizer.param_groups) if group["weight_decay"] > 0]
    history, epoch, step_in_epoch = History(), 0, 0
    ckpt_path = Path(checkpoint_dir) / "last.pt" if checkpoint_dir is not None else None
    if ckpt_path is not None and resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, map_location=device)
        method.load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
        history = History(**state["history"])
        epoch, step_in_epoch = state["epoch"], state["step_in_epoch"]
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])

    def checkpoint() -> None:
        if ckpt_path is None or rank != 0:
            return
        save_checkpoint(
            ckpt_path,
            {
                "method": method.state_dict(),
                "optimizer": optimizer.state_dict(),
                "history": history.to_dict(),
                "epoch": epoch,
                "step_in_epoch": step_in_epoch,
                "config": dataclasses.asdict(config),
                "torch_rng": torch.get_rng_state(),
                "meta": meta or {},
            },
        )

    bar = tqdm(
        total=total_steps,
        initial=epoch * steps_per_epoch + step_in_epoch,
        disable=not progress or rank != 0,
        desc=type(method).__name__,
        unit="step",
        dynamic_ncols=True,
    )
    try:
        while epoch < config.epochs:
            method.train()
            order = torch.randperm(n, generator=_seeded(config.seed, 0, epoch, torch.device("cpu"))).to(
                device
            )
            t0 = time.perf_counter()
            while step_in_epoch < steps_per_epoch:
                global_step = epoch * steps_per_epoch + step_in_epoch
                lr = warmup_cosine(global_step, total_steps, warmup_steps, config.lr, config.final_lr)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                if config.final_weight_decay is not None:
                    wd = warmup_cosine(
                        global_step, total_steps, 0, config.weight_decay, config.final_weight_decay
                    )
                    for i in decaying_groups:
                        optimizer.param_groups[i]["weight_decay"] = wd
                start = step_in_epoch * batch_size + rank * local_batch
                idx = order[start : start + local_batch]
                view_seed = _seeded(config.seed, 1, global_step * world + rank, device)
                batch_views = views(images[idx], generator=view_seed)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    out = step_module(batch_views, labels[idx])
                loss = out["loss"]
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"loss became {loss.item()} at epoch {epoch}, step {step_in_epoch}: "
                        "lower the learning rate or enable gradient clipping (grad_clip)"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(method.parameters(), config.grad_clip)
                optimizer.step()
                if hasattr(method, "after_step"):
                    method.after_step((global_step + 1) / total_steps)
                logged_loss = distributed.all_reduce_mean(loss.detach()).item()
                row = {"epoch": epoch, "step": global_step, "lr": lr, "loss": logged_loss}
                if config.final_weight_decay is not None:
                    row["weight_decay"] = wd
                row.update({k: _scalar(v) for k, v in out.items() if k != "loss"})
                history.steps.append(row)
                step_in_epoch += 1
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{row['loss']:.4f}")
            epoch_losses = [r["loss"] for r in history.steps if r["epoch"] == epoch]
            summary = {
                "epoch": epoch,
                "loss": _mean(epoch_losses),
                "lr": lr if steps_per_epoch else None,
                "seconds": time.perf_counter() - t0,
            }
            if on_epoch_end is not None:
                summary.update(on_epoch_end(epoch, method) or {})
                method.train()
            history.epochs.append(summary)
            epoch, step_in_epoch = epoch + 1, 0
            checkpoint()
    except KeyboardInterrupt:
        checkpoint()
        bar.close()
        if ckpt_path is not None:
            print(
                f"\ninterrupted: checkpoint saved to {ckpt_path}; call fit again with the same "
                "checkpoint_dir (CLI: the same --out and --resume) to continue"
            )
        raise
    bar.close()
    return history


class _Step(torch.nn.Module):
    """Calls ``training_step`` through ``forward``, so DistributedDataParallel can hook it."""

    def __init__(self, method: torch.nn.Module):
        super().__init__()
        self.method = method

    def forward(self, views, labels):
        return self.method.training_step(views, labels)


def _data_parallel(method: torch.nn.Module, device: torch.device, sync_bn: bool) -> torch.nn.Module:
    """Wrap for DDP: gradients are averaged over ranks during backward (SyncBN if asked)."""
    from torch.nn.parallel import DistributedDataParallel

    if sync_bn and device.type != "cuda":
        raise ValueError(
            "sync_bn needs CUDA devices (SyncBatchNorm runs on GPUs only): drop --sync-bn on CPU"
        )
    if sync_bn:
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(method)
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(_Step(method), device_ids=ids)


def _device_tensors(dataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = getattr(dataset, "images", None), getattr(dataset, "labels", None)
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        raise TypeError(
            "fit() needs a dataset with .images as a uint8 tensor N×C×H×W (see sslcookbook.data.load)"
        )
    if labels is None:
        labels = torch.full((images.shape[0],), -1, dtype=torch.long)
    return images.to(device), labels.to(device)


def _scalar(v):
    return v.detach().float().item() if isinstance(v, torch.Tensor) else v


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan
