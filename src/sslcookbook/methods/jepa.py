r"""Joint-embedding predictive methods: I-JEPA and data2vec, on a Vision Transformer backbone.

Both predict, from a partial view of an image, the features a momentum (EMA) teacher computes from the
whole image: the targets live in representation space, not pixel space as in MAE or SimMIM.

- :class:`IJEPA` (Assran et al. 2023): the context encoder sees one large block of patches; a narrow
  transformer predictor, told only the positions of 4 small target blocks, predicts the teacher's
  layer-normalised features there.
- :class:`Data2Vec` (Baevski et al. 2022): the student sees the image with BEiT-style blocks replaced by a
  learned mask token; a linear head regresses, at the masked positions, the average of the teacher's
  top-K block outputs.

Both need a ViT (:class:`~sslcookbook.models.vit.VisionTransformer`: ``embed_patches``, ``encode``,
``patch_features``); the masks come from :mod:`sslcookbook.losses.jepa`, drawn on the CPU from a
generator seeded by ``seed`` and the step number (kept in the state dict, so a resumed run draws the
same masks).
"""

from __future__ import annotations

import torch
from torch import nn

from ..losses.jepa import block_masks, data2vec_loss, data2vec_targets, ijepa_loss, multiblock_masks
from ..models.vit import Block, select_tokens, sincos_position_embedding
from .base import EMATarget, SSLMethod, check_views

_VIT_API = ("embed_patches", "encode", "patch_features", "grid_size", "position_embedding")


def check_vit(backbone: nn.Module, method: str) -> int:
    """``backbone`` has the ViT token interface; return its width."""
    missing = [name for name in _VIT_API if not hasattr(backbone, name)]
    if missing:
        raise TypeError(
            f"{method} needs a Vision Transformer backbone (it masks and predicts patch tokens), got "
            f"{type(backbone).__name__} without {', '.join(missing)}: build it with "
            "sslcookbook.models.vit_tiny(...) or run the recipe with --set backbone=vit_tiny"
        )
    return int(backbone.dim)


class _MaskStream(nn.Module):
    """A seeded random stream of masks: one generator per training step, the step in the state dict."""

    def __init__(self, seed: int):
        super().__init__()
        self.mask_seed, self.mask_step = int(seed), 0

    def next_generator(self) -> torch.Generator:
        g = torch.Generator().manual_seed((self.mask_seed * 1_000_003 + self.mask_step) % (2**63))
        self.mask_step += 1
        return g

    def get_extra_state(self) -> dict:
        return {"mask_step": self.mask_step}

    def set_extra_state(self, state: dict) -> None:
        self.mask_step = int(state["mask_step"])


def average_pooled(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The mean of a ViT's normalised patch tokens of the whole image, B×D (no CLS token)."""
    return backbone.patch_features(x).mean(dim=1)


# --------------------------------------------------------------------------------------------------
# I-JEPA
# --------------------------------------------------------------------------------------------------


class JEPAPredictor(nn.Module):
    r"""I-JEPA's predictor: a narrow ViT over the context tokens and one mask token per target patch.

    Context features (B×n_c×D) are projected to the predictor's width and given its (fixed sin-cos)
    position embedding at their positions; each of the M target blocks adds n_t copies of a learned
    mask token with the embedding of the target positions; the blocks run once per target block
    (context repeated, as in the reference), and the outputs at the mask tokens, normalised and
    projected back to D, are the predictions B×M×n_t×D.
    """

    def __init__(self, dim: int, grid: int, predictor_dim: int = 96, depth: int = 6, heads: int = 3):
        super().__init__()
        self.dim, self.predictor_dim, self.grid = dim, predictor_dim, grid
        self.embed = nn.Linear(dim, predictor_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, predictor_dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.register_buffer(
            "pos_embed", sincos_position_embedding(grid, grid, predictor_dim)[None], persistent=False
        )
        self.blocks = nn.ModuleList(Block(predictor_dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(predictor_dim, eps=1e-6)
        self.out = nn.Linear(predictor_dim, dim)

    def position_embedding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        if (grid_h, grid_w) == (self.grid, self.grid):
            return self.pos_embed
        return sincos_position_embedding(grid_h, grid_w, self.predictor_dim).to(self.pos_embed)[None]

    def forward(
        self,
        context: torch.Tensor,
        context_indices: torch.Tensor,
        target_indices: torch.Tensor,
        grid: tuple[int, int],
    ) -> torch.Tensor:
        b, m, n_t = target_indices.shape
        pos = self.position_embedding(*grid).expand(b, -1, -1)
        x = self.embed(context) + select_tokens(pos, context_indices)
        x = x.repeat_interleave(m, dim=0)  # (B·M)×n_c×d: image i's context for each of its M blocks
        targets = target_indices.reshape(b * m, n_t)
        queries = self.mask_token + select_tokens(pos.repeat_interleave(m, dim=0), targets)
        h = torch.cat([x, queries], dim=1)
        for block in self.blocks:
            h = block(h)
        return self.out(self.norm(h[:, x.shape[1] :])).reshape(b, m, n_t, self.dim)


class IJEPA(SSLMethod):
    r"""I-JEPA (Assran et al. 2023, "Self-Supervised Learning from Images with a Joint-Embedding
    Predictive Architecture", arXiv:2301.08243).

    Per image: a context block and M target blocks of patches (:func:`~sslcookbook.losses.jepa.
    multiblock_masks`). The context encoder f_θ (``self.backbone``) runs on the context patches only;
    the target encoder f_ξ (``self.target.backbone``, an EMA of f_θ with m rising 0.996 → 1 on a
    cosine) runs on the whole image; the predictor g_φ (:class:`JEPAPredictor`) predicts the target
    features from the context and the target positions:

    .. math::  \mathcal{L} = \frac{1}{M}\sum_{i=1}^{M}\ \frac{1}{|B_i|}\sum_{t \in B_i}
               \ell_1\big(g_\phi(f_\theta(x_c), t) - \mathrm{sg}(\mathrm{LN}(f_\xi(x))_t)\big)

    (:func:`~sslcookbook.losses.jepa.ijepa_loss`). No augmentation beyond the crop: the masks are
    the only "views". ``base_momentum = final_momentum = 0`` makes the teacher the student itself
    (stop-gradient only): the collapse ablation of notebook 09.

    Evaluation (``embed``) uses the *target* encoder, its patch tokens average-pooled: what the paper
    evaluates ("we use the target-encoder for evaluation and average pool its output"), and what
    reproductions report they need to match its probing figures (ijepa issues #47, #55). Build the
    backbone with ``pool="mean"`` so ``backbone(x)`` (what ``sslcookbook run`` and ``fine_tune`` use)
    is the same pooling.

    Args:
        backbone: a ViT (``vit_tiny``, ``vit_small``).
        predictor_dim, predictor_depth, predictor_heads: the predictor (the paper: 384 wide, 12 deep,
            against ViT-H's 1280; here 96 wide against ViT-Tiny's 192).
        num_targets, target_scale, target_aspect, context_scale: the masks (4; 0.15–0.2; 0.75–1.5;
            0.85–1).
        base_momentum, final_momentum: the EMA schedule (0.996 → 1).
        seed: the masks' random stream.
    """

    def __init__(
        self,
        backbone: nn.Module,
        predictor_dim: int = 96,
        predictor_depth: int = 6,
        predictor_heads: int = 3,
        num_targets: int = 4,
        target_scale: tuple[float, float] = (0.15, 0.2),
        target_aspect: tuple[float, float] = (0.75, 1.5),
        context_scale: tuple[float, float] = (0.85, 1.0),
        base_momentum: float = 0.996,
        final_momentum: float = 1.0,
        seed: int = 0,
    ):
        super().__init__()
        dim = check_vit(backbone, "IJEPA")
        if predictor_dim % predictor_heads or predictor_dim % 4:
            raise ValueError(
                f"predictor_dim={predictor_dim} must be divisible by 4 (sin-cos positions) and by "
                f"predictor_heads={predictor_heads}: e.g. 96 with 3 heads"
            )
        self.backbone = backbone
        self.predictor = JEPAPredictor(dim, backbone.grid, predictor_dim, predictor_depth, predictor_heads)
        self.target = EMATarget({"backbone": backbone}, base_momentum, final_momentum)
        self.mask_options = {
            "num_targets": num_targets,
            "target_scale": tuple(target_scale),
            "target_aspect": tuple(target_aspect),
            "context_scale": tuple(context_scale),
        }
        multiblock_masks(1, backbone.grid, **self.mask_options)  # validates the options now
        self.masks = _MaskStream(seed)

    def sample_masks(self, batch_size: int, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The next step's (context B×n_c, targets B×M×n_t) patch indices, on the CPU."""
        return multiblock_masks(batch_size, grid, generator=self.masks.next_generator(), **self.mask_options)

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        check_views(views, "IJEPA")
        x = views[0]
        grid = self.backbone.grid_size(x)
        context_idx, target_idx = (m.to(x.device) for m in self.sample_masks(x.shape[0], grid))
        with torch.no_grad():
            features = self.target.backbone.patch_features(x)  # B×N×D, LN'd in the loss
            b, m, n_t = target_idx.shape
            targets = select_tokens(features, target_idx.reshape(b, m * n_t)).reshape(b, m, n_t, -1)
        context = self.backbone.encode(select_tokens(self.backbone.embed_patches(x), context_idx))[:, 1:]
        predictions = self.predictor(context, context_idx, target_idx, grid)
        loss = ijepa_loss(predictions.float(), targets.float())
        return {
            "loss": loss,
            "momentum": self.target.momentum,
            "context_patches": context_idx.shape[1],
            "target_patches": m * n_t,
        }

    def after_step(self, progress: float) -> None:
        self.target.update(progress)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The target encoder's average-pooled patch features (the paper's evaluation)."""
        return average_pooled(self.target.backbone, x)

    @property
    def evaluation_backbone(self) -> nn.Module:
        """The target encoder: what ``sslcookbook run`` probes, fine-tunes and exports (the paper's)."""
        return self.target.backbone


# --------------------------------------------------------------------------------------------------
# data2vec
# --------------------------------------------------------------------------------------------------


class Data2Vec(SSLMethod):
    r"""data2vec for images (Baevski et al. 2022, "data2vec: A General Framework for Self-supervised
    Learning in Speech, Vision and Language", arXiv:2202.03555).

    The student f_θ (``self.backbone``) encodes the image with a fraction ``mask_ratio`` of its patches,
    in BEiT-style blocks (:func:`~sslcookbook.losses.jepa.block_masks`), replaced by a learned mask
    token (plus the position embedding); a linear head h regresses, at the masked positions, the
    targets of the EMA teacher f_ξ (``self.target.backbone``, m 0.999 → 0.9998 on a cosine) on the
    whole image: the normalised average of its top-K block outputs (:func:`~sslcookbook.losses.jepa.
    data2vec_targets`):

    .. math::  \mathcal{L} = \frac{1}{|M|}\sum_{t \in M} \frac{1}{\sqrt D}\sum_d
               \ell_1^{\beta}\big(h(f_\theta(\tilde x))_{t,d} - \mathrm{sg}(y_{t,d})\big)

    (:func:`~sslcookbook.losses.jepa.data2vec_loss`, β = 2). The block outputs are the ViT's residual
    stream after each block (the paper uses the FFN output before the last residual connection; the
    residual stream is what ``encode(return_layers=True)`` gives). The paper's teacher updates only the
    transformer blocks by EMA; here the whole backbone is averaged. Evaluation uses the student
    backbone, its patch tokens average-pooled (data2vec fine-tunes and probes the student).

    Args:
        backbone: a ViT (``vit_tiny``, ``vit_small``) with at least ``top_k`` blocks.
        top_k: K, the teacher blocks averaged into the targets (6).
        mask_ratio: fraction of patches masked (0.6, the paper's choice over BEiT's 0.4).
        min_block: the smallest mask rectangle (None: BEiT's 16/196 of the patches).
        beta: the smooth-L1 β (2).
        block_norm: ``"instance"`` or ``"layer"`` normalisation of each block output.
        base_momentum, final_momentum: the EMA schedule (0.999 → 0.9998; the paper anneals linearly).
        seed: the masks' random stream.
    """

    def __init__(
        self,
        backbone: nn.Module,
        top_k: int = 6,
        mask_ratio: float = 0.6,
        min_block: int | None = None,
        beta: float = 2.0,
        block_norm: str = "instance",
        base_momentum: float = 0.999,
        final_momentum: float = 0.9998,
        seed: int = 0,
    ):
        super().__init__()
        dim = check_vit(backbone, "Data2Vec")
        depth = len(backbone.blocks)
        if not 1 <= top_k <= depth:
            raise ValueError(f"top_k={top_k} must be in [1, {depth}], the backbone's number of blocks")
        if block_norm not in ("instance", "layer"):
            raise ValueError(f"block_norm must be 'instance' or 'layer', got {block_norm!r}")
        self.backbone = backbone
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.head = nn.Linear(dim, dim)
        self.target = EMATarget({"backbone": backbone}, base_momentum, final_momentum)
        self.top_k, self.beta, self.block_norm = top_k, float(beta), block_norm
        self.mask_ratio, self.min_block = float(mask_ratio), min_block
        block_masks(1, backbone.grid, self.mask_ratio, min_block)  # validates the options now
        self.masks = _MaskStream(seed)

    def sample_masks(self, batch_size: int, grid: tuple[int, int]) -> torch.Tensor:
        """The next step's B×N bool mask (True: masked), on the CPU."""
        return block_masks(
            batch_size, grid, self.mask_ratio, self.min_block, generator=self.masks.next_generator()
        )

    def masked_tokens(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The student's input: patch tokens, with mask token + position embedding where ``mask``."""
        tokens = self.backbone.embed_patches(x)
        pos = self.backbone.position_embedding(*self.backbone.grid_size(x))
        return torch.where(mask.unsqueeze(-1), self.mask_token + pos, tokens)

    @torch.no_grad()
    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's B×N×D targets on the whole image."""
        teacher = self.target.backbone
        _, layers = teacher.encode(teacher.embed_patches(x), return_layers=True)
        return data2vec_targets([layer[:, 1:] for layer in layers], self.top_k, self.block_norm)

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict:
        check_views(views, "Data2Vec")
        x = views[0]
        mask = self.sample_masks(x.shape[0], self.backbone.grid_size(x)).to(x.device)
        predictions = self.head(self.backbone.encode(self.masked_tokens(x, mask))[:, 1:])
        loss = data2vec_loss(predictions.float(), self.targets(x).float(), mask, self.beta)
        return {"loss": loss, "momentum": self.target.momentum}

    def after_step(self, progress: float) -> None:
        self.target.update(progress)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The student backbone's average-pooled patch features."""
        return average_pooled(self.backbone, x)


__all__ = ["IJEPA", "Data2Vec", "JEPAPredictor", "check_vit"]
