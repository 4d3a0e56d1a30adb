"""Backbones for time series B×C×L: a dilated 1-D CNN and a channel-independent patch transformer.

Both give per-step features (``steps(x)``: B×T×D, T = L for the CNN, the number of patches for the
transformer) and pooled ones (``forward(x)``: B×D, ``feature_dim`` = D, like the image backbones), and
both standardise each channel of each series by its own mean and std first (PatchTST's instance
normalisation, "RevIN" without the learned affine): offsets and gains, nuisances of most series, are gone
before the first layer. ``mask`` (B×L bool, True where observed; the padding of ``ucr:`` data) keeps
padded steps out of the statistics and the pooling.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .vit import Block

INSTANCE_NORM_EPS = 1e-5


def instance_normalise(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""Each channel of each series standardised over its (observed) steps,
    :math:`(x - \mu)/\sqrt{\sigma^2+\epsilon}` (the mean and variance of that channel's steps)."""
    if mask is None:
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return (x - mean) / (var + INSTANCE_NORM_EPS).sqrt()
    m = mask[:, None, :].to(x.dtype)
    count = m.sum(dim=-1, keepdim=True).clamp(min=1)
    mean = (x * m).sum(dim=-1, keepdim=True) / count
    var = ((x - mean).pow(2) * m).sum(dim=-1, keepdim=True) / count
    return (x - mean) / (var + INSTANCE_NORM_EPS).sqrt() * m


def _check_series(x: torch.Tensor, channels: int, who: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{who} takes float series B×C×L, got {shape}")
    if x.shape[1] != channels:
        raise ValueError(
            f"{who} was built for {channels} channels, got series with {x.shape[1]}: "
            f"build it with in_channels={x.shape[1]}"
        )


def masked_pool(steps: torch.Tensor, mask: torch.Tensor | None, how: str) -> torch.Tensor:
    """Pool per-step features B×T×D over time, "mean" or "max", leaving out steps where ``mask`` (B×T)
    is False."""
    if mask is None:
        return steps.mean(dim=1) if how == "mean" else steps.amax(dim=1)
    m = mask.unsqueeze(-1)
    if how == "mean":
        return (steps * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)
    return steps.masked_fill(~m, float("-inf")).amax(dim=1)


class _DilatedBlock(nn.Module):
    """x + conv(GELU(conv(GELU(x)))), both convs of kernel k and dilation d, same length out."""

    def __init__(self, width: int, kernel_size: int, dilation: int, causal: bool):
        super().__init__()
        self.pad = (kernel_size - 1) * dilation
        self.causal = causal
        self.conv1 = nn.Conv1d(width, width, kernel_size, dilation=dilation)
        self.conv2 = nn.Conv1d(width, width, kernel_size, dilation=dilation)

    def _same(self, x: torch.Tensor) -> torch.Tensor:
        # causal: all the padding on the left, so step t sees steps <= t only
        left = self.pad if self.causal else self.pad // 2
        return F.pad(x, (left, self.pad - left))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self._same(F.gelu(x)))
        return x + self.conv2(self._same(F.gelu(h)))


class ConvEncoder1d(nn.Module):
    """A dilated residual 1-D CNN (the encoder of TS2Vec, Yue et al. 2022, made small).

    A 1×1 input projection, ``depth`` residual blocks of dilation 1, 2, 4, ... (the receptive field grows
    to 1 + 2(k−1)(2^depth − 1) steps: 61 at k = 3, depth 4) and a 1×1 output projection to
    ``feature_dim``. ``causal=True`` pads on the left only, so the features of step t depend on steps ≤ t
    (CPC's encoder must not see the future it is asked to predict). ``pool``: "max" (TS2Vec's) or "mean".
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 64,
        depth: int = 4,
        kernel_size: int = 3,
        feature_dim: int | None = None,
        causal: bool = False,
        pool: str = "max",
        instance_norm: bool = True,
    ):
        super().__init__()
        if pool not in ("max", "mean"):
            raise ValueError(f"pool must be 'max' or 'mean', got {pool!r}")
        if depth < 1 or width < 1 or kernel_size < 1:
            raise ValueError(
                f"depth, width and kernel_size must be >= 1, got {depth}, {width}, {kernel_size}"
            )
        self.in_channels, self.pool, self.causal, self.instance_norm = (
            in_channels,
            pool,
            causal,
            instance_norm,
        )
        self.feature_dim = feature_dim or width
        self.input = nn.Conv1d(in_channels, width, 1)
        self.blocks = nn.Sequential(*[_DilatedBlock(width, kernel_size, 2**i, causal) for i in range(depth)])
        self.output = nn.Conv1d(width, self.feature_dim, 1)
        self.receptive_field = 1 + 2 * (kernel_size - 1) * (2**depth - 1)

    def project(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The input projection B×width×L of checked, normalised series (TS2Vec masks timestamps here)."""
        _check_series(x, self.in_channels, type(self).__name__)
        if self.instance_norm:
            x = instance_normalise(x, mask)
        return self.input(x)

    def encode(self, h: torch.Tensor) -> torch.Tensor:
        """Per-step features B×L×D of an input projection B×width×L."""
        return self.output(self.blocks(h)).transpose(1, 2)

    def steps(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Per-step features B×L×D."""
        return self.encode(self.project(x, mask))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return masked_pool(self.steps(x, mask), mask, self.pool)


def sincos_1d(length: int, dim: int) -> torch.Tensor:
    """Fixed sine-cosine position embedding length×dim (Vaswani et al. 2017)."""
    if dim % 2:
        raise ValueError(f"sin-cos position embeddings need an even width, got {dim}")
    frequencies = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim // 2))
    angles = torch.arange(length, dtype=torch.float64)[:, None] * frequencies
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


class PatchTransformer(nn.Module):
    """A small channel-independent patch transformer (PatchTST, Nie et al. 2023).

    Every channel of every series is a sequence of its own: cut into non-overlapping patches of
    ``patch_len`` steps (the end padded by repeating the last value, as PatchTST does), each patch
    embedded linearly, plus a fixed sine-cosine position, through ``depth`` pre-norm transformer blocks
    shared by all channels. Per-step features are the patch tokens with the channels side by side,
    B×N×(C·dim); the pooled feature is their mean over patches, ``feature_dim`` = C·dim.
    """

    def __init__(
        self,
        in_channels: int = 3,
        patch_len: int = 16,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        instance_norm: bool = True,
    ):
        super().__init__()
        if patch_len < 1:
            raise ValueError(f"patch_len must be >= 1, got {patch_len}")
        self.in_channels, self.patch_len, self.dim, self.instance_norm = (
            in_channels,
            patch_len,
            dim,
            instance_norm,
        )
        self.feature_dim = in_channels * dim
        self.embed = nn.Linear(patch_len, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio=2.0) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def num_patches(self, length: int) -> int:
        return math.ceil(length / self.patch_len)

    def patches(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The (normalised) patch rows (B·C)×N×P of series B×C×L, channel c of series b in row b·C + c."""
        _check_series(x, self.in_channels, type(self).__name__)
        if self.instance_norm:
            x = instance_normalise(x, mask)
        b, c, length = x.shape
        pad = self.num_patches(length) * self.patch_len - length
        if pad:
            x = torch.cat([x, x[:, :, -1:].expand(b, c, pad)], dim=2)
        return x.reshape(b * c, -1, self.patch_len)

    def encode_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """Tokens (B·C)×N×dim of patch rows (B·C)×N×P."""
        n = patches.shape[1]
        tokens = self.embed(patches) + sincos_1d(n, self.dim).to(patches.device, patches.dtype)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)

    def steps(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Per-patch features B×N×(C·dim)."""
        tokens = self.encode_patches(self.patches(x, mask))
        b = x.shape[0]
        return tokens.reshape(b, self.in_channels, -1, self.dim).permute(0, 2, 1, 3).flatten(2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        patch_mask = None
        if mask is not None:  # a patch counts when any of its steps was observed
            pad = self.num_patches(mask.shape[1]) * self.patch_len - mask.shape[1]
            patch_mask = F.pad(mask, (0, pad)).reshape(mask.shape[0], -1, self.patch_len).any(dim=2)
        return masked_pool(self.steps(x, mask), patch_mask, "mean")


__all__ = ["ConvEncoder1d", "PatchTransformer", "instance_normalise", "masked_pool", "sincos_1d"]
