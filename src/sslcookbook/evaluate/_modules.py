"""Which nn.Modules a callable runs: the encoder itself, or those a function holds (closure introspection)."""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn


def module_device(module: Any) -> torch.device | None:
    if isinstance(module, nn.Module):
        for tensor in module.parameters():
            return tensor.device
        for tensor in module.buffers():
            return tensor.device
    return None


def modules_behind(encoder: Any) -> list[nn.Module]:
    """The nn.Modules that ``encoder`` runs: itself if it is one, else those a plain function reaches
    directly — a bound method's owner, a ``functools.partial``'s function and arguments, closure
    variables and default arguments (``lambda x: m.projector(m.backbone(x))`` finds ``m``)."""
    if isinstance(encoder, nn.Module):
        return [encoder]
    candidates: list[Any] = []
    if hasattr(encoder, "__self__"):
        candidates.append(encoder.__self__)
    if isinstance(encoder, functools.partial):
        candidates += [encoder.func, *encoder.args, *encoder.keywords.values()]
    for cell in getattr(encoder, "__closure__", None) or ():
        try:
            candidates.append(cell.cell_contents)
        except ValueError:  # an empty cell
            pass
    candidates += list(getattr(encoder, "__defaults__", None) or ())
    found: list[nn.Module] = []
    for candidate in candidates:
        for module in modules_behind(candidate) if isinstance(candidate, functools.partial) else [candidate]:
            if isinstance(module, nn.Module) and all(module is not m for m in found):
                found.append(module)
    return found
