r"""Exponential moving averages of weights (momentum encoders) and the cosine momentum schedule.

BYOL's target, DINO's teacher and MoCo's key encoder are an EMA of the online network:

.. math::  \xi \leftarrow m\,\xi + (1 - m)\,\theta

:class:`EMATarget` is that copy for any set of online modules, with its schedule and its progress;
:func:`ema_update_` and :func:`cosine_momentum` are the two formulas on their own.

Only parameters are averaged. Buffers (BatchNorm running statistics) are not copied: the target runs
in training mode, normalises with the statistics of its own batch, and its running averages, which
training never reads, are accumulated by its own forward passes. This is what BYOL does; copying
the online network's running statistics would make no difference to training.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping

import torch
from torch import nn


@torch.no_grad()
def ema_update_(
    target_params: Iterable[torch.Tensor], online_params: Iterable[torch.Tensor], momentum: float
) -> None:
    r"""In place, for every pair: ``target ← momentum · target + (1 − momentum) · online``.

    One fused ``torch._foreach_lerp_(target, online, 1 − momentum)`` call for all tensors (a handful
    of kernel launches instead of one per parameter). ``momentum = 1`` leaves the target as it is,
    ``momentum = 0`` copies the online weights.

    Args:
        target_params: the EMA tensors (e.g. ``target.parameters()``), updated in place.
        online_params: the online tensors, in the same order, shapes, dtypes and devices.
        momentum: m in [0, 1].
    """
    targets, onlines = list(target_params), list(online_params)
    momentum = float(momentum)
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    if len(targets) != len(onlines):
        raise ValueError(
            f"the target has {len(targets)} tensors and the online network {len(onlines)}: the target "
            "must be a copy of the online network (copy.deepcopy) with the same parameters"
        )
    for i, (t, o) in enumerate(zip(targets, onlines)):
        if t.shape != o.shape or t.dtype != o.dtype or t.device != o.device:
            raise ValueError(
                f"tensor {i}: target {tuple(t.shape)} {t.dtype} on {t.device} vs online {tuple(o.shape)} "
                f"{o.dtype} on {o.device}; the two networks must match (build the target with copy.deepcopy "
                "and move both with the method's .to())"
            )
    if not targets or momentum == 1.0:
        return
    torch._foreach_lerp_(targets, onlines, 1.0 - momentum)


def cosine_momentum(progress: float, base: float = 0.996, final: float = 1.0) -> float:
    r"""BYOL's momentum schedule (Grill et al., 2020), also used by DINO:

    .. math::  m(p) = m_\text{final} - (m_\text{final} - m_\text{base})\,\frac{\cos(\pi p) + 1}{2}

    for training progress p ∈ [0, 1]: ``base`` at the start, rising along a half cosine to ``final``.
    """
    progress = float(progress)
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must be in [0, 1] (fraction of training done), got {progress}")
    for name, value in (("base", base), ("final", final)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} momentum must be in [0, 1], got {value}")
    return final - (final - base) * (math.cos(math.pi * progress) + 1.0) / 2.0


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy that receives no gradient (a momentum target starts as the online network)."""
    clone = copy.deepcopy(module)
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


class EMATarget(nn.Module):
    r"""The frozen EMA copy of a set of online modules, with its momentum schedule and its progress.

    ``EMATarget({"backbone": f, "projector": g}, base_momentum=0.99)`` holds copies of f and g
    (no gradient), reachable as ``target.backbone`` and ``target.projector``. After every optimiser
    step, ``update(progress)`` moves all their parameters with one fused call:

    .. math::  \xi \leftarrow m(p)\,\xi + (1 - m(p))\,\theta, \qquad
               m(p) = m_\text{final} - (m_\text{final} - m_\text{base})\,\frac{\cos(\pi p) + 1}{2}

    (:func:`cosine_momentum`; constant when ``base_momentum == final_momentum``, as in MoCo v2).

    The order is fixed: ``update(p)`` first sets the progress to p (the fraction of training done
    after this step), then averages with m(p). So the first step uses m(1/T), the last m(1), and
    ``momentum`` — what a method logs in the next ``training_step`` — is the momentum of the update
    that produced the target this step reads.

    The progress is in the state dict (``get_extra_state``), so a run resumed from a checkpoint
    continues with exactly the same momenta. The online modules are held by reference, outside the
    module tree: they appear neither in this module's ``state_dict`` nor in its ``parameters()``; the
    method that owns both registers the online ones (so ``.to()``, DDP and ``copy.deepcopy`` of the
    method keep the pair together).

    Args:
        online: name → online module; each name becomes an attribute holding its copy.
        base_momentum, final_momentum: m at progress 0 and 1, both in [0, 1].
    """

    def __init__(
        self, online: Mapping[str, nn.Module], base_momentum: float = 0.996, final_momentum: float = 1.0
    ):
        super().__init__()
        cosine_momentum(0.0, base_momentum, final_momentum)  # validates both ends
        self.base_momentum = float(base_momentum)
        self.final_momentum = float(final_momentum)
        self.progress = 0.0
        if not isinstance(online, Mapping) or not online:
            raise TypeError(
                "EMATarget takes a non-empty dict of the online modules to copy, "
                'e.g. EMATarget({"backbone": backbone, "projector": projector})'
            )
        for name, module in online.items():
            if not isinstance(module, nn.Module):
                raise TypeError(f"online[{name!r}] is a {type(module).__name__}, not an nn.Module")
            if not str(name).isidentifier() or hasattr(self, name):
                raise ValueError(
                    f"{name!r} cannot name a copy: use an identifier that is not an attribute of "
                    "EMATarget (e.g. 'backbone', 'projector', 'head')"
                )
        online = nn.ModuleDict(dict(online))
        # In a tuple, so this module does not register (and save, or hand to the optimiser) the online ones.
        self._online = (online,)
        # One deepcopy of the whole dict keeps modules shared between online modules shared.
        copies = frozen_copy(online)
        for name, module in copies.items():
            self.add_module(name, module)

    @property
    def momentum(self) -> float:
        """m at the current progress: the momentum of the last update (``base_momentum`` before any)."""
        return cosine_momentum(self.progress, self.base_momentum, self.final_momentum)

    def online_parameters(self) -> list[torch.Tensor]:
        """The online parameters, in the order of this target's ``parameters()``."""
        return list(self._online[0].parameters())  # each once, as nn.Module lists them

    @torch.no_grad()
    def update(self, progress: float) -> None:
        """Set the progress to ``progress`` (fraction of training done, in [0, 1]), then move every
        copied parameter towards its online one with ``momentum`` at that progress."""
        cosine_momentum(progress, self.base_momentum, self.final_momentum)  # validates progress
        self.progress = float(progress)
        ema_update_(self.parameters(), self.online_parameters(), self.momentum)

    def get_extra_state(self) -> dict:
        return {"progress": self.progress}

    def set_extra_state(self, state: dict) -> None:
        self.progress = float(state["progress"])

    def extra_repr(self) -> str:
        return f"momentum {self.base_momentum} → {self.final_momentum} (cosine), progress {self.progress:g}"
