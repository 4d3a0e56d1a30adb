"""Run profiles: how much compute a recipe, notebook or test may spend, read from one place.

- ``smoke``: CI, seconds per notebook (the 8×8 digits, a few epochs).
- ``cpu``: the default everywhere, CUDA or not: a laptop, minutes, offline data (the digits), and every
  method visibly beats both baselines.
- ``gpu``: a classroom GPU: CIFAR-10 (downloaded with torchvision on first use), a small CNN and short
  schedules, each notebook meant to take at most 10 minutes on a T4-class card.
- ``full``: the published setting (CIFAR-10, the CIFAR ResNet-18, 200 epochs): benchmark tables and the
  CLI, never a notebook's default.

The active profile is ``SSLCOOKBOOK_PROFILE`` (or ``--profile`` on the CLI), else ``cpu``: having a GPU
does not switch to a longer run by itself.
"""

from __future__ import annotations

import os

import torch

PROFILES = ("smoke", "cpu", "gpu", "full")
DEFAULT_PROFILE = "cpu"
# Profiles whose data (CIFAR-10) is downloaded on first use; smoke and cpu read only bundled data.
DOWNLOADING_PROFILES = ("gpu", "full")

PROFILE_HELP = (
    "smoke (seconds), cpu (the default: minutes on a laptop, offline data), gpu (a classroom GPU: "
    "CIFAR-10, minutes), full (the published 200-epoch setting); default: $SSLCOOKBOOK_PROFILE, else cpu"
)


def active_profile(profile: str | None = None) -> str:
    """Return ``profile`` if given, else ``$SSLCOOKBOOK_PROFILE``, else ``cpu``."""
    name = profile or os.environ.get("SSLCOOKBOOK_PROFILE") or DEFAULT_PROFILE
    if name not in PROFILES:
        raise ValueError(
            f"unknown profile {name!r}: choose one of {', '.join(PROFILES)} "
            "(set SSLCOOKBOOK_PROFILE or pass --profile)"
        )
    return name


NOTEBOOK_PROFILES = ("smoke", "cpu", "gpu")


def notebook_profile(profile: str | None = None) -> str:
    """The active profile for a notebook: ``smoke``, ``cpu`` or ``gpu`` (``full`` is for the CLI)."""
    name = active_profile(profile)
    if name not in NOTEBOOK_PROFILES:
        raise ValueError(
            f"profile {name!r} trains the published 200-epoch recipes (hours per notebook): notebooks run "
            "smoke, cpu or gpu. Set SSLCOOKBOOK_PROFILE=gpu for CIFAR-10 on a GPU, or train the full recipe "
            "with `sslcookbook run RECIPE --profile full`."
        )
    return name


def downloads_data(profile: str | None = None) -> bool:
    """Whether ``profile``'s data may be fetched from the internet on first use (gpu and full)."""
    return active_profile(profile) in DOWNLOADING_PROFILES


def default_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# Optimiser steps per labelled draw of the fine-tuning evaluation a run reports (``evaluate.fine_tune`` from
# the SSL weights and ``evaluate.supervised_baseline`` from scratch, at 1, 10 and all labels per class: 7
# trainings each). cpu, measured 2026-12-01 on the 2-core CPU for the 32-channel CNN on the digits: 100
# steps cost 16 s of CPU time per protocol (about 32 s per run; SimCLR's training takes 27 s); after 15
# SimCLR epochs 50 steps fine-tuned to 97.8% with all labels against 98.9% at 100 and 99.2% at 200 (1 and
# 10 labels: within a point). smoke: a few steps, only that it runs (accuracies near chance). gpu and full:
# not measured; about 6 passes over the classroom's 10,000 images and 2.5 over CIFAR-10 with all labels.
FINE_TUNE_STEPS = {"smoke": 5, "cpu": 100, "gpu": 500, "full": 1000}
