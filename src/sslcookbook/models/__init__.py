"""Backbones and heads."""

from .backbones import BACKBONES, SmallCNN, build_backbone, resnet18_cifar
from .heads import mlp

__all__ = ["BACKBONES", "SmallCNN", "build_backbone", "mlp", "resnet18_cifar"]
