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

    ``foreach`` (as in ``torch.optim``): True steps each group with ``torch._foreach_*`` ops over all its
    tensors at once (weight decay, the norms, the momentum buffers and the update are fused on a GPU;
    the trust ratios are one stacked computation; only the scaling of each gradient by its own ratio is
    still a launch per tensor), False with the per-tensor loop (:meth:`_step_loop`, the reference), None
    (default) foreach for every group whose parameters are all on one accelerator (as torch.optim: on
    a GPU, where it saves kernel launches; not timed there yet), the loop on the CPU, where the foreach
    ops run tensor by tensor and measured slower (2-core CPU, 2026-12-01: 4.9 against 4.4 ms a step for
    the SmallCNN's 18 tensors, 230-260 against 100-245 ms for ResNet-18's 60).
    Both give the same parameters (bitwise on the CPU, where the foreach ops run tensor by tensor; a
    GPU's fused norm may round differently) and keep the same state, so a state dict saved by one loads
    into the other; ``foreach`` is this optimiser's choice, not saved with it.
    """

    foreach: bool | None = None  # the instance's choice; this default serves objects pickled before it

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        eta: float = 0.001,
        clip: bool = False,
        foreach: bool | None = None,
    ):
        if eta <= 0:
            raise ValueError(f"LARS eta must be > 0, got {eta}")
        if foreach not in (None, True, False):
            raise ValueError(f"LARS foreach must be None, True or False, got {foreach!r}")
        defaults = dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, clip=clip, lars_exclude=False
        )
        super().__init__(params, defaults)
        self.foreach = foreach

    def __getstate__(self):
        # Pickles and deep copies keep the choice; load_state_dict (which sets only state and groups)
        # leaves it as it is.
        return {**super().__getstate__(), "foreach": self.foreach}

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            with_grad = [p for p in group["params"] if p.grad is not None]
            foreach = self.foreach
            if foreach is None:
                devices = {p.device for p in with_grad}
                foreach = len(devices) == 1 and devices.pop().type != "cpu"
            if foreach:
                self._step_foreach(group, with_grad)
            else:
                self._step_loop(group, with_grad)
        return loss

    def _step_loop(self, group: dict, params: list[torch.Tensor]) -> None:
        """One step of ``group`` for ``params`` (those with a gradient), one tensor at a time."""
        for p in params:
            g = p.grad
            if group["weight_decay"] and not group["lars_exclude"]:
                g = g.add(p, alpha=group["weight_decay"])
            if not group["lars_exclude"]:
                w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                g = g * self._trust_ratio(group, w_norm, g_norm)
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = g.clone()
            else:
                state["momentum_buffer"].mul_(group["momentum"]).add_(g)
            p.add_(state["momentum_buffer"], alpha=-group["lr"])

    def _step_foreach(self, group: dict, params: list[torch.Tensor]) -> None:
        """:meth:`_step_loop` with ``torch._foreach_*`` ops, over the tensors of one device and dtype at a
        time; the same arithmetic in the same order."""
        buckets: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
        for p in params:
            buckets.setdefault((p.device, p.dtype), []).append(p)
        for ps in buckets.values():
            grads = [p.grad for p in ps]
            if group["weight_decay"] and not group["lars_exclude"]:
                grads = torch._foreach_add(grads, ps, alpha=group["weight_decay"])
            if not group["lars_exclude"]:
                w_norms = torch.stack(torch._foreach_norm(ps))
                g_norms = torch.stack(torch._foreach_norm(grads))
                trust = self._trust_ratio(group, w_norms, g_norms)
                grads = torch._foreach_mul(grads, list(trust.unbind(0)))  # a 0-dim ratio per tensor
            states = [self.state[p] for p in ps]
            old = [i for i, state in enumerate(states) if "momentum_buffer" in state]
            if old:
                buffers = [states[i]["momentum_buffer"] for i in old]
                torch._foreach_mul_(buffers, group["momentum"])
                torch._foreach_add_(buffers, [grads[i] for i in old])
            for state, g in zip(states, grads):
                if "momentum_buffer" not in state:  # first step of this tensor
                    state["momentum_buffer"] = g.clone()
            torch._foreach_add_(ps, [state["momentum_buffer"] for state in states], alpha=-group["lr"])

    @staticmethod
    def _trust_ratio(group: dict, w_norm: torch.Tensor, g_norm: torch.Tensor) -> torch.Tensor:
        """η‖w‖/‖g‖ (1 where either norm is 0), LARC-clipped with ``clip``: elementwise, so one tensor's
        norms (0-dim) or a stack of a group's give the same ratios."""
        trust = torch.where(
            (w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm, torch.ones_like(w_norm)
        )
        if group["clip"]:
            trust = (trust / max(group["lr"], 1e-12)).clamp(max=1.0)  # lr = 0: no step anyway
        return trust


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
