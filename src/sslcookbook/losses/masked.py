r"""Masked image modelling: hide part of the image, reconstruct its pixels.

- :func:`patchify` / :func:`unpatchify`: images B×C×H×W ⇄ patch rows B×N×(P·P·C), row-major over the
  patch grid (the order of a ViT's tokens), each row ordered (pixel row, pixel column, channel) as in MAE.
- :func:`random_masking` (He et al., 2022, MAE): per sample, keep the ``1 − ratio`` patches of lowest
  uniform noise; returns the kept indices, the mask and the order that restores the patches.
- :func:`mae_loss`: mean squared error over the masked patches only, optionally against per-patch
  normalised targets (:func:`normalise_patches`; :func:`unnormalise_patches` undoes it for viewing).
- :func:`block_masking` (Xie et al., 2022, SimMIM): mask whole squares of ``mask_patch × mask_patch``
  tokens, ``ceil(ratio · squares)`` of them per sample; :func:`mask_to_pixels` blows a token mask up to
  pixels.
- :func:`simmim_loss`: L1 on the masked pixels, divided by (Σ mask + 1e-5) and the channel count.

Masks are 1 (or True) where a patch is hidden, as in both reference implementations.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ._checks import check_tensor

NORM_PIX_EPS = 1e-6  # MAE's norm_pix_loss: (x − μ) / sqrt(σ² + 1e-6), σ² unbiased
SIMMIM_EPS = 1e-5  # SimMIM's denominator: Σ mask + 1e-5


# ------------------------------------------------------------------------------------------ patches
def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    r"""Cut B×C×H×W images into non-overlapping P×P patches: B×N×(P·P·C), N = (H/P)·(W/P).

    Patch n = (i, j) is row ``i·(W/P) + j`` (the ViT's token order); within a patch the values run over
    pixel rows, pixel columns, then channels:
    ``patches[b, n, (r·P + c)·C + k] = images[b, k, iP + r, jP + c]`` (MAE's ``einsum('nchpwq->nhwpqc')``).
    """
    check_tensor("images", images, 4, "B×C×H×W")
    p = _check_patch_size(patch_size)
    b, c, h, w = images.shape
    if h % p or w % p:
        raise ValueError(
            f"images of {h}×{w} px cannot be cut into whole {p}×{p} patches: crop or pad them to a multiple "
            f"of {p} (or choose a patch size dividing both sides)"
        )
    x = images.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(patches: torch.Tensor, patch_size: int, grid: int | tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`patchify`: B×N×(P·P·C) patch rows on a ``grid`` (rows, columns; an int: square)
    of patches -> B×C×(rows·P)×(columns·P) images."""
    check_tensor("patches", patches, 3, "B×N×(P·P·C)")
    p = _check_patch_size(patch_size)
    gh, gw = (grid, grid) if isinstance(grid, int) else tuple(grid)
    b, n, d = patches.shape
    if gh * gw != n:
        raise ValueError(f"a {gh}×{gw} grid holds {gh * gw} patches, but patches has {n} rows: pass the grid")
    if d % (p * p):
        raise ValueError(
            f"a patch row of {d} values is not P·P·C for patch_size {p}: pass the patch size used by patchify"
        )
    c = d // (p * p)
    x = patches.reshape(b, gh, gw, p, p, c).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, c, gh * p, gw * p)


# ------------------------------------------------------------------------------------------ masking
class Masking(NamedTuple):
    """One draw of MAE's random masking.

    keep: B×n_keep long, the visible patches' indices (in the shuffled order, not sorted).
    mask: B×N float, 1 where a patch is hidden (removed from the encoder's input), 0 where visible.
    restore: B×N long, the permutation that puts [visible tokens; mask tokens] back in patch order:
        ``torch.gather(shuffled, 1, restore)``.
    """

    keep: torch.Tensor
    mask: torch.Tensor
    restore: torch.Tensor


def random_masking(
    batch: int,
    num_patches: int,
    ratio: float = 0.75,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
) -> Masking:
    r"""MAE's per-sample random masking (He et al., 2022, "Masked Autoencoders Are Scalable Vision
    Learners", arXiv:2111.06377, §3 and ``models_mae.random_masking``).

    For each sample draw noise :math:`u \sim U(0, 1)^N`, shuffle the patches by ``argsort(u)`` and keep
    the first :math:`n_\text{keep} = \lfloor N (1 - r) \rfloor`: a uniformly random subset of exactly
    that size, different for every sample. ``restore = argsort(argsort(u))`` undoes the shuffle.

    Args:
        batch, num_patches: B and N.
        ratio: r, the fraction of patches hidden, in (0, 1); at least one patch must stay visible and at
            least one be hidden (0.75, the paper's).
        generator: the noise's generator (its device is used); None: torch's global one on ``device``.
    """
    for name, value in (("batch", batch), ("num_patches", num_patches)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    keep_count = int(num_patches * (1 - _check_ratio(ratio)))
    if keep_count < 1 or keep_count >= num_patches:
        raise ValueError(
            f"mask ratio {ratio} keeps {keep_count} of {num_patches} patches: choose a ratio that keeps at "
            f"least one patch visible and hides at least one (between {1 / num_patches:.3g} and "
            f"{1 - 1 / num_patches:.3g} here)"
        )
    if generator is not None:
        device = generator.device
    noise = torch.rand(batch, num_patches, generator=generator, device=device)
    shuffle = noise.argsort(dim=1)
    restore = shuffle.argsort(dim=1)
    mask = torch.ones(batch, num_patches, device=noise.device)
    mask[:, :keep_count] = 0
    return Masking(shuffle[:, :keep_count], torch.gather(mask, 1, restore), restore)


def block_masking(
    batch: int,
    grid: int | tuple[int, int],
    ratio: float = 0.6,
    mask_patch: int = 1,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    r"""SimMIM's block masking (Xie et al., 2022, "SimMIM: A Simple Framework for Masked Image Modeling",
    arXiv:2111.09886, §3.1 and its ``MaskGenerator``): B×N float, 1 where a token is hidden.

    The token grid is tiled by squares of ``mask_patch × mask_patch`` tokens; each sample hides
    :math:`\lceil r \cdot S \rceil` of the S squares, drawn uniformly without replacement. SimMIM
    masks 32-px squares, i.e. 2×2 tokens of a ViT-B/16 (1/7 of a 224-px side), at r = 0.6.

    On small images a square is chosen by its share of the image side, not its pixels:
    :func:`default_mask_patch` takes 2×2 tokens on grids of 8 or more tokens per side (CIFAR's 32 px with
    4-px patches: 8-px squares, 1/4 of the side, 16 squares) and single tokens on smaller grids (the
    8×8 digits' 4×4 grid of 2-px patches: 2-px squares, again 1/4 of the side; 2×2 tokens would be half
    the image, leaving 4 squares and 4 possible masks). Both then hide 10 of 16 squares (62.5%).

    Args:
        grid: the token grid (rows, columns), or an int for a square one; both sides multiples of
            ``mask_patch``.
        ratio: r in (0, 1), the fraction of squares hidden (rounded up, as SimMIM does).
        mask_patch: the side of a square in tokens.
    """
    gh, gw = (grid, grid) if isinstance(grid, int) else tuple(grid)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    if isinstance(mask_patch, bool) or not isinstance(mask_patch, int) or mask_patch < 1:
        raise ValueError(f"mask_patch must be a positive int (a square's side in tokens), got {mask_patch!r}")
    if gh < 1 or gw < 1 or gh % mask_patch or gw % mask_patch:
        raise ValueError(
            f"a {gh}×{gw} token grid cannot be tiled by {mask_patch}×{mask_patch} squares: choose a "
            "mask_patch that divides both sides (default_mask_patch(grid) does)"
        )
    rows, cols = gh // mask_patch, gw // mask_patch
    squares = rows * cols
    hidden = math.ceil(_check_ratio(ratio) * squares)
    if hidden >= squares:
        raise ValueError(
            f"mask ratio {ratio} hides all {squares} squares: choose a ratio below {1 - 1 / squares:.3g}"
        )
    if generator is not None:
        device = generator.device
    order = torch.rand(batch, squares, generator=generator, device=device).argsort(dim=1)
    coarse = (order.argsort(dim=1) < hidden).float().reshape(batch, rows, cols)
    fine = coarse.repeat_interleave(mask_patch, 1).repeat_interleave(mask_patch, 2)
    return fine.reshape(batch, gh * gw)


def default_mask_patch(grid: int | tuple[int, int]) -> int:
    """SimMIM's mask square in tokens for a token grid: 2 (SimMIM's 2×2 tokens of a ViT/16) when both sides
    have at least 8 tokens and are even, else 1 (small images; see :func:`block_masking`)."""
    gh, gw = (grid, grid) if isinstance(grid, int) else tuple(grid)
    return 2 if min(gh, gw) >= 8 and gh % 2 == 0 and gw % 2 == 0 else 1


def mask_to_pixels(mask: torch.Tensor, patch_size: int, grid: int | tuple[int, int]) -> torch.Tensor:
    """A B×N token mask on a ``grid`` of P×P patches -> the B×1×(rows·P)×(columns·P) pixel mask."""
    p = _check_patch_size(patch_size)
    gh, gw = (grid, grid) if isinstance(grid, int) else tuple(grid)
    if mask.dim() != 2 or mask.shape[1] != gh * gw:
        raise ValueError(f"mask must be B×{gh * gw} for a {gh}×{gw} grid, got shape {tuple(mask.shape)}")
    square = mask.reshape(-1, 1, gh, gw)
    return square.repeat_interleave(p, 2).repeat_interleave(p, 3)


# ------------------------------------------------------------------------------------------ losses
def normalise_patches(patches: torch.Tensor, eps: float = NORM_PIX_EPS) -> torch.Tensor:
    r"""MAE's normalised-pixel target: each patch row standardised by its own mean and unbiased variance,
    :math:`\hat x = (x - \mu) / \sqrt{\sigma^2 + \epsilon}`, ε = 1e-6."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (var + eps).sqrt()


def unnormalise_patches(pred: torch.Tensor, target: torch.Tensor, eps: float = NORM_PIX_EPS) -> torch.Tensor:
    r"""Bring a prediction of normalised patches back to pixels with each *target* patch's own statistics,
    :math:`x = \hat x \sqrt{\sigma^2 + \epsilon} + \mu`: a model trained with ``norm_pix`` predicts
    contrast-free patches, which look broken when shown as pixels (MAE issues #12, #156, #174)."""
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)
    return pred * (var + eps).sqrt() + mean


def mae_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    norm_pix: bool = False,
    eps: float = NORM_PIX_EPS,
) -> torch.Tensor:
    r"""MAE's reconstruction loss (He et al., 2022, arXiv:2111.06377, §3 "Reconstruction target"):
    the mean squared error per patch, averaged over the *hidden* patches only,

    .. math::  \mathcal{L} = \frac{\sum_{b,n} m_{bn}\, \frac{1}{D}\lVert \hat x_{bn} - t_{bn} \rVert^2}
                                  {\sum_{b,n} m_{bn}},
               \qquad t = \begin{cases} \text{normalise\_patches}(x) & \text{norm\_pix} \\ x \end{cases}

    (the reference's ``(loss * mask).sum() / mask.sum()``). With ``norm_pix`` each target patch is
    standardised by its own mean and unbiased variance (ε = 1e-6), which the paper found gives better
    features (its Table 1d).

    Args:
        pred: B×N×D predicted patches (D = P·P·C), e.g. from the decoder.
        target: B×N×D patches of the image, :func:`patchify` of it.
        mask: B×N, 1 (True) where a patch was hidden; at least one must be.
        norm_pix: compare with per-patch normalised targets (the reference's ``norm_pix_loss``).
    Returns:
        the scalar loss, fp32 (fp64 for fp64 inputs).
    """
    check_tensor("pred", pred, 3, "B×N×D (patches)")
    check_tensor("target", target, 3, "B×N×D (patches)", hint=": patchify the images first")
    if pred.shape != target.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ: predict one row of P·P·C "
            "pixels for every patch of the target"
        )
    mask = _check_mask(mask, pred.shape[:2], "B×N (one entry per patch)")
    if norm_pix and target.shape[-1] < 2:
        raise ValueError("norm_pix needs patches of at least 2 values (their variance is unbiased)")
    with torch.autocast(pred.device.type, enabled=False):
        pred, target = _at_least_fp32(pred), _at_least_fp32(target)
        mask = mask.to(pred.dtype)
        if norm_pix:
            target = normalise_patches(target, eps)
        per_patch = (pred - target).pow(2).mean(dim=-1)
        return (per_patch * mask).sum() / mask.sum()


def simmim_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r"""SimMIM's reconstruction loss (Xie et al., 2022, arXiv:2111.09886, §3.3): L1 on the hidden pixels,

    .. math::  \mathcal{L} = \frac{\sum_{b,c,h,w} M_{bhw}\, |\hat x_{bchw} - x_{bchw}|}
                                  {(\sum_{b,h,w} M_{bhw} + 10^{-5})\, C}

    (the reference's ``(l1 * mask).sum() / (mask.sum() + 1e-5) / in_chans``, the mask counted once per
    pixel, not per channel).

    Args:
        pred: B×C×H×W predicted images.
        target: B×C×H×W images.
        mask: B×1×H×W or B×H×W pixel mask, 1 where hidden (:func:`mask_to_pixels` of a token mask).
    Returns:
        the scalar loss, fp32 (fp64 for fp64 inputs).
    """
    check_tensor("pred", pred, 4, "B×C×H×W (images)")
    check_tensor("target", target, 4, "B×C×H×W (images)")
    if pred.shape != target.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must be images of one shape"
        )
    b, c, h, w = pred.shape
    if isinstance(mask, torch.Tensor) and mask.dim() == 4:
        if mask.shape[1] != 1:
            raise ValueError(f"a 4-D mask must be B×1×H×W, got shape {tuple(mask.shape)}")
        mask = mask[:, 0]
    mask = _check_mask(mask, (b, h, w), "B×H×W (one entry per pixel; mask_to_pixels of a token mask)")
    with torch.autocast(pred.device.type, enabled=False):
        pred, target = _at_least_fp32(pred), _at_least_fp32(target)
        mask = mask.to(pred.dtype).unsqueeze(1)
        return ((pred - target).abs() * mask).sum() / (mask.sum() + SIMMIM_EPS) / c


# ------------------------------------------------------------------------------------------ checks
def _check_patch_size(patch_size) -> int:
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f"patch_size must be a positive int, got {patch_size!r}")
    return patch_size


def _check_ratio(ratio) -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 < float(ratio) < 1.0:
        raise ValueError(f"mask ratio must be a number in (0, 1), the fraction hidden, got {ratio!r}")
    return float(ratio)


def _check_mask(mask, shape: tuple, layout: str) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"mask must be {layout} of shape {tuple(shape)}, got {tuple(mask.shape)}")
    if mask.device.type == "cpu" and not torch.compiler.is_compiling():
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("mask must hold 0/1 (or False/True) entries, 1 where a patch is hidden")
        if not bool(mask.any()):
            raise ValueError("mask hides nothing: the loss is over hidden patches, so hide at least one")
    return mask


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


__all__ = [
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
]
