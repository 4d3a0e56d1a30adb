"""torch.distributed helpers: autograd-correct collectives and torchrun initialisation.

``gather(x)`` concatenates a tensor from every rank *and* sends gradients back to where they came
from: the backward of an all-gather is a reduce-scatter (sum), so the gradient that rank r receives
for its own rows is the sum of what every rank's loss contributed. With DDP's gradient averaging
this makes the loss on W ranks of B/W samples give exactly the gradient of the loss on one batch of B.
"""

from __future__ import annotations

import gc
import importlib
import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def is_main_process() -> bool:
    return rank() == 0


class _AllGather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return tuple(parts)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> torch.Tensor:
        stacked = torch.stack(grads)
        dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
        return stacked[dist.get_rank()]


def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (same shape on every rank) along dim 0 over all ranks, in rank order.

    Gradients flow back to every rank's own rows. Without a process group this returns ``x``.
    """
    if not is_distributed():
        return x
    return torch.cat(_AllGather.apply(x))


@torch.no_grad()
def _all_reduce(x: torch.Tensor, op: dist.ReduceOp) -> torch.Tensor:
    """``op`` of ``x`` over ranks on a copy (no gradient); ``x`` itself without a process group."""
    if not is_distributed():
        return x
    x = x.clone()
    dist.all_reduce(x, op=op)
    return x


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ranks (no gradient), e.g. DINO's centre; ``x`` itself without a process group."""
    return _all_reduce(x, dist.ReduceOp.SUM) / world_size() if is_distributed() else x


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over ranks (no gradient), e.g. Sinkhorn's marginals; ``x`` itself without a group."""
    return _all_reduce(x, dist.ReduceOp.SUM)


def all_reduce_max(x: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum of ``x`` over ranks (no gradient); ``x`` itself without a process group."""
    return _all_reduce(x, dist.ReduceOp.MAX)


def init_from_env(device: str | torch.device | None = None) -> torch.device:
    """Start the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1); return this rank's device.

    NCCL on CUDA (one GPU per local rank), gloo on CPU. Without torchrun: ``device`` or the default.
    """
    use_cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 and not is_distributed():
        return torch.device(device) if device else torch.device("cuda" if use_cuda else "cpu")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not is_distributed():
        # DDP imports torch._dynamo on first use; imported after the group exists, it keeps references
        # to it, and then not even destroy_process_group frees gloo's threads (see ``shutdown``).
        importlib.import_module("torch._dynamo")
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")


def shutdown() -> None:
    """Leave the process group, once this rank has no collective left to run (e.g. at the end of a run).

    Without it the backend's threads (gloo's workers and TCP loop) are still alive when Python shuts
    down; one that then takes the GIL to free a tensor kills the process with SIGABRT ("terminate
    called without an active exception", pytorch/pytorch#190489). Call it on success only: a rank that
    failed mid-collective can hang in it. DDP wrappers sit in reference cycles that hold the group, so
    they are collected first. Nothing to do without a process group.
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()
