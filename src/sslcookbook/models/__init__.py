"""Backbones and heads."""

from .backbones import BACKBONES, SmallCNN, build_backbone, resnet18_cifar
from .export import export_backbone, load_backbone
from .heads import mlp
from .text import TextEncoder

__all__ = [
    "BACKBONES",
    "SmallCNN",
    "build_backbone",
    "export_backbone",
    "load_backbone",
    "mlp",
    "resnet18_cifar",
    "TextEncoder",
]
