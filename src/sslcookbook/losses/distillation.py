r"""Self-distillation losses: BYOL / SimSiam's negative cosine and DINO's cross-entropy with centring.

A student is trained to predict a target that receives no gradient (a stop-gradient copy of itself,
or a momentum teacher). Nothing in the loss pushes different images apart, so what keeps the
representation from collapsing is the architecture: the predictor and stop-gradient (SimSiam), the
momentum target (BYOL), centring plus sharpening of the teacher (DINO).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import check_views


def negative_cosine(p: torch.Tensor, z: torch.Tensor, stop_gradient: bool = True) -> torch.Tensor:
    r"""Negative cosine similarity between predictions and (stop-gradient) targets.

    .. math::  \mathcal{D}(p, z) = -\frac{1}{N}\sum_{i=1}^{N}
               \frac{p_i}{\lVert p_i\rVert_2}\cdot\frac{\mathrm{sg}(z_i)}{\lVert z_i\rVert_2}

    SimSiam (Chen & He, 2021, "Exploring Simple Siamese Representation Learning", arXiv:2011.10566)
    minimises it symmetrised, ½D(p₁, z₂) + ½D(p₂, z₁). BYOL (Grill et al., 2020, "Bootstrap Your Own
    Latent", arXiv:2006.07733) writes the same term as the squared distance of the normalised vectors,
    :math:`\lVert\bar p - \bar z\rVert^2 = 2 - 2\cos(p, z)` = 2 + 2D: an affine function of D, so the
    gradients differ only by the constant factor 2.

    Args:
        p: N×D predictions (raw; normalised here).
        z: N×D targets (raw; normalised here). Detached inside: no gradient reaches ``z``.
        stop_gradient: ``False`` lets gradients flow into ``z`` too — the collapsing ablation of
            SimSiam (its Figure 2); leave it ``True`` for training.
    Returns:
        the scalar mean over the batch, in [-1, 1] (fp32 for 16-bit inputs).
    """
    check_views(p=p, z=z)
    if stop_gradient:
        z = z.detach()
    if p.dtype in (torch.float16, torch.bfloat16):
        p, z = p.float(), z.float()
    return -(F.normalize(p, dim=1) * F.normalize(z, dim=1)).sum(dim=1).mean()
