"""Whole training runs side by side: this library's ``fit`` against lightly's own pipeline.

For each recipe (simclr, byol, dino) and each pipeline, one training run on the same data (CIFAR-10 as an
ImageFolder tree), the same backbone (the library's SmallCNN), the same batch (256), the same optimiser
(SGD, momentum 0.9, weight decay 5e-4, cosine to 0 over the run) and the same heads' sizes; reported:
images/s of the whole loop (views, forward, loss, backward, optimiser, EMA), peak memory, and the kNN
top-1 that each reaches within a wall-clock budget (train split as the memory bank, test split as the
queries, k = 200, τ = 0.1: lightly's benchmark protocol), beside the random-init and raw-pixel baselines.

Pipelines:
- ``lib``: ``sslcookbook.train.fit`` with today's defaults (fp32, one forward over both views).
- ``lib_fast``: the same with the speed settings: channels_last, bf16 autocast (where the CPU has native
  bf16), one forward per view on the CPU (``view_forward="auto"``) and, with ``--compile``, torch.compile.
- ``lightly``: lightly's transforms (PIL, in a 2-worker DataLoader over torchvision's ImageFolder), its
  heads, loss and momentum utilities, one forward per view, as in lightly's examples (fp32).

Each pipeline runs in a subprocess of its own (its peak RSS is its own). A calibration run on a
throw-away model (a tenth of the budget, at most 30 s) measures the sustained step rate (the mean over its
later half), so that the cosine schedule spans the budget; the run then stops at the budget
(``--budget-s``) or after ``--steps``. (Ten calibration steps over-planned the fast settings by 30–55% on
the 2-core CPU, so the cosine ended a third short of zero.) Timing starts at the first step's
views (the library) or the first batch out of the DataLoader (lightly): set-up and worker start-up are
not counted. Results: ``benchmarks/results/train_<device>_<recipes>.md`` and ``.json``, with the device,
the library versions, the date and the load average before and after each run.

As each run ends it prints its step throughput and the time of the published 200-epoch recipe on
CIFAR-10 (50,000 images) extrapolated from it: the first step (warm-up, torch.compile) once, then
200 × (50,000 // batch) steps at the steady step time. On a GPU, run a few steps of
``--device cuda --backbone resnet18_cifar --batch 512 --pipelines lib_fast --no-knn --steps 100`` first
(with ``--compile``, and ``--compile-mode reduce-overhead`` for CUDA graphs, the compiled step): a full
recipe run is worth the device time only when that estimate fits the budget.

    python benchmarks/bench_train.py /tmp/cifar10 --recipes simclr --budget-s 300   # the table
    python benchmarks/bench_train.py /tmp/cifar10 --recipes simclr --lib-view-size 24  # 24-px views
    python benchmarks/bench_train.py /tmp/cifar10 --recipes simclr byol dino --steps 20 --no-knn
    python benchmarks/bench_train.py /tmp/cifar10 --device cuda --steps 50 --no-knn --pipelines lib_fast
    python benchmarks/bench_train.py /tmp/cifar10 --profile        # one SimCLR step, where the time goes

The data: ``python /work/shared/data/cifar10/unpack.py /tmp/cifar10`` (the offline copy) or any
ImageFolder tree with train/ and test/. ``synthetic:N`` makes N random 3×32×32 images (tests only).
lightly is optional (``pip install -e '.[bench]'``): without it the lightly rows are skipped with a note.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import device_name  # noqa: E402

RECIPES = ("simclr", "byol", "dino")
PIPELINES = ("lib", "lib_fast", "lightly")
BATCH = 256  # --batch
WIDTH = 32  # SmallCNN width: 128-D features
BACKBONE = "small_cnn"  # --backbone: or resnet18_cifar (the full recipe's, 512-D features)
LR, MOMENTUM, WEIGHT_DECAY = 0.12, 0.9, 5e-4  # lightly's CIFAR-10 benchmark: 6e-2 × batch / 128; --lr
EMA_BASE = 0.99
# --lib-temperature, --lib-crop-min, --lib-view-size (library only). view_size: the side of the training
# views (a 24-px crop costs the fully convolutional SmallCNN about (24/32)² of a 32-px step); kNN is always
# scored on the full 32-px images.
LIB_RECIPE = {"temperature": 0.5, "crop_min": 0.08, "view_size": 32}
NUM_LOCAL, LOCAL_SIZE = 4, 16  # DINO's multi-crop: 2 global 32 px crops + 4 local 16 px crops
KNN_K, KNN_T = 200, 0.1
CALIBRATION_STEPS = 10  # at least this many steps are planned
CALIBRATION_MAX_S = 30.0  # calibration: a tenth of the budget, at most this
FULL_RUN_IMAGES, FULL_RUN_EPOCHS = 50_000, 200  # the published recipe: 200 epochs of CIFAR-10's train split
RESULTS = Path(__file__).resolve().parent / "results"


class _BudgetSpent(Exception):
    """Raised by the timed views when the wall-clock budget is spent: it ends ``fit`` between steps."""


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------


def load_split(data: str, split: str, cache: str):
    """The split as an ImageDataset (uint8 N×3×32×32 in memory)."""
    from sslcookbook import data as sdata

    if data.startswith("synthetic:"):
        n = int(data.split(":", 1)[1]) if split == "train" else max(BATCH, int(data.split(":", 1)[1]) // 4)
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
        classes = [str(i) for i in range(10)]
        return sdata.ImageDataset(images, torch.arange(n) % 10, classes, f"synthetic/{split}")
    return sdata.load(f"folder:{data}", split, root=cache)


# ------------------------------------------------------------------------------------------------
# the library's pipeline
# ------------------------------------------------------------------------------------------------


def new_backbone():
    from sslcookbook.models import SmallCNN, resnet18_cifar

    return SmallCNN(3, WIDTH) if BACKBONE == "small_cnn" else resnet18_cifar(3)


def library_method(recipe: str):
    from sslcookbook.methods import BYOL, DINO, SimCLR

    backbone = new_backbone()
    if recipe == "simclr":
        temperature = LIB_RECIPE["temperature"]
        return SimCLR(backbone, projector_hidden_dim=512, projector_dim=128, temperature=temperature)
    if recipe == "byol":
        return BYOL(backbone, 1024, 256, 1024, base_momentum=EMA_BASE)
    return DINO(
        backbone, out_dim=256, hidden_dim=512, bottleneck_dim=128, base_momentum=EMA_BASE, batch_norm=True
    )


def library_views(recipe: str):
    from sslcookbook.augment import preset

    crop, size = (LIB_RECIPE["crop_min"], 1.0), LIB_RECIPE["view_size"]  # crop_min: SimCLR and BYOL only
    if recipe == "simclr":
        return preset("simclr", (3, 32, 32), color_strength=0.5, blur=False, crop_scale=crop, size=size)
    if recipe == "byol":
        return preset("byol", (3, 32, 32), blur=False, crop_scale=crop, size=size)
    # DINO: global crops at the view size, local crops shrunk by the same factor (16 px at 32)
    local = max(1, round(LOCAL_SIZE * size / 32))
    return preset("multicrop", (3, 32, 32), num_local=NUM_LOCAL, local_size=local, size=size)


def fast_settings(device: torch.device, compile_backbone: bool, compile_mode: str | None = None) -> dict:
    bf16 = device.type == "cuda" or torch.ops.mkldnn._is_mkldnn_bf16_supported()
    settings = {"channels_last": True, "amp": bf16, "view_forward": "auto"}
    if compile_backbone:
        settings["compile"] = True
        if compile_mode is not None:  # TrainConfig.compile_mode, e.g. "reduce-overhead": CUDA graphs
            settings["compile_mode"] = compile_mode
    return settings


def run_library(recipe, train, steps, budget_s, device, settings, seed=0, batch=None):
    """Train with ``fit`` for ``steps`` steps (the cosine's length), stopping early at ``budget_s``."""
    from sslcookbook.train import TrainConfig, fit

    torch.manual_seed(seed)
    method = library_method(recipe)
    if "view_forward" in settings and not hasattr(method, "view_forward"):
        settings = {k: v for k, v in settings.items() if k != "view_forward"}  # DINO: its own forward
    batch = batch or BATCH
    per_epoch = len(train) // batch
    epochs = math.ceil(steps / per_epoch)
    config = TrainConfig(
        epochs=epochs,
        batch_size=batch,
        optimizer="sgd",
        lr=LR,
        momentum=MOMENTUM,
        weight_decay=WEIGHT_DECAY,
        max_steps_per_epoch=math.ceil(steps / epochs),
        log_every=50,
        seed=seed,
        **settings,
    )
    views, stamps = library_views(recipe), []

    def timed_views(images, generator=None):
        stamps.append(time.perf_counter())
        if budget_s is not None and stamps[-1] - stamps[0] > budget_s:
            raise _BudgetSpent
        return views(images, generator=generator)

    history = None
    try:
        history = fit(method, train, timed_views, config, device=device, progress=False)
        stamps.append(time.perf_counter())
    except _BudgetSpent:
        pass
    done = len(stamps) - 1
    losses = history.losses if history is not None else []
    return method.backbone, done, stamps, losses[-1] if losses else None


# ------------------------------------------------------------------------------------------------
# lightly's pipeline
# ------------------------------------------------------------------------------------------------


def lightly_available() -> str | None:
    try:
        import lightly  # noqa: F401
    except ImportError:
        return "lightly is not installed (pip install -e '.[bench]'): its rows are skipped"
    return None


def lightly_parts(recipe: str):
    """(transform, student modules, training function(views, step, total) -> loss, momentum pairs)."""
    from lightly.loss import DINOLoss, NegativeCosineSimilarity, NTXentLoss
    from lightly.models.modules import (
        BYOLPredictionHead,
        BYOLProjectionHead,
        DINOProjectionHead,
        SimCLRProjectionHead,
    )
    from lightly.models.utils import deactivate_requires_grad, update_momentum
    from lightly.transforms import (
        BYOLTransform,
        BYOLView1Transform,
        BYOLView2Transform,
        DINOTransform,
        SimCLRTransform,
    )
    from lightly.utils.scheduler import cosine_schedule

    backbone = new_backbone()  # the same CNN; it normalises [0, 1] inputs itself: no normalize
    d = backbone.feature_dim
    if recipe == "simclr":
        transform = SimCLRTransform(input_size=32, cj_strength=0.5, gaussian_blur=0.0, normalize=None)
        head, criterion = SimCLRProjectionHead(d, 512, 128), NTXentLoss(temperature=0.5)
        model = torch.nn.ModuleDict({"backbone": backbone, "head": head})

        def step(views, i, total):
            z0, z1 = (head(backbone(v)) for v in views)
            return criterion(z0, z1)

        return transform, model, step
    if recipe == "byol":
        transform = BYOLTransform(
            BYOLView1Transform(input_size=32, gaussian_blur=0.0, normalize=None),
            BYOLView2Transform(input_size=32, gaussian_blur=0.0, normalize=None),
        )
        projector, predictor = BYOLProjectionHead(d, 1024, 256), BYOLPredictionHead(256, 1024, 256)
        target_backbone, target_projector = copy.deepcopy(backbone), copy.deepcopy(projector)
        deactivate_requires_grad(target_backbone)
        deactivate_requires_grad(target_projector)
        criterion = NegativeCosineSimilarity()
        model = torch.nn.ModuleDict(
            {"backbone": backbone, "projector": projector, "predictor": predictor,
             "target_backbone": target_backbone, "target_projector": target_projector}
        )

        def step(views, i, total):
            m = cosine_schedule(i, total, EMA_BASE, 1.0)
            update_momentum(backbone, target_backbone, m)
            update_momentum(projector, target_projector, m)
            p0, p1 = (predictor(projector(backbone(v))) for v in views)
            with torch.no_grad():
                z0, z1 = (target_projector(target_backbone(v)) for v in views)
            return 0.5 * (criterion(p0, z1) + criterion(p1, z0))

        return transform, model, step
    transform = DINOTransform(
        global_crop_size=32, local_crop_size=LOCAL_SIZE, n_local_views=NUM_LOCAL,
        gaussian_blur=(0.0, 0.0, 0.0), normalize=None,
    )
    head = DINOProjectionHead(d, 512, 128, 256, batch_norm=True)
    target_head = DINOProjectionHead(d, 512, 128, 256, batch_norm=True)  # weight norm: no deepcopy
    target_head.load_state_dict(head.state_dict())
    target_backbone = copy.deepcopy(backbone)
    deactivate_requires_grad(target_backbone)
    deactivate_requires_grad(target_head)
    criterion = DINOLoss(output_dim=256, warmup_teacher_temp_epochs=0)
    model = torch.nn.ModuleDict(
        {"backbone": backbone, "head": head, "target_backbone": target_backbone, "target_head": target_head}
    )

    def step(views, i, total):
        m = cosine_schedule(i, total, EMA_BASE, 1.0)
        update_momentum(backbone, target_backbone, m)
        update_momentum(head, target_head, m)
        with torch.no_grad():
            teacher = [target_head(target_backbone(v)) for v in views[:2]]
        student = [head(backbone(v)) for v in views]
        return criterion(teacher, student, epoch=0)

    return transform, model, step


def run_lightly(recipe, data, steps, budget_s, device, seed=0, workers=2):
    import torchvision

    torch.manual_seed(seed)
    transform, model, train_step = lightly_parts(recipe)
    model.to(device)
    dataset = torchvision.datasets.ImageFolder(os.path.join(data, "train"), transform=transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=BATCH, shuffle=True, num_workers=workers, drop_last=True,
        persistent_workers=workers > 0, generator=torch.Generator().manual_seed(seed),
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    cosine = lambda i: 0.5 * (1 + math.cos(math.pi * i / steps))  # noqa: E731
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
    stamps, i, loss = [], 0, None
    model.train()
    while i < steps:
        for views, _ in loader:
            stamps.append(time.perf_counter())
            if i >= steps or (budget_s is not None and stamps[-1] - stamps[0] > budget_s):
                break
            views = [v.to(device, non_blocking=True) for v in views]
            loss = train_step(views, i, steps)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            i += 1
        else:
            continue
        break
    if len(stamps) == i:  # the last step's end
        stamps.append(time.perf_counter())
    return model["backbone"], i, stamps[: i + 1], None if loss is None else float(loss)


# ------------------------------------------------------------------------------------------------
# one pipeline, in its own process
# ------------------------------------------------------------------------------------------------


def knn_top1(backbone, train, test, device) -> float:
    from sslcookbook.evaluate import embed, knn_accuracy

    backbone = backbone.float()
    f_train = embed(backbone, train.images, batch_size=1024, device=device)
    f_test = embed(backbone, test.images, batch_size=1024, device=device)
    return knn_accuracy(f_train, train.labels, f_test, test.labels, k=KNN_K, temperature=KNN_T)


def rate_of(stamps: list[float]) -> float:
    """Steps per second from the step stamps, the first step (warm-up) left out."""
    gaps = [b - a for a, b in zip(stamps[1:], stamps[2:])] or [b - a for a, b in zip(stamps, stamps[1:])]
    gaps = gaps[len(gaps) // 2 :] if len(gaps) >= 4 else gaps  # the later half: allocator and oneDNN warm
    return 1.0 / sorted(gaps)[len(gaps) // 2]


def sustained_rate(stamps: list[float]) -> float:
    """Steps per second over the later half of the stamps, slow steps included (the rate a long run
    keeps, where :func:`rate_of`'s median is the typical step's)."""
    later = stamps[len(stamps) // 2 :]
    if len(later) < 2:
        later = stamps
    return (len(later) - 1) / (later[-1] - later[0])


def extrapolate(stamps: list[float], batch: int) -> dict:
    """A short run's step rate and the full recipe's time it predicts (FULL_RUN_EPOCHS epochs of
    FULL_RUN_IMAGES images, ``images // batch`` steps each, as ``fit`` drops the last partial batch): the
    first step once (warm-up, compilation), then every step at the steady rate of :func:`rate_of`."""
    first_step_s, step_s = stamps[1] - stamps[0], 1.0 / rate_of(stamps)
    steps = FULL_RUN_EPOCHS * (FULL_RUN_IMAGES // batch)
    return {
        "first_step_s": round(first_step_s, 3),
        "steps_per_s": round(1.0 / step_s, 2),
        "step_ms": round(1000 * step_s, 2),
        "full_run_steps": steps,
        "full_run_min": round((first_step_s + steps * step_s) / 60, 1),
    }


def run_line(row: dict) -> str:
    """One run's throughput and its extrapolated full-recipe time, as printed when the run ends."""
    if "error" in row:
        return f"{row['recipe']} / {row['pipeline']}: error {row['error']}"
    if "full_run_min" not in row:
        return f"{row['recipe']} / {row['pipeline']}: {row['images_per_s']} images/s"
    return (
        f"{row['recipe']} / {row['pipeline']}: {row['steps_per_s']} steps/s ({row['step_ms']} ms a step, "
        f"{row['steady_images_per_s']} images/s; first step {row['first_step_s']} s); "
        f"{FULL_RUN_EPOCHS} CIFAR-10 epochs ({row['full_run_steps']:,} steps) ≈ {row['full_run_min']} min, "
        "extrapolated"
    )


def peak_memory_mb(device: torch.device, workers: bool = False) -> dict:
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if workers:  # the DataLoader's worker processes (ended by then), the largest of them
        out["peak_rss_workers_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if device.type == "cuda":
        out["peak_cuda_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def worker(args) -> dict:
    device = torch.device(args.device)
    train = load_split(args.data, "train", args.cache)
    if args.pipeline == "lightly":
        def run(steps, budget):
            return run_lightly(args.recipe, args.data, steps, budget, device, workers=args.workers)
    else:
        fast = args.pipeline == "lib_fast"
        settings = fast_settings(device, args.compile, args.compile_mode) if fast else {}

        def run(steps, budget):
            return run_library(args.recipe, train, steps, budget, device, dict(settings))

    if args.budget_s is not None:  # calibrate the step rate on a throw-away model
        calibration_s = min(CALIBRATION_MAX_S, args.budget_s / 10)
        _, _, stamps, _ = run(1_000_000, calibration_s)
        planned = max(CALIBRATION_STEPS, int(args.budget_s * sustained_rate(stamps)))
    else:
        planned = args.steps
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    backbone, done, stamps, loss = run(planned, args.budget_s)
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = stamps[-1] - stamps[0]
    row = {
        "recipe": args.recipe,
        "pipeline": args.pipeline,
        "planned_steps": planned,
        "steps": done,
        "seconds": round(elapsed, 2),
        "images_per_s": round(done * BATCH / elapsed, 1) if elapsed > 0 else None,
        "steady_images_per_s": round(BATCH * rate_of(stamps), 1) if len(stamps) > 2 else None,
        "epochs": round(done * BATCH / len(train), 3),
        "last_loss": loss,
        **(extrapolate(stamps, BATCH) if len(stamps) >= 2 else {}),
        **{k: round(v, 1) for k, v in peak_memory_mb(device, args.pipeline == "lightly").items()},
    }
    if args.pipeline == "lib_fast":
        row["settings"] = fast_settings(device, args.compile, args.compile_mode)
    if args.knn:
        test = load_split(args.data, "test", args.cache)
        row["knn_top1"] = round(knn_top1(backbone, train, test, device), 4)
    return row


def baselines(args) -> dict:
    from sslcookbook.evaluate import knn_accuracy, raw_pixel_features

    train, test = load_split(args.data, "train", args.cache), load_split(args.data, "test", args.cache)
    torch.manual_seed(0)
    out = {"random_init": round(knn_top1(new_backbone(), train, test, torch.device(args.device)), 4)}
    out["raw_pixels"] = round(
        knn_accuracy(raw_pixel_features(train.images), train.labels, raw_pixel_features(test.images),
                     test.labels, k=KNN_K, temperature=KNN_T), 4,
    )
    return out


# ------------------------------------------------------------------------------------------------
# the profile of one SimCLR step
# ------------------------------------------------------------------------------------------------

OP_GROUPS = (
    ("convolution", ("conv", "mkldnn_convolution")),
    ("batch norm", ("batch_norm",)),
    ("linear / matmul", ("addmm", "aten::mm", "matmul", "linear", "bmm")),
    ("pooling", ("pool",)),
    ("activation", ("relu", "threshold")),
    ("views (augment ops)", ("grid_sampler", "affine_grid", "rand", "where", "clamp", "lerp", "div", "sub")),
    ("optimiser (foreach/SGD)", ("_foreach", "sgd")),
    ("loss (softmax, logsumexp, CE)", ("softmax", "logsumexp", "cross_entropy", "nll_loss")),
    ("copies / layout", ("copy_", "contiguous", "cat", "to", "clone", "empty")),
)


def profile(args) -> dict:
    from torch.profiler import ProfilerActivity, record_function
    from torch.profiler import profile as torch_profile

    from sslcookbook.optim import build_optimizer
    from sslcookbook.train import _nhwc

    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (BATCH, 3, 32, 32), dtype=torch.uint8, generator=g).to(device)
    views = library_views("simclr")
    configs = {
        "default (fp32, concat)": {},
        "channels_last": {"channels_last": True},
        "channels_last + split": {"channels_last": True, "view_forward": "split"},
        "channels_last + split + bf16": {"channels_last": True, "view_forward": "split", "amp": True},
        "channels_last + concat + bf16": {"channels_last": True, "amp": True},
    }
    if args.compile:  # inductor: minutes of compilation on a small CPU, in the two warm-up steps
        configs["channels_last + split + bf16 + compile"] = {
            "channels_last": True, "view_forward": "split", "amp": True, "compile": True
        }
    out = {}
    for name, s in configs.items():
        torch.manual_seed(0)
        method = library_method("simclr").to(device)
        if s.get("channels_last"):
            method.to(memory_format=torch.channels_last)
        method.view_forward = s.get("view_forward", "concat")
        if s.get("compile"):
            method.backbone.compile()
        optimizer = build_optimizer(method, "sgd", LR, WEIGHT_DECAY, MOMENTUM)
        stages = {k: [] for k in ("views", "forward + loss", "backward", "optimiser")}

        def step(i, s=s, method=method, optimizer=optimizer):
            t0 = time.perf_counter()
            with record_function("views"):
                vs = views(images, generator=torch.Generator(device=device).manual_seed(i))
                if s.get("channels_last"):
                    vs = [_nhwc(v) for v in vs]
            t1 = time.perf_counter()
            with record_function("forward + loss"), torch.autocast(device.type, torch.bfloat16,
                                                                   enabled=s.get("amp", False)):
                loss = method.training_step(vs)["loss"]
            t2 = time.perf_counter()
            with record_function("backward"):
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
            t3 = time.perf_counter()
            with record_function("optimiser"):
                optimizer.step()
            t4 = time.perf_counter()
            return t1 - t0, t2 - t1, t3 - t2, t4 - t3

        for i in range(2):
            step(i)  # warm-up: oneDNN primitives, allocator
        for i in range(2, 2 + args.profile_steps):
            for key, t in zip(stages, step(i)):
                stages[key].append(t)
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            step(99)
        totals = {grp: 0.0 for grp, _ in OP_GROUPS}
        totals["other aten ops"] = 0.0
        for ev in prof.key_averages():
            if not ev.key.startswith("aten::") and not ev.key.startswith("mkldnn"):
                continue
            t = ev.self_cpu_time_total / 1e6
            grp = next((g for g, keys in OP_GROUPS if any(k in ev.key for k in keys)), "other aten ops")
            totals[grp] += t
        profiled = sum(totals.values())
        medians = {k: sorted(v)[len(v) // 2] for k, v in stages.items()}
        step_s = sum(medians.values())
        out[name] = {
            "step_s": round(step_s, 4),
            "images_per_s": round(BATCH / step_s, 1),
            "stages_s": {k: round(v, 4) for k, v in medians.items()},
            "ops_self_cpu_s": {k: round(v, 4) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])},
            "ops_total_s": round(profiled, 4),
        }
        print(name, json.dumps(out[name]), flush=True)
    return out


# ------------------------------------------------------------------------------------------------
# the orchestrating process
# ------------------------------------------------------------------------------------------------


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("torchvision", "sslcookbook", "lightly"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def autogroup() -> str:
    """This process's scheduler group and its nice (Linux autogroup): with autogroups on, ``nice`` only
    ranks processes within a session; other sessions are ranked by their autogroup's nice."""
    try:
        return Path("/proc/self/autogroup").read_text().strip()
    except OSError:
        return "n/a"


def header(args) -> dict:
    return {
        "scheduler": autogroup(),
        "device": device_name() if args.device == "cpu" or torch.cuda.is_available() else args.device,
        "device_type": args.device,
        "torch_threads": torch.get_num_threads(),
        "cpu_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "versions": versions(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "data": args.data,
        "batch": BATCH,
        "backbone": f"SmallCNN(width={WIDTH})" if BACKBONE == "small_cnn" else BACKBONE,
        "optimiser": f"SGD lr {LR} momentum {MOMENTUM} wd {WEIGHT_DECAY}, cosine to 0",
        "library_recipe": dict(LIB_RECIPE),
        "knn": f"k={KNN_K}, T={KNN_T}, train split bank, test split queries",
        "budget_s": args.budget_s,
        "steps": args.steps if args.budget_s is None else None,
    }


def run_worker_process(args, recipe: str, pipeline: str) -> dict:
    cmd = [sys.executable, __file__, args.data, "--worker", "--recipe", recipe, "--pipeline", pipeline,
           "--device", args.device, "--cache", args.cache, "--workers", str(args.workers)]
    cmd += ["--budget-s", str(args.budget_s)] if args.budget_s is not None else ["--steps", str(args.steps)]
    cmd += ["--batch", str(BATCH), "--backbone", BACKBONE, "--lr", str(LR)]
    cmd += ["--lib-temperature", str(LIB_RECIPE["temperature"])]
    cmd += ["--lib-crop-min", str(LIB_RECIPE["crop_min"])]
    cmd += ["--lib-view-size", str(LIB_RECIPE["view_size"])]
    cmd += [] if args.knn else ["--no-knn"]
    cmd += ["--compile"] if args.compile else []
    cmd += ["--compile-mode", args.compile_mode] if args.compile_mode else []
    before, started = loadavg(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        return {"recipe": recipe, "pipeline": pipeline, "error": proc.stderr.strip().splitlines()[-1:]}
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row.update(load_before=before, load_after=loadavg(), wall_s=round(time.perf_counter() - started, 1))
    return row


def markdown(head: dict, rows: list[dict], base: dict | None, notes: list[str]) -> str:
    budget = f"{head['budget_s']:g} s budget" if head["budget_s"] is not None else f"{head['steps']} steps"
    lines = [
        f"# Training throughput and kNN at a fixed budget ({head['device']})",
        "",
        f"{head['date']}; torch {head['versions']['torch']}, torchvision {head['versions']['torchvision']}, "
        f"lightly {head['versions']['lightly']}; {head['torch_threads']} torch threads; CPU bf16: "
        f"{head['cpu_bf16']}. {head['backbone']}, batch {head['batch']}, {head['optimiser']}; {budget}; "
        f"kNN {head['knn']}. Data: {head['data']}. The library's recipe knobs (lib, lib_fast): "
        f"{json.dumps(head.get('library_recipe'))}; lightly: τ 0.5, crops from 0.08.",
        "",
        "| recipe | pipeline | images/s | steady images/s | steps | epochs | kNN top-1 | peak RSS MB "
        "| load avg before → after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['recipe']} | {r['pipeline']} | error: {r['error']} | | | | | | |")
            continue
        knn = f"{100 * r['knn_top1']:.1f}%" if "knn_top1" in r else "—"
        rss = f"{r['peak_rss_mb']:.0f}" + (f" (+ workers {r['peak_rss_workers_mb']:.0f})"
                                           if "peak_rss_workers_mb" in r else "")
        if "peak_cuda_allocated_mb" in r:
            rss += f"; CUDA {r['peak_cuda_allocated_mb']:.0f}"
        lines.append(
            f"| {r['recipe']} | {r['pipeline']} | {r['images_per_s']} | {r['steady_images_per_s']} | "
            f"{r['steps']} | {r['epochs']} | {knn} | {rss} | {r['load_before']} → {r['load_after']} |"
        )
    if base:
        lines += ["", "Baselines (same kNN protocol): random-init SmallCNN "
                  f"{100 * base['random_init']:.1f}%, "
                  f"raw pixels {100 * base['raw_pixels']:.1f}%."]
    fast = next((r.get("settings") for r in rows if r.get("settings")), None)
    if fast:
        lines += ["", f"`lib_fast` settings: `{json.dumps(fast)}` (TrainConfig fields)."]
    estimates = [r for r in rows if "full_run_min" in r]
    if estimates:
        lines += ["", f"Extrapolated {FULL_RUN_EPOCHS}-epoch CIFAR-10 runs ({FULL_RUN_IMAGES:,} images, this "
                  "backbone and batch): the first step once, then every step at the steady step time."]
        lines += [f"- {run_line(r)}" for r in estimates]
    lines += ["", f"Scheduler: this benchmark's session ran as `{head.get('scheduler')}` (Linux autogroup)."]
    lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _stem(out: str) -> Path:
    """``--out``: a bare name goes to benchmarks/results/, a path with a folder stays where it says."""
    path = Path(out)
    return RESULTS / path if path.parent == Path(".") else path


def main(argv=None) -> int:
    global BATCH, BACKBONE, LR
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", help="ImageFolder tree with train/ and test/ (or synthetic:N)")
    p.add_argument("--recipes", nargs="+", choices=RECIPES, default=["simclr"])
    p.add_argument("--pipelines", nargs="+", choices=PIPELINES, default=list(PIPELINES))
    p.add_argument("--budget-s", type=float, default=None, help="wall-clock budget per run (default 300)")
    p.add_argument("--steps", type=int, default=None, help="a fixed number of steps instead of a budget")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-knn", dest="knn", action="store_false")
    p.add_argument("--compile", action="store_true", help="lib_fast: torch.compile the backbone")
    p.add_argument("--compile-mode", choices=("default", "reduce-overhead", "max-autotune"), default=None,
                   help="with --compile: torch.compile's mode (reduce-overhead: CUDA graphs on a GPU)")
    p.add_argument("--workers", type=int, default=2, help="lightly's DataLoader workers")
    cache = os.environ.get("SSLCOOKBOOK_BENCH_CACHE", "/tmp/sslcookbook-bench-cache")
    p.add_argument("--cache", default=cache, help="where the decoded ImageFolder is cached")
    p.add_argument("--out", default=None, help="results stem; a bare name goes to results/")
    p.add_argument("--batch", type=int, default=BATCH, help="images per step (both pipelines)")
    p.add_argument("--backbone", choices=("small_cnn", "resnet18_cifar"), default=BACKBONE)
    p.add_argument("--lr", type=float, default=LR, help="SGD learning rate (both pipelines)")
    p.add_argument("--lib-temperature", type=float, default=LIB_RECIPE["temperature"], help="SimCLR τ (lib)")
    p.add_argument("--lib-crop-min", type=float, default=LIB_RECIPE["crop_min"], help="min crop area (lib)")
    p.add_argument(
        "--lib-view-size",
        type=int,
        default=LIB_RECIPE["view_size"],
        help="side of the training views (lib; DINO: of its global crops, local crops scaled alike)",
    )
    p.add_argument("--profile", action="store_true", help="profile one SimCLR step instead")
    p.add_argument("--profile-steps", type=int, default=3)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--recipe", default="simclr", help=argparse.SUPPRESS)
    p.add_argument("--pipeline", default="lib", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    BATCH, BACKBONE, LR = args.batch, args.backbone, args.lr
    LIB_RECIPE.update(
        temperature=args.lib_temperature, crop_min=args.lib_crop_min, view_size=args.lib_view_size
    )
    if args.budget_s is None and args.steps is None:
        args.budget_s = 300.0
    if args.worker:
        print(json.dumps(worker(args)), flush=True)
        return 0
    head = header(args)
    stem = _stem(args.out) if args.out else RESULTS / f"train_{args.device}_{'_'.join(args.recipes)}"
    if args.profile:
        head.update(load_before=loadavg())
        result = {"header": head, "profile": profile(args)}
        result["header"]["load_after"] = loadavg()
        stem = _stem(args.out) if args.out else RESULTS / f"profile_simclr_{args.device}"
        stem.parent.mkdir(parents=True, exist_ok=True)
        stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        stem.with_suffix(".md").write_text(profile_markdown(result))
        print(stem.with_suffix(".md").read_text())
        return 0
    notes, pipelines = [], list(args.pipelines)
    missing = lightly_available() if "lightly" in pipelines else None
    if missing:
        print(missing, file=sys.stderr)
        notes.append(missing)
        pipelines.remove("lightly")
    rows = []
    for recipe in args.recipes:
        for pipeline in pipelines:
            print(f"{recipe} / {pipeline} ...", file=sys.stderr, flush=True)
            rows.append(run_worker_process(args, recipe, pipeline))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            print(run_line(rows[-1]), flush=True)  # before the next run: does a full run fit the budget?
    base = baselines(args) if args.knn else None
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps({"header": head, "rows": rows, "baselines": base,
                                                     "notes": notes}, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(head, rows, base, notes))
    print(stem.with_suffix(".md").read_text())
    return 0


def profile_markdown(result: dict) -> str:
    head, prof = result["header"], result["profile"]
    lines = [
        f"# One SimCLR step, where the time goes ({head['device']})",
        "",
        f"{head['date']}; torch {head['versions']['torch']}; {head['torch_threads']} threads; CPU bf16: "
        f"{head['cpu_bf16']}; {head['backbone']}, batch {head['batch']} (2 × {head['batch']} views), "
        f"projector 512 → 128. Load average {head['load_before']} → {head['load_after']}. Stage times: "
        "median of the timed steps (wall clock); op groups: self CPU time of the aten ops in one profiled "
        "step (torch.profiler; the profiler's own overhead included), so they add up to about the step.",
        "",
        "| setting | step s | images/s | " + " | ".join(next(iter(prof.values()))["stages_s"]) + " |",
        "|---|---|---|" + "---|" * len(next(iter(prof.values()))["stages_s"]),
    ]
    for name, r in prof.items():
        lines.append(f"| {name} | {r['step_s']} | {r['images_per_s']} | "
                     + " | ".join(f"{v}" for v in r["stages_s"].values()) + " |")
    for name, r in prof.items():
        lines += ["", f"**{name}**: aten ops {r['ops_total_s']} s of self CPU time; "
                  + ", ".join(f"{k} {v}" for k, v in r["ops_self_cpu_s"].items() if v > 0.0005)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
