"""Per-profile settings of the semi-supervised methods (notebook 11, ``benchmarks/semi_table.py``).

One :class:`SemiSetting` per profile, as ``recipes.py`` keeps one ``Setting`` per recipe: the data, the
classifier's backbone, the loop's :class:`~sslcookbook.semi_train.SemiConfig`, each method's knobs and the
label budgets of the table. The SSL pre-training of "SSL + probe / fine-tune" and of SimCLRv2 is the
``simclr`` recipe of the same profile (``recipes.get_recipe("simclr")``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .methods.semi import Classifier
from .models.backbones import build_backbone
from .profiles import active_profile
from .recipes import get_recipe
from .semi_train import SemiConfig
from .train import fit


@dataclass(frozen=True)
class SemiSetting:
    """What one profile trains: ``data``, the ``backbone`` (and its kwargs) under a linear head with
    ``dropout``, the loop's ``config``, each method's ``methods[name]`` kwargs, the views' weak strength,
    Noisy Student's iterations, the fine-tuning lr and the table's label budgets (None: all labels)."""

    data: str
    backbone: str
    backbone_kwargs: dict
    config: SemiConfig
    methods: dict = field(default_factory=dict)
    dropout: float = 0.1
    weak_strength: float = 0.5
    noisy_iterations: int = 2
    fine_tune_lr: float | None = None
    labels_per_class: tuple = (1, 4, 10, None)
    train_subset: int | None = None

    def build_model(self, in_channels: int, num_classes: int) -> Classifier:
        """A fresh classifier: the profile's backbone, dropout and a linear head."""
        backbone = build_backbone(self.backbone, in_channels, **self.backbone_kwargs)
        return Classifier(backbone, num_classes, dropout=self.dropout)


# FixMatch τ 0.95, λ_u 1 (the paper); Mean Teacher's consistency weight and ramp-up scaled to the short runs
# (the paper: weight 100 over 180 epochs with a 5-epoch ramp-up; EMA 0.99 here for a few hundred steps);
# pseudo-labelling with FixMatch's threshold (Lee's τ = 0 is the notebook's ablation).
METHODS = {
    "pseudo_label": {"threshold": 0.95, "weight": 1.0, "rampup": 0.2},
    "mean_teacher": {"momentum": 0.99, "weight": 10.0, "rampup": 0.3},
    "fixmatch": {"threshold": 0.95, "lambda_u": 1.0},
    "distillation": {"temperature": 1.0},
}

# cpu: the 16-channel small CNN on the 1,437 training digits, 200 steps of 32 labelled + 96 unlabelled
# images (μ 3), SGD (Nesterov) at FixMatch's lr 0.03: measured 2026-12-01 on the 2-core CPU, about 15 s
# per FixMatch run. smoke: only that it runs. gpu: not measured (no GPU here); FixMatch's batch 64, μ 7.
# full: FixMatch's CIFAR-10 schedule (2²⁰ steps) on the CIFAR ResNet-18 (the paper's WRN-28-2 is not in
# models/).
SETTINGS = {
    "smoke": SemiSetting(
        "digits",
        "small_cnn",
        {"width": 8},
        SemiConfig(steps=20, batch_size=16, mu=2, log_every=2, checkpoint_every=20),
        METHODS,
        noisy_iterations=1,
        labels_per_class=(1, None),
        train_subset=400,
    ),
    "cpu": SemiSetting(
        "digits",
        "small_cnn",
        {"width": 16},
        SemiConfig(steps=200, batch_size=32, mu=3, log_every=5, checkpoint_every=100),
        METHODS,
    ),
    "gpu": SemiSetting(
        "cifar10",
        "small_cnn",
        {"width": 64},
        SemiConfig(steps=20_000, batch_size=64, mu=7, log_every=50, checkpoint_every=2_000),
        METHODS,
        labels_per_class=(4, 25, 400, None),
    ),
    "full": SemiSetting(
        "cifar10",
        "resnet18_cifar",
        {},
        SemiConfig(steps=2**20, batch_size=64, mu=7, log_every=100, checkpoint_every=10_000),
        METHODS,
        labels_per_class=(4, 25, 400, None),
    ),
}


def semi_setting(profile: str | None = None) -> SemiSetting:
    """The semi-supervised setting of ``profile`` (default: the active one), a copy safe to modify."""
    setting = SETTINGS[active_profile(profile)]
    return dataclasses.replace(
        setting,
        config=dataclasses.replace(setting.config),
        methods={k: dict(v) for k, v in setting.methods.items()},
    )


def ssl_pretrain(train, profile: str | None = None, progress: bool = False, device=None, **train_overrides):
    """The ``simclr`` recipe of ``profile`` trained on ``train`` (no labels) with the semi-supervised
    setting's backbone (same architecture as the classifiers it is compared with); returns the backbone.

    ``train_overrides`` replace fields of the recipe's ``TrainConfig`` (e.g. ``epochs=20``)."""
    setting = semi_setting(profile)
    overrides = {"backbone": setting.backbone}
    overrides.update({f"backbone.{k}": v for k, v in setting.backbone_kwargs.items()})
    resolved = get_recipe("simclr").resolve(profile, overrides)
    method = resolved.build(train.image_shape[0], train.image_shape[-1])
    fit(
        method,
        train,
        resolved.views(train.image_shape),
        resolved.setting.train,
        device=device,
        progress=progress,
        **train_overrides,
    )
    return method.backbone
