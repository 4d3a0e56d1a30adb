"""What a recipe is: a ``Setting`` per profile, and how dotted overrides resolve one into what a run trains.

``Recipe.resolve(profile, overrides)`` applies overrides such as ``train.lr``, ``method.temperature``,
``views.strength``, ``backbone.width`` or ``data``; ``sslcookbook run`` and ``sslcookbook show`` use it.
The recipes themselves, one table each, are in ``recipes.py``.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from torch import nn

from . import augment
from .methods import SSLMethod
from .models import BACKBONES, build_backbone, takes_image_size
from .profiles import FINE_TUNE_STEPS, PROFILES, active_profile
from .train import TrainConfig

# Keys outside the dotted groups, with a value of the type each expects (None: any).
_TOP_LEVEL_KEYS = {"data": "", "train_subset": None, "test_subset": None, "backbone": "", "views": ""}


@dataclass(frozen=True)
class Setting:
    """Everything one profile of a recipe needs."""

    data: str
    train: TrainConfig
    views: str  # the augment.preset name; it must fit the data's images (digits: "digits")
    backbone: str = "small_cnn"
    backbone_kwargs: dict = field(default_factory=dict)
    method_kwargs: dict = field(default_factory=dict)
    view_strength: float = 1.0
    view_kwargs: dict = field(default_factory=dict)
    train_subset: int | None = None  # train on at most this many images (smoke runs)
    test_subset: int | None = None
    # The fine-tuning evaluation when it is not the profile's default (FINE_TUNE_STEPS steps, no views,
    # evaluate.fine_tune's optimiser): "steps", "views" (an augment preset) with "view_strength", and "lr",
    # "weight_decay", "layer_decay"; see Resolved.fine_tune_protocol.
    fine_tune: dict = field(default_factory=dict)


# What Setting.fine_tune accepts (as ``fine_tune.<key>`` overrides), with defaults. None: the profile's steps,
# no views, and evaluate.fine_tune's own lr (5e-4), weight decay (0.05) and layer decay ("auto": 0.75 for a
# ViT; 1.0 trains every layer at lr). The optimiser keys are the fine-tuned network's only: the from-scratch
# baseline keeps evaluate.supervised_baseline's (lr 2e-3, weight decay 5e-4, one learning rate).
FINE_TUNE_DEFAULTS = {
    "steps": None,
    "views": None,
    "view_strength": 1.0,
    "lr": None,
    "weight_decay": None,
    "layer_decay": None,
}
FINE_TUNE_OPTIMIZER_KEYS = ("lr", "weight_decay", "layer_decay")


class FineTuneProtocol(NamedTuple):
    """The fine-tuning evaluation of one setting (``Resolved.fine_tune_protocol``)."""

    steps: int  # AdamW steps per labelled draw, for the fine-tuned and the from-scratch network alike
    views: Callable | None  # the one-view augmentation of both (None: the images as they are)
    description: str | None  # the views and any optimiser setting in words, for reports (None: neither)
    optimizer: dict  # evaluate.fine_tune's lr / weight_decay / layer_decay the setting changes (may be {})


@dataclass(frozen=True)
class Resolved:
    """One recipe's setting for one profile with the user's overrides applied: what a run trains."""

    recipe: str
    profile: str
    method: Callable[..., SSLMethod]
    setting: Setting

    def build(self, in_channels: int = 3, image_size: int | None = None) -> SSLMethod:
        """The method with a fresh backbone for images with ``in_channels`` channels; a ViT also needs
        the ``image_size`` (side of the training images) unless ``backbone.image_size`` is set."""
        s = self.setting
        net: nn.Module = build_backbone(s.backbone, in_channels, image_size, **s.backbone_kwargs)
        return self.method(net, **s.method_kwargs)

    def backbone_kwargs(self, image_size: int | None = None) -> dict:
        """The backbone's arguments as built for images of side ``image_size`` (what an export records)."""
        kwargs = dict(self.setting.backbone_kwargs)
        if image_size is not None and takes_image_size(self.setting.backbone):
            kwargs.setdefault("image_size", int(image_size))
        return kwargs

    def views(self, image_shape: tuple[int, int, int]):
        s = self.setting
        return augment.preset(s.views, image_shape, strength=s.view_strength, **s.view_kwargs)

    def fine_tune_protocol(self, image_shape: tuple[int, int, int]) -> FineTuneProtocol:
        """The fine-tuning evaluation (``evaluate.fine_tune`` and the from-scratch baseline): the setting's
        ``fine_tune`` steps (default ``FINE_TUNE_STEPS[profile]``), its one-view augmentation (None: the
        images as they are) and the fine-tuning optimiser's settings that differ from ``fine_tune``'s."""
        protocol = {**FINE_TUNE_DEFAULTS, **self.setting.fine_tune}
        steps = protocol["steps"] if protocol["steps"] is not None else FINE_TUNE_STEPS[self.profile]
        optimizer = {k: protocol[k] for k in FINE_TUNE_OPTIMIZER_KEYS if protocol[k] is not None}
        views, described = None, []
        if protocol["views"] is not None:
            strength = protocol["view_strength"]
            views = augment.preset(protocol["views"], image_shape, strength=strength)
            described.append(f"{protocol['views']} views at strength {strength:g}")
        described += [f"{k.replace('_', ' ')} {v:g}" for k, v in optimizer.items()]
        return FineTuneProtocol(steps, views, ", ".join(described) or None, optimizer)

    def to_dict(self) -> dict:
        """The setting as JSON values, every argument listed with its default: ``sslcookbook show``."""
        s = self.setting
        views = {**_arguments(augment.PRESETS[s.views]), **s.view_kwargs, "strength": s.view_strength}
        return _jsonable(
            {
                "recipe": self.recipe,
                "profile": self.profile,
                "data": s.data,
                "train_subset": s.train_subset,
                "test_subset": s.test_subset,
                "backbone": {
                    "name": s.backbone,
                    "arguments": {**_arguments(BACKBONES[s.backbone], "in_channels"), **s.backbone_kwargs},
                },
                "method": {
                    "name": self.method.__name__,
                    "arguments": {**_arguments(self.method), **s.method_kwargs},
                },
                "views": {"preset": s.views, "arguments": views},
                "train": dataclasses.asdict(s.train),
                "fine_tune": {**FINE_TUNE_DEFAULTS, **s.fine_tune},
            }
        )


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    method: Callable[..., SSLMethod]
    settings: dict[str, Setting]

    def setting(self, profile: str | None = None) -> Setting:
        return self.settings[active_profile(profile)]

    def resolve(self, profile: str | None = None, overrides: Mapping[str, object] | None = None) -> Resolved:
        """The profile's setting with ``overrides`` applied, e.g. ``{"train.lr": 0.1, "views.strength": 0}``.

        Keys: ``data``, ``train_subset``, ``test_subset``, ``backbone`` (a name; the recipe's backbone
        arguments are dropped when it changes), ``backbone.<argument>``, ``method.<argument>`` (the method's
        constructor), ``views`` (a preset name; its arguments are dropped when it changes),
        ``views.<argument>`` (the preset's builder), ``train.<field>`` (``TrainConfig``) and
        ``fine_tune.steps`` / ``.views`` / ``.view_strength`` / ``.lr`` / ``.weight_decay`` / ``.layer_decay``
        (the fine-tuning evaluation, ``Resolved.fine_tune_protocol``). An unknown key
        raises a ``KeyError`` listing the valid ones (``override_keys``); a value of the wrong type (an
        ``int`` argument given ``"ten"``) a ``TypeError``.
        """
        profile = active_profile(profile)
        s = self.setting(profile)
        overrides = dict(overrides or {})
        backbone, views = overrides.pop("backbone", s.backbone), overrides.pop("views", s.views)
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}: choose one of {', '.join(BACKBONES)}")
        if views not in augment.PRESETS:
            raise ValueError(f"unknown view preset {views!r}: choose one of {', '.join(augment.PRESETS)}")
        valid = override_keys(self.method, backbone, views)
        groups: dict[str, dict] = {
            "backbone": dict(s.backbone_kwargs) if backbone == s.backbone else {},
            "views": dict(s.view_kwargs) if views == s.views else {},
            "method": dict(s.method_kwargs),
            "train": {},
            "fine_tune": dict(s.fine_tune),
            "": {},
        }
        for key, value in overrides.items():
            if key not in valid:
                raise KeyError(_unknown_key_message(key, self.name, list(valid)))
            _check_type(key, value, valid[key])
            group, _, argument = key.rpartition(".")
            groups[group][argument] = value
        strength = groups["views"].pop("strength", s.view_strength)
        _check_fine_tune(groups["fine_tune"])
        setting = dataclasses.replace(
            s,
            backbone=backbone,
            backbone_kwargs=groups["backbone"],
            method_kwargs=groups["method"],
            views=views,
            view_strength=strength,
            view_kwargs=groups["views"],
            train=dataclasses.replace(s.train, **groups["train"]),
            fine_tune=groups["fine_tune"],
            **groups[""],
        )
        return Resolved(self.name, profile, self.method, setting)

    def build(
        self,
        profile: str | None = None,
        in_channels: int = 3,
        backbone: str | None = None,
        image_size: int | None = None,
    ) -> SSLMethod:
        """The method with a fresh backbone for images with ``in_channels`` channels (and, for a ViT, of
        side ``image_size``)."""
        resolved = self.resolve(profile, {"backbone": backbone} if backbone else None)
        return resolved.build(in_channels, image_size)

    def views(self, image_shape: tuple[int, int, int], profile: str | None = None):
        return self.resolve(profile).views(image_shape)


def override_keys(method: Callable, backbone: str, views: str) -> dict[str, object]:
    """Every key ``Recipe.resolve`` accepts for this method, backbone and view preset, with its default."""
    defaults = dataclasses.asdict(TrainConfig())
    return {
        **_TOP_LEVEL_KEYS,
        **{f"backbone.{a}": v for a, v in _arguments(BACKBONES[backbone], "in_channels").items()},
        **{f"method.{a}": v for a, v in _arguments(method).items()},
        **{f"views.{a}": v for a, v in _arguments(augment.PRESETS[views]).items()},
        **{f"train.{f}": v for f, v in defaults.items()},
        **{f"fine_tune.{k}": v for k, v in FINE_TUNE_DEFAULTS.items()},
    }


def _check_fine_tune(protocol: Mapping[str, object]) -> None:
    """A setting's ``fine_tune`` protocol: known keys, positive ``steps``, a known view preset, a positive
    ``lr``, a ``weight_decay`` >= 0 and a ``layer_decay`` in (0, 1]."""
    unknown = sorted(set(protocol) - set(FINE_TUNE_DEFAULTS))
    if unknown:
        raise KeyError(f"unknown fine_tune keys {unknown}: choose from {', '.join(FINE_TUNE_DEFAULTS)}")
    protocol = {**FINE_TUNE_DEFAULTS, **protocol}
    steps, views, strength = protocol["steps"], protocol["views"], protocol["view_strength"]
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"fine_tune.steps must be a positive int (or None: the profile's), got {steps!r}")
    if views is not None and views not in augment.PRESETS:
        raise ValueError(
            f"unknown fine_tune.views preset {views!r}: choose one of {', '.join(augment.PRESETS)}"
        )
    if isinstance(strength, bool) or not isinstance(strength, int | float) or strength < 0:
        raise ValueError(f"fine_tune.view_strength must be a number >= 0, got {strength!r}")
    for key, in_range, wanted in (
        ("lr", lambda v: v > 0, "a number > 0"),
        ("weight_decay", lambda v: v >= 0, "a number >= 0"),
        ("layer_decay", lambda v: 0 < v <= 1, "a number in (0, 1] (1.0: every layer at lr)"),
    ):
        value = protocol[key]
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not in_range(value)
        ):
            raise ValueError(f"fine_tune.{key} must be {wanted}, or None: fine_tune's default; got {value!r}")


def _check_type(key: str, value: object, default: object) -> None:
    """``value`` must be of the kind of ``default`` (an int passes for a float); a None default takes any."""
    for kind, accepted, name in (
        (bool, (bool,), "True or False"),
        (int, (int,), "an integer"),
        (float, (int, float), "a number"),
        (str, (str,), "a string"),
        ((tuple, list), (tuple, list), "a tuple such as (0.2, 1.0)"),
    ):
        if isinstance(default, kind):
            if not isinstance(value, accepted) or (isinstance(value, bool) and kind is not bool):
                raise TypeError(f"{key} expects {name}, got {value!r}")
            return


def _arguments(fn: Callable, *skip: str) -> dict:
    """Named arguments of ``fn`` (a class: its constructor) with their defaults (None when required),
    leaving out ``skip`` and the module a method wraps (``backbone``)."""
    return {
        name: None if p.default is inspect.Parameter.empty else p.default
        for name, p in inspect.signature(fn).parameters.items()
        if name not in {"backbone", *skip} and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _unknown_key_message(key: str, recipe: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown setting {key!r} for recipe {recipe!r}{hint}; valid keys: {', '.join(valid)}"


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    missing = set(PROFILES) - set(recipe.settings)
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
