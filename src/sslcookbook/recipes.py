"""Named recipes: a method, its views, backbone, optimiser and hyper-parameters for each profile.

Notebooks, recipe cards and the CLI read hyper-parameters from here and never keep a second copy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from . import augment
from .methods import DCL, NNCLR, MoCoV2, MoCoV3, SimCLR, SSLMethod, SupCon
from .models import build_backbone
from .profiles import active_profile
from .train import TrainConfig


@dataclass(frozen=True)
class Setting:
    """Everything one profile of a recipe needs."""

    data: str
    train: TrainConfig
    backbone: str = "small_cnn"
    backbone_kwargs: dict = field(default_factory=dict)
    method_kwargs: dict = field(default_factory=dict)
    views: str = "simclr"
    view_strength: float = 1.0
    view_kwargs: dict = field(default_factory=dict)
    train_subset: int | None = None  # train on at most this many images (smoke runs)
    test_subset: int | None = None


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    method: Callable[..., SSLMethod]
    settings: dict[str, Setting]

    def setting(self, profile: str | None = None) -> Setting:
        return self.settings[active_profile(profile)]

    def build(
        self, profile: str | None = None, in_channels: int = 3, backbone: str | None = None
    ) -> SSLMethod:
        """The method with a fresh backbone for images with ``in_channels`` channels."""
        s = self.setting(profile)
        net: nn.Module = build_backbone(backbone or s.backbone, in_channels, **s.backbone_kwargs)
        return self.method(net, **s.method_kwargs)

    def views(self, image_shape: tuple[int, int, int], profile: str | None = None):
        s = self.setting(profile)
        return augment.preset(s.views, image_shape, strength=s.view_strength, **s.view_kwargs)


RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    missing = {"smoke", "cpu", "gpu"} - set(recipe.settings)
    if missing:
        raise ValueError(f"recipe {recipe.name!r} lacks settings for profiles {sorted(missing)}")
    RECIPES[recipe.name] = recipe
    return recipe


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise KeyError(
            f"unknown recipe {name!r}: choose one of {', '.join(sorted(RECIPES))} (see `sslcookbook list`)"
        )
    return RECIPES[name]


def list_recipes() -> list[tuple[str, str]]:
    return [(r.name, r.description) for r in sorted(RECIPES.values(), key=lambda r: r.name)]


# --------------------------------------------------------------------------------------------------
# Contrastive family (methods/contrastive.py, methods/momentum.py)
# --------------------------------------------------------------------------------------------------


def _digits_train(**changes) -> TrainConfig:
    """The laptop setting shared by the contrastive family: AdamW on the 8×8 digits."""
    base = TrainConfig(
        epochs=60, batch_size=256, optimizer="adamw", lr=2e-3, weight_decay=1e-4, warmup_epochs=2, seed=0
    )
    return dataclasses.replace(base, **changes)


def _cifar_train(optimizer: str, lr: float, weight_decay: float, **changes) -> TrainConfig:
    """The published CIFAR-10 schedule the ``gpu`` profiles share: batch 512, 200 epochs, 10 warm-up."""
    base = TrainConfig(
        epochs=200, batch_size=512, optimizer=optimizer, lr=lr, weight_decay=weight_decay, warmup_epochs=10
    )
    return dataclasses.replace(base, **changes)


def _register_family_member(
    name: str,
    description: str,
    method,
    smoke: dict,
    cpu: dict,
    gpu: dict,
    gpu_train: TrainConfig,
    cpu_train: TrainConfig | None = None,
    smoke_train: TrainConfig | None = None,
    digits_views: str = "digits",
    digits_view_kwargs: dict | None = None,
    gpu_views: str = "simclr",
    gpu_view_kwargs: dict | None = None,
) -> None:
    """Digits for smoke and cpu (small CNN), CIFAR-10 with the CIFAR ResNet-18 for gpu."""
    digits = {"data": "digits", "views": digits_views, "view_kwargs": digits_view_kwargs or {}}
    register(
        Recipe(
            name=name,
            description=description,
            method=method,
            settings={
                "smoke": Setting(
                    train=smoke_train or _digits_train(epochs=3, batch_size=128, warmup_epochs=1),
                    backbone_kwargs={"width": 16},
                    method_kwargs=smoke,
                    **digits,
                ),
                "cpu": Setting(
                    train=cpu_train or _digits_train(),
                    backbone_kwargs={"width": 32},
                    method_kwargs=cpu,
                    **digits,
                ),
                "gpu": Setting(
                    data="cifar10",
                    backbone="resnet18_cifar",
                    train=gpu_train,
                    method_kwargs=gpu,
                    views=gpu_views,
                    view_kwargs=gpu_view_kwargs or {},
                ),
            },
        )
    )


_SMALL_HEAD = {"projector_hidden_dim": 128, "projector_dim": 64}
_CPU_HEAD = {"projector_hidden_dim": 512, "projector_dim": 128}

# SimCLR's CIFAR-10 setting (appendix B.9): LARS, temperature 0.5, weight decay 1e-6, lr 0.3 × batch/256.
_register_family_member(
    "simclr",
    "SimCLR: two augmented views, NT-Xent over the batch (Chen et al. 2020)",
    SimCLR,
    smoke={"temperature": 0.5, **_SMALL_HEAD},
    cpu={"temperature": 0.5, **_CPU_HEAD},
    gpu={"temperature": 0.5, "projector_hidden_dim": 2048, "projector_dim": 128},
    gpu_train=_cifar_train("lars", 0.6, 1e-6),
)
# DCL's CIFAR experiments reuse SimCLR's setting with τ = 0.1.
_register_family_member(
    "dcl",
    "DCL: NT-Xent without the positive in the denominator (Yeh et al. 2022)",
    DCL,
    smoke={"temperature": 0.1, **_SMALL_HEAD},
    cpu={"temperature": 0.2, **_CPU_HEAD},
    gpu={"temperature": 0.1, "projector_hidden_dim": 2048, "projector_dim": 128},
    gpu_train=_cifar_train("lars", 0.6, 1e-6),
)
# SupCon on CIFAR-10: SGD with momentum, τ = 0.1, lr 0.5 at batch 1024 (scaled to 512 here).
_register_family_member(
    "supcon",
    "SupCon: supervised contrastive, the labelled ceiling (Khosla et al. 2020)",
    SupCon,
    smoke={"temperature": 0.1, **_SMALL_HEAD},
    cpu={"temperature": 0.1, **_CPU_HEAD},
    gpu={"temperature": 0.1, "projector_hidden_dim": 2048, "projector_dim": 128},
    gpu_train=_cifar_train("sgd", 0.25, 1e-4),
)
# NNCLR on CIFAR (as in solo-learn's reproduction): LARS with η = 0.02 and LARC clipping, lr 0.4 ×
# batch/256, wd 1e-5, τ = 0.2, queue 65,536.
_register_family_member(
    "nnclr",
    "NNCLR: nearest neighbours from a support queue as positives (Dwibedi et al. 2021)",
    NNCLR,
    smoke={"temperature": 0.2, "queue_size": 512, "predictor_hidden_dim": 128, **_SMALL_HEAD},
    cpu={"temperature": 0.2, "queue_size": 1024, **_CPU_HEAD},
    gpu={
        "temperature": 0.2,
        "queue_size": 65536,
        "projector_hidden_dim": 2048,
        "projector_dim": 256,
        "predictor_hidden_dim": 4096,
    },
    gpu_train=_cifar_train("lars", 0.8, 1e-5, lars_eta=0.02, lars_clip=True),
)
# MoCo v2 with the official CIFAR-10 demo's setting: SGD lr 0.06 at batch 512, wd 5e-4, momentum 0.99,
# queue 4,096, τ = 0.1, 128-D keys.
_register_family_member(
    "moco_v2",
    "MoCo v2: momentum encoder and a queue of negatives (He et al. 2020; Chen et al. 2020)",
    MoCoV2,
    smoke={"temperature": 0.2, "queue_size": 512, "momentum": 0.99, **_SMALL_HEAD},
    cpu={"temperature": 0.2, "queue_size": 1024, "momentum": 0.99, **_CPU_HEAD},
    gpu={
        "temperature": 0.1,
        "queue_size": 4096,
        "momentum": 0.99,
        "projector_hidden_dim": 2048,
        "projector_dim": 128,
    },
    gpu_train=_cifar_train("sgd", 0.06, 5e-4, warmup_epochs=0),
)
# MoCo v3 (ResNet) on CIFAR: LARS lr 0.3 × batch/256, wd 1e-5, τ = 0.2, momentum 0.99 → 1 (cosine).
_register_family_member(
    "moco_v3",
    "MoCo v3: momentum encoder + predictor, in-batch negatives (Chen, Xie & He 2021)",
    MoCoV3,
    smoke={"temperature": 0.2, "base_momentum": 0.99, "predictor_hidden_dim": 128, **_SMALL_HEAD},
    cpu={"temperature": 0.2, "base_momentum": 0.99, **_CPU_HEAD},
    gpu={
        "temperature": 0.2,
        "base_momentum": 0.99,
        "projector_hidden_dim": 4096,
        "projector_dim": 256,
        "predictor_hidden_dim": 4096,
    },
    gpu_train=_cifar_train("lars", 0.6, 1e-5),
)


# --------------------------------------------------------------------------------------------------
# Self-distillation family (methods/distillation.py)
# --------------------------------------------------------------------------------------------------

from .methods import BYOL, DINO, SimSiam  # noqa: E402


def _distillation_digits_train(**changes) -> TrainConfig:
    """The digits setting of this family: SGD with momentum, SimSiam's weight decay 5e-4 and small
    batches. These methods need many steps more than big batches; on the digits AdamW at batch 256
    gave clearly worse features in the same time."""
    return _digits_train(
        **{"batch_size": 64, "optimizer": "sgd", "lr": 0.05, "weight_decay": 5e-4, "epochs": 40, **changes}
    )


def _distillation_smoke_train() -> TrainConfig:
    return _distillation_digits_train(epochs=3, warmup_epochs=1)


# BYOL on CIFAR-10: LARS (η = 0.02, LARC clipping) at 1.0 × batch/256 (solo-learn's CIFAR setting), wd 1e-5,
# τ = 0.99 → 1 on a cosine (the paper's 0.996 suits its 1000-epoch runs), 4096/256 projector and
# predictor, the asymmetric BYOL views.
_BYOL_DIGITS_HEADS = {
    "projector_hidden_dim": 512,
    "projector_dim": 128,
    "predictor_hidden_dim": 512,
    "base_momentum": 0.99,
}
_register_family_member(
    "byol",
    "BYOL: predict a momentum target's projection, no negatives (Grill et al. 2020)",
    BYOL,
    # BYOL starts slower than SimSiam: with 128/64/128 heads and 3 epochs it was no better than a
    # random encoder (probe@1 0.39 vs 0.41 at seed 0). With the cpu heads and 10 epochs (~6 s) it ends
    # above random init on seeds 0-5, by >= 0.05 on four (seed 0: 0.59 vs 0.41; seed 2 only 0.416):
    # benchmarks/results/seed_sweep_byol_smoke.md. The notebook's check uses seed 0.
    smoke=_BYOL_DIGITS_HEADS,
    smoke_train=_distillation_digits_train(epochs=10, warmup_epochs=1),
    cpu=_BYOL_DIGITS_HEADS,
    cpu_train=_distillation_digits_train(),
    gpu={
        "projector_hidden_dim": 4096,
        "projector_dim": 256,
        "predictor_hidden_dim": 4096,
        "base_momentum": 0.99,
    },
    gpu_train=_cifar_train("lars", 2.0, 1e-5, lars_eta=0.02, lars_clip=True),
    digits_views="digits",
    gpu_views="byol",
)

# SimSiam's CIFAR-10 setting (Chen & He 2021, section on CIFAR): SGD, lr 0.03 × batch/256, weight decay
# 5e-4, momentum 0.9, batch 512, projector 2048, predictor bottleneck 512; 200 epochs here (the paper
# trains 800). MoCo v2's views: crop area 0.2–1, jitter (0.4, 0.4, 0.4, 0.1), no blur at 32 px.
_register_family_member(
    "simsiam",
    "SimSiam: predictor + stop-gradient, no momentum encoder (Chen & He 2021)",
    SimSiam,
    smoke={"projector_dim": 64, "predictor_hidden_dim": 16},
    smoke_train=_distillation_smoke_train(),
    cpu={"projector_dim": 256, "predictor_hidden_dim": 64},
    cpu_train=_distillation_digits_train(epochs=60),
    gpu={"projector_dim": 2048, "predictor_hidden_dim": 512},
    gpu_train=_cifar_train("sgd", 0.06, 5e-4, warmup_epochs=0),
    digits_views="digits",
    gpu_view_kwargs={"crop_scale": (0.2, 1.0), "color_strength": 0.5, "blur": False},
)

# DINO on CIFAR-10: AdamW at 5e-4 × batch/256 with 10 warm-up epochs, weight decay 0.04 → 0.4 on a
# cosine (the paper's schedule), gradient clipping at 3, prototypes frozen for the first epoch,
# K = 4096, τ_s = 0.1, τ_t warmed up 0.04 → 0.07 over 30 epochs, teacher momentum 0.996 → 1.
# Multi-crop: 2 global 32 px crops + 6 local 16 px crops.
# On the 8×8 digits (smoke, cpu) multi-crop cannot shrink the crops: 4 digit views of the same size,
# the first 2 global (seen by the teacher), the other 2 playing the local crops.
_register_family_member(
    "dino",
    "DINO: self-distillation with a centred, sharpened momentum teacher (Caron et al. 2021)",
    DINO,
    smoke={
        "out_dim": 128,
        "hidden_dim": 128,
        "bottleneck_dim": 32,
        "base_momentum": 0.99,
        "batch_norm": True,
    },
    smoke_train=_distillation_smoke_train(),
    cpu={"out_dim": 256, "hidden_dim": 512, "bottleneck_dim": 128, "base_momentum": 0.99, "batch_norm": True},
    cpu_train=_distillation_digits_train(epochs=30, grad_clip=3.0),
    gpu={
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
    gpu_train=_cifar_train("adamw", 1e-3, 0.04, final_weight_decay=0.4, grad_clip=3.0),
    digits_views="digits",
    digits_view_kwargs={"num_views": 4},
    gpu_views="multicrop",
    gpu_view_kwargs={"num_local": 6, "local_size": 16},
)
