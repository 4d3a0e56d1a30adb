"""Run a test's worker on several CPU processes joined in one gloo process group."""

from __future__ import annotations

import os
import socket

import torch.multiprocessing as mp

from sslcookbook import distributed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _in_group(rank: int, port: int, world: int, worker, args: tuple) -> None:
    # The environment torchrun gives each rank, so the group starts as under `sslcookbook run`.
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK="0"
    )
    distributed.init_from_env("cpu")
    worker(rank, *args)
    distributed.shutdown()


def run_on_ranks(worker, *args, world: int = 2) -> None:
    """Call ``worker(rank, *args)`` in ``world`` spawned processes that share a gloo group.

    ``worker`` must be a module-level function (the processes import it by name)."""
    mp.spawn(_in_group, args=(free_port(), world, worker, args), nprocs=world, join=True)
