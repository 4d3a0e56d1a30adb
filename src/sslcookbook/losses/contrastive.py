"""Contrastive losses.

All losses take raw projector outputs and L2-normalise them themselves (cosine similarity).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import check_embeddings


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    r"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al., 2020).

    With :math:`z = [z_1; z_2]` the 2N L2-normalised embeddings, :math:`s_{ij} = z_i^\top z_j`, and
    :math:`p(i)` the other view of sample i (:math:`i \pm N`):

    .. math::
        \ell = \frac{1}{2N} \sum_{i=1}^{2N} -\log
        \frac{\exp(s_{i,p(i)}/\tau)}{\sum_{j \ne i} \exp(s_{ij}/\tau)}

    Args:
        z1, z2: N×D projections of the two views (raw: normalised here).
        temperature: τ > 0; SimCLR uses 0.5 on CIFAR-10 and 0.1 on ImageNet.
    Returns:
        the scalar mean loss (fp32 for low-precision inputs).
    """
    check_embeddings(z1=z1, z2=z2)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = z1.shape[0]
    z = torch.cat([z1, z2])
    if z.dtype in (torch.float16, torch.bfloat16):
        z = z.float()
    z = F.normalize(z, dim=1)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, positives)
