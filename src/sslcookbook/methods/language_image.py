r"""Language–image pre-training: CLIP (Radford et al. 2021) and SigLIP (Zhai et al. 2023).

An image encoder (any backbone of ``models/``) and a text encoder (:class:`~sslcookbook.models.TextEncoder`)
each end in a linear projection to a shared ``embed_dim``-D space; the loss pulls each image towards its
own caption and away from the batch's other captions. The captions are free, noisy labels: nobody chose
classes, yet a caption names what a class name would, and zero-shot classification only needs the class
names written as captions.

How captions reach the method: a method with ``uses_text = True`` is trained on a
:class:`~sslcookbook.data.PairedDataset`; ``fit`` moves its ``tokens`` (N×L token ids) to the device with
the images and calls ``training_step(views, labels, tokens=tokens[idx])`` with the token ids of the
batch's own images (under DDP each rank gets the rows of its own images). The method reads the first view.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..losses.language_image import (
    CLIP_SCALE_INIT,
    CLIP_SCALE_MAX,
    SIGLIP_BIAS_INIT,
    SIGLIP_SCALE_INIT,
    clip_loss,
    siglip_loss,
)
from ..models.text import TextEncoder
from .base import SSLMethod, check_positive, check_views, feature_dim


class LanguageImageMethod(SSLMethod):
    """Image encoder + text encoder + two linear projections into one embedding space.

    Args:
        backbone: the image encoder (its ``feature_dim`` sizes the image projection).
        vocab_size: at least the tokenizer's size (``len(dataset.tokenizer)``); larger is harmless.
        context_length: at least the data set's caption length (``dataset.tokens.shape[1]``).
        embed_dim: the shared embedding space.
        text_width, text_depth, text_heads, text_pool: the text encoder (see ``TextEncoder``).
    """

    uses_text = True

    def __init__(
        self,
        backbone: nn.Module,
        vocab_size: int = 64,
        context_length: int = 16,
        embed_dim: int = 64,
        text_width: int = 64,
        text_depth: int = 2,
        text_heads: int = 4,
        text_pool: str = "eot",
    ):
        super().__init__()
        check_positive(embed_dim=embed_dim)
        self.backbone = backbone
        self.text_encoder = TextEncoder(
            vocab_size, context_length, text_width, text_depth, text_heads, pool=text_pool
        )
        self.image_projection = nn.Linear(feature_dim(backbone), embed_dim, bias=False)
        self.text_projection = nn.Linear(text_width, embed_dim, bias=False)
        self.vocab_size, self.context_length = vocab_size, context_length

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings B×embed_dim (float images B×C×H×W in [0, 1])."""
        return F.normalize(self.image_projection(self.backbone(images)), dim=1)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """L2-normalised text embeddings B×embed_dim of token ids B×L."""
        return F.normalize(self.text_projection(self.text_encoder(tokens)), dim=1)

    def loss(
        self, image_embeddings: torch.Tensor, text_embeddings: torch.Tensor
    ) -> tuple[torch.Tensor, dict]:
        """The method's loss of matching embeddings, and the scalars to log."""
        raise NotImplementedError

    def training_step(self, views, labels=None, tokens: torch.Tensor | None = None) -> dict:
        name = type(self).__name__
        batch = check_views(views, name, min_count=1)
        self._check_tokens(tokens, batch)
        x = self.image_projection(self.backbone(views[0]))
        y = self.text_projection(self.text_encoder(tokens))
        loss, logged = self.loss(x, y)
        return {"loss": loss, **logged}

    def _check_tokens(self, tokens, batch: int) -> None:
        name = type(self).__name__
        if tokens is None:
            raise ValueError(
                f"{name} learns from captions: train it on a paired data set (e.g. data.load('shape_pairs') "
                "or 'pairs:<path>'), whose token ids fit passes as training_step(views, labels, tokens=...)"
            )
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.shape[0] != batch:
            raise ValueError(f"tokens must be token ids of shape ({batch}, L), one caption per image")
        if tokens.shape[1] > self.context_length:
            raise ValueError(
                f"captions of {tokens.shape[1]} tokens exceed context_length={self.context_length}: set "
                f"method.context_length to at least {tokens.shape[1]}"
            )
        if tokens.device.type == "cpu" and int(tokens.max()) >= self.vocab_size:
            raise ValueError(
                f"token id {int(tokens.max())} is outside vocab_size={self.vocab_size}: set "
                "method.vocab_size to at least len(dataset.tokenizer)"
            )


class CLIP(LanguageImageMethod):
    r"""CLIP (Radford et al., 2021): the symmetric cross-entropy over the batch's image–caption logits
    :math:`s\,x_i^\top y_j` (:func:`~sslcookbook.losses.clip_loss`), with the learnable scale
    :math:`s = e^{t}`, t starting at log(1/0.07) and s clamped at 100.

    Args (beyond :class:`LanguageImageMethod`'s):
        scale_init: the initial scale s (1/τ).
        max_scale: the clamp on s.
    """

    def __init__(
        self,
        backbone: nn.Module,
        vocab_size: int = 64,
        context_length: int = 16,
        embed_dim: int = 64,
        text_width: int = 64,
        text_depth: int = 2,
        text_heads: int = 4,
        text_pool: str = "eot",
        scale_init: float = CLIP_SCALE_INIT,
        max_scale: float = CLIP_SCALE_MAX,
    ):
        super().__init__(
            backbone, vocab_size, context_length, embed_dim, text_width, text_depth, text_heads, text_pool
        )
        check_positive(scale_init=scale_init, max_scale=max_scale)
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale_init)))
        self.max_scale = max_scale

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=self.max_scale)

    def loss(self, image_embeddings, text_embeddings):
        scale = self.scale
        return clip_loss(image_embeddings, text_embeddings, scale), {"scale": scale.detach()}


class SigLIP(LanguageImageMethod):
    r"""SigLIP (Zhai et al., 2023): every image–caption pair of the batch a binary "match or not" with
    logit :math:`t\,x_i^\top y_j + b` (:func:`~sslcookbook.losses.siglip_loss`), t = exp(t′) with t′ from
    log 10 and b from −10.

    Args (beyond :class:`LanguageImageMethod`'s):
        scale_init, bias_init: the initial t and b.
        backend: the loss's backend (``"auto"``: the fused kernel on CUDA when installed).
    """

    def __init__(
        self,
        backbone: nn.Module,
        vocab_size: int = 64,
        context_length: int = 16,
        embed_dim: int = 64,
        text_width: int = 64,
        text_depth: int = 2,
        text_heads: int = 4,
        text_pool: str = "eot",
        scale_init: float = SIGLIP_SCALE_INIT,
        bias_init: float = SIGLIP_BIAS_INIT,
        backend: str = "auto",
    ):
        super().__init__(
            backbone, vocab_size, context_length, embed_dim, text_width, text_depth, text_heads, text_pool
        )
        check_positive(scale_init=scale_init)
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale_init)))
        self.bias = nn.Parameter(torch.tensor(float(bias_init)))
        self.backend = backend

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    def loss(self, image_embeddings, text_embeddings):
        scale = self.scale
        loss = siglip_loss(image_embeddings, text_embeddings, scale, self.bias, backend=self.backend)
        # a copy: the step rows are read later, after the optimiser has moved the parameter in place
        return loss, {"scale": scale.detach(), "bias": self.bias.detach().clone()}
