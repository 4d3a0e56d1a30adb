r"""Exponential moving averages of weights (momentum encoders) and the cosine momentum schedule.

BYOL's target, DINO's teacher and MoCo's key encoder are an EMA of the online network:

.. math::  \xi \leftarrow m\,\xi + (1 - m)\,\theta

Only parameters are averaged. Buffers (BatchNorm running statistics) are not copied: the target runs
in training mode, normalises with the statistics of its own batch, and its running averages, which
training never reads, are accumulated by its own forward passes. This is what BYOL does; copying
the online network's running statistics would make no difference to training.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


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
