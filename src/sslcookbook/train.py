"""The trainer: ``fit(method, dataset, views, config)``.

One loop for every method: batches of uint8 images move to the device once, views are made there in
batches, ``method.training_step`` returns the loss, the optimiser steps on a warm-up + cosine
schedule, ``method.after_step`` updates momentum encoders; ``method.before_epoch`` sees each epoch's
start (DeepCluster v2 clusters there), a method with ``uses_indices`` gets each batch's rows in the
data set, and one with ``uses_text`` (CLIP, SigLIP) the caption token ids of a paired data set's rows.
The step rows stay on the device and reach the host every ``log_every`` steps, so nothing
waits for the GPU in between; with ``knn_every`` the kNN monitor (``monitor.py``) scores the features
on held-out images every few epochs. Checkpoints are written atomically after every epoch (and on
Ctrl-C) and resume exactly: the batch order of epoch e comes from a generator seeded with (seed, e)
and the views of step t from one seeded with (seed, t), so nothing depends on how many times the run
was stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import distributed
from .monitor import KNNMonitor
from .optim import Schedule, build_optimizer
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
    log_every: int = 25  # steps between host syncs: step rows (and the non-finite check) land then
    knn_every: int = 0  # kNN top-1 on held-out images every this many epochs and after the last; 0: off
    knn_samples: int = 1000  # images in the kNN monitor's memory bank, and as many queries
    # Speed settings (benchmarks/bench_train.py measures them; off by default, the results unchanged):
    channels_last: bool = False  # conv weights and views in NHWC (oneDNN's and cuDNN's fast layout)
    view_forward: str | None = None  # two-view methods: "concat", "split" or "auto" (TwoViewMethod)
    compile: bool | str = False  # torch.compile the backbone (compile_backbone); True: inductor; a backend
    # torch.compile's mode, used when compile is on (COMPILE_MODES): None or "default" (fuse kernels);
    # "reduce-overhead": also CUDA graphs on a GPU, replaying each step's kernel launches, which needs static
    # shapes (fit's batches all have batch_size rows; compile one more graph per new view size), more
    # memory, and nothing to gain on a CPU; "max-autotune": also benchmarks tile choices for the matmuls and
    # convolutions while compiling (minutes) and uses CUDA graphs on a GPU. Not measured on a GPU here yet.
    compile_mode: str | None = None

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


def _epoch_order(seed: int, epoch: int, n: int, device: torch.device) -> torch.Tensor:
    """The permutation of the ``n`` images that epoch ``epoch`` reads its batches from."""
    return torch.randperm(n, generator=_seeded(seed, 0, epoch, torch.device("cpu"))).to(device)


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
    monitor_data=None,
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
        monitor_data: labelled images whose kNN top-1 the monitor reports (``config.knn_every``), e.g.
            the test split; by default a seeded part of ``dataset`` disjoint from the memory bank.
    Returns:
        the ``History`` (also stored in the checkpoint).
    """
    config = (config or TrainConfig()).replace(**overrides)
    if getattr(dataset, "streaming", False):  # shards: streamed per batch, the loop of data/shards.py
        from .data.shards import fit_streaming

        return fit_streaming(
            method, dataset, views, config, device=device, checkpoint_dir=checkpoint_dir, resume=resume,
            progress=progress, on_epoch_end=on_epoch_end, meta=meta, monitor_data=monitor_data,
        )  # fmt: skip
    device = default_device(device)
    images, labels = _device_tensors(dataset, device)
    world, rank = distributed.world_size(), distributed.rank()
    plan = _Plan.of(config, images.shape[0], world)
    monitor = KNNMonitor.of(dataset, monitor_data, config) if config.knn_every else None
    method.to(device)
    _apply_speed_settings(method, config, device)
    indexed = getattr(method, "uses_indices", False)  # one memory slot per image: the bank's size first
    tokens = _device_tokens(dataset, method, device) if getattr(method, "uses_text", False) else None
    if indexed:
        method.set_num_instances(images.shape[0])
    step_module = _data_parallel(method, device, config.sync_bn) if world > 1 else _Step(method)
    optimizer, schedule = _optimizer_and_schedule(method, config, plan)
    ckpt_path = Path(checkpoint_dir) / "last.pt" if checkpoint_dir is not None else None
    history, epoch, step_in_epoch = _resume(ckpt_path if resume else None, method, optimizer, device)
    log = _StepLog(history, config.log_every)
    use_amp = device.type == "cuda" if config.amp is None else config.amp  # bf16 autocast

    def checkpoint() -> None:
        log.flush()  # a checkpoint holds every step row so far, all of them on the host
        if ckpt_path is not None and rank == 0:
            state = _checkpoint_state(method, optimizer, history, epoch, step_in_epoch, config, meta)
            save_checkpoint(ckpt_path, state)

    bar = _progress_bar(method, plan, epoch * plan.steps_per_epoch + step_in_epoch, progress and rank == 0)
    try:
        while epoch < config.epochs:
            method.train()
            if hasattr(method, "before_epoch"):  # e.g. DeepCluster v2 fills its memory bank and clusters it
                method.before_epoch(epoch, images, seed=config.seed)
            order, started = _epoch_order(config.seed, epoch, images.shape[0], device), time.perf_counter()
            while step_in_epoch < plan.steps_per_epoch:
                step = epoch * plan.steps_per_epoch + step_in_epoch
                # schedule: this step's learning rate (and weight decay)
                scheduled = schedule.apply(step)
                # batch: this rank's share of the step's slice of the epoch's permutation
                idx = order[plan.rows(step_in_epoch, rank)]
                # views: augmented on the device, from a generator seeded with the step and rank
                view_generator = _seeded(config.seed, 1, step * world + rank, device)
                batch_views = views(images[idx], generator=view_generator)
                # loss, backward, optimiser step, then the EMA targets follow (see optimise_step)
                captions = None if tokens is None else tokens[idx]
                out = optimise_step(
                    step_module, method, optimizer, config, batch_views, labels[idx],
                    idx if indexed else None, captions, use_amp, (step + 1) / plan.total_steps,
                )  # fmt: skip
                # log: the row keeps its tensors on the device until the next sync
                log.append({"epoch": epoch, "step": step, **scheduled}, out)
                step_in_epoch += 1
                bar.update(1)
                if log.due(step):
                    log.flush()
                    _show(bar, history)
            # epoch end: sync the rows, summarise, monitor, checkpoint
            end_epoch(method, history, log, bar, epoch, started, monitor, on_epoch_end)
            epoch, step_in_epoch = epoch + 1, 0
            checkpoint()
    except KeyboardInterrupt:
        checkpoint()
        bar.close()
        _say_how_to_resume(ckpt_path)
        raise
    bar.close()
    return history


@dataclass(frozen=True)
class _Plan:
    """How the data splits into steps: ``steps_per_epoch`` batches of ``batch_size`` images, each rank
    taking ``local_batch`` of them; ``warmup_steps`` of the ``total_steps`` warm the learning rate up."""

    batch_size: int
    local_batch: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int

    @classmethod
    def of(cls, config: TrainConfig, n: int, world: int) -> _Plan:
        _check_config(config)
        if n < config.batch_size:
            raise ValueError(
                f"the dataset has {n} images, fewer than one batch (batch_size={config.batch_size}): "
                f"set batch_size to at most {n} (fit(..., batch_size={n}); CLI: --set train.batch_size={n}) "
                "or train on more images"
            )
        if config.batch_size % world:
            lower = config.batch_size // world * world
            raise ValueError(
                f"batch_size={config.batch_size} must be divisible by the number of processes ({world}): "
                f"use a multiple of {world}, e.g. {lower or world} or {lower + world}"
            )
        steps = n // config.batch_size
        if config.max_steps_per_epoch:
            steps = min(steps, config.max_steps_per_epoch)
        warmup = round(config.warmup_epochs * steps)
        return cls(config.batch_size, config.batch_size // world, steps, config.epochs * steps, warmup)

    def rows(self, step_in_epoch: int, rank: int) -> slice:
        """Where this rank's images of the step sit in the epoch's permutation."""
        start = step_in_epoch * self.batch_size + rank * self.local_batch
        return slice(start, start + self.local_batch)


def optimise_step(
    step_module,
    method,
    optimizer,
    config: TrainConfig,
    batch_views,
    labels,
    indices,
    captions,
    use_amp: bool,
    progress: float,
) -> dict:
    """One training step on a batch of views, shared by ``fit`` and the streaming loop
    (``data/shards.py``): the loss under bf16 autocast when ``use_amp`` (DDP averages the gradients over
    ranks in backward), gradient clipping, the optimiser step, then ``method.after_step(progress)``, where
    momentum encoders follow the online ones. Returns the method's output dict."""  # fmt: skip
    if config.channels_last:
        batch_views = [as_channels_last(v) for v in batch_views]
    with torch.autocast(batch_views[0].device.type, dtype=torch.bfloat16, enabled=use_amp):
        out = step_module(batch_views, labels, indices, captions)
    optimizer.zero_grad(set_to_none=True)
    out["loss"].backward()
    if config.grad_clip:
        torch.nn.utils.clip_grad_norm_(method.parameters(), config.grad_clip)
    optimizer.step()
    if hasattr(method, "after_step"):
        method.after_step(progress)
    return out


def end_epoch(method, history: History, log, bar, epoch: int, started: float, monitor, on_epoch_end) -> None:
    """The end of an epoch, shared by ``fit`` and the streaming loop: sync the step rows, summarise the
    epoch, add the kNN monitor's and ``on_epoch_end``'s metrics, append the row and show it."""
    log.flush()
    summary = _epoch_row(history, epoch, started)
    if monitor is not None and monitor.due(epoch):
        summary["knn"] = monitor(method)
    if on_epoch_end is not None:
        summary.update(on_epoch_end(epoch, method) or {})
        method.train()
    history.epochs.append(summary)
    _show(bar, history)


COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune")


def _check_config(config: TrainConfig) -> None:
    if config.compile_mode not in COMPILE_MODES:
        raise ValueError(
            f"compile_mode must be one of {', '.join(map(repr, COMPILE_MODES))} (torch.compile's modes), got "
            f"{config.compile_mode!r}: e.g. fit(..., compile=True, compile_mode='reduce-overhead'); CLI: "
            "--set train.compile_mode=reduce-overhead"
        )
    if config.final_weight_decay is not None and config.final_weight_decay < 0:
        raise ValueError(f"final_weight_decay must be >= 0, got {config.final_weight_decay}")
    for name in ("batch_size", "log_every", "knn_samples"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.knn_every < 0:
        raise ValueError(f"knn_every must be >= 0 (0 turns the kNN monitor off), got {config.knn_every}")


def _apply_speed_settings(method: torch.nn.Module, config: TrainConfig, device: torch.device) -> None:
    """``channels_last``, ``view_forward`` and ``compile`` (with ``compile_mode``) of ``config``, applied to
    ``method`` in place."""
    if config.channels_last:
        method.to(memory_format=torch.channels_last)  # 4-D weights only; the rest is unchanged
    if config.view_forward is not None:
        if not hasattr(method, "view_forward"):
            raise ValueError(
                f"view_forward={config.view_forward!r} is for two-view methods (TwoViewMethod); "
                f"{type(method).__name__} has its own forward: leave view_forward unset"
            )
        method.view_forward = config.view_forward
    if config.compile:
        backend = "inductor" if config.compile is True else config.compile
        compile_backbone(method.backbone, backend, config.compile_mode)
    use_amp = device.type == "cuda" if config.amp is None else config.amp
    if use_amp and device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        warnings.warn(
            "amp=True on a CPU without native bf16 (AVX512-BF16 or AMX): autocast will be slower than "
            "fp32 here; set amp=False",
            stacklevel=3,
        )


def compile_backbone(backbone: torch.nn.Module, backend: str = "inductor", mode: str | None = None) -> None:
    """``torch.compile`` a backbone in place (its state dict keeps its keys). A transformer with an
    ``encode`` token path (the ViT, the sequence transformer) has each of its blocks compiled instead of
    its ``forward``: the masked and JEPA methods call ``embed_patches`` and ``encode``, never ``forward``,
    so a compiled ``forward`` would leave them eager. Compiling the repeated block ("regional
    compilation") reaches both paths, and its graph is built once and reused by every block."""
    blocks = getattr(backbone, "blocks", None)
    if hasattr(backbone, "encode") and isinstance(blocks, torch.nn.ModuleList):
        for block in blocks:
            block.compile(backend=backend, mode=mode)
    else:
        backbone.compile(backend=backend, mode=mode)


def as_channels_last(view: torch.Tensor) -> torch.Tensor:
    """A 4-D view in NHWC memory order (the layout ``channels_last`` trains in); other tensors as they are."""
    return view.contiguous(memory_format=torch.channels_last) if view.dim() == 4 else view


def _optimizer_and_schedule(
    method, config: TrainConfig, plan: _Plan
) -> tuple[torch.optim.Optimizer, Schedule]:
    optimizer = build_optimizer(
        method,
        config.optimizer,
        config.lr,
        config.weight_decay,
        config.momentum,
        lars_eta=config.lars_eta,
        lars_clip=config.lars_clip,
    )
    schedule = Schedule(
        optimizer,
        plan.total_steps,
        plan.warmup_steps,
        config.lr,
        config.final_lr,
        config.weight_decay,
        config.final_weight_decay,
    )
    return optimizer, schedule


def _resume(path: Path | None, method, optimizer, device) -> tuple[History, int, int]:
    """Load the checkpoint at ``path`` (if there is one) into ``method`` and ``optimizer``;
    return the history and where to continue (epoch, step in the epoch)."""
    if path is None or not path.exists():
        return History(), 0, 0
    state = load_checkpoint(path, map_location=device)
    method.load_state_dict(state["method"])
    optimizer.load_state_dict(state["optimizer"])
    if "torch_rng" in state:
        torch.set_rng_state(state["torch_rng"])
    return History(**state["history"]), state["epoch"], state["step_in_epoch"]


def _say_how_to_resume(ckpt_path: Path | None) -> None:
    if ckpt_path is not None:
        print(
            f"\ninterrupted: checkpoint saved to {ckpt_path}; call fit again with the same "
            "checkpoint_dir (CLI: the same --out and --resume) to continue"
        )


def _checkpoint_state(method, optimizer, history: History, epoch, step_in_epoch, config, meta) -> dict:
    return {
        "method": method.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": history.to_dict(),
        "epoch": epoch,
        "step_in_epoch": step_in_epoch,
        "config": dataclasses.asdict(config),
        "torch_rng": torch.get_rng_state(),
        "meta": meta or {},
    }


class _StepLog:
    """Step rows whose tensors stay on the device until ``flush``: one host sync every ``log_every``
    steps (and at epoch ends, checkpoints and Ctrl-C) instead of one per step."""

    def __init__(self, history: History, every: int):
        self.history, self.every, self.pending = history, every, []

    def append(self, row: dict, out: dict) -> None:
        loss = out["loss"].detach()
        logged = {k: _deferred(v, loss.device) for k, v in out.items() if k != "loss"}
        self.pending.append({**row, "loss": loss, **logged})

    def due(self, step: int) -> bool:
        return (step + 1) % self.every == 0

    def flush(self) -> None:
        """Move the pending rows to ``history.steps`` with floats (the loss averaged over ranks), in
        one transfer; raise FloatingPointError at the first non-finite loss."""
        if not self.pending:
            return
        rows = [dict(row) for row in self.pending]
        losses = distributed.all_reduce_mean(torch.stack([row["loss"] for row in rows]))
        for row, loss in zip(rows, losses):
            row["loss"] = loss
        slots = [(row, key) for row in rows for key, value in row.items() if isinstance(value, torch.Tensor)]
        for (row, key), value in zip(slots, torch.cat([row[key].reshape(1) for row, key in slots]).tolist()):
            row[key] = value
        self.history.steps.extend(rows)
        self.pending = []
        bad = next((row for row in rows if not math.isfinite(row["loss"])), None)
        if bad is not None:
            raise FloatingPointError(
                f"loss became {bad['loss']} at step {bad['step']} (epoch {bad['epoch']}): lower the "
                "learning rate or enable gradient clipping (grad_clip)"
            )


def _deferred(value, device: torch.device):
    """A logged value as it waits for the next sync: device tensors detached, anything else as a float."""
    if not isinstance(value, torch.Tensor):
        return value
    value = value.detach()
    return value if value.device == device else value.float().item()


def _epoch_row(history: History, epoch: int, started: float) -> dict:
    rows = [row for row in history.steps if row["epoch"] == epoch]
    return {
        "epoch": epoch,
        "loss": sum(row["loss"] for row in rows) / len(rows) if rows else math.nan,
        "lr": rows[-1]["lr"] if rows else None,
        "seconds": time.perf_counter() - started,
    }


def _progress_bar(method, plan: _Plan, done: int, enabled: bool):
    name = type(method).__name__
    return tqdm(
        total=plan.total_steps, initial=done, disable=not enabled, desc=name, unit="step", dynamic_ncols=True
    )


def _show(bar, history: History) -> None:
    """The latest synced loss (and kNN top-1, when monitored) on the progress bar."""
    shown = {}
    if history.steps:
        shown.update(epoch=history.steps[-1]["epoch"], loss=f"{history.steps[-1]['loss']:.4f}")
    if history.epochs and "knn" in history.epochs[-1]:
        shown["knn"] = f"{history.epochs[-1]['knn']:.3f}"
    bar.set_postfix(shown)


class _Step(torch.nn.Module):
    """Calls ``training_step`` through ``forward``, so DistributedDataParallel can hook it."""

    def __init__(self, method: torch.nn.Module):
        super().__init__()
        self.method = method

    def forward(self, views, labels, indices=None, tokens=None):
        extra = {} if indices is None else {"indices": indices}
        if tokens is not None:  # the captions of the batch's images (``uses_text``)
            extra["tokens"] = tokens
        return self.method.training_step(views, labels, **extra)


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
    """The data set's images and labels (-1 where it has none) on ``device``, after checking them."""
    images, labels = getattr(dataset, "images", None), getattr(dataset, "labels", None)
    fix = "load one with sslcookbook.data.load or wrap tensors in sslcookbook.data.ImageDataset"
    if not isinstance(images, torch.Tensor):
        got = "no .images" if images is None else f".images of type {type(images).__name__}"
        raise TypeError(f"fit() needs a dataset with .images, a uint8 tensor N×C×H×W; got {got}: {fix}")
    if images.dim() != 4:
        raise ValueError(f"dataset.images must be N×C×H×W, got shape {tuple(images.shape)}: {fix}")
    if images.dtype != torch.uint8:
        has_nan = images.is_floating_point() and bool(images.isnan().any())
        nan = ", and they hold NaN values (fix those first)" if has_nan else ""
        raise TypeError(
            f"fit() needs uint8 images (0..255), got {images.dtype}{nan}: convert floats in [0, 1] with "
            "(images * 255).round().clamp(0, 255).to(torch.uint8); the views make floats on the device"
        )
    if images.shape[0] == 0:
        raise ValueError(f"the dataset is empty (0 images): {fix}")
    if labels is None:
        labels = torch.full((images.shape[0],), -1, dtype=torch.long)
    if not isinstance(labels, torch.Tensor) or labels.shape[:1] != images.shape[:1]:
        raise ValueError(
            f"dataset.labels must be a tensor with one label per image ({images.shape[0]}), "
            f"got {tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__}"
        )
    return images.to(device), labels.to(device)


def _device_tokens(dataset, method, device: torch.device) -> torch.Tensor:
    """The caption token ids (int64 N×L) of a paired data set on ``device``, for a ``uses_text`` method."""
    tokens, images = getattr(dataset, "tokens", None), dataset.images
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(
            f"{type(method).__name__} learns from captions, but the data set has no .tokens: train it on a "
            "paired data set (data.load('shape_pairs'), 'digit_pairs' or 'pairs:<path>'; a PairedDataset)"
        )
    if tokens.dim() != 2 or tokens.shape[0] != images.shape[0] or tokens.is_floating_point():
        raise ValueError(
            f"dataset.tokens must be integer token ids N×L with one row per image ({images.shape[0]}), "
            f"got {tokens.dtype} of shape {tuple(tokens.shape)}"
        )
    return tokens.to(device)
