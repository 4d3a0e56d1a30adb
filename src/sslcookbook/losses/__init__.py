"""Losses, one file per method family; pure functions on tensors.

Each loss checks its inputs once, then runs its PyTorch formula (written in the family's file) or, on
CUDA tensors, its fused Triton twin in :mod:`sslcookbook.kernels`.
"""

from .clustering import deepcluster_v2_loss, sinkhorn, spherical_kmeans, swav_loss
from .contrastive import dcl, info_nce, nearest_neighbour, nnclr_loss, nt_xent, supcon
from .dino import dino_loss, update_center
from .distillation import negative_cosine
from .jepa import block_masks, data2vec_loss, data2vec_targets, ijepa_loss, multiblock_masks
from .language_image import clip_loss, siglip_loss
from .masked import (
    Masking,
    block_masking,
    default_mask_patch,
    mae_loss,
    mask_to_pixels,
    normalise_patches,
    patchify,
    random_masking,
    simmim_loss,
    unnormalise_patches,
    unpatchify,
)
from .momentum import MemoryQueue, moco_loss, moco_v3_loss
from .preference import clipped_surrogate, dpo_loss, group_relative_advantages, grpo_loss, kl_k3
from .pretext import (
    MemoryBank,
    estimate_log_z,
    instance_nce_loss,
    nonparametric_softmax_loss,
    transformation_loss,
    update_memory_bank,
)
from .redundancy import barlow_twins_loss, batch_standardise, vicreg_loss, vicreg_terms, whiten, wmse_loss
from .semi import (
    confidence_mask,
    fixmatch_loss,
    mean_teacher_consistency,
    pseudo_label_loss,
    sigmoid_rampup,
    soft_distillation_loss,
)
from .sequence import (
    cpc_loss,
    instance_contrast,
    masked_patch_loss,
    patchify_series,
    temporal_contrast,
    ts2vec_loss,
)

__all__ = [
    "MemoryBank",
    "MemoryQueue",
    "barlow_twins_loss",
    "batch_standardise",
    "dcl",
    "deepcluster_v2_loss",
    "dino_loss",
    "estimate_log_z",
    "info_nce",
    "instance_nce_loss",
    "moco_loss",
    "moco_v3_loss",
    "nearest_neighbour",
    "negative_cosine",
    "nnclr_loss",
    "nonparametric_softmax_loss",
    "nt_xent",
    "sinkhorn",
    "spherical_kmeans",
    "supcon",
    "swav_loss",
    "transformation_loss",
    "update_center",
    "update_memory_bank",
    "vicreg_loss",
    "vicreg_terms",
    "whiten",
    "wmse_loss",
    "clip_loss",
    "siglip_loss",
    "block_masks",
    "data2vec_loss",
    "data2vec_targets",
    "ijepa_loss",
    "multiblock_masks",
    "Masking",
    "block_masking",
    "default_mask_patch",
    "mae_loss",
    "mask_to_pixels",
    "normalise_patches",
    "patchify",
    "random_masking",
    "simmim_loss",
    "unnormalise_patches",
    "unpatchify",
    "confidence_mask",
    "fixmatch_loss",
    "mean_teacher_consistency",
    "pseudo_label_loss",
    "sigmoid_rampup",
    "soft_distillation_loss",
    "cpc_loss",
    "instance_contrast",
    "masked_patch_loss",
    "patchify_series",
    "temporal_contrast",
    "ts2vec_loss",
    "clipped_surrogate",
    "dpo_loss",
    "group_relative_advantages",
    "grpo_loss",
    "kl_k3",
]
