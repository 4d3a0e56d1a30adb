"""Optimisers and the learning-rate schedule used by the trainer."""

from __future__ import annotations

import math

import torch
from torch import nn

OPTIMIZERS = ("sgd", "adamw", "lars")


class LARS(torch.optim.Optimizer):
    r"""SGD with momentum and layer-wise adaptive rate scaling (You et al., 2017).

    For each parameter tensor w with gradient g (weight decay λ folded in, g ← g + λw), the step is
    scaled by the trust ratio :math:`r = \eta \lVert w\rVert / \lVert g\rVert` before momentum, so a
    layer moves by about :math:`\text{lr}\cdot\eta` of its own norm whatever its gradient's scale.
    With ``clip=True`` (LARC's clipping, as solo-learn's CIFAR recipes use) the ratio is
    :math:`\min(r / \text{lr}, 1)`: the layer's own rate :math:`r` is used, capped at the global lr.
    Groups with ``lars_exclude=True`` (biases, norm layers) take plain SGD steps, as in SimCLR.
    """

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        eta: float = 0.001,
        clip: bool = False,
    ):
        if eta <= 0:
            raise ValueError(f"LARS eta must be > 0, got {eta}")
        defaults = dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, clip=clip, lars_exclude=False
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["weight_decay"] and not group["lars_exclude"]:
                    g = g.add(p, alpha=group["weight_decay"])
                if not group["lars_exclude"]:
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                    trust = torch.where(
                        (w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm, torch.ones_like(w_norm)
                    )
                    if group["clip"]:
                        trust = (trust / max(group["lr"], 1e-12)).clamp(max=1.0)  # lr = 0: no step anyway
                    g = g * trust
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = g.clone()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(g)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def param_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices and kernels; none on biases and normalisation parameters.

    The parameters of ``module.fixed_lr_modules()`` (if the module has it: an SSL method) go into
    groups of their own marked ``fixed_lr=True``, whose learning rate :class:`Schedule` keeps at the
    base value (SimSiam's predictor).
    """
    fixed_modules = module.fixed_lr_modules() if hasattr(module, "fixed_lr_modules") else []
    fixed = {id(p) for m in fixed_modules for p in m.parameters()}
    groups = {(is_fixed, decays): [] for is_fixed in (False, True) for decays in (True, False)}
    for _, p in module.named_parameters():
        if p.requires_grad:
            groups[(id(p) in fixed, p.ndim > 1)].append(p)
    out = [
        {"params": groups[(False, True)], "weight_decay": weight_decay},
        {"params": groups[(False, False)], "weight_decay": 0.0, "lars_exclude": True},
    ]
    for decays in (True, False):
        if groups[(True, decays)]:
            group = {"params": groups[(True, decays)], "fixed_lr": True}
            group.update(
                {"weight_decay": weight_decay} if decays else {"weight_decay": 0.0, "lars_exclude": True}
            )
            out.append(group)
    return out


def build_optimizer(
    module: nn.Module,
    name: str,
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
    lars_eta: float = 0.001,
    lars_clip: bool = False,
) -> torch.optim.Optimizer:
    """``sgd`` (Nesterov-free momentum), ``adamw`` or ``lars`` over ``param_groups(module)``."""
    groups = param_groups(module, weight_decay)
    if name == "sgd":
        for g in groups:
            g.pop("lars_exclude", None)
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    if name == "adamw":
        for g in groups:
            g.pop("lars_exclude", None)
        return torch.optim.AdamW(groups, lr=lr)
    if name == "lars":
        return LARS(groups, lr=lr, momentum=momentum, eta=lars_eta, clip=lars_clip)
    raise ValueError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")


def warmup_cosine(
    step: int, total_steps: int, warmup_steps: int, base_lr: float, final_lr: float = 0.0
) -> float:
    """Linear warm-up from 0 to ``base_lr`` over ``warmup_steps``, then cosine decay to ``final_lr``."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    t = min(1.0, (step - warmup_steps) / span)
    return final_lr + 0.5 * (base_lr - final_lr) * (1 + math.cos(math.pi * t))


class Schedule:
    """Sets step t's learning rate (``warmup_cosine``) on every param group, except the groups marked
    ``fixed_lr`` (see :func:`param_groups`), which keep ``lr`` from the first step to the last, and, with
    ``final_weight_decay`` (DINO), a cosine from ``weight_decay`` to it on the groups that decay."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        warmup_steps: int,
        lr: float,
        final_lr: float = 0.0,
        weight_decay: float = 0.0,
        final_weight_decay: float | None = None,
    ):
        self.optimizer, self.total_steps, self.warmup_steps = optimizer, total_steps, warmup_steps
        self.lr, self.final_lr = lr, final_lr
        self.weight_decay, self.final_weight_decay = weight_decay, final_weight_decay
        # Indices, not dicts: loading a checkpoint replaces the optimizer's param-group dicts.
        self.decaying = [i for i, group in enumerate(optimizer.param_groups) if group["weight_decay"] > 0]
        self.fixed = {i for i, group in enumerate(optimizer.param_groups) if group.get("fixed_lr", False)}

    def apply(self, step: int) -> dict:
        """Set the values of ``step`` on the optimizer; return them (for the step's log row)."""
        lr = warmup_cosine(step, self.total_steps, self.warmup_steps, self.lr, self.final_lr)
        for i, group in enumerate(self.optimizer.param_groups):
            group["lr"] = self.lr if i in self.fixed else lr
        if self.final_weight_decay is None:
            return {"lr": lr}
        wd = warmup_cosine(step, self.total_steps, 0, self.weight_decay, self.final_weight_decay)
        for i in self.decaying:
            self.optimizer.param_groups[i]["weight_decay"] = wd
        return {"lr": lr, "weight_decay": wd}
