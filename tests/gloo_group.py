"""Run a test's worker on several CPU processes joined in one gloo process group."""

from __future__ import annotations

import os
import socket

import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _in_group(rank: int, port: int, world: int, worker, args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        worker(rank, *args)
    finally:
        dist.destroy_process_group()


def run_on_ranks(worker, *args, world: int = 2) -> None:
    """Call ``worker(rank, *args)`` in ``world`` spawned processes that share a gloo group.

    ``worker`` must be a module-level function (the processes import it by name)."""
    mp.spawn(_in_group, args=(free_port(), world, worker, args), nprocs=world, join=True)
