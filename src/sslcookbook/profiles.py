"""Run profiles: how much compute a recipe, notebook or test may spend.

``smoke`` (CI: seconds), ``cpu`` (a laptop: minutes, the method visibly beats its baselines),
``gpu`` (the published recipe). The active profile comes from ``SSLCOOKBOOK_PROFILE``; without it,
``gpu`` when CUDA is available, else ``cpu``.
"""

from __future__ import annotations

import os

import torch

PROFILES = ("smoke", "cpu", "gpu")


def active_profile(profile: str | None = None) -> str:
    """Return ``profile`` if given, else ``$SSLCOOKBOOK_PROFILE``, else the default for this machine."""
    name = profile or os.environ.get("SSLCOOKBOOK_PROFILE") or ("gpu" if torch.cuda.is_available() else "cpu")
    if name not in PROFILES:
        raise ValueError(
            f"unknown profile {name!r}: choose one of {', '.join(PROFILES)} "
            "(set SSLCOOKBOOK_PROFILE or pass --profile)"
        )
    return name


def default_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
