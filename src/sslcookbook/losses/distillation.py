r"""Self-distillation losses: BYOL / SimSiam's negative cosine and DINO's cross-entropy with centring.

A student is trained to predict a target that receives no gradient (a stop-gradient copy of itself,
or a momentum teacher). Nothing in the loss pushes different images apart, so what keeps the
representation from collapsing is the architecture: the predictor and stop-gradient (SimSiam), the
momentum target (BYOL), centring plus sharpening of the teacher (DINO).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..distributed import all_reduce_mean
from ..kernels import dino as _dino_kernel
from ._checks import check_embeddings


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
    check_embeddings(p=p, z=z)
    if stop_gradient:
        z = z.detach()
    if p.dtype in (torch.float16, torch.bfloat16):
        p, z = p.float(), z.float()
    return -(F.normalize(p, dim=1) * F.normalize(z, dim=1)).sum(dim=1).mean()


def dino_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    center: torch.Tensor,
    student_temperature: float = 0.1,
    teacher_temperature: float = 0.04,
    backend: str = "auto",
) -> torch.Tensor:
    r"""DINO's self-distillation loss (Caron et al., 2021, "Emerging Properties in Self-Supervised
    Vision Transformers", arXiv:2104.14294).

    Each image gives S crops; the student sees all of them, the teacher only the first T (global) ones.
    The teacher's output is centred (c, a running mean of its logits) and sharpened (τ_t < τ_s); the
    student's softmax is pulled towards it on every pair of different crops:

    .. math::  P_{t,b} = \mathrm{softmax}\Big(\frac{y_{t,b} - c}{\tau_t}\Big)\ \text{(no gradient)},
               \qquad \log Q_{s,b} = \mathrm{log\_softmax}\Big(\frac{x_{s,b}}{\tau_s}\Big)

    .. math::  \mathcal{L} = \frac{1}{(TS - T)\,B}\sum_{t<T}\ \sum_{s<S,\ s\ne t}\ \sum_{b<B}
               -\langle P_{t,b}, \log Q_{s,b}\rangle

    Centring alone drives P towards uniform and sharpening alone towards one-hot; together they
    balance (the paper's section 5.3). This calls the fused Triton kernel on CUDA tensors
    (:mod:`sslcookbook.kernels.dino`, which never materialises the S·B·K log-probabilities) and the
    plain PyTorch reference otherwise.

    Args:
        student: (S, B, K) student logits of all S crops; its first T crops are the teacher's crops.
        teacher: (T, B, K) teacher logits of the T global crops (no gradient flows into it).
        center: (K,) the running centre, see :func:`update_center` (no gradient flows into it).
        student_temperature: τ_s > 0 (0.1 in the paper).
        teacher_temperature: τ_t > 0 (0.04, warmed up to 0.07 in longer runs).
        backend: ``"auto"``, ``"triton"`` or ``"torch"``.
    Returns:
        the scalar mean over crop pairs and images (fp32; fp64 for fp64 inputs on the torch backend).
    """
    return _dino_kernel.dino_loss(
        student, teacher, center, student_temperature, teacher_temperature, backend=backend
    )


@torch.no_grad()
def update_center(center: torch.Tensor, teacher_logits: torch.Tensor, momentum: float = 0.9) -> torch.Tensor:
    r"""DINO's centre update, an exponential moving average of the teacher's mean logit.

    .. math::  c \leftarrow m\,c + (1 - m)\,\frac{1}{|\mathcal{B}|}\sum_{i \in \mathcal{B}} y_i

    where the mean runs over every row of ``teacher_logits`` (all leading dimensions: crops and images)
    and, under ``torch.distributed``, over every rank (an all-reduce, as in the paper), so all ranks
    keep the same centre. Every rank must call it (it is a collective). With equal per-rank batches
    the result equals the single-process update on the whole batch.

    Args:
        center: (K,) current centre.
        teacher_logits: (..., K) teacher logits of this step (e.g. T×B×K).
        momentum: m in [0, 1] (0.9 in the paper).
    Returns:
        the new centre, a (K,) tensor in ``center``'s dtype; ``center`` itself is not modified.
    """
    if not isinstance(center, torch.Tensor) or center.dim() != 1:
        raise ValueError(f"center must be a 1-D tensor (K,), got {getattr(center, 'shape', type(center))}")
    if not isinstance(teacher_logits, torch.Tensor) or teacher_logits.dim() < 1:
        raise ValueError("teacher_logits must be a tensor (..., K) of teacher logits")
    if teacher_logits.shape[-1] != center.shape[0]:
        raise ValueError(
            f"teacher_logits has {teacher_logits.shape[-1]} prototypes in its last dimension but center "
            f"has {center.shape[0]}; they must agree"
        )
    if teacher_logits.numel() == 0:
        raise ValueError("teacher_logits is empty: the centre needs at least one teacher output")
    if not 0.0 <= float(momentum) <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    dtype = torch.promote_types(torch.promote_types(center.dtype, teacher_logits.dtype), torch.float32)
    batch_mean = teacher_logits.detach().reshape(-1, center.shape[0]).to(dtype).mean(dim=0)
    batch_mean = all_reduce_mean(batch_mean)
    if not torch.isfinite(batch_mean).all():
        raise ValueError(
            "teacher_logits contain NaN or inf: training diverged — lower the learning rate or clip gradients"
        )
    return torch.lerp(center.to(dtype), batch_mean, 1.0 - float(momentum)).to(center.dtype)
