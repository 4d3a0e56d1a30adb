r"""Language–image losses: pair each image with its own caption among the other captions of the batch.

Both losses take raw image and text features (B×D each, row i of one matching row i of the other) and
L2-normalise them themselves, so :math:`x_i^\top y_j` is a cosine similarity; ``scale`` (and SigLIP's
``bias``) may be Python numbers or 0-d tensors that require gradients (the methods learn them).

With ``gather_distributed=True`` under torchrun (W ranks of B/W pairs each) both compute the loss of
the global batch of B pairs without ever holding the B×B logits on one device:

- CLIP, the *local loss*: each rank's B/W rows against the features of all ranks, gathered with the
  autograd-correct :func:`sslcookbook.distributed.gather` (its backward sums every rank's gradient into
  the rows' owner). Each rank holds (B/W)×B logits; DDP's average of the per-rank means is the global
  mean. Gathering *with* gradients but then computing the full B×B loss on every rank multiplies the
  gradients by W (open_clip #616); gathering without gradients loses the other ranks' terms.
- SigLIP, the *chunked loss* (Zhai et al. 2023, §3.3): the B/W×B/W block of this rank's own pairs
  (positives on the diagonal), then one negative-only block per other rank against its text features.
  The sigmoid loss is a plain sum over pairs, so the blocks add up to the global loss exactly.
"""

from __future__ import annotations

import importlib
import math
import numbers
import types

import torch
import torch.nn.functional as F

from .. import distributed
from ..kernels import BACKENDS, resolve_backend
from ._checks import check_views

# The fused sigmoid loss lives in this module, written apart from the losses; it is imported when a call
# asks for it, so the losses work in an install without it.
SIGLIP_KERNEL = "sslcookbook.kernels.siglip"

CLIP_SCALE_INIT = 1 / 0.07  # CLIP's learnable logit scale starts at 1/τ with τ = 0.07 ...
CLIP_SCALE_MAX = 100.0  # ... and is clamped at 100 (Radford et al. 2021, §2.5)
SIGLIP_SCALE_INIT = 10.0  # t = exp(t′) with t′ = log 10 (Zhai et al. 2023, §3.2)
SIGLIP_BIAS_INIT = -10.0  # b = −10: the loss starts near its value for "no pair matches"


def clip_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    scale,
    gather_distributed: bool = True,
) -> torch.Tensor:
    r"""CLIP's symmetric cross-entropy (Radford et al., 2021, "Learning Transferable Visual Models From
    Natural Language Supervision", Figure 3).

    With L2-normalised image features :math:`x_i`, text features :math:`y_j` and logits
    :math:`\ell_{ij} = s\, x_i^\top y_j`, the mean of the image→text and text→image cross-entropies:

    .. math:: \mathcal{L} = \frac{1}{2B}\sum_{i=1}^{B}\Big[
        -\log\frac{e^{\ell_{ii}}}{\sum_j e^{\ell_{ij}}} - \log\frac{e^{\ell_{ii}}}{\sum_j e^{\ell_{ji}}}\Big]

    Args:
        image_features, text_features: B×D raw features of matching pairs (normalised here).
        scale: the logit scale s > 0 (1/τ), a number or a 0-d tensor; CLIP learns log s from
            log(1/0.07) and clamps s at 100 (:data:`CLIP_SCALE_INIT`, :data:`CLIP_SCALE_MAX`).
        gather_distributed: under torchrun, the local loss of this rank's rows against every rank's
            features (see the module docstring); without a process group it changes nothing.
    Returns:
        the scalar loss, fp32 (fp64 for fp64 inputs).
    """
    check_views(image_features=image_features, text_features=text_features)
    dtype = _at_least_fp32(image_features.dtype)
    scale = _check_scalar(scale, "scale", image_features, dtype, positive=True)
    x, y = F.normalize(image_features.to(dtype), dim=1), F.normalize(text_features.to(dtype), dim=1)
    if gather_distributed and distributed.is_distributed():
        all_x, all_y = distributed.gather(x), distributed.gather(y)
        targets = torch.arange(x.shape[0], device=x.device) + distributed.rank() * x.shape[0]
        image_to_text = F.cross_entropy(scale * x @ all_y.T, targets)
        text_to_image = F.cross_entropy(scale * y @ all_x.T, targets)
        return (image_to_text + text_to_image) / 2
    return clip_loss_reference(x, y, scale)


def clip_loss_reference(x: torch.Tensor, y: torch.Tensor, scale) -> torch.Tensor:
    """:func:`clip_loss` on one device in plain PyTorch: the B×B logits, then both cross-entropies."""
    logits = scale * F.normalize(x, dim=1) @ F.normalize(y, dim=1).T
    targets = torch.arange(x.shape[0], device=x.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def siglip_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    scale,
    bias,
    gather_distributed: bool = True,
    backend: str = "auto",
) -> torch.Tensor:
    r"""SigLIP's pairwise sigmoid loss (Zhai et al., 2023, "Sigmoid Loss for Language Image Pre-Training",
    Algorithm 1).

    Every pair (i, j) is its own binary problem, "does caption j describe image i?", with
    :math:`z_{ij} = +1` when j = i and −1 otherwise; no softmax normalises over the batch:

    .. math:: \mathcal{L} = -\frac{1}{B}\sum_{i=1}^{B}\sum_{j=1}^{B}
        \log\sigma\big(z_{ij}\,(t\, x_i^\top y_j + b)\big)

    Args:
        image_features, text_features: B×D raw features of matching pairs (normalised here).
        scale: the multiplier t > 0 itself (the method learns t′ = log t from log 10), a number or 0-d tensor.
        bias: b, a number or a 0-d tensor (learnt from −10, so that the B² − B negatives do not swamp the
            B positives at the start).
        gather_distributed: under torchrun, the chunked loss: this rank's block with its positives plus
            negative-only blocks against the other ranks' text features (see the module docstring).
        backend: ``"auto"`` (the fused Triton kernel of ``sslcookbook.kernels.siglip`` for CUDA tensors
            when it is installed and Triton works, else PyTorch), ``"triton"`` or ``"torch"``.
    Returns:
        the scalar loss, fp32 (fp64 for fp64 inputs on the torch backend).
    """
    check_views(image_features=image_features, text_features=text_features)
    dtype = _at_least_fp32(image_features.dtype)
    scale = _check_scalar(scale, "scale", image_features, dtype, positive=True)
    bias = _check_scalar(bias, "bias", image_features, dtype, positive=False)
    kernel = _siglip_kernel(backend, (image_features, text_features))
    # The kernel takes features in their own dtype (fp32 accumulation inside); the formula works in fp32+.
    work = image_features.dtype if kernel is not None else dtype
    x, y = _normalize(image_features, work), _normalize(text_features, work)
    if gather_distributed and distributed.is_distributed():
        return _siglip_chunked(x, y, scale, bias, kernel)
    return _siglip_block(x, y, scale, bias, True, kernel)


def siglip_loss_reference(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor,
    negative_only: bool = False,
) -> torch.Tensor:
    r"""The sigmoid loss of one block of features as given (no normalisation): the fused kernel's reference.

    :math:`-\frac1n \sum_{ij} \log\sigma(z_{ij}(t\,x_i\cdot y_j + b))` over the n×m logits, with
    :math:`z_{ii} = +1` and :math:`z_{ij} = -1` elsewhere (every :math:`z = -1` with ``negative_only``:
    a block against another rank's captions). As an eager step computes it: the logits in the input
    dtype, then in fp32 (fp64 for fp64 inputs), a stable ``F.logsigmoid``. Inputs are not checked here.
    """
    n, m = image_features.shape[0], text_features.shape[0]
    work_dtype = torch.promote_types(image_features.dtype, torch.float32)
    logits = (image_features @ text_features.T).to(work_dtype) * scale + bias
    labels = -torch.ones(n, m, device=logits.device, dtype=logits.dtype)  # −1: not a matching pair
    if not negative_only:
        labels.diagonal().fill_(1.0)  # +1: image i with its own caption
    return -F.logsigmoid(labels * logits).sum() / n


def _siglip_block(x, y, scale, bias, with_positives: bool, kernel) -> torch.Tensor:
    r"""−(1/n) Σᵢⱼ log σ(zᵢⱼ ℓᵢⱼ) of one n×n block of normalised features, ℓᵢⱼ = t xᵢ·yⱼ + b; the
    diagonal pairs are positives when ``with_positives``, negatives otherwise."""
    if kernel is not None:
        loss = kernel.siglip_loss_triton(x, y, scale, bias)
        if with_positives:
            return loss
        # The kernel scores the diagonal as positives. log σ(ℓ) − log σ(−ℓ) = ℓ, so turning the n diagonal
        # pairs into negatives adds (1/n) Σᵢ ℓᵢᵢ, computed in O(n·D) beside the kernel.
        diagonal = scale * (x * y).sum(1).to(_at_least_fp32(x.dtype)) + bias
        return loss + diagonal.mean()
    return siglip_loss_reference(x, y, scale, bias, negative_only=not with_positives)


def _siglip_chunked(x, y, scale, bias, kernel) -> torch.Tensor:
    """This rank's block with its positives, then a negative-only block per other rank's text features.

    The other ranks' text features come from the autograd-correct all-gather: their gradients return to
    their owners. Dividing each rank's sum by its own n = B/W makes DDP's average over ranks the global
    loss −(1/B) Σ over all B² pairs.
    """
    rank, world = distributed.rank(), distributed.world_size()
    texts = distributed.gather(y).view(world, *y.shape)
    loss = _siglip_block(x, y, scale, bias, True, kernel)
    for other in range(world):
        if other != rank:
            loss = loss + _siglip_block(x, texts[other], scale, bias, False, kernel)
    return loss


def _siglip_kernel(backend: str, tensors: tuple[torch.Tensor, ...]):
    """The fused-kernel module to use, or None for the PyTorch formula (see :func:`siglip_loss`)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return None
    try:
        fused = importlib.import_module(SIGLIP_KERNEL)
    except ImportError as error:
        if backend == "auto":
            return None
        raise RuntimeError(
            f"backend='triton' needs the fused sigmoid-loss kernel {SIGLIP_KERNEL}, which cannot be imported "
            f"here ({type(error).__name__}: {error}); install an sslcookbook that has kernels/siglip.py, "
            "or use backend='torch' or 'auto' (the PyTorch formula, same loss and gradients)"
        ) from error
    if backend == "auto" and not getattr(fused, "AVAILABLE", False):
        return None
    # resolve_backend reads the kernel-module conventions; a module without them supports every input.
    view = types.SimpleNamespace(
        __name__=fused.__name__,
        INTERPRETED=getattr(fused, "INTERPRETED", False),
        unsupported=getattr(fused, "unsupported", lambda _tensors: None),
    )
    return fused if resolve_backend(backend, tensors, view) == "triton" else None


def _check_scalar(value, name: str, like: torch.Tensor, dtype: torch.dtype, positive: bool):
    """A finite number (> 0 when ``positive``) or a 0-d floating tensor on ``like``'s device, as a tensor
    of ``dtype`` (a cast keeps the gradient)."""
    if isinstance(value, torch.Tensor):
        if value.dim() != 0 or not value.is_floating_point():
            raise ValueError(
                f"{name} must be a number or a 0-d floating-point tensor, got {value.dtype} of shape "
                f"{tuple(value.shape)}; pass e.g. log_scale.exp() of a torch.nn.Parameter(torch.tensor(...))"
            )
        if value.device != like.device:
            raise ValueError(f"{name} is on {value.device} but the features are on {like.device}; move it")
        if like.device.type == "cpu" and not torch.compiler.is_compiling():
            number = float(value.detach())
            if not math.isfinite(number) or (positive and number <= 0):
                raise ValueError(f"{name} must be finite{' and > 0' if positive else ''}, got {number}")
        return value.to(dtype)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number or a 0-d tensor, got {type(value).__name__}")
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{name} must be finite{' and > 0' if positive else ''}, got {value}")
    return torch.tensor(float(value), dtype=dtype, device=like.device)


def _normalize(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Row-wise L2 normalisation computed in (at least) fp32, returned in ``dtype``."""
    return F.normalize(x.to(_at_least_fp32(x.dtype)), dim=1).to(dtype)


def _at_least_fp32(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)
