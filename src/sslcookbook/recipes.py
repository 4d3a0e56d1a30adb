"""Named recipes: a method, its views, backbone, optimiser and hyper-parameters for each profile.

Each recipe is a table: one ``Setting`` per profile, built from a few named shared pieces (the digits
training settings, the CIFAR-10 schedule, the head sizes). Notebooks, recipe cards and the CLI read
hyper-parameters from here and never keep a second copy; ``settings.py`` says what a setting holds and
how ``--set`` overrides resolve it.
"""

from __future__ import annotations

import dataclasses

from .methods import (
    BYOL,
    DCL,
    DINO,
    NNCLR,
    InstanceDiscrimination,
    Jigsaw,
    MoCoV2,
    MoCoV3,
    RelativePosition,
    RotationPrediction,
    SimCLR,
    SimSiam,
    SupCon,
)
from .methods.clustering import DeepClusterV2, SwAV
from .methods.jepa import IJEPA, Data2Vec
from .methods.language_image import CLIP, SigLIP
from .methods.masked import MAE, SimMIM
from .methods.redundancy import WMSE, BarlowTwins, VICReg
from .settings import RECIPES, Recipe, Resolved, Setting, get_recipe, list_recipes, override_keys, register
from .train import TrainConfig

__all__ = [
    "RECIPES",
    "Recipe",
    "Resolved",
    "Setting",
    "get_recipe",
    "list_recipes",
    "override_keys",
    "register",
]

# --------------------------------------------------------------------------------------------------
# Shared pieces: smoke and cpu train a small CNN on the 8×8 digits, gpu a wider small CNN on 10,000
# CIFAR-10 images (a classroom GPU), full the CIFAR ResNet-18 on all of CIFAR-10 (the published recipe)
# --------------------------------------------------------------------------------------------------


def on_digits(width: int, train: TrainConfig, views: str, method_kwargs: dict, **setting) -> Setting:
    """The small CNN of ``width`` channels on the 8×8 scikit-learn digits (smoke: 16, cpu: 32)."""
    return Setting(
        data="digits",
        backbone="small_cnn",
        backbone_kwargs={"width": width},
        train=dataclasses.replace(train),
        views=views,
        method_kwargs=dict(method_kwargs),
        **setting,
    )


# The classroom profile (gpu): CIFAR-10 downloaded on first use, a 64-channel small CNN, 10,000 training
# images (stratified), 15 epochs: sized for several runs per notebook in ≤ 10 minutes on a T4-class GPU.
# Not yet run end to end on such a GPU: the notebooks' gpu checks assert only that a method beats both
# baselines until it is measured.
CLASSROOM_IMAGES = 10_000


def on_cifar10_classroom(train: TrainConfig, views: str, method_kwargs: dict, **setting) -> Setting:
    """The 64-channel small CNN on 10,000 CIFAR-10 training images (the gpu profile: a classroom GPU)."""
    return Setting(
        data="cifar10",
        backbone="small_cnn",
        backbone_kwargs={"width": 64},
        train=dataclasses.replace(train),
        views=views,
        method_kwargs=dict(method_kwargs),
        train_subset=CLASSROOM_IMAGES,
        **setting,
    )


def on_cifar10(train: TrainConfig, views: str, method_kwargs: dict, **setting) -> Setting:
    """The CIFAR variant of ResNet-18 on CIFAR-10 (the full profile: the published recipe)."""
    return Setting(
        data="cifar10",
        backbone="resnet18_cifar",
        train=train,
        views=views,
        method_kwargs=method_kwargs,
        **setting,
    )


def cifar_schedule(optimizer: str, lr: float, weight_decay: float, **changes) -> TrainConfig:
    """The published CIFAR-10 schedule the full profiles share: batch 512, 200 epochs, 10 warm-up."""
    base = TrainConfig(
        epochs=200, batch_size=512, optimizer=optimizer, lr=lr, weight_decay=weight_decay, warmup_epochs=10
    )
    return dataclasses.replace(base, **changes)


# The laptop setting of the contrastive family: AdamW on the digits; smoke runs 3 short epochs of it.
# channels_last (NHWC convolutions, fp32, the same BatchNorm statistics) trains the cpu profile 1.34×
# (SimCLR), 1.21× (DINO) and 1.20× (BYOL) faster at the same accuracy on a 2-core CPU
# (benchmarks/results/cpu_settings_cpu_amd_layout.md); bf16 and per-view forwards stay opt-in.
DIGITS_TRAIN = TrainConfig(
    epochs=60,
    batch_size=256,
    optimizer="adamw",
    lr=2e-3,
    weight_decay=1e-4,
    warmup_epochs=2,
    seed=0,
    channels_last=True,
)
DIGITS_SMOKE_TRAIN = dataclasses.replace(DIGITS_TRAIN, epochs=3, batch_size=128, warmup_epochs=1)

# The digits setting of the self-distillation family: SGD with momentum, SimSiam's weight decay 5e-4 and
# small batches. These methods need many steps more than big batches; on the digits AdamW at batch 256
# gave clearly worse features in the same time.
DISTILLATION_DIGITS_TRAIN = dataclasses.replace(
    DIGITS_TRAIN, batch_size=64, optimizer="sgd", lr=0.05, weight_decay=5e-4, epochs=40
)
DISTILLATION_SMOKE_TRAIN = dataclasses.replace(DISTILLATION_DIGITS_TRAIN, epochs=3, warmup_epochs=1)

# The classroom (gpu) schedules: the digits settings for 15 epochs; the distillation family at batch 128
# with its learning rate scaled linearly from batch 64.
CLASSROOM_TRAIN = dataclasses.replace(DIGITS_TRAIN, epochs=15, warmup_epochs=1)
CLASSROOM_DISTILLATION_TRAIN = dataclasses.replace(
    DISTILLATION_DIGITS_TRAIN, epochs=15, batch_size=128, lr=0.1, warmup_epochs=1
)

# Projection heads of the contrastive family: on the digits (smoke), the digits and the classroom CIFAR-10
# (cpu, gpu) and SimCLR's on CIFAR-10 (full).
SMOKE_HEAD = {"projector_hidden_dim": 128, "projector_dim": 64}
CPU_HEAD = {"projector_hidden_dim": 512, "projector_dim": 128}
CIFAR_HEAD = {"projector_hidden_dim": 2048, "projector_dim": 128}

# SimCLR's views on CIFAR-10, from the official CIFAR-10 command (google-research/simclr README:
# `--color_jitter_strength=0.5 --use_blur=False`): colour strength 0.5, no blur at 32 px. MoCo's
# official CIFAR-10 demo uses the same jitter (0.4, 0.4, 0.4, 0.1) without blur. The gpu and full
# profiles' views follow it.
SIMCLR_CIFAR_VIEWS = {"color_strength": 0.5, "blur": False}


# --------------------------------------------------------------------------------------------------
# Pretext tasks (methods/pretext.py): one view per image; the transformation is the method's own
# --------------------------------------------------------------------------------------------------

# One digits view per image (the pretext methods read the first view only).
DIGITS_ONE_VIEW = {"num_views": 1}
# The cpu profile trains the pretext tasks for 20 epochs, notebook 01's protocol. Longer is not better for
# all of them: instance discrimination at the contrastive family's 60 epochs gave probe@1 61.4% on the test
# split against 76.6% at 20 (2026-12-01).
PRETEXT_DIGITS_TRAIN = dataclasses.replace(DIGITS_TRAIN, epochs=20)
# On CIFAR-10 the three transformation tasks take crops and flips without colour distortion (Gidaris et
# al. train RotNet on CIFAR with crops and flips only; the colour of a rotated or shuffled image is no
# shortcut to its label). The simclr preset's colour jitter is off (color_strength 0); its grayscale (p 0.2)
# stays. It makes two views; the methods read the first.
PRETEXT_CIFAR_VIEWS = {"crop_scale": (0.5, 1.0), "color_strength": 0.0, "blur": False}

# RotNet (Gidaris et al. 2018) on CIFAR-10: SGD, lr 0.1, momentum 0.9, weight decay 5e-4, batch 128 images
# (each seen at its 4 rotations: 512 rotated images per step), 4 rotations. Here on the CIFAR ResNet-18 for
# 200 epochs with the cosine schedule, the paper's 100 epochs in steps being the original. The digits
# profiles train each image at its 4 rotations.
register(
    Recipe(
        "rotation",
        "Rotation prediction: classify the angle, 0/90/180/270° (Gidaris, Singh & Komodakis 2018)",
        RotationPrediction,
        settings={
            "smoke": on_digits(
                width=16,
                train=DIGITS_SMOKE_TRAIN,
                views="digits",
                view_kwargs=DIGITS_ONE_VIEW,
                method_kwargs={"hidden_dim": 128},
            ),
            "cpu": on_digits(
                width=32,
                train=PRETEXT_DIGITS_TRAIN,
                views="digits",
                view_kwargs=DIGITS_ONE_VIEW,
                method_kwargs={"hidden_dim": 256},
            ),
            "gpu": on_cifar10_classroom(
                CLASSROOM_TRAIN,
                views="simclr",
                view_kwargs=dict(PRETEXT_CIFAR_VIEWS),
                method_kwargs={"hidden_dim": 256},
            ),
            "full": on_cifar10(
                cifar_schedule("sgd", 0.1, 5e-4, batch_size=128, warmup_epochs=0),
                views="simclr",
                view_kwargs=dict(PRETEXT_CIFAR_VIEWS),
                method_kwargs={"hidden_dim": 512},
            ),
        },
    )
)

# Jigsaw (Noroozi & Favaro 2016): a 3×3 grid, 100 permutations of maximal Hamming distance (their
# ablations; 1,000 in the final model), 64 px tiles in 85 px cells. Scaled: on CIFAR-10 3×3 cells of 10 px
# with 8 px tiles; on the 8×8 digits a 2×2 grid of 4 px cells with 3 px tiles and all 24 permutations of
# 4 tiles. The paper trains ImageNet with SGD at lr 0.01; on CIFAR-10 this takes RotNet's SGD schedule.
register(
    Recipe(
        "jigsaw",
        "Jigsaw puzzles: classify the permutation of shuffled tiles (Noroozi & Favaro 2016)",
        Jigsaw,
        settings={
            "smoke": on_digits(
                width=16,
                train=DIGITS_SMOKE_TRAIN,
                views="digits",
                view_kwargs=DIGITS_ONE_VIEW,
                method_kwargs={"grid": 2, "num_permutations": 24, "tile_size": 3, "hidden_dim": 128},
            ),
            "cpu": on_digits(
                width=32,
                train=PRETEXT_DIGITS_TRAIN,
                views="digits",
                view_kwargs=DIGITS_ONE_VIEW,
                method_kwargs={"grid": 2, "num_permutations": 24, "tile_size": 3, "hidden_dim": 512},
            ),
            "gpu": on_cifar10_classroom(
                CLASSROOM_TRAIN,
                views="simclr",
                view_kwargs=dict(PRETEXT_CIFAR_VIEWS),
                method_kwargs={"grid": 3, "num_permutations": 100, "tile_size": 8, "hidden_dim": 512},
            ),
            "full": on_cifar10(
                cifar_schedule("sgd", 0.1, 5e-4, batch_size=128, warmup_epochs=0),
                views="simclr",
                view_kwargs=dict(PRETEXT_CIFAR_VIEWS),
                method_kwargs={"grid": 3, "num_permutations": 100, "tile_size": 8, "hidden_dim": 1024},
            ),
        },
    )
)

# Relative patch position (Doersch et al. 2015): 96 px patches, a 48 px gap, up to 7 px of jitter, 8
# neighbours. Scaled: on CIFAR-10 7 px patches, a 2 px gap and 1 px of jitter (the 3×3 lattice spans 28 of
# the 32 px); on the 8×8 digits 3 px patches, a 1 px gap and no jitter, the lattice (11 px) zero-padded
# around the image (their background is black). RotNet's SGD schedule on CIFAR-10.
register(
    Recipe(
        "relative_position",
        "Relative patch position: where is the neighbour of the centre patch? (Doersch, Gupta & Efros 2015)",
        RelativePosition,
        settings={
            "smoke": on_digits(
                width=16,
                train=DIGITS_SMOKE_TRAIN,
                views="digits",
                view_kwargs=DIGITS_ONE_VIEW,
                method_kwargs={"patch_size": 3, "gap": 1, "jitter": 0, "hidden_dim": 128},
            ),
            "cpu": on_digits(
                width=32,
                train=PRETEXT_DIGITS_TRAIN,
                views="digits",
                view_kwargs=DIGITS_ONE_VIEW,
                method_kwargs={"patch_size": 3, "gap": 1, "jitter": 0, "hidden_dim": 512},
            ),
            "gpu": on_cifar10_classroom(
                CLASSROOM_TRAIN,
                views="simclr",
                view_kwargs=dict(PRETEXT_CIFAR_VIEWS),
                method_kwargs={"patch_size": 7, "gap": 2, "jitter": 1, "hidden_dim": 512},
            ),
            "full": on_cifar10(
                cifar_schedule("sgd", 0.1, 5e-4, batch_size=128, warmup_epochs=0),
                views="simclr",
                view_kwargs=dict(PRETEXT_CIFAR_VIEWS),
                method_kwargs={"patch_size": 7, "gap": 2, "jitter": 1, "hidden_dim": 1024},
            ),
        },
    )
)

# Instance discrimination (Wu et al. 2018) on CIFAR-10, from the CIFAR-10 script of the paper's code
# release (lemniscate.pytorch, cifar.py): ResNet-18, 128-D features, NCE with 4,096 negatives, τ = 0.1
# (0.07 on ImageNet), bank momentum 0.5, SGD lr 0.03, momentum 0.9, weight decay 5e-4, batch 128, 200
# epochs (a step schedule there, the cosine here); views: crop (area 0.2–1), jitter 0.4, grayscale 0.2
# (the simclr preset at colour strength 0.5 is jitter (0.4, 0.4, 0.4, 0.1), with flips). On the digits the
# full softmax over the 1,437-image bank is exact and cheap, so smoke and cpu use it (negatives=None).
register(
    Recipe(
        "instance_discrimination",
        "Instance discrimination: every image its own class, a memory bank (Wu, Xiong, Yu & Lin 2018)",
        InstanceDiscrimination,
        settings={
            "smoke": on_digits(
                width=16,
                train=DIGITS_SMOKE_TRAIN,
                views="digits",
                view_kwargs=DIGITS_ONE_VIEW,
                method_kwargs={"embedding_dim": 64, "temperature": 0.1, "negatives": None},
            ),
            "cpu": on_digits(
                width=32,
                train=PRETEXT_DIGITS_TRAIN,
                views="digits",
                view_kwargs=DIGITS_ONE_VIEW,
                method_kwargs={"embedding_dim": 128, "temperature": 0.1, "negatives": None},
            ),
            "gpu": on_cifar10_classroom(
                CLASSROOM_TRAIN,
                views="simclr",
                view_kwargs={"crop_scale": (0.2, 1.0), "color_strength": 0.5, "blur": False},
                method_kwargs={"embedding_dim": 128, "temperature": 0.1, "negatives": 4096},
            ),
            "full": on_cifar10(
                cifar_schedule("sgd", 0.03, 5e-4, batch_size=128, warmup_epochs=0),
                views="simclr",
                view_kwargs={"crop_scale": (0.2, 1.0), "color_strength": 0.5, "blur": False},
                method_kwargs={"embedding_dim": 128, "temperature": 0.1, "negatives": 4096},
            ),
        },
    )
)


# --------------------------------------------------------------------------------------------------
# Contrastive family (methods/contrastive.py, methods/momentum.py)
# --------------------------------------------------------------------------------------------------

# SimCLR's CIFAR-10 setting (appendix B.9 and the official CIFAR-10 command): LARS, temperature 0.5, weight
# decay 1e-6, lr 0.3 × batch/256, SIMCLR_CIFAR_VIEWS.
register(
    Recipe(
        "simclr",
        "SimCLR: two augmented views, NT-Xent over the batch (Chen et al. 2020)",
        SimCLR,
        settings={
            "smoke": on_digits(
                width=16,
                train=DIGITS_SMOKE_TRAIN,
                views="digits",
                method_kwargs={"temperature": 0.5, **SMOKE_HEAD},
            ),
            "cpu": on_digits(
                width=32, train=DIGITS_TRAIN, views="digits", method_kwargs={"temperature": 0.5, **CPU_HEAD}
            ),
            "gpu": on_cifar10_classroom(
                CLASSROOM_TRAIN,
                views="simclr",
                view_kwargs=dict(SIMCLR_CIFAR_VIEWS),
                method_kwargs={"temperature": 0.5, **CPU_HEAD},
            ),
            "full": on_cifar10(
                cifar_schedule("lars", 0.6, 1e-6),
                views="simclr",
                view_kwargs=dict(SIMCLR_CIFAR_VIEWS),
                method_kwargs={"temperature": 0.5, **CIFAR_HEAD},
            ),
        },
    )
)

# DCL's CIFAR experiments reuse SimCLR's setting with τ = 0.1.
register(
    Recipe(
        "dcl",
        "DCL: NT-Xent without the positive in the denominator (Yeh et al. 2022)",
        DCL,
        settings={
            "smoke": on_digits(
                width=16,
                train=DIGITS_SMOKE_TRAIN,
                views="digits",
                method_kwargs={"temperature": 0.1, **SMOKE_HEAD},
            ),
            "cpu": on_digits(
                width=32, train=DIGITS_TRAIN, views="digits", method_kwargs={"temperature": 0.2, **CPU_HEAD}
            ),
            "gpu": on_cifar10_classroom(
                CLASSROOM_TRAIN,
                views="simclr",
                view_kwargs=dict(SIMCLR_CIFAR_VIEWS),
                method_kwargs={"temperature": 0.2, **CPU_HEAD},
            ),
            "full": on_cifar10(
                cifar_schedule("lars", 0.6, 1e-6),
                views="simclr",
                view_kwargs=dict(SIMCLR_CIFAR_VIEWS),
                method_kwargs={"temperature": 0.1, **CIFAR_HEAD},
            ),
        },
    )
)

# SupCon on CIFAR-10: SGD with momentum, τ = 0.1, lr 0.5 at batch 1024 (scaled to 512 here). Views as the
# official code's CIFAR transform (SupContrast main_supcon.py): crop area 0.2–1, jitter (0.4, 0.4, 0.4, 0.1)
# with p 0.8, grayscale 0.2, no blur.
SUPCON_CIFAR_VIEWS = {"crop_scale": (0.2, 1.0), "color_strength": 0.5, "blur": False}
register(
    Recipe(
        "supcon",
        "SupCon: supervised contrastive, the labelled ceiling (Khosla et al. 2020)",
        SupCon,
        settings={
            "smoke": on_digits(
                width=16,
                train=DIGITS_SMOKE_TRAIN,
                views="digits",
                method_kwargs={"temperature": 0.1, **SMOKE_HEAD},
            ),
            "cpu": on_digits(
                width=32, train=DIGITS_TRAIN, views="digits", method_kwargs={"temperature": 0.1, **CPU_HEAD}
            ),
            "gpu": on_cifar10_classroom(
                CLASSROOM_TRAIN,
                views="simclr",
                view_kwargs=dict(SUPCON_CIFAR_VIEWS),
                method_kwargs={"temperature": 0.1, **CPU_HEAD},
            ),
            "full": on_cifar10(
                cifar_schedule("sgd", 0.25, 1e-4),
                views="simclr",
                view_kwargs=dict(SUPCON_CIFAR_VIEWS),
                method_kwargs={"temperature": 0.1, **CIFAR_HEAD},
            ),
        },
    )
)

# NNCLR on CIFAR (as in solo-learn's reproduction): LARS with η = 0.02 and LARC clipping, lr 0.4 ×
# batch/256, wd 1e-5, τ = 0.2, queue 65,536.
register(
    Recipe(
        "nnclr",
        "NNCLR: nearest neighbours from a support queue as positives (Dwibedi et al. 2021)",
        NNCLR,
        settings={
            "smoke": on_digits(
                width=16,
                train=DIGITS_SMOKE_TRAIN,
                views="digits",
                method_kwargs={
                    "temperature": 0.2,
                    "queue_size": 512,
                    "predictor_hidden_dim": 128,
                    **SMOKE_HEAD,
                },
            ),
            "cpu": on_digits(
                width=32,
                train=DIGITS_TRAIN,
                views="digits",
                method_kwargs={"temperature": 0.2, "queue_size": 1024, **CPU_HEAD},
            ),
            "gpu": on_cifar10_classroom(
                CLASSROOM_TRAIN,
                views="simclr",
                view_kwargs=dict(SIMCLR_CIFAR_VIEWS),
                method_kwargs={"temperature": 0.2, "queue_size": 4096, **CPU_HEAD},
            ),
            "full": on_cifar10(
                cifar_schedule("lars", 0.8, 1e-5, lars_eta=0.02, lars_clip=True),
                views="simclr",
                method_kwargs={
                    "temperature": 0.2,
                    "queue_size": 65536,
                    "projector_hidden_dim": 2048,
                    "projector_dim": 256,
                    "predictor_hidden_dim": 4096,
                },
            ),
        },
    )
)

# MoCo v2 with the official CIFAR-10 demo's setting: SGD lr 0.06 at batch 512, wd 5e-4, momentum 0.99,
# queue 4,096, τ = 0.1, 128-D keys, jitter (0.4, 0.4, 0.4, 0.1) without blur, and Shuffle-BN on one GPU
# (its --bn-splits 8: sub-batches of 64 images; here both views make one batch of 1024, so 16 splits).
register(
    Recipe(
        "moco_v2",
        "MoCo v2: momentum encoder and a queue of negatives (He et al. 2020; Chen et al. 2020)",
        MoCoV2,
        settings={
            "smoke": on_digits(
                width=16,
                train=DIGITS_SMOKE_TRAIN,
                views="digits",
                method_kwargs={"temperature": 0.2, "queue_size": 512, "momentum": 0.99, **SMOKE_HEAD},
            ),
            "cpu": on_digits(
                width=32,
                train=DIGITS_TRAIN,
                views="digits",
                method_kwargs={"temperature": 0.2, "queue_size": 1024, "momentum": 0.99, **CPU_HEAD},
            ),
            "gpu": on_cifar10_classroom(
                CLASSROOM_TRAIN,
                views="simclr",
                view_kwargs=dict(SIMCLR_CIFAR_VIEWS),
                method_kwargs={"temperature": 0.2, "queue_size": 4096, "momentum": 0.99, **CPU_HEAD},
            ),
            "full": on_cifar10(
                cifar_schedule("sgd", 0.06, 5e-4, warmup_epochs=0),
                views="simclr",
                view_kwargs=dict(SIMCLR_CIFAR_VIEWS),
                method_kwargs={
                    "temperature": 0.1,
                    "queue_size": 4096,
                    "momentum": 0.99,
                    "bn_splits": 16,
                    **CIFAR_HEAD,
                },
            ),
        },
    )
)

# MoCo v3 (ResNet) on CIFAR: LARS lr 0.3 × batch/256, wd 1e-5, momentum 0.99 → 1 (cosine). τ = 1.0, the
# official default for ResNets (moco-v3 main_moco.py `--moco-t` and builder `T=1.0`; its CONFIG.md sets
# `--moco-t=.2` only for the ViTs). smoke and cpu keep the τ = 0.2 they were measured with.
register(
    Recipe(
        "moco_v3",
        "MoCo v3: momentum encoder + predictor, in-batch negatives (Chen, Xie & He 2021)",
        MoCoV3,
        settings={
            "smoke": on_digits(
                width=16,
                train=DIGITS_SMOKE_TRAIN,
                views="digits",
                method_kwargs={
                    "temperature": 0.2,
                    "base_momentum": 0.99,
                    "predictor_hidden_dim": 128,
                    **SMOKE_HEAD,
                },
            ),
            "cpu": on_digits(
                width=32,
                train=DIGITS_TRAIN,
                views="digits",
                method_kwargs={"temperature": 0.2, "base_momentum": 0.99, **CPU_HEAD},
            ),
            "gpu": on_cifar10_classroom(
                CLASSROOM_TRAIN,
                views="simclr",
                view_kwargs=dict(SIMCLR_CIFAR_VIEWS),
                method_kwargs={"temperature": 0.2, "base_momentum": 0.99, **CPU_HEAD},
            ),
            "full": on_cifar10(
                cifar_schedule("lars", 0.6, 1e-5),
                views="simclr",
                method_kwargs={
                    "temperature": 1.0,
                    "base_momentum": 0.99,
                    "projector_hidden_dim": 4096,
                    "projector_dim": 256,
                    "predictor_hidden_dim": 4096,
                },
            ),
        },
    )
)


# --------------------------------------------------------------------------------------------------
# Self-distillation family (methods/distillation.py)
# --------------------------------------------------------------------------------------------------

# BYOL on CIFAR-10: LARS (η = 0.02, LARC clipping) at 1.0 × batch/256 (solo-learn's CIFAR setting), wd 1e-5,
# τ = 0.99 → 1 on a cosine (the paper's 0.996 suits its 1000-epoch runs), 4096/256 projector and
# predictor, the asymmetric BYOL views.
BYOL_DIGITS_HEADS = {
    "projector_hidden_dim": 512,
    "projector_dim": 128,
    "predictor_hidden_dim": 512,
    "base_momentum": 0.99,
}
register(
    Recipe(
        "byol",
        "BYOL: predict a momentum target's projection, no negatives (Grill et al. 2020)",
        BYOL,
        settings={
            # BYOL starts slower than SimSiam: with 128/64/128 heads and 3 epochs it was no better than a
            # random encoder (probe@1 0.39 vs 0.41 at seed 0). With the cpu heads and 10 epochs (~6 s) it
            # ends above random init on seeds 0-5, by >= 0.05 on four (seed 0: 0.59 vs 0.41; seed 2 only
            # 0.416): benchmarks/results/seed_sweep_byol_smoke.md. The notebook's check uses seed 0.
            "smoke": on_digits(
                width=16,
                train=dataclasses.replace(DISTILLATION_DIGITS_TRAIN, epochs=10, warmup_epochs=1),
                views="digits",
                method_kwargs=BYOL_DIGITS_HEADS,
            ),
            "cpu": on_digits(
                width=32, train=DISTILLATION_DIGITS_TRAIN, views="digits", method_kwargs=BYOL_DIGITS_HEADS
            ),
            "gpu": on_cifar10_classroom(
                CLASSROOM_DISTILLATION_TRAIN, views="byol", method_kwargs=BYOL_DIGITS_HEADS
            ),
            "full": on_cifar10(
                cifar_schedule("lars", 2.0, 1e-5, lars_eta=0.02, lars_clip=True),
                views="byol",
                method_kwargs={
                    "projector_hidden_dim": 4096,
                    "projector_dim": 256,
                    "predictor_hidden_dim": 4096,
                    "base_momentum": 0.99,
                },
            ),
        },
    )
)

# SimSiam's CIFAR-10 setting (Chen & He 2021, section on CIFAR): SGD, lr 0.03 × batch/256, weight decay
# 5e-4, momentum 0.9, batch 512, projector 2048, predictor bottleneck 512, the predictor's lr not decayed
# (SimSiam's default fixed_predictor_lr); 200 epochs here (the paper trains 800). MoCo v2's views: crop
# area 0.2–1, jitter (0.4, 0.4, 0.4, 0.1), no blur at 32 px. The projector has 2 layers on CIFAR (the
# paper's CIFAR appendix; the widely used reproduction PatrickHua/SimSiam sets proj_layers: 2 in its
# simsiam_cifar.yaml), 3 on ImageNet; smoke/cpu/gpu keep the 3 they were measured with.
register(
    Recipe(
        "simsiam",
        "SimSiam: predictor + stop-gradient, no momentum encoder (Chen & He 2021)",
        SimSiam,
        settings={
            "smoke": on_digits(
                width=16,
                train=DISTILLATION_SMOKE_TRAIN,
                views="digits",
                method_kwargs={"projector_dim": 64, "predictor_hidden_dim": 16},
            ),
            "cpu": on_digits(
                width=32,
                train=dataclasses.replace(DISTILLATION_DIGITS_TRAIN, epochs=60),
                views="digits",
                method_kwargs={"projector_dim": 256, "predictor_hidden_dim": 64},
            ),
            "gpu": on_cifar10_classroom(
                CLASSROOM_DISTILLATION_TRAIN,
                views="simclr",
                view_kwargs={"crop_scale": (0.2, 1.0), "color_strength": 0.5, "blur": False},
                method_kwargs={"projector_dim": 256, "predictor_hidden_dim": 64},
            ),
            "full": on_cifar10(
                cifar_schedule("sgd", 0.06, 5e-4, warmup_epochs=0),
                views="simclr",
                view_kwargs={"crop_scale": (0.2, 1.0), "color_strength": 0.5, "blur": False},
                method_kwargs={"projector_dim": 2048, "predictor_hidden_dim": 512, "projector_layers": 2},
            ),
        },
    )
)

# DINO on CIFAR-10: AdamW at 5e-4 × batch/256 with 10 warm-up epochs, weight decay 0.04 → 0.4 on a
# cosine (the paper's schedule), gradient clipping at 3, prototypes frozen for the first epoch,
# K = 4096, τ_s = 0.1, τ_t warmed up 0.04 → 0.07 over 30 epochs, teacher momentum 0.996 → 1.
# Multi-crop: 2 global 32 px crops + 6 local 16 px crops.
# On the 8×8 digits (smoke, cpu) multi-crop cannot shrink the crops: 4 digit views of the same size,
# the first 2 global (seen by the teacher), the other 2 playing the local crops.
register(
    Recipe(
        "dino",
        "DINO: self-distillation with a centred, sharpened momentum teacher (Caron et al. 2021)",
        DINO,
        settings={
            "smoke": on_digits(
                width=16,
                train=DISTILLATION_SMOKE_TRAIN,
                views="digits",
                view_kwargs={"num_views": 4},
                method_kwargs={
                    "out_dim": 128,
                    "hidden_dim": 128,
                    "bottleneck_dim": 32,
                    "base_momentum": 0.99,
                    "batch_norm": True,
                },
            ),
            "cpu": on_digits(
                width=32,
                train=dataclasses.replace(DISTILLATION_DIGITS_TRAIN, epochs=30, grad_clip=3.0),
                views="digits",
                view_kwargs={"num_views": 4},
                method_kwargs={
                    "out_dim": 256,
                    "hidden_dim": 512,
                    "bottleneck_dim": 128,
                    "base_momentum": 0.99,
                    "batch_norm": True,
                },
            ),
            "gpu": on_cifar10_classroom(
                dataclasses.replace(CLASSROOM_DISTILLATION_TRAIN, grad_clip=3.0),
                views="multicrop",
                view_kwargs={"num_local": 4, "local_size": 16},
                method_kwargs={
                    "out_dim": 256,
                    "hidden_dim": 512,
                    "bottleneck_dim": 128,
                    "base_momentum": 0.99,
                    "batch_norm": True,
                },
            ),
            "full": on_cifar10(
                cifar_schedule("adamw", 1e-3, 0.04, final_weight_decay=0.4, grad_clip=3.0),
                views="multicrop",
                view_kwargs={"num_local": 6, "local_size": 16},
                method_kwargs={
                    "out_dim": 4096,
                    "hidden_dim": 2048,
                    "bottleneck_dim": 256,
                    "student_temperature": 0.1,
                    "teacher_temperature": 0.07,
                    "warmup_teacher_temperature": 0.04,
                    "teacher_temperature_warmup": 30 / 200,
                    "base_momentum": 0.996,
                    "freeze_prototypes": 1 / 200,
                },
            ),
        },
    )
)


# --------------------------------------------------------------------------------------------------
# Redundancy-reduction family (methods/redundancy.py)
# --------------------------------------------------------------------------------------------------

# The full profiles follow solo-learn's CIFAR configs (scripts/pretrain/cifar/*.yaml: 1000 epochs at batch
# 256; here 200 epochs at batch 512, the learning rate scaled linearly with the batch as solo-learn does).
# Its LARS: η = 0.02, LARC clipping (its exclude_bias_n_norm is not separate here).
SOLO_LARS = {"lars_eta": 0.02, "lars_clip": True}

# Barlow Twins: solo-learn's barlow.yaml: LARS lr 0.3 × batch/256, wd 1e-4, projector 2048², scale_loss 0.1,
# λ = 0.0051 (the official code's), the asymmetric (BYOL) views.
register(
    Recipe(
        "barlow_twins",
        "Barlow Twins: the views' cross-correlation driven to the identity (Zbontar et al. 2021)",
        BarlowTwins,
        settings={
            "smoke": on_digits(
                width=16,
                train=DIGITS_SMOKE_TRAIN,
                views="digits",
                method_kwargs={"projector_hidden_dim": 128, "projector_dim": 128},
            ),
            # lr 1e-3, not the family's 2e-3 (measured 2026-12-01, 2-core CPU, seed 0, probe@1 / probe@all /
            # kNN): 2e-3 gave 79.7 / 98.9 / 97.8, 5e-4 82.1 / 98.3 / 97.8, 1e-3 81.4 / 99.4 / 98.6; at 2e-3,
            # λ = 0.02 gave 73.5 / 98.9 / 97.5 and λ = 0.002 81.8 / 98.3 / 97.2, a 128-D projector
            # 79.9 / 98.1 / 98.1, a 1024-D one 78.7 / 98.3 / 98.3.
            "cpu": on_digits(
                width=32,
                train=dataclasses.replace(DIGITS_TRAIN, lr=1e-3),
                views="digits",
                method_kwargs={"projector_hidden_dim": 512, "projector_dim": 512},
            ),
            "gpu": on_cifar10_classroom(
                CLASSROOM_TRAIN,
                views="byol",
                method_kwargs={"projector_hidden_dim": 1024, "projector_dim": 1024},
            ),
            "full": on_cifar10(
                cifar_schedule("lars", 0.6, 1e-4, **SOLO_LARS),
                views="byol",
                method_kwargs={"projector_hidden_dim": 2048, "projector_dim": 2048, "scale_loss": 0.1},
            ),
        },
    )
)

# VICReg: solo-learn's vicreg.yaml: LARS lr 0.3 × batch/256, wd 1e-4, projector 2048², λ = μ = 25, ν = 1;
# its views (crop area 0.2–1, jitter (0.4, 0.4, 0.2, 0.1), solarisation 0.1, no blur) approximated by
# SimCLR's views at colour strength 0.5, crop area 0.2–1, no blur.
VICREG_CIFAR_VIEWS = {"crop_scale": (0.2, 1.0), "color_strength": 0.5, "blur": False}
register(
    Recipe(
        "vicreg",
        "VICReg: variance, invariance and covariance terms (Bardes, Ponce & LeCun 2022)",
        VICReg,
        settings={
            "smoke": on_digits(
                width=16,
                train=DIGITS_SMOKE_TRAIN,
                views="digits",
                method_kwargs={"projector_hidden_dim": 128, "projector_dim": 128},
            ),
            "cpu": on_digits(
                width=32,
                train=DIGITS_TRAIN,
                views="digits",
                method_kwargs={"projector_hidden_dim": 512, "projector_dim": 512},
            ),
            "gpu": on_cifar10_classroom(
                CLASSROOM_TRAIN,
                views="simclr",
                view_kwargs=dict(VICREG_CIFAR_VIEWS),
                method_kwargs={"projector_hidden_dim": 1024, "projector_dim": 1024},
            ),
            "full": on_cifar10(
                cifar_schedule("lars", 0.6, 1e-4, **SOLO_LARS),
                views="simclr",
                view_kwargs=dict(VICREG_CIFAR_VIEWS),
                method_kwargs={"projector_hidden_dim": 2048, "projector_dim": 2048},
            ),
        },
    )
)

# W-MSE: solo-learn's wmse.yaml: Adam lr 2e-3 at batch 256, wd 1e-6 (AdamW here: with wd 1e-6 the two differ
# by nothing that matters), projector 1024 → 64, w_size 128, 2 views (crop area 0.2–1, jitter 0.8, no blur).
# The htdt README's CIFAR-10 setting is close: Adam 3e-3, batch 256, 64-D, w_size 128.
register(
    Recipe(
        "wmse",
        "W-MSE: whiten each sub-batch, then pull the views together (Ermolov et al. 2021)",
        WMSE,
        settings={
            "smoke": on_digits(
                width=16,
                train=DIGITS_SMOKE_TRAIN,
                views="digits",
                method_kwargs={"projector_hidden_dim": 128, "projector_dim": 8, "w_size": 64},
            ),
            "cpu": on_digits(
                width=32,
                train=DIGITS_TRAIN,
                views="digits",
                method_kwargs={"projector_hidden_dim": 512, "projector_dim": 32, "w_size": 128},
            ),
            "gpu": on_cifar10_classroom(
                CLASSROOM_TRAIN,
                views="simclr",
                view_kwargs={"crop_scale": (0.2, 1.0), "blur": False},
                method_kwargs={"projector_hidden_dim": 1024, "projector_dim": 64, "w_size": 128},
            ),
            "full": on_cifar10(
                cifar_schedule("adamw", 2e-3, 1e-6, batch_size=256),
                views="simclr",
                view_kwargs={"crop_scale": (0.2, 1.0), "blur": False},
                method_kwargs={"projector_hidden_dim": 1024, "projector_dim": 64, "w_size": 128},
            ),
        },
    )
)


# --------------------------------------------------------------------------------------------------
# Clustering family (methods/clustering.py)
# --------------------------------------------------------------------------------------------------

# SwAV: solo-learn's swav.yaml: LARS lr 0.6 × batch/256, wd 1e-6, projector 2048 → 128, K = 3000, τ = 0.1,
# queue 3840 from epoch 50 of 1000 (here the same fraction, 0.05), prototypes frozen for 2 epochs. solo-learn
# trains 2 crops; the full profile adds the paper's multi-crop (2 global 32 px + 6 local 16 px crops).
register(
    Recipe(
        "swav",
        "SwAV: swapped prediction of Sinkhorn-equipartitioned codes, multi-crop (Caron et al. 2020)",
        SwAV,
        settings={
            "smoke": on_digits(
                width=16,
                train=DIGITS_SMOKE_TRAIN,
                views="digits",
                view_kwargs={"num_views": 4},
                method_kwargs={
                    "projector_hidden_dim": 128,
                    "projector_dim": 32,
                    "num_prototypes": 30,
                    "queue_size": 256,
                    "queue_start": 0.3,
                    "freeze_prototypes": 0.1,
                },
            ),
            "cpu": on_digits(
                width=32,
                train=DIGITS_TRAIN,
                views="digits",
                view_kwargs={"num_views": 4},
                method_kwargs={
                    "projector_hidden_dim": 512,
                    "projector_dim": 64,
                    "num_prototypes": 50,
                    "freeze_prototypes": 1 / 60,
                },
            ),
            "gpu": on_cifar10_classroom(
                CLASSROOM_TRAIN,
                views="multicrop",
                view_kwargs={"num_local": 4, "local_size": 16},
                method_kwargs={
                    "projector_hidden_dim": 1024,
                    "projector_dim": 128,
                    "num_prototypes": 300,
                    "queue_size": 1024,
                    "queue_start": 0.2,
                    "freeze_prototypes": 1 / 15,
                },
            ),
            "full": on_cifar10(
                cifar_schedule("lars", 1.2, 1e-6, **SOLO_LARS),
                views="multicrop",
                view_kwargs={"num_local": 6, "local_size": 16},
                method_kwargs={
                    "projector_hidden_dim": 2048,
                    "projector_dim": 128,
                    "num_prototypes": 3000,
                    "queue_size": 3840,
                    "queue_start": 50 / 1000,
                    "freeze_prototypes": 2 / 200,
                },
            ),
        },
    )
)

# DeepCluster v2: solo-learn's deepclusterv2.yaml: LARS lr 0.6 × batch/256, wd 1e-6, 11 warm-up epochs,
# final lr 0.0006 × batch/256, projector 2048 → 128, 3 heads of 3000 prototypes, τ = 0.1; the paper's
# multi-crop as for SwAV (solo-learn trains 2 crops). Fewer clusters where there are fewer images.
register(
    Recipe(
        "deepcluster_v2",
        "DeepCluster v2: k-means of a memory bank each epoch, prototypes = centroids (Caron et al. 2020)",
        DeepClusterV2,
        settings={
            "smoke": on_digits(
                width=16,
                train=DIGITS_SMOKE_TRAIN,
                views="digits",
                method_kwargs={"projector_hidden_dim": 128, "projector_dim": 32, "num_prototypes": (20, 30)},
            ),
            "cpu": on_digits(
                width=32,
                train=DIGITS_TRAIN,
                views="digits",
                method_kwargs={
                    "projector_hidden_dim": 512,
                    "projector_dim": 64,
                    "num_prototypes": (30, 30, 30),
                },
            ),
            "gpu": on_cifar10_classroom(
                CLASSROOM_TRAIN,
                views="multicrop",
                view_kwargs={"num_local": 4, "local_size": 16},
                method_kwargs={
                    "projector_hidden_dim": 1024,
                    "projector_dim": 128,
                    "num_prototypes": (300, 300, 300),
                },
            ),
            "full": on_cifar10(
                cifar_schedule("lars", 1.2, 1e-6, warmup_epochs=11, final_lr=0.0012, **SOLO_LARS),
                views="multicrop",
                view_kwargs={"num_local": 6, "local_size": 16},
                method_kwargs={
                    "projector_hidden_dim": 2048,
                    "projector_dim": 128,
                    "num_prototypes": (3000, 3000, 3000),
                },
            ),
        },
    )
)


# --------------------------------------------------------------------------------------------------
# Language–image family (methods/language_image.py): images paired with captions
# --------------------------------------------------------------------------------------------------

# No captioned CIFAR exists, so every profile trains on the generated shape_pairs (3×24×24 shapes with
# attribute captions, nothing to download); the profiles differ in the encoders and the schedule. One view
# per image, mild: the caption names the colour and the corner, so neither colour jitter nor flips nor
# large crops (the digits preset: small affine moves and brightness/contrast jitter, at strength 0.3).
# AdamW with CLIP's decoupled weight decay (0.2 in the paper; 0.05 here on ~0.1 M-parameter encoders).
LANGUAGE_IMAGE_VIEWS = {"num_views": 1}
LANGUAGE_IMAGE_TRAIN = TrainConfig(
    epochs=10, batch_size=128, optimizer="adamw", lr=2e-3, weight_decay=0.05, warmup_epochs=1, seed=0
)
LANGUAGE_IMAGE_SMOKE_TRAIN = dataclasses.replace(LANGUAGE_IMAGE_TRAIN, epochs=3, batch_size=64)  # 45 steps
LANGUAGE_IMAGE_GPU_TRAIN = dataclasses.replace(
    LANGUAGE_IMAGE_TRAIN, epochs=40, batch_size=256, warmup_epochs=2
)
LANGUAGE_IMAGE_FULL_TRAIN = dataclasses.replace(
    LANGUAGE_IMAGE_TRAIN, epochs=100, batch_size=512, lr=1e-3, weight_decay=0.2, warmup_epochs=5
)
# The text tower: 64 token slots (the shape captions use 32), 16-token captions.
SMALL_TEXT = {"vocab_size": 64, "context_length": 16, "embed_dim": 64, "text_width": 64, "text_depth": 1}
WIDE_TEXT = {"vocab_size": 64, "context_length": 16, "embed_dim": 128, "text_width": 128, "text_depth": 2}


def on_shape_pairs(
    train: TrainConfig, method_kwargs: dict, backbone: str = "small_cnn", width: int | None = 16, **setting
) -> Setting:
    """The generated shape–caption pairs (``data.load("shape_pairs")``), one mild view per image."""
    return Setting(
        data="shape_pairs",
        backbone=backbone,
        backbone_kwargs={} if width is None else {"width": width},
        train=dataclasses.replace(train),
        views="digits",
        view_strength=0.3,
        view_kwargs=dict(LANGUAGE_IMAGE_VIEWS),
        method_kwargs=dict(method_kwargs),
        **setting,
    )


def language_image_settings(extra: dict, cpu_train: TrainConfig = LANGUAGE_IMAGE_TRAIN) -> dict[str, Setting]:
    """The four profiles of a language–image recipe, ``extra`` being its own method arguments."""
    return {
        "smoke": on_shape_pairs(
            LANGUAGE_IMAGE_SMOKE_TRAIN, {**SMALL_TEXT, **extra}, train_subset=1000, test_subset=500
        ),
        "cpu": on_shape_pairs(cpu_train, {**SMALL_TEXT, **extra}),
        "gpu": on_shape_pairs(LANGUAGE_IMAGE_GPU_TRAIN, {**WIDE_TEXT, **extra}, width=64),
        "full": on_shape_pairs(LANGUAGE_IMAGE_FULL_TRAIN, {**WIDE_TEXT, **extra}, "resnet18_cifar", None),
    }


# CLIP: the learnable logit scale from 1/0.07, clamped at 100 (Radford et al. 2021, §2.5).
register(
    Recipe(
        "clip",
        "CLIP: images and their captions, symmetric softmax cross-entropy (Radford et al. 2021)",
        CLIP,
        settings=language_image_settings({"scale_init": 1 / 0.07, "max_scale": 100.0}),
    )
)

# SigLIP: the pairwise sigmoid loss, t from 10 (t' = log 10) and b from -10 (Zhai et al. 2023, §3.2).
# On the cpu profile it trains 20 epochs where CLIP trains 10: with b = -10 every pair starts on the flat
# tail of the sigmoid, and the encoders take off late. Measured 2026-12-01 on the 2-core CPU (validation
# probe on the shape; zero-shot on held-out combinations, chance 0.125): 10 epochs 0.268 / 0.267, 20 epochs
# 0.580 / 0.552.
register(
    Recipe(
        "siglip",
        "SigLIP: images and their captions, one sigmoid per pair (Zhai et al. 2023)",
        SigLIP,
        settings=language_image_settings(
            {"scale_init": 10.0, "bias_init": -10.0}, dataclasses.replace(LANGUAGE_IMAGE_TRAIN, epochs=20)
        ),
    )
)


# --------------------------------------------------------------------------------------------------
# Masked image modelling (methods/masked.py): a ViT reconstructs the pixels of hidden patches
# --------------------------------------------------------------------------------------------------

# On the digits (smoke, cpu) a narrow-depth ViT-Tiny (width 192, 3 heads; 2×2 patches of the 8×8 image: 16
# tokens) and crops of area 0.6–1 without flips (a mirrored digit is another digit) and without the digits
# preset's noise: MAE's normalised-pixel target of a background patch would be that noise, standardised.
# AdamW with MAE's weight decay 0.05 (the library's AdamW keeps β₂ = 0.999; MAE uses 0.95). Two blocks and
# a one-block decoder 64 wide, so that the cpu profile's 20 MAE epochs take a minute or two on a 2-core
# laptop CPU (MAE's Table 1a: decoder depth barely changes fine-tuning, 84.8 with 1 block vs 84.9 with 8);
# features are the mean patch token (MAE fine-tunes on average-pooled tokens; its loss ignores the CLS token).
MASKED_DIGITS_VIEWS = {"crop_scale": (0.6, 1.0), "flip": False}
MASKED_DIGITS_TRAIN = dataclasses.replace(
    DIGITS_TRAIN, epochs=20, lr=1e-3, weight_decay=0.05, warmup_epochs=2
)
MASKED_SMOKE_TRAIN = dataclasses.replace(MASKED_DIGITS_TRAIN, epochs=3, batch_size=128, warmup_epochs=1)
MASKED_SMOKE_VIT = {"depth": 2, "pool": "mean"}
MASKED_CPU_VIT = {"depth": 2, "pool": "mean"}
MASKED_SMOKE_IMAGES = 600  # smoke trains on a subset: a ViT step costs several small-CNN steps on the CPU

# Fine-tuning a digits ViT (the evaluation `sslcookbook run` reports; Setting.fine_tune): 300 steps per
# labelled draw with the digits' affine/intensity views at half strength, for the pre-trained ViT and the ViT
# from scratch alike. MAE fine-tunes with augmentation (FINETUNE.md: RandAugment, mixup, 100 epochs); the
# shared protocol (100 steps, no views) leaves a ViT below the raw pixels at one label per class. Tuned on
# 20% of the training digits held out (2026-12-02, data2vec's cpu weights: 57.3 / 90.6 / 97.2% at 1 / 10 /
# all labels per class vs 40.2 / 87.5 / 95.5% with the shared protocol; full-strength views lost 7 points
# with all labels, 300 steps without views gained 0.4; raw pixels 55.7 / 87.8 / 95.1%). At one label per
# class the other knobs are flat on that split (2026-12-02, data2vec 58.5% as set): lr 2.5e-4 / 1e-3 57.2 /
# 57.9%, layer decay 0.5 / 0.9 55.7 / 58.1%, 600 steps 60.0% (from scratch 45.7 → 44.0%).
VIT_DIGITS_FINE_TUNE = {"steps": 300, "views": "digits", "view_strength": 0.5}
# MAE and I-JEPA fine-tune with the from-scratch baseline's optimiser instead of fine_tune's (lr 5e-4, weight
# decay 0.05, layer decay 0.75: MAE's ImageNet recipe, too gentle for 300 steps on the digits). On the same
# held-out split (2026-12-03, each recipe's cpu weights, 1 / 10 / all labels per class) MAE 49.3 / 84.7 / 93.4
# → 52.4 / 90.2 / 93.4% and I-JEPA 50.5 / 87.8 / 94.8 → 55.1 / 88.5 / 93.7%; SimMIM (51.8 / 86.8 / 92.3 →
# 48.5 / 84.7 / 94.4%) and data2vec (57.3 / 90.6 / 97.2 → 56.0 / 91.6 / 96.2%) lose at one label per class and
# keep fine_tune's. (Five times MAE's pre-training, 100 epochs, did not help: 48.6 / 85.4 / 89.5%.)
VIT_DIGITS_FINE_TUNE_HIGH_LR = {**VIT_DIGITS_FINE_TUNE, "lr": 2e-3, "weight_decay": 5e-4, "layer_decay": 1.0}
VIT_SMOKE_FINE_TUNE = {"views": "digits", "view_strength": 0.5}  # smoke: the profile's few steps


def vit_setting(
    data: str, vit: dict, train: TrainConfig, views: str, view_kwargs: dict, method_kwargs: dict, **setting
) -> Setting:
    """A setting of the masked-modelling and joint-embedding predictive recipes: ViT-Tiny (``vit`` changes
    its depth and pooling) on ``data``."""
    return Setting(
        data=data,
        backbone="vit_tiny",
        backbone_kwargs=dict(vit),
        train=dataclasses.replace(train, channels_last=False),  # a ViT has one conv (patch embedding)
        views=views,
        view_kwargs=dict(view_kwargs),
        method_kwargs=dict(method_kwargs),
        **setting,
    )


# MAE (He et al. 2022; PRETRAIN.md): mask ratio 0.75, norm_pix_loss, AdamW blr 1.5e-4 × batch/256, wd 0.05,
# warm-up 40 of 800 epochs, crop area 0.2–1 and flip; decoder 512 wide and 8 deep for ViT-L. Here the full
# profile trains ViT-Tiny (12 blocks, 4-px patches: 64 tokens) on CIFAR-10 for the shared 200 epochs at
# batch 512 (lr 3e-4 by the paper's rule, 10 warm-up epochs: its 5%) with a decoder of 256 × 4 blocks (the
# paper's decoder is about half the encoder's width; its Table 1 finds depth 4 within 1 point of 8 when
# fine-tuning). The classroom profile: 10,000 images, 20 epochs (the classroom's longest schedule), lr from
# the digits.
register(
    Recipe(
        "mae",
        "MAE: mask 75% of the patches, encode the rest, reconstruct the hidden pixels (He et al. 2022)",
        MAE,
        settings={
            "smoke": vit_setting(
                "digits",
                MASKED_SMOKE_VIT,
                MASKED_SMOKE_TRAIN,
                "crop_flip",
                MASKED_DIGITS_VIEWS,
                {"decoder_dim": 64, "decoder_depth": 1, "decoder_heads": 4},
                train_subset=MASKED_SMOKE_IMAGES,
                fine_tune=VIT_SMOKE_FINE_TUNE,
            ),
            "cpu": vit_setting(
                "digits",
                MASKED_CPU_VIT,
                MASKED_DIGITS_TRAIN,
                "crop_flip",
                MASKED_DIGITS_VIEWS,
                {"decoder_dim": 64, "decoder_depth": 1, "decoder_heads": 4},
                fine_tune=VIT_DIGITS_FINE_TUNE_HIGH_LR,
            ),
            "gpu": vit_setting(
                "cifar10",
                {},
                dataclasses.replace(CLASSROOM_TRAIN, epochs=20, weight_decay=0.05, warmup_epochs=1),
                "crop_flip",
                {"crop_scale": (0.2, 1.0)},
                {"decoder_dim": 256, "decoder_depth": 4, "decoder_heads": 8},
                train_subset=CLASSROOM_IMAGES,
            ),
            "full": vit_setting(
                "cifar10",
                {},
                cifar_schedule("adamw", 3e-4, 0.05),
                "crop_flip",
                {"crop_scale": (0.2, 1.0)},
                {"decoder_dim": 256, "decoder_depth": 4, "decoder_heads": 8},
            ),
        },
    )
)

# SimMIM (Xie et al. 2022): block masks of 32-px squares (2×2 tokens of a ViT-B/16) at ratio 0.6, a linear
# decoder, L1; AdamW lr 1e-4 × batch/512, wd 0.05, gradient clipping at 5, crop area 0.67–1 and flip, 800
# epochs. The full profile: ViT-Tiny on CIFAR-10, 200 epochs at batch 512 (lr 1e-4), 2×2-token squares of
# 8 px (a quarter of the side, as 32 px is a sixth of SimMIM's 192); the digits mask single 2-px tokens
# (also a quarter of the side: 2×2 tokens would be half the image). Classroom and digits as for MAE.
register(
    Recipe(
        "simmim",
        "SimMIM: replace squares of patches by a mask token, regress their pixels with L1 (Xie et al. 2022)",
        SimMIM,
        settings={
            "smoke": vit_setting(
                "digits",
                MASKED_SMOKE_VIT,
                MASKED_SMOKE_TRAIN,
                "crop_flip",
                MASKED_DIGITS_VIEWS,
                {},
                train_subset=MASKED_SMOKE_IMAGES,
                fine_tune=VIT_SMOKE_FINE_TUNE,
            ),
            "cpu": vit_setting(
                "digits",
                MASKED_CPU_VIT,
                MASKED_DIGITS_TRAIN,
                "crop_flip",
                MASKED_DIGITS_VIEWS,
                {},
                fine_tune=VIT_DIGITS_FINE_TUNE,
            ),
            "gpu": vit_setting(
                "cifar10",
                {},
                dataclasses.replace(
                    CLASSROOM_TRAIN, epochs=20, weight_decay=0.05, warmup_epochs=1, grad_clip=5.0
                ),
                "crop_flip",
                {"crop_scale": (0.67, 1.0)},
                {},
                train_subset=CLASSROOM_IMAGES,
            ),
            "full": vit_setting(
                "cifar10",
                {},
                cifar_schedule("adamw", 1e-4, 0.05, grad_clip=5.0),
                "crop_flip",
                {"crop_scale": (0.67, 1.0)},
                {},
            ),
        },
    )
)


# --------------------------------------------------------------------------------------------------
# Joint-embedding predictive family (methods/jepa.py): a ViT predicts an EMA teacher's features of hidden
# patches
# --------------------------------------------------------------------------------------------------

# On the digits (smoke, cpu) a shallow ViT-Tiny (width 192, 3 heads; 2×2 patches of the 8×8 image: a 4×4
# grid of 16 tokens), its patch tokens average-pooled (pool="mean": what both methods are evaluated on),
# one digits view per image (its mild affine crop plays I-JEPA's crop-only augmentation; colour jitter
# does not exist on grayscale digits). AdamW at batch 128; 15 epochs (165 steps) keep notebook 09 within
# minutes on a laptop. I-JEPA keeps the paper's EMA (0.996 → 1: at 0.99 its cpu run, 40 epochs, ended
# with a probe@10 of 0.62 against 0.68 for 0.996 after 8, 2026-12-01); data2vec's teacher starts at 0.99,
# as the family's other digits recipes (BYOL, DINO): 0.999 hardly moves in 165 steps.
JEPA_DIGITS_TRAIN = dataclasses.replace(
    DIGITS_TRAIN, epochs=15, batch_size=128, lr=1e-3, weight_decay=0.05, warmup_epochs=2
)
JEPA_SMOKE_TRAIN = dataclasses.replace(JEPA_DIGITS_TRAIN, epochs=3, batch_size=128, warmup_epochs=1)
JEPA_SMOKE_VIT = {"depth": 2, "pool": "mean"}
JEPA_CPU_VIT = {"depth": 4, "pool": "mean"}
JEPA_CIFAR_VIT = {"pool": "mean"}  # ViT-Tiny, 12 blocks, 4-px patches: an 8×8 grid of 64 tokens


# I-JEPA (Assran et al. 2023; configs/in1k_vith14_ep300.yaml): 4 target blocks of scale 0.15–0.2, aspect
# 0.75–1.5, one context block of scale 0.85–1; predictor 384 wide and 12 deep for ViT-H (1280); EMA 0.996 → 1;
# AdamW lr 1e-3 at batch 2048 (warm-up from 2e-4, cosine to 1e-6), weight decay 0.04 → 0.4; crop-only
# views (area 0.3–1, no flip). On CIFAR-10 (full): ViT-Tiny for the shared 200 epochs at batch 512, lr 5e-4
# (the linear rule from 1e-3 at 2048 gives 2.5e-4; 5e-4 is data2vec's value for small batches), cosine to
# 1e-6, the predictor 96 wide (the paper's predictor/encoder width ratio, 0.3, of ViT-Tiny's 192), 6 deep.
# On the 4×4 digits grid the targets are 1×1 to 2×2 patches and the context is the rest of the grid.
IJEPA_DIGITS_METHOD = {"predictor_dim": 96, "predictor_depth": 2, "predictor_heads": 3}  # EMA 0.996 → 1
register(
    Recipe(
        "ijepa",
        "I-JEPA: predict an EMA encoder's features of target blocks from a context (Assran et al. 2023)",
        IJEPA,
        settings={
            "smoke": vit_setting(
                "digits",
                JEPA_SMOKE_VIT,
                JEPA_SMOKE_TRAIN,
                "digits",
                DIGITS_ONE_VIEW,
                IJEPA_DIGITS_METHOD,
                fine_tune=VIT_SMOKE_FINE_TUNE,
            ),
            "cpu": vit_setting(
                "digits",
                JEPA_CPU_VIT,
                dataclasses.replace(JEPA_DIGITS_TRAIN, weight_decay=0.04, final_weight_decay=0.4),
                "digits",
                DIGITS_ONE_VIEW,
                IJEPA_DIGITS_METHOD,
                fine_tune=VIT_DIGITS_FINE_TUNE_HIGH_LR,
            ),
            "gpu": vit_setting(
                "cifar10",
                JEPA_CIFAR_VIT,
                dataclasses.replace(
                    CLASSROOM_TRAIN, epochs=15, lr=5e-4, weight_decay=0.04, final_weight_decay=0.4
                ),
                "crop_flip",
                {"crop_scale": (0.3, 1.0), "flip": False},
                {"predictor_dim": 96, "predictor_depth": 4, "base_momentum": 0.99},
                train_subset=CLASSROOM_IMAGES,
            ),
            "full": vit_setting(
                "cifar10",
                JEPA_CIFAR_VIT,
                cifar_schedule("adamw", 5e-4, 0.04, final_weight_decay=0.4, final_lr=1e-6),
                "crop_flip",
                {"crop_scale": (0.3, 1.0), "flip": False},
                {"predictor_dim": 96, "predictor_depth": 6, "base_momentum": 0.996},
            ),
        },
    )
)

# data2vec (Baevski et al. 2022; fairseq base_imagenet_d2v1.yaml): BEiT block masks at 60% of the patches,
# targets the average of the teacher's top 6 block outputs (each instance-normalised, the average
# layer-normalised), smooth-L1 with β = 2 scaled by 1/√D, EMA 0.999 → 0.9998, AdamW lr 5e-4 (batch 2048),
# weight decay 0.05, 800 epochs. On CIFAR-10 (full): ViT-Tiny, the shared 200 epochs at batch 512, lr 5e-4,
# EMA from 0.998 (fewer, smaller steps than ImageNet's); crop and flip views as in BEiT. On the digits the
# teacher averages its top 2 of 4 blocks (smoke: 1 of 2), the same half of the depth as 6 of 12.
register(
    Recipe(
        "data2vec",
        "data2vec: regress an EMA teacher's top-block features at masked patches (Baevski et al. 2022)",
        Data2Vec,
        settings={
            "smoke": vit_setting(
                "digits",
                JEPA_SMOKE_VIT,
                JEPA_SMOKE_TRAIN,
                "digits",
                DIGITS_ONE_VIEW,
                {"top_k": 1, "base_momentum": 0.99, "final_momentum": 0.999},
                fine_tune=VIT_SMOKE_FINE_TUNE,
            ),
            "cpu": vit_setting(
                "digits",
                JEPA_CPU_VIT,
                JEPA_DIGITS_TRAIN,
                "digits",
                DIGITS_ONE_VIEW,
                {"top_k": 2, "base_momentum": 0.99, "final_momentum": 0.999},
                fine_tune=VIT_DIGITS_FINE_TUNE,
            ),
            "gpu": vit_setting(
                "cifar10",
                JEPA_CIFAR_VIT,
                dataclasses.replace(CLASSROOM_TRAIN, epochs=15, lr=5e-4, weight_decay=0.05),
                "crop_flip",
                {"crop_scale": (0.2, 1.0)},
                {"top_k": 6, "base_momentum": 0.99, "final_momentum": 0.999},
                train_subset=CLASSROOM_IMAGES,
            ),
            "full": vit_setting(
                "cifar10",
                JEPA_CIFAR_VIT,
                cifar_schedule("adamw", 5e-4, 0.05),
                "crop_flip",
                {"crop_scale": (0.2, 1.0)},
                {"top_k": 6, "base_momentum": 0.998, "final_momentum": 0.9998},
            ),
        },
    )
)
