"""Backbones and heads."""

from .backbones import BACKBONES, SmallCNN, build_backbone, resnet18_cifar, takes_image_size
from .char_lm import CharLM, completion_log_probs, completion_mask, generate, token_log_probs
from .export import export_backbone, load_backbone
from .heads import mlp
from .sequence import ConvEncoder1d, PatchTransformer
from .text import TextEncoder
from .vit import VisionTransformer, select_tokens, vit_small, vit_tiny

__all__ = [
    "BACKBONES",
    "SmallCNN",
    "build_backbone",
    "export_backbone",
    "load_backbone",
    "mlp",
    "resnet18_cifar",
    "takes_image_size",
    "VisionTransformer",
    "select_tokens",
    "vit_small",
    "vit_tiny",
    "TextEncoder",
    "ConvEncoder1d",
    "PatchTransformer",
    "CharLM",
    "completion_log_probs",
    "completion_mask",
    "generate",
    "token_log_probs",
]
