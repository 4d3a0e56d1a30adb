"""A trained backbone as a safetensors file that rebuilds itself: ``export_backbone`` and ``load_backbone``.

The file holds the backbone's ``state_dict`` and, in the safetensors metadata (strings), what rebuilding
it needs: ``backbone`` (a name in ``BACKBONES``), ``backbone_kwargs`` (JSON), ``in_channels``,
``feature_dim`` and the ``sslcookbook_version`` that wrote it, plus whatever the caller adds (the CLI's
``sslcookbook export`` adds the recipe, profile and data). ``load_backbone(path)`` needs nothing else::

    from sslcookbook.models import load_backbone
    encoder = load_backbone("simclr.safetensors")   # an nn.Module in eval mode
    features = encoder(images)                      # float B×C×H×W in [0, 1] -> B×feature_dim
"""

from __future__ import annotations

import json
import os
from importlib import metadata as package_metadata
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model
from torch import nn

from .backbones import BACKBONES, build_backbone

REQUIRED_METADATA = ("backbone", "backbone_kwargs", "in_channels", "feature_dim")


def sslcookbook_version() -> str:
    try:
        return package_metadata.version("sslcookbook")
    except package_metadata.PackageNotFoundError:
        return "unknown"


def export_backbone(
    backbone: nn.Module,
    path: str | os.PathLike,
    *,
    name: str,
    kwargs: dict | None = None,
    in_channels: int,
    **extra: object,
) -> Path:
    """Write ``backbone``'s weights to ``path`` (safetensors) with the metadata ``load_backbone`` rebuilds it
    from: it was built as ``build_backbone(name, in_channels, **kwargs)``; ``extra``: more entries (str())."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": "sslcookbook.backbone",
        "backbone": name,
        "backbone_kwargs": json.dumps(kwargs or {}),
        "in_channels": str(int(in_channels)),
        "feature_dim": str(int(backbone.feature_dim)),
        "sslcookbook_version": sslcookbook_version(),
        **{key: str(value) for key, value in extra.items()},
    }
    save_model(backbone, str(path), metadata=meta)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a file written by ``export_backbone`` (errors name what is wrong with the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no backbone file at {path}: write one with `sslcookbook export CHECKPOINT {path.name}`"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise ValueError(
            f"{path} is not a safetensors file ({e}); export a backbone with `sslcookbook export`"
        ) from e
    missing = [key for key in REQUIRED_METADATA if key not in meta]
    if missing:
        raise ValueError(
            f"{path} lacks the metadata {', '.join(missing)} needed to rebuild the backbone: it was not "
            "written by sslcookbook.models.export_backbone (`sslcookbook export`)"
        )
    return meta


def load_backbone(path: str | os.PathLike, device: str = "cpu") -> nn.Module:
    """Rebuild the backbone stored by ``export_backbone`` / ``sslcookbook export`` and load its weights.

    Returns the module in eval mode on ``device`` (call ``.train()`` to fine-tune it). It maps float
    images B×C×H×W in [0, 1] with C = ``in_channels`` to features B×``feature_dim``; both are in
    ``read_metadata(path)``.
    """
    meta = read_metadata(path)
    name = meta["backbone"]
    if name not in BACKBONES:
        raise ValueError(
            f"{path} holds a {name!r} backbone, which this sslcookbook does not know (it knows "
            f"{', '.join(BACKBONES)}); the file was written by sslcookbook {meta.get('sslcookbook_version')}"
        )
    try:
        kwargs = json.loads(meta["backbone_kwargs"])
        in_channels = int(meta["in_channels"])
    except ValueError as e:
        raise ValueError(f"{path}: unreadable backbone metadata ({e})") from e
    net = build_backbone(name, in_channels, **kwargs)
    try:
        load_model(net, str(path), strict=True)
    except RuntimeError as e:
        raise ValueError(
            f"{path}: the weights do not fit {name}(in_channels={in_channels}, {kwargs}): {e}"
        ) from e
    if net.feature_dim != int(meta["feature_dim"]):
        raise ValueError(
            f"{path}: rebuilt {name} gives {net.feature_dim}-D features, not {meta['feature_dim']}"
        )
    return net.to(device).eval()
