"""The kit every method is built from: the interface, the checks, and the shared building blocks.

- :class:`SSLMethod`: the interface the trainer calls (``training_step``, ``after_step``, ``embed``).
- :class:`TwoViewMethod`: a backbone and a projector applied to two views in one batch.
- :func:`check_views` and :func:`two_views`: the views a method receives, checked once.
- :func:`feature_dim`: the width of a backbone's features, to size the heads.
- :func:`check_positive` and :func:`check_fraction`: constructor arguments (temperatures, momenta).
- :class:`~sslcookbook.ema.EMATarget` and :func:`~sslcookbook.ema.frozen_copy` (from ``sslcookbook.ema``):
  the momentum target and the copy without gradient it is made of.
"""

from __future__ import annotations

import torch
from torch import nn

from ..ema import EMATarget, frozen_copy


class SSLMethod(nn.Module):
    """A self-supervised method: a backbone, its heads and its loss.

    Subclasses set ``self.backbone`` and implement ``training_step``. The trainer calls
    ``training_step(views, labels)`` with the list of augmented views (float B×C×H×W in [0, 1]) and
    the labels (used only by supervised references and online probes), then ``after_step(progress)``
    once the optimiser has stepped (momentum encoders update there), with ``progress`` in [0, 1].
    ``before_epoch`` runs at each epoch's start; a method with ``uses_indices = True`` also gets
    ``indices=``, the batch's rows in the data set (for a memory bank).
    """

    backbone: nn.Module

    #: Methods that keep one memory slot per training image (instance discrimination's bank, DeepCluster
    #: v2's assignments) set this: ``fit`` then calls ``set_num_instances(len(dataset))`` before training
    #: (and before a checkpoint loads) and passes each batch's positions in the data set,
    #: ``training_step(views, labels, indices=...)``; under DDP each rank gets the indices of its own rows.
    uses_indices: bool = False

    #: Methods that learn from captions (CLIP, SigLIP) set this: ``fit`` then needs a data set with
    #: ``tokens`` (a ``PairedDataset``: int64 N×L token ids, one caption per image), moves them to the
    #: device and passes each batch's rows, ``training_step(views, labels, tokens=...)``.
    uses_text: bool = False

    #: Methods whose ``before_epoch`` (and what it calls) also takes a streamed data set (a ``ShardDataset``)
    #: in place of the uint8 images set this (DeepCluster v2): ``fit`` on a stream then passes the data set;
    #: a method that overrides ``before_epoch`` without it cannot train on a stream (a TypeError says so).
    streams_before_epoch: bool = False

    def set_num_instances(self, num_instances: int) -> None:
        """Size the per-image memory for a training set of ``num_instances`` images (``uses_indices``).
        Default: nothing (a method may size it in ``before_epoch`` instead)."""

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        """Return a dict with the scalar ``"loss"`` and any tensors or floats to log."""
        raise NotImplementedError

    def after_step(self, progress: float) -> None:
        """Hook after each optimiser step (EMA updates, schedules). Default: nothing."""

    def before_epoch(self, epoch: int, images: torch.Tensor, seed: int = 0) -> None:
        """Hook at the start of each epoch (and again when a run resumes mid-epoch), with the whole
        training set as uint8 ``images`` on the device (or, on a stream, the streamed data set itself,
        for a method with ``streams_before_epoch``) and the run's seed: DeepCluster v2 fills its memory
        bank and clusters it here. Default: nothing."""

    def fixed_lr_modules(self) -> list[nn.Module]:
        """Modules whose learning rate stays at the base value while the rest follows the schedule
        (``optim.param_groups`` puts them in groups of their own). Default: none."""
        return []

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Features used for evaluation: the backbone's output, not the projector's."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)


def feature_dim(backbone: nn.Module) -> int:
    """The size of ``backbone``'s output features (its ``feature_dim``), to size the heads on top."""
    dim = getattr(backbone, "feature_dim", None)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise TypeError(
            f"{type(backbone).__name__} has no positive integer `feature_dim`: set backbone.feature_dim to "
            "the size of its output features (the backbones of sslcookbook.models have it)"
        )
    return dim


def check_views(views, method: str, count: int | None = None, min_count: int = 1) -> int:
    """Check that ``views`` is a list of float B×C×H×W batches of one batch size; return B.

    Args:
        method: the method's name, for the error messages.
        count: the exact number of views the method takes (None: any number >= ``min_count``).
        min_count: the fewest views the method takes.
    """
    if not isinstance(views, (list, tuple)) or not all(isinstance(v, torch.Tensor) for v in views):
        raise TypeError(f"{method} takes a list of view tensors (B×C×H×W), got {type(views).__name__}")
    if (count is not None and len(views) != count) or len(views) < min_count:
        wanted = f"exactly {count}" if count is not None else f"at least {min_count}"
        raise ValueError(
            f"{method} takes {wanted} views, got {len(views)}: choose a view preset that makes them"
        )
    for i, v in enumerate(views):
        if v.dim() != 4 or not v.is_floating_point():
            raise ValueError(
                f"view {i} must be a float B×C×H×W batch, got {v.dtype} of shape {tuple(v.shape)}"
            )
    sizes = {v.shape[0] for v in views}
    if len(sizes) != 1:
        raise ValueError(f"all views must hold the same images, got batch sizes {sorted(sizes)}")
    return views[0].shape[0]


def two_views(views, method: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The two views of a two-view method, checked by :func:`check_views`."""
    check_views(views, method, count=2)
    return views[0], views[1]


def check_positive(**values: float) -> None:
    """Raise if any named value (a temperature, a size) is not > 0: ``check_positive(temperature=t)``."""
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")


def check_fraction(**values: float) -> None:
    """Raise if any named value (a momentum, a fraction of training) is not in [0, 1]."""
    for name, value in values.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")


class TwoViewMethod(SSLMethod):
    r"""Backbone f and projector g, applied to both views in one batch: :math:`z = g(f([v_1; v_2]))`.

    One batch for both views means one set of BatchNorm statistics for both, as in SimCLR, MoCo and
    BYOL. Subclasses build the projector (its shape is part of each method) and write
    ``training_step``, usually ``z1, z2 = self.project(self.batch(views)).chunk(2)`` and a loss.
    """

    def __init__(self, backbone: nn.Module, projector: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.projector = projector
        self.view_forward = "concat"
        self._batched: tuple[torch.Tensor, int] | None = None  # batch()'s output and its views' size

    #: ``"concat"``: one forward over the 2B images of :meth:`batch` (one set of BatchNorm statistics for
    #: both views, as the papers do); ``"split"``: :meth:`project` runs one forward per view on the
    #: tensor that ``batch`` returned (BatchNorm normalises each view with its own statistics, as
    #: lightly's examples do), faster on a CPU (a SimCLR step of the small CNN at batch 256 on 2 cores,
    #: channels_last: 1.14 s against 1.33 s in fp32, 0.56 against 0.58 s in bf16;
    #: benchmarks/results/profile_simclr_cpu.md); ``"auto"``: ``"split"`` on the CPU, ``"concat"``
    #: elsewhere (on a GPU one large batch keeps the device busier). Set it with
    #: ``TrainConfig(view_forward=...)`` or on the method; the default stays ``"concat"``.
    VIEW_FORWARDS = ("concat", "split", "auto")

    @property
    def view_forward(self) -> str:
        return self._view_forward

    @view_forward.setter
    def view_forward(self, mode: str) -> None:
        if mode not in self.VIEW_FORWARDS:
            raise ValueError(f"view_forward must be one of {', '.join(self.VIEW_FORWARDS)}, got {mode!r}")
        self._view_forward = mode

    def batch(self, views: list[torch.Tensor]) -> torch.Tensor:
        """The two checked views as one 2B×C×H×W batch, the first view's images first."""
        v1, v2 = two_views(views, type(self).__name__)
        both = torch.cat([v1, v2])
        self._batched = (both, v1.shape[0])
        return both

    def _splits(self, x: torch.Tensor) -> bool:
        if self._batched is None or x is not self._batched[0]:
            return False
        mode = self._view_forward
        return mode == "split" or (mode == "auto" and x.device.type == "cpu")

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """g(f(x)): the projections that the loss compares (per view when ``view_forward`` says so)."""
        if self._splits(x):
            return torch.cat([self.projector(self.backbone(v)) for v in x.split(self._batched[1])])
        return self.projector(self.backbone(x))


__all__ = [
    "EMATarget",
    "SSLMethod",
    "TwoViewMethod",
    "check_fraction",
    "check_positive",
    "check_views",
    "feature_dim",
    "frozen_copy",
    "two_views",
]
