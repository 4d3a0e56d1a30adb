"""A small transformer text encoder for captions: token ids B×L → features B×D.

Token and learned position embeddings, ``depth`` pre-norm blocks (x + attention(LN(x)), then
x + MLP(LN(x)); Vaswani et al. 2017 with the pre-norm of GPT-2 and CLIP's text tower), a final LayerNorm,
and one vector per caption: the state at the end-of-text token (CLIP's choice, Radford et al. 2021) or
the mean over the non-padding tokens. Padding (token 0) is masked out of attention, so a caption's
features do not depend on how much padding follows it. Attention is
``torch.nn.functional.scaled_dot_product_attention`` (a fused kernel where PyTorch has one; in fp32 on the
CPU, ``models/attention.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.text import EOT, PAD
from .attention import attend

POOLS = ("eot", "mean")


class TransformerBlock(nn.Module):
    """A pre-norm transformer block (attention, then MLP, each residual) over B×L×width tokens, shared by
    the caption encoder (a padding mask) and the character LM (causal attention)."""

    def __init__(self, width: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.out = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(
            nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width)
        )

    def forward(
        self,
        x: torch.Tensor,
        keep: torch.Tensor | None = None,
        causal: bool = False,
        cache: dict | None = None,
    ):
        """``cache`` (causal only): a dict this block keeps its keys and values in, for decoding one token at
        a time; ``x`` then holds the positions after the cached ones, all of them on the first call (an
        empty dict), one on each call after."""
        b, length, width = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        if cache is not None:
            if "k" in cache:
                if length != 1:
                    raise ValueError(f"a filled cache takes one new position per call, got {length}")
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
                causal = False  # the one new position attends to every earlier one
            cache["k"], cache["v"] = k, v
        # keep: B×1×1×L, True = attend
        attended = attend(q, k, v, attn_mask=keep, is_causal=causal)
        x = x + self.out(attended.transpose(1, 2).reshape(b, length, width))
        return x + self.mlp(self.norm2(x))


class TextEncoder(nn.Module):
    """Token ids (int64 B×L, 0 = padding, with an end-of-text token 2) → features B×``feature_dim``.

    Args:
        vocab_size: the tokenizer's size (``len(tokenizer)``).
        context_length: the longest caption in tokens (L ≤ this).
        width: the embedding width (= ``feature_dim``); ``heads`` must divide it.
        depth: the number of transformer blocks.
        pool: ``"eot"`` (the end-of-text token's state) or ``"mean"`` (mean over non-padding tokens).
    """

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        width: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: int = 4,
        pool: str = "eot",
    ):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("context_length", context_length), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if width % heads:
            raise ValueError(f"heads ({heads}) must divide width ({width})")
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        self.context_length, self.pool, self.feature_dim = context_length, pool, width
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.position_embedding = nn.Parameter(torch.randn(context_length, width) * 0.01)
        self.blocks = nn.ModuleList(TransformerBlock(width, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def reset_parameters(self) -> None:
        """The constructor's draws of the embeddings (what ``evaluate.random_encoder_like`` calls after the
        submodules' own ``reset_parameters``): the position embedding, which no submodule reaches, and the
        token embedding at std 0.02 rather than ``nn.Embedding``'s 1."""
        with torch.no_grad():
            self.position_embedding.normal_(0.0, 0.01)
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.is_floating_point():
            got = getattr(tokens, "dtype", type(tokens).__name__)
            shape = tuple(getattr(tokens, "shape", ()))
            raise ValueError(
                f"TextEncoder takes int64 token ids B×L (tokenizer.encode(texts, length)), got {got} {shape}"
            )
        if tokens.shape[1] > self.context_length:
            raise ValueError(
                f"captions of {tokens.shape[1]} tokens are longer than context_length={self.context_length}: "
                "encode them shorter or build the encoder with a larger context_length"
            )
        length = tokens.shape[1]
        x = self.token_embedding(tokens) + self.position_embedding[:length]
        real = tokens != PAD
        keep = (real | ~real.any(1, keepdim=True))[:, None, None, :]  # an all-padding row attends to all
        for block in self.blocks:
            x = block(x, keep)
        x = self.norm(x)
        if self.pool == "mean":
            weights = real.unsqueeze(-1).to(x.dtype)
            return (x * weights).sum(1) / weights.sum(1).clamp(min=1)
        # the first end-of-text token (the last position when a caption has none)
        is_end = tokens == EOT
        end = torch.where(is_end.any(1), is_end.int().argmax(1), torch.full_like(tokens[:, 0], length - 1))
        return x[torch.arange(x.shape[0], device=x.device), end]
