"""Masked image modelling: a ViT learns by reconstructing the pixels of the patches it was not shown.

MAE removes 75% of the patch tokens before the encoder (which then costs a quarter of the tokens) and a
light decoder, fed the encoded visible tokens and a shared mask token at every hidden position, predicts
the hidden patches' pixels. SimMIM keeps every token in the encoder, replacing hidden ones (in squares of
tokens) by a learned mask token, and a single linear layer predicts each patch's pixels. Both train on one
view per image (crops and flips); neither has a second branch, a momentum encoder or negatives.
"""

from __future__ import annotations

import torch
from torch import nn

from ..losses.masked import (
    block_masking,
    default_mask_patch,
    mae_loss,
    mask_to_pixels,
    patchify,
    random_masking,
    simmim_loss,
    unnormalise_patches,
    unpatchify,
)
from ..models.vit import Block, select_tokens, sincos_position_embedding
from .base import SSLMethod, check_positive, check_views

_VIT_API = (
    "embed_patches",
    "encode",
    "position_embedding",
    "patch_size",
    "in_channels",
    "dim",
    "num_patches",
)


def check_vit(backbone: nn.Module, method: str) -> None:
    """Raise a TypeError naming the fix unless ``backbone`` is a ViT
    (:class:`~sslcookbook.models.VisionTransformer` or anything with its token-level API)."""
    missing = [name for name in _VIT_API if not hasattr(backbone, name)]
    if missing:
        raise TypeError(
            f"{method} masks patch tokens, so it needs a Vision Transformer backbone, got "
            f"{type(backbone).__name__} (it lacks {', '.join(missing)}): build it with backbone 'vit_tiny' "
            "or 'vit_small' (sslcookbook.models.vit_tiny(in_channels, image_size); on the command line "
            "--set backbone=vit_tiny)"
        )


def _check_divisible(x: torch.Tensor, patch_size: int, method: str) -> tuple[int, int]:
    h, w = x.shape[-2:]
    if h % patch_size or w % patch_size:
        raise ValueError(
            f"{method} reconstructs whole patches, but the {h}×{w} views are not a multiple of the ViT's "
            f"{patch_size}-px patches: make views of a size divisible by {patch_size}"
        )
    return h // patch_size, w // patch_size


class MAE(SSLMethod):
    r"""Masked autoencoder (He, Chen, Xie, Li, Dollár & Girshick, 2022, "Masked Autoencoders Are Scalable
    Vision Learners", arXiv:2111.06377).

    Per image: patch tokens with position embeddings (``backbone.embed_patches``), a random
    ``1 − mask_ratio`` of them kept (:func:`~sslcookbook.losses.random_masking`) and encoded with the CLS
    token (``backbone.encode``, on the visible tokens only). The decoder maps them to ``decoder_dim``,
    puts a shared learned mask token at every hidden position, adds its own fixed sin-cos position
    embedding, runs ``decoder_depth`` narrow transformer blocks and predicts each patch's P·P·C pixels;
    :func:`~sslcookbook.losses.mae_loss` scores the hidden patches (against per-patch normalised pixels
    with ``norm_pix``, the paper's default). The paper's decoder is 512 wide and 8 deep for ViT-L;
    its ablation (Table 1a, b) finds 1 block enough for fine-tuning, more for linear probing.

    ``encode_visible_only=False`` is the paper's "encoder with mask tokens" ablation (Table 1c): every
    token enters the encoder, hidden ones replaced by a learned mask token (plus their position), and the
    decoder reads all of them: the same loss at about 1/(1 − mask_ratio) times the encoder's cost, for
    the benchmark and notebook 08.

    Pixels are the views' values in [0, 1]. Logged: ``visible`` (fraction of tokens the encoder saw).
    """

    def __init__(
        self,
        backbone: nn.Module,
        decoder_dim: int = 128,
        decoder_depth: int = 2,
        decoder_heads: int = 4,
        mask_ratio: float = 0.75,
        norm_pix: bool = True,
        encode_visible_only: bool = True,
    ):
        super().__init__()
        check_vit(backbone, "MAE")
        random_masking(1, backbone.num_patches, mask_ratio)  # raises for a ratio that keeps or hides nothing
        check_positive(decoder_dim=decoder_dim, decoder_heads=decoder_heads)
        if decoder_depth < 0:
            raise ValueError(f"decoder_depth must be >= 0, got {decoder_depth}")
        if decoder_dim % 4:
            raise ValueError(f"decoder_dim must be divisible by 4 (sin-cos positions), got {decoder_dim}")
        self.backbone = backbone
        self.mask_ratio, self.norm_pix, self.encode_visible_only = mask_ratio, norm_pix, encode_visible_only
        patch_pixels = backbone.patch_size**2 * backbone.in_channels
        self.decoder_embed = nn.Linear(backbone.dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_blocks = nn.ModuleList(Block(decoder_dim, decoder_heads) for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_dim, patch_pixels)
        grid = int(backbone.num_patches**0.5)
        self.register_buffer(
            "decoder_pos_embed", sincos_position_embedding(grid, grid, decoder_dim)[None], persistent=False
        )
        self.encoder_mask_token = (
            nn.Parameter(torch.zeros(1, 1, backbone.dim)) if not encode_visible_only else None
        )
        nn.init.normal_(self.mask_token, std=0.02)
        if self.encoder_mask_token is not None:
            nn.init.normal_(self.encoder_mask_token, std=0.02)
        for m in [self.decoder_embed, self.decoder_pred, *self.decoder_blocks.modules()]:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def decoder_position_embedding(self, grid_h: int, grid_w: int, like: torch.Tensor) -> torch.Tensor:
        """The decoder's fixed 1×N×decoder_dim sin-cos position embedding for a grid of patches."""
        if grid_h * grid_w == self.decoder_pos_embed.shape[1] and grid_h == grid_w:
            return self.decoder_pos_embed.to(like.dtype)
        return sincos_position_embedding(grid_h, grid_w, self.mask_token.shape[-1]).to(like)[None]

    def forward_masked(self, x: torch.Tensor, mask_ratio: float | None = None) -> dict:
        """Mask, encode, decode one batch: ``pred`` and ``target`` (B×N×P·P·C, target un-normalised),
        ``mask`` (B×N, 1 = hidden) and ``grid``."""
        ratio = self.mask_ratio if mask_ratio is None else mask_ratio
        grid = _check_divisible(x, self.backbone.patch_size, "MAE")
        tokens = self.backbone.embed_patches(x)
        b, n, _ = tokens.shape
        masking = random_masking(b, n, ratio, device=x.device)
        if self.encode_visible_only:
            encoded = self.backbone.encode(select_tokens(tokens, masking.keep))
            h = self.decoder_embed(encoded)
            visible = h.shape[1] - 1
            hidden = self.mask_token.to(h.dtype).expand(b, n - visible, -1)
            patches = torch.gather(
                torch.cat([h[:, 1:], hidden], dim=1),
                1,
                masking.restore.unsqueeze(-1).expand(-1, -1, h.shape[-1]),
            )
        else:
            pos = self.backbone.position_embedding(*grid).to(tokens.dtype)
            w = masking.mask.unsqueeze(-1).to(tokens.dtype)
            tokens = tokens * (1 - w) + (self.encoder_mask_token.to(tokens.dtype) + pos) * w
            h = self.decoder_embed(self.backbone.encode(tokens))
            patches = h[:, 1:]
        h = torch.cat([h[:, :1], patches + self.decoder_position_embedding(*grid, patches)], dim=1)
        for block in self.decoder_blocks:
            h = block(h)
        pred = self.decoder_pred(self.decoder_norm(h)[:, 1:])
        return {
            "pred": pred,
            "target": patchify(x, self.backbone.patch_size),
            "mask": masking.mask,
            "grid": grid,
        }

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        check_views(views, "MAE")
        out = self.forward_masked(views[0])
        loss = mae_loss(out["pred"], out["target"], out["mask"], norm_pix=self.norm_pix)
        return {"loss": loss, "visible": 1 - out["mask"].mean().detach()}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, mask_ratio: float | None = None, unnormalise: bool = True) -> dict:
        """Images to look at: ``masked`` (hidden patches grey), ``reconstruction`` (the prediction at hidden
        patches, the image at visible ones) and ``prediction`` (every patch predicted), all B×C×H×W, and
        the B×N ``mask``. With ``norm_pix`` the model predicts normalised patches; ``unnormalise=True`` maps
        them back with each target patch's own mean and variance (without it they look broken)."""
        out = self.forward_masked(x, mask_ratio)
        pred, target, mask, grid = out["pred"].float(), out["target"].float(), out["mask"], out["grid"]
        if self.norm_pix and unnormalise:
            pred = unnormalise_patches(pred, target)
        m = mask.unsqueeze(-1)
        p = self.backbone.patch_size
        return {
            "masked": unpatchify(target * (1 - m) + 0.5 * m, p, grid),
            "reconstruction": unpatchify(target * (1 - m) + pred * m, p, grid),
            "prediction": unpatchify(pred, p, grid),
            "mask": mask,
        }


class SimMIM(SSLMethod):
    r"""SimMIM (Xie, Zhang, Cao, Lin, Bao, Yao, Dai & Hu, 2022, "SimMIM: A Simple Framework for Masked
    Image Modeling", arXiv:2111.09886).

    Squares of ``mask_patch × mask_patch`` tokens are hidden (:func:`~sslcookbook.losses.block_masking`,
    ratio 0.6; ``mask_patch=None``: :func:`~sslcookbook.losses.default_mask_patch`, 2×2 tokens on CIFAR,
    single tokens on the 8×8 digits): their patch embeddings are replaced by one learned mask token, the
    position embedding is kept, and the encoder runs on *all* tokens. A one-layer linear decoder (the
    paper's 1×1 convolution and pixel shuffle) maps every encoded patch token to its P·P·C pixels, and
    :func:`~sslcookbook.losses.simmim_loss` scores the hidden pixels with L1.

    Pixels are the views' values in [0, 1]. Logged: ``hidden`` (the fraction of tokens masked).
    """

    def __init__(self, backbone: nn.Module, mask_ratio: float = 0.6, mask_patch: int | None = None):
        super().__init__()
        check_vit(backbone, "SimMIM")
        grid = int(backbone.num_patches**0.5)
        block_masking(1, grid, mask_ratio, mask_patch or default_mask_patch(grid))  # raises for bad arguments
        self.backbone, self.mask_ratio, self.mask_patch = backbone, mask_ratio, mask_patch
        self.mask_token = nn.Parameter(torch.zeros(1, 1, backbone.dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.decoder = nn.Linear(backbone.dim, backbone.patch_size**2 * backbone.in_channels)

    def forward_masked(self, x: torch.Tensor, mask_ratio: float | None = None) -> dict:
        """Mask and reconstruct one batch: ``pred`` (B×C×H×W), ``mask`` (B×N, 1 = hidden), ``grid``."""
        grid = _check_divisible(x, self.backbone.patch_size, "SimMIM")
        tokens = self.backbone.embed_patches(x)
        mask_patch = self.mask_patch or default_mask_patch(grid)
        ratio = self.mask_ratio if mask_ratio is None else mask_ratio
        mask = block_masking(tokens.shape[0], grid, ratio, mask_patch, device=x.device)
        w = mask.unsqueeze(-1).to(tokens.dtype)
        pos = self.backbone.position_embedding(*grid).to(tokens.dtype)
        tokens = tokens * (1 - w) + (self.mask_token.to(tokens.dtype) + pos) * w
        encoded = self.backbone.encode(tokens)[:, 1:]
        pred = unpatchify(self.decoder(encoded), self.backbone.patch_size, grid)
        return {"pred": pred, "mask": mask, "grid": grid}

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        check_views(views, "SimMIM")
        x = views[0]
        out = self.forward_masked(x)
        pixels = mask_to_pixels(out["mask"], self.backbone.patch_size, out["grid"])
        return {"loss": simmim_loss(out["pred"], x, pixels), "hidden": out["mask"].mean().detach()}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, mask_ratio: float | None = None) -> dict:
        """``masked`` (hidden patches grey), ``reconstruction`` (prediction at hidden pixels) and
        ``prediction`` (B×C×H×W), and the B×N ``mask``."""
        out = self.forward_masked(x, mask_ratio)
        m = mask_to_pixels(out["mask"], self.backbone.patch_size, out["grid"]).to(x.dtype)
        pred = out["pred"].to(x.dtype)
        return {
            "masked": x * (1 - m) + 0.5 * m,
            "reconstruction": x * (1 - m) + pred * m,
            "prediction": pred,
            "mask": out["mask"],
        }


__all__ = ["MAE", "SimMIM", "check_vit"]
