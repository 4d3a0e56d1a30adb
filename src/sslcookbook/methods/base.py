"""The kit every method is built from: the interface, the checks, and the shared building blocks.

- :class:`SSLMethod`: the interface the trainer calls (``training_step``, ``after_step``, ``embed``).
- :class:`TwoViewMethod`: a backbone and a projector applied to two views, in one batch or one per view.
- :func:`check_views` and :func:`two_views`: the views a method receives, checked once.
- :func:`feature_dim`: the width of a backbone's features, to size the heads.
- :func:`check_positive` and :func:`check_fraction`: constructor arguments (temperatures, momenta).
- :class:`~sslcookbook.ema.EMATarget` and :func:`~sslcookbook.ema.frozen_copy` (from ``sslcookbook.ema``):
  the momentum target and the copy without gradient it is made of.
"""

from __future__ import annotations

from collections.abc import Callable

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

    @property
    def evaluation_backbone(self) -> nn.Module:
        """The encoder a run evaluates, fine-tunes and exports (probes, kNN, ``evaluate.fine_tune``,
        ``sslcookbook export``): ``self.backbone``, unless the method's paper evaluates another network
        (I-JEPA: its EMA target encoder)."""
        return self.backbone

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
    ``training_step``, usually ``z1, z2 = self.project_views(views).chunk(2)`` and a loss; a head on
    top of the projections (a predictor) or a momentum target goes through :meth:`forward_views` so
    that it sees the views the way the projector did.

    With ``view_forward = "split"`` every stage that sees the batch goes one view at a time: backbone
    and projector (:meth:`project_views`), a predictor on top and a momentum target (both through
    :meth:`forward_views`). The step then computes what the same networks compute on v1 alone and on
    v2 alone, and a target, the EMA copy of the online network, normalises exactly the batches the
    online network normalised: the two branches differ only in their weights, in either mode.
    """

    def __init__(self, backbone: nn.Module, projector: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.projector = projector
        self.view_forward = "concat"

    #: ``"concat"`` (the default): one forward over the 2B images of both views (one set of BatchNorm
    #: statistics for both, as the papers do); ``"split"``: one forward per view (each view is a batch of
    #: its own for every BatchNorm, as lightly's examples do), faster on a CPU (a SimCLR step of the
    #: small CNN at batch 256 on 2 cores, channels_last: 1.14 s against 1.33 s in fp32, 0.56 against
    #: 0.58 s in bf16; benchmarks/results/profile_simclr_cpu.md); ``"auto"``: ``"split"`` on the CPU,
    #: ``"concat"`` elsewhere (on a GPU one large batch keeps the device busier). It applies to
    #: :meth:`project_views` and :meth:`forward_views`; set it with ``TrainConfig(view_forward=...)`` or
    #: on the method.
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
        """The two checked views as one 2B×C×H×W batch, the first view's images first: [v1; v2]."""
        return torch.cat(two_views(views, type(self).__name__))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """g(f(x)) on one batch ``x``, whatever it holds (``view_forward`` does not apply here)."""
        return self.projector(self.backbone(x))

    def _views_apart(self, device: torch.device) -> bool:
        """Whether ``view_forward`` runs one forward per view for tensors on ``device``."""
        mode = self._view_forward
        return mode == "split" or (mode == "auto" and torch.device(device).type == "cpu")

    def forward_views(
        self, encode: Callable[[torch.Tensor], torch.Tensor], both: torch.Tensor
    ) -> torch.Tensor:
        """``encode`` over ``both`` = [v1; v2] (2B rows, the first view's first), as ``view_forward`` says:
        ``encode(both)`` ("concat") or ``[encode(v1); encode(v2)]`` ("split", "auto" on the CPU).

        Only BatchNorm (and any layer that mixes the rows of its batch) can tell the two apart.
        """
        if both.shape[0] % 2:
            raise ValueError(
                f"forward_views takes both views stacked, 2B rows, got {both.shape[0]}: pass "
                "self.batch(views) or the 2B projections of project_views"
            )
        if self._views_apart(both.device):
            return torch.cat([encode(v) for v in both.chunk(2)])
        return encode(both)

    def project_views(self, views: list[torch.Tensor]) -> torch.Tensor:
        r"""The 2B projections of the two views, the first view's first: :math:`z = g(f([v_1; v_2]))`.

        The views are checked (:func:`two_views`). ``view_forward = "concat"`` (the default) runs one
        forward over the 2B images, so every BatchNorm normalises both views with one set of
        statistics (the papers); ``"split"`` runs one forward per view, :math:`[g(f(v_1)); g(f(v_2))]`,
        so each view is normalised with its own statistics (lightly's examples; faster on a CPU);
        ``"auto"`` is ``"split"`` on the CPU and ``"concat"`` elsewhere. Without BatchNorm, or in eval
        mode, the modes give the same projections. ``z.chunk(2)`` gives z1 and z2.
        """
        v1, v2 = two_views(views, type(self).__name__)
        if self._views_apart(v1.device):  # straight from the views: no 2B copy to cut up again
            return torch.cat([self.project(v1), self.project(v2)])
        return self.project(torch.cat([v1, v2]))


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
