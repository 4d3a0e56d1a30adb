"""Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words") sized for small images.

An image is cut into P×P patches, each patch is projected to a D-dimensional token, a position embedding
is added, a learned CLS token is prepended and pre-norm transformer blocks mix the tokens:

    t₀ = [cls; patches(x)·W + pos],   tₗ = tₗ₋₁ + MHSA(LN(tₗ₋₁)),   tₗ = tₗ + MLP(LN(tₗ)),   out = LN(t_L)

Attention is ``torch.nn.functional.scaled_dot_product_attention`` (FlashAttention or memory-efficient
attention on a GPU, a fused kernel on the CPU, in fp32 there: ``models/attention.py``);
``attention="plain"`` spells out softmax(QKᵀ/√d)V, for the benchmark and for the attention maps.

Beyond ``forward(x) -> B×feature_dim`` (what every method and evaluation uses), the encoder is open in
the middle so masked-image and JEPA methods can work on tokens:

- ``embed_patches(x)``: B×N×D patch tokens with their position embedding, no CLS (N = (H/P)·(W/P));
- ``encode(tokens)``: the blocks and final norm on any subset or masked version of those tokens
  (MAE encodes only the visible 25%; SimMIM swaps in a mask token first), CLS prepended;
  ``return_layers=True`` also returns every block's output (data2vec's targets);
- ``patch_features(x)``: the normalised patch tokens of the whole image (I-JEPA's target encoder);
- ``attention_maps(x)``: the last block's CLS-to-patch attention per head (DINO's headline figure).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attend

POSITIONS = ("sincos", "learned")
POOLS = ("cls", "mean")
ATTENTIONS = ("sdpa", "plain")


def default_patch_size(image_size: int) -> int:
    """2×2 patches up to 16-px images (8×8 digits: 16 tokens), 4×4 up to 64 px (CIFAR: 64 tokens), else 16."""
    if image_size <= 16:
        return 2
    if image_size <= 64:
        return 4
    return 16


def sincos_position_embedding(grid_h: int, grid_w: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding (grid_h·grid_w)×dim, as in MAE: half of the channels
    encode the row, half the column, each as sin/cos at geometrically spaced frequencies."""
    if dim % 4:
        raise ValueError(f"sin-cos position embeddings need a width divisible by 4, got {dim}")
    quarter = dim // 4
    frequencies = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    rows, cols = torch.meshgrid(
        torch.arange(grid_h, dtype=torch.float64), torch.arange(grid_w, dtype=torch.float64), indexing="ij"
    )

    def encode(positions: torch.Tensor) -> torch.Tensor:
        angles = positions.reshape(-1, 1) * frequencies
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return torch.cat([encode(rows), encode(cols)], dim=1).float()


def select_tokens(tokens: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """The tokens at ``indices`` (B×n, long) of each sample: B×N×D -> B×n×D (MAE's visible patches,
    I-JEPA's context and target blocks)."""
    if indices.dim() != 2 or indices.shape[0] != tokens.shape[0]:
        raise ValueError(
            f"indices must be B×n with B={tokens.shape[0]}, got shape {tuple(indices.shape)}"
        )
    return torch.gather(tokens, 1, indices.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


class Attention(nn.Module):
    """Multi-head self-attention; ``plain`` computes the weights explicitly, ``sdpa`` calls the fused op."""

    def __init__(self, dim: int, heads: int, implementation: str = "sdpa"):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads: choose heads dividing it")
        if implementation not in ATTENTIONS:
            raise ValueError(f"unknown attention {implementation!r}: choose one of {', '.join(ATTENTIONS)}")
        self.heads, self.implementation = heads, implementation
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if return_weights or self.implementation == "plain":
            weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)
            mixed = weights @ v
        else:
            weights, mixed = None, attend(q, k, v)
        mixed = self.out(mixed.transpose(1, 2).reshape(b, n, d))
        return (mixed, weights) if return_weights else mixed


class Block(nn.Module):
    """Pre-norm transformer block: x + MHSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, attention: str = "sdpa"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attention = Attention(dim, heads, attention)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """ViT on images of any size (sides that are not multiples of ``patch_size`` are padded to whole
    patches); features are the CLS token (``pool="cls"``) or the mean of the patch tokens (``pool="mean"``)
    after the final LayerNorm.

    Args:
        in_channels: image channels (1 for digits, 3 for colour).
        image_size: the side the (learned) position embedding is made for; other sizes also work
            (learned embeddings are interpolated, sin-cos ones recomputed).
        patch_size: side of a square patch (None: :func:`default_patch_size` of ``image_size``).
        dim, depth, heads, mlp_ratio: width, number of blocks, attention heads, MLP expansion.
        position: ``"sincos"`` (fixed, MAE) or ``"learned"`` (ViT, DINO).
        attention: ``"sdpa"`` (fused) or ``"plain"`` (explicit softmax, the reference).
    """

    def __init__(
        self,
        in_channels: int = 3,
        image_size: int = 32,
        patch_size: int | None = None,
        dim: int = 192,
        depth: int = 12,
        heads: int = 3,
        mlp_ratio: float = 4.0,
        position: str = "sincos",
        pool: str = "cls",
        attention: str = "sdpa",
    ):
        super().__init__()
        patch_size = patch_size or default_patch_size(image_size)
        if image_size % patch_size:
            raise ValueError(
                f"image_size {image_size} is not a multiple of patch_size {patch_size}: choose a patch size "
                "that divides the image side (e.g. 2 for 8×8 digits, 4 for 32×32 CIFAR, 16 for 224)"
            )
        if position not in POSITIONS:
            raise ValueError(f"unknown position embedding {position!r}: choose one of {', '.join(POSITIONS)}")
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r}: choose one of {', '.join(POOLS)}")
        self.in_channels, self.image_size, self.patch_size = in_channels, image_size, patch_size
        self.position, self.pool = position, pool
        self.feature_dim = self.dim = dim
        self.grid = image_size // patch_size
        self.num_patches = self.grid**2

        self.patch_embed = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        if position == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches, dim))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        else:
            self.register_buffer(
                "pos_embed", sincos_position_embedding(self.grid, self.grid, dim)[None], persistent=False
            )
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, attention) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self._init_weights()

    def reset_parameters(self) -> None:
        """Re-draw the ViT's own initialisation (what ``evaluate.random_encoder_like`` calls after the
        submodules' own ``reset_parameters``): the CLS token and a learned position embedding, which no
        submodule reaches, and the MAE initialisation of the patch projection and the blocks' linears."""
        if self.position == "learned":
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self._init_weights()

    def _init_weights(self) -> None:
        # The MAE/DeiT initialisation: the patch projection like a linear layer (Xavier on its flattened
        # weight), truncated-normal CLS token, Xavier linears with zero bias.
        w = self.patch_embed.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.bias)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    # ---------------------------------------------------------------------------------------------- tokens
    def grid_size(self, x: torch.Tensor) -> tuple[int, int]:
        """(rows, columns) of patches for the batch ``x`` (sides rounded up to whole patches)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"ViT takes B×{self.in_channels}×H×W images, got shape {tuple(x.shape)}: build it with "
                f"in_channels={x.shape[1] if x.dim() == 4 else '?'} for these images"
            )
        h, w = x.shape[-2:]
        return -(-h // self.patch_size), -(-w // self.patch_size)

    def position_embedding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """1×(grid_h·grid_w)×D position embedding for a grid of patches (interpolated or recomputed when
        the grid differs from the one the model was built for)."""
        if (grid_h, grid_w) == (self.grid, self.grid):
            return self.pos_embed
        if self.position == "sincos":
            return sincos_position_embedding(grid_h, grid_w, self.dim).to(self.pos_embed)[None]
        square = self.pos_embed.reshape(1, self.grid, self.grid, self.dim).permute(0, 3, 1, 2)
        resized = F.interpolate(square, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
        return resized.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, self.dim)

    def embed_patches(self, x: torch.Tensor) -> torch.Tensor:
        """B×N×D patch tokens with position embeddings, row-major over the patch grid (no CLS token).
        Images in [0, 1] are centred to [-1, 1] here, as the other backbones do."""
        grid_h, grid_w = self.grid_size(x)
        x = x * 2 - 1
        pad_h, pad_w = grid_h * self.patch_size - x.shape[-2], grid_w * self.patch_size - x.shape[-1]
        if pad_h or pad_w:
            # Sides that are not whole patches (a jigsaw tile) are padded at the bottom and right with
            # mid-grey (0 after centring), as timm's dynamic_img_pad does, rather than refused.
            x = F.pad(x, (0, pad_w, 0, pad_h))
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        return tokens + self.position_embedding(grid_h, grid_w)

    def encode(self, tokens: torch.Tensor, return_layers: bool = False):
        """Run the blocks on B×n×D patch tokens (any subset, in any order) with the CLS token prepended;
        return the normalised B×(1+n)×D output, and with ``return_layers`` also the list of each block's
        raw output (before the final norm)."""
        x = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        layers = []
        for block in self.blocks:
            x = block(x)
            if return_layers:
                layers.append(x)
        x = self.norm(x)
        return (x, layers) if return_layers else x

    def pool_tokens(self, encoded: torch.Tensor) -> torch.Tensor:
        """Features from encoded tokens B×(1+n)×D: the CLS token or the mean of the patch tokens."""
        return encoded[:, 0] if self.pool == "cls" else encoded[:, 1:].mean(dim=1)

    # ---------------------------------------------------------------------------------------------- views
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B×C×H×W images in [0, 1] -> B×feature_dim features."""
        return self.pool_tokens(self.encode(self.embed_patches(x)))

    def patch_features(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised patch tokens of the whole image, B×N×D (the CLS token dropped)."""
        return self.encode(self.embed_patches(x))[:, 1:]

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's attention from the CLS token to every patch, per head: B×heads×grid_h×grid_w
        (each map sums to 1 minus the CLS token's attention to itself)."""
        grid_h, grid_w = self.grid_size(x)
        h = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), self.embed_patches(x)], dim=1)
        for block in self.blocks[:-1]:
            h = block(h)
        _, weights = self.blocks[-1].attention(self.blocks[-1].norm1(h), return_weights=True)
        return weights[:, :, 0, 1:].reshape(x.shape[0], -1, grid_h, grid_w)


def vit_tiny(
    in_channels: int = 3,
    image_size: int = 32,
    patch_size: int | None = None,
    depth: int = 12,
    position: str = "sincos",
    pool: str = "cls",
    attention: str = "sdpa",
) -> VisionTransformer:
    """ViT-Tiny (DeiT): width 192, 3 heads, 12 blocks (``depth`` fewer for a laptop), ~5.5 M parameters."""
    return VisionTransformer(
        in_channels, image_size, patch_size, 192, depth, 3, 4.0, position, pool, attention
    )


def vit_small(
    in_channels: int = 3,
    image_size: int = 32,
    patch_size: int | None = None,
    depth: int = 12,
    position: str = "sincos",
    pool: str = "cls",
    attention: str = "sdpa",
) -> VisionTransformer:
    """ViT-Small (DeiT, DINO's ViT-S): width 384, 6 heads, 12 blocks, ~21.7 M parameters."""
    return VisionTransformer(
        in_channels, image_size, patch_size, 384, depth, 6, 4.0, position, pool, attention
    )
