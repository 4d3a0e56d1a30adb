"""Backbones: a small CNN for 8×8 to 32×32 inputs, the CIFAR variant of ResNet-18, and ViT-Tiny/Small.

A backbone maps float images B×C×H×W in [0, 1] to features B×D and exposes ``feature_dim``.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from .vit import vit_small, vit_tiny


class SmallCNN(nn.Module):
    """Three conv blocks (conv-BN-ReLU ×2, then downsample) and global average pooling.

    Sized for 8×8 digits up to 32×32 images: ~0.3 M parameters at ``width=32``, fast on a laptop CPU.
    Inputs in [0, 1] are centred to [-1, 1] inside so callers never normalise by hand.
    """

    def __init__(self, in_channels: int = 3, width: int = 32, feature_dim: int | None = None):
        super().__init__()

        def block(c_in: int, c_out: int, downsample: bool) -> list[nn.Module]:
            layers: list[nn.Module] = [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            if downsample:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            return layers

        self.features = nn.Sequential(
            *block(in_channels, width, True),
            *block(width, 2 * width, True),
            *block(2 * width, 4 * width, False),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.feature_dim = 4 * width
        if feature_dim is not None and feature_dim != self.feature_dim:
            raise ValueError(
                f"SmallCNN(width={width}) gives {self.feature_dim}-D features, not {feature_dim}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x * 2 - 1)


def resnet18_cifar(in_channels: int = 3) -> nn.Module:
    """torchvision's ResNet-18 with the CIFAR stem: 3×3 stride-1 first conv and no max-pool.

    The classifier is replaced by the identity, so the output is the 512-D pooled feature.
    Inputs in [0, 1] are standardised with the CIFAR-10 channel statistics inside.
    """
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return _Standardised(net, in_channels, feature_dim=512)


class _Standardised(nn.Module):
    def __init__(self, net: nn.Module, in_channels: int, feature_dim: int):
        super().__init__()
        mean = [0.4914, 0.4822, 0.4465][:in_channels] if in_channels == 3 else [0.5] * in_channels
        std = [0.2470, 0.2435, 0.2616][:in_channels] if in_channels == 3 else [0.25] * in_channels
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.net = net
        self.feature_dim = feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


BACKBONES = {
    "small_cnn": SmallCNN,
    "resnet18_cifar": resnet18_cifar,
    "vit_tiny": vit_tiny,
    "vit_small": vit_small,
}


def takes_image_size(name: str) -> bool:
    """Whether the backbone is built for one image size (a ViT's patch grid), so its builder needs it."""
    return "image_size" in inspect.signature(BACKBONES[name]).parameters


def build_backbone(name: str, in_channels: int, image_size: int | None = None, **kwargs) -> nn.Module:
    """Build a backbone by name (``small_cnn``, ``resnet18_cifar``, ``vit_tiny``, ``vit_small``).

    ``image_size`` (the side of the training images) reaches the backbones that need it (a ViT sizes its
    patches and position embedding from it) unless ``kwargs`` set it; the others ignore it.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}")
    if image_size is not None and takes_image_size(name):
        kwargs.setdefault("image_size", int(image_size))
    return BACKBONES[name](in_channels=in_channels, **kwargs)
