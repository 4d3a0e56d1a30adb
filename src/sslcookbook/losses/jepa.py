r"""Joint-embedding predictive losses and their masks: predict the *representation* of hidden patches.

Masked image modelling (MAE, SimMIM) regresses the pixels of the hidden patches; the methods here
regress what a momentum (EMA) teacher encoder makes of them, so the target is already abstract and
no capacity goes into pixel detail:

- I-JEPA (Assran et al. 2023): from one large *context* block, a narrow predictor predicts the
  teacher's layer-normalised features at 4 small *target* blocks — :func:`multiblock_masks`,
  :func:`ijepa_loss`.
- data2vec (Baevski et al. 2022): the student sees the image with BEiT-style blocks replaced by a
  mask token and regresses, at the masked positions, the average of the teacher's top-K block outputs
  (each normalised) — :func:`block_masks`, :func:`data2vec_targets`, :func:`data2vec_loss`.

The masks are drawn with a ``torch.Generator`` (the same seed gives the same masks) on the CPU; the
methods move them to the images' device.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ._checks import check_count, check_tensor, inspects_values

Grid = int | tuple[int, int]


# --------------------------------------------------------------------------------------------------
# masks
# --------------------------------------------------------------------------------------------------


def _grid(grid: Grid) -> tuple[int, int]:
    if isinstance(grid, numbers.Integral) and not isinstance(grid, bool):
        grid = (int(grid), int(grid))
    if (
        not isinstance(grid, Sequence)
        or len(grid) != 2
        or not all(isinstance(g, numbers.Integral) and not isinstance(g, bool) and g >= 1 for g in grid)
    ):
        raise ValueError(f"grid must be a positive int or (rows, columns) of patches, got {grid!r}")
    return int(grid[0]), int(grid[1])


def _range(value, name: str, low: float, high: float) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a (min, max) pair of numbers, got {value!r}") from None
    if not low <= a <= b <= high:
        raise ValueError(f"{name} must satisfy {low} <= min <= max <= {high}, got ({a}, {b})")
    return a, b


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * torch.rand((), generator=generator, dtype=torch.float64).item()


def _footprints(rows: int, cols: int, top: torch.Tensor, left: torch.Tensor, h, w) -> torch.Tensor:
    """…×rows×cols bool: True inside the h×w block(s) at (top, left) (tensors of any shape; h, w ints
    or tensors of the same shape)."""
    r = torch.arange(rows).view(*([1] * top.dim()), rows, 1)
    c = torch.arange(cols).view(*([1] * top.dim()), 1, cols)
    top, left = top[..., None, None], left[..., None, None]
    h = h[..., None, None] if isinstance(h, torch.Tensor) else h
    w = w[..., None, None] if isinstance(w, torch.Tensor) else w
    return (r >= top) & (r < top + h) & (c >= left) & (c < left + w)


def _positions(n: int, rows: int, cols: int, h, w, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n uniform (top, left) corners of blocks that fit the grid (every placement equally likely)."""
    u = torch.rand(2, n, generator=generator, dtype=torch.float64)
    top = (u[0] * (rows - h + 1)).long().clamp_max(rows - h)
    left = (u[1] * (cols - w + 1)).long().clamp_max(cols - w)
    return top, left


def block_size(
    grid: Grid,
    scale: tuple[float, float],
    aspect: tuple[float, float],
    generator: torch.Generator | None = None,
) -> tuple[int, int]:
    """One block's (rows, columns): area s·N patches for s ~ U(scale), aspect rows/columns a ~ U(aspect),
    h = round(√(s·N·a)), w = round(√(s·N/a)), each at least 1 and at most the grid's side.

    The I-JEPA reference draws s and a with one shared random number and caps blocks at one patch less
    than the grid (so on its 14×14 grid the context block is always the top-left 13×13); here they are
    independent draws and a block may span the whole grid, as the paper describes.
    """
    rows, cols = _grid(grid)
    keep = int(rows * cols * _uniform(*scale, generator))
    ratio = _uniform(*aspect, generator)
    h = min(max(round(math.sqrt(keep * ratio)), 1), rows)
    w = min(max(round(math.sqrt(keep / ratio)), 1), cols)
    return h, w


def multiblock_masks(
    batch_size: int,
    grid: Grid,
    num_targets: int = 4,
    target_scale: tuple[float, float] = (0.15, 0.2),
    target_aspect: tuple[float, float] = (0.75, 1.5),
    context_scale: tuple[float, float] = (0.85, 1.0),
    context_aspect: tuple[float, float] = (1.0, 1.0),
    min_context: int = 1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""I-JEPA's multi-block masks (Assran et al. 2023, "Self-Supervised Learning from Images with a
    Joint-Embedding Predictive Architecture", arXiv:2301.08243, section 3).

    Per batch, one target block size (scale ``target_scale`` of the N patches, aspect rows/columns
    ``target_aspect``) and one context size (``context_scale``, ``context_aspect``) are drawn
    (:func:`block_size`); per image, ``num_targets`` target blocks are placed uniformly (they may
    overlap each other), then one context block, from which every target patch is removed, so the
    context never sees what it must predict. As in the reference collator, each image's context list
    is then cut to the batch minimum (its lowest indices kept), so the batch stacks into one tensor
    (target blocks all have the batch's h·w patches already).

    On the 4×4 grid of the 8×8 digits (2×2 patches), scale 0.15–0.2 means 2–3 of the 16 patches:
    blocks of 1×1 to 2×2 patches; the context block (scale 0.85–1, aspect 1) is the whole 4×4 grid,
    less the targets. If removing the targets would leave fewer than ``min_context`` context patches,
    the context block is re-placed, and after 20 tries the targets are not removed from it (the
    reference relaxes its constraints the same way).

    Args:
        batch_size: B, the images of the batch.
        grid: the patch grid, ``rows`` or ``(rows, columns)``.
        num_targets: M, target blocks per image (4).
        target_scale, target_aspect, context_scale, context_aspect: the (min, max) ranges above.
        min_context: the fewest context patches kept (≥ 1).
        generator: the random stream (same seed, same masks).
    Returns:
        ``(context, targets)``: B×n_c and B×M×(h·w) long tensors of patch indices (row-major,
        ascending), every context index outside every target block of its image (unless relaxed).
    """
    check_count(batch_size, "batch_size")
    check_count(num_targets, "num_targets")
    check_count(min_context, "min_context")
    rows, cols = _grid(grid)
    target_scale = _range(target_scale, "target_scale", 0.0, 1.0)
    context_scale = _range(context_scale, "context_scale", 0.0, 1.0)
    target_aspect = _range(target_aspect, "target_aspect", 1e-6, math.inf)
    context_aspect = _range(context_aspect, "context_aspect", 1e-6, math.inf)
    if min_context > rows * cols:
        raise ValueError(f"min_context={min_context} exceeds the grid's {rows * cols} patches")
    th, tw = block_size((rows, cols), target_scale, target_aspect, generator)
    ch, cw = block_size((rows, cols), context_scale, context_aspect, generator)
    if ch * cw < min_context:
        raise ValueError(
            f"a {ch}×{cw} context block cannot hold min_context={min_context} patches: raise "
            "context_scale or lower min_context"
        )
    top, left = _positions(batch_size * num_targets, rows, cols, th, tw, generator)
    target_blocks = _footprints(rows, cols, top, left, th, tw).reshape(batch_size, num_targets, rows, cols)
    free = ~target_blocks.any(dim=1)
    context = torch.zeros(batch_size, rows, cols, dtype=torch.bool)
    todo = torch.arange(batch_size)
    for _ in range(20):
        top, left = _positions(len(todo), rows, cols, ch, cw, generator)
        kept = _footprints(rows, cols, top, left, ch, cw) & free[todo]
        ok = kept.flatten(1).sum(dim=1) >= min_context
        context[todo[ok]] = kept[ok]
        todo = todo[~ok]
        if not len(todo):
            break
    else:
        top, left = _positions(len(todo), rows, cols, ch, cw, generator)
        context[todo] = _footprints(rows, cols, top, left, ch, cw)
    context = context.flatten(1)
    n_context = int(context.sum(dim=1).min())
    # Kept patches first, each image's in ascending order; then the first n_context of them.
    context_indices = torch.argsort((~context).to(torch.uint8), dim=1, stable=True)[:, :n_context]
    target_indices = target_blocks.flatten(2).nonzero()[:, 2].reshape(batch_size, num_targets, th * tw)
    return context_indices, target_indices


def block_masks(
    batch_size: int,
    grid: Grid,
    ratio: float = 0.6,
    min_block: int | None = None,
    aspect: tuple[float, float] = (0.3, 1 / 0.3),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""BEiT's block-wise masking (Bao et al. 2022, "BEiT: BERT Pre-Training of Image Transformers",
    arXiv:2106.08254, algorithm 1), as data2vec uses it for images.

    Per image, rectangles are added until round(ratio·N) patches are masked: each has an area drawn
    uniformly between ``min_block`` and the patches still to mask, and a log-uniform aspect in
    ``aspect``; a rectangle is kept when it adds at least one and at most the remaining number of new
    patches. BEiT stops after 10 rectangles in a row fail; here the remaining patches are then drawn
    one by one, so every image has exactly round(ratio·N) masked patches. All images of the batch are
    drawn together (one rectangle per image per round).

    Args:
        batch_size, grid: B and the patch grid (``rows`` or ``(rows, columns)``).
        ratio: the fraction masked (data2vec: 0.6; BEiT: 75/196 ≈ 0.38).
        min_block: the smallest rectangle's area (None: BEiT's 16 of 196 patches scaled to the grid,
            at least 1; 1 on the digits' 16 patches, 5 on CIFAR's 64).
        aspect: (min, max) of rows/columns (BEiT: 0.3 to 1/0.3).
        generator: the random stream.
    Returns:
        B×N bool, True where a patch is masked (row-major).
    """
    check_count(batch_size, "batch_size")
    rows, cols = _grid(grid)
    n = rows * cols
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be a number in (0, 1), the fraction of patches masked, got {ratio!r}")
    count = max(1, min(n - 1, round(ratio * n)))
    if min_block is None:
        min_block = max(1, round(16 / 196 * n))
    check_count(min_block, "min_block")
    low, high = (math.log(a) for a in _range(aspect, "aspect", 1e-6, math.inf))
    masks = torch.zeros(batch_size, rows, cols, dtype=torch.bool)
    failures = torch.zeros(batch_size, dtype=torch.long)
    while True:
        remaining = count - masks.flatten(1).sum(dim=1)
        active = ((remaining > 0) & (failures < 10)).nonzero().flatten()
        if not len(active):
            break
        left_to_mask = remaining[active].double()
        u = torch.rand(4, len(active), generator=generator, dtype=torch.float64)
        area = left_to_mask.clamp(max=min_block) + u[0] * (left_to_mask - left_to_mask.clamp(max=min_block))
        ratio_hw = torch.exp(low + (high - low) * u[1])
        h = torch.round(torch.sqrt(area * ratio_hw)).long()
        w = torch.round(torch.sqrt(area / ratio_hw)).long()
        fits = (h >= 1) & (h <= rows) & (w >= 1) & (w <= cols)
        h, w = h.clamp(1, rows), w.clamp(1, cols)
        top = (u[2] * (rows - h + 1)).long().clamp_max(rows - h)
        left = (u[3] * (cols - w + 1)).long().clamp_max(cols - w)
        block = _footprints(rows, cols, top, left, h, w)
        new = (block & ~masks[active]).flatten(1).sum(dim=1)
        accept = fits & (new > 0) & (new <= remaining[active])
        masks[active[accept]] |= block[accept]
        failures[active] = torch.where(accept, 0, failures[active] + 1)
    masks = masks.flatten(1)
    for i in (masks.sum(dim=1) < count).nonzero().flatten().tolist():
        free = (~masks[i]).nonzero().flatten()
        masks[i, free[torch.randperm(len(free), generator=generator)[: count - int(masks[i].sum())]]] = True
    return masks


# --------------------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------------------


def _check_pair(predictions, targets, what: str) -> None:
    for name, t in (("predictions", predictions), ("targets", targets)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() < 2 or not t.is_floating_point():
            raise ValueError(f"{name} must be floating-point {what}, got {t.dtype} of shape {tuple(t.shape)}")
    if predictions.shape != targets.shape:
        raise ValueError(
            f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} must have one shape: "
            "select the target features at the predicted positions first"
        )
    if predictions.dtype != targets.dtype or predictions.device != targets.device:
        raise ValueError(
            f"predictions ({predictions.dtype}, {predictions.device}) and targets ({targets.dtype}, "
            f"{targets.device}) must share dtype and device"
        )
    for name, t in (("predictions", predictions), ("targets", targets)):
        if inspects_values(t) and not torch.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or inf: training diverged — lower the learning rate")


def ijepa_loss(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    r"""I-JEPA's loss (Assran et al. 2023, arXiv:2301.08243, equation 1 with the reference code's
    smooth-L1): the predictor's outputs against the target encoder's features at the target blocks,
    each feature vector layer-normalised without parameters and detached:

    .. math::  \mathcal{L} = \frac{1}{|T|\,D}\sum_{t \in T}\sum_{d=1}^{D}
               \ell_1^{\beta=1}\big(\hat s_{t,d} - \mathrm{sg}(\mathrm{LN}(s_t))_d\big), \qquad
               \ell_1^{\beta}(u) = \begin{cases} u^2 / (2\beta) & |u| < \beta \\ |u| - \beta/2 & \text{else}
               \end{cases}

    (the paper writes the squared L2 distance; its code uses ``F.smooth_l1_loss``). LN's ε is 1e-5.

    Args:
        predictions: …×D predicted features (e.g. B×M×n_t×D, one row per target patch).
        targets: the target encoder's features at the same positions, same shape (raw: normalised
            here); no gradient reaches them.
    Returns:
        the scalar mean over every target patch and feature (fp32 for 16-bit inputs).
    """
    _check_pair(predictions, targets, "(…, D) features at the target patches")
    if predictions.dtype in (torch.float16, torch.bfloat16):
        predictions, targets = predictions.float(), targets.float()
    targets = F.layer_norm(targets.detach(), targets.shape[-1:])
    return F.smooth_l1_loss(predictions, targets, beta=1.0)


def data2vec_targets(
    layers: Sequence[torch.Tensor], top_k: int = 6, block_norm: str = "instance"
) -> torch.Tensor:
    r"""data2vec's regression targets (Baevski et al. 2022, "data2vec: A General Framework for
    Self-supervised Learning in Speech, Vision and Language", arXiv:2202.03555, section 3.3):

    .. math::  y_t = \mathrm{LN}\Big(\frac{1}{K}\sum_{l=L-K+1}^{L} \mathrm{norm}(a^l)_t\Big)

    with :math:`a^l` the B×T×D output of teacher block l and both normalisations without learned
    parameters (ε 1e-5). ``block_norm="instance"`` (default) normalises each feature over the T tokens of
    each image (``F.instance_norm``: fairseq's ``instance_norm_target_layer`` option, the normalisation
    the paper names for speech); ``"layer"`` normalises each token over its D features (the parameter-free
    LayerNorm the paper reports sufficient for vision and NLP). The final LN over the D features of each
    token is the issue's "layer-normalised average" (data2vec 2.0's IN → average → LN).

    Args:
        layers: the teacher's block outputs, first to last, each B×T×D (patch tokens; drop a CLS first).
        top_k: K, the last blocks averaged (6 in the vision setting; fairseq's default 8).
        block_norm: ``"instance"`` or ``"layer"``.
    Returns:
        B×T×D targets, fp32 for 16-bit inputs (the caller detaches or runs it under ``no_grad``).
    """
    if not isinstance(layers, Sequence) or not layers:
        raise TypeError(
            "layers must be a non-empty list of B×T×D block outputs (encode(..., return_layers=True))"
        )
    if block_norm not in ("instance", "layer"):
        raise ValueError(f"block_norm must be 'instance' or 'layer', got {block_norm!r}")
    check_count(top_k, "top_k")
    if top_k > len(layers):
        raise ValueError(
            f"top_k={top_k} exceeds the {len(layers)} blocks given: lower top_k or use a deeper ViT"
        )
    chosen = list(layers[-top_k:])
    for i, t in enumerate(chosen):
        check_tensor(f"layers[{len(layers) - top_k + i}]", t, 3, "(batch × tokens × dim)")
        if t.shape != chosen[0].shape:
            raise ValueError(
                f"every block output must have one shape, got {tuple(t.shape)} and {tuple(chosen[0].shape)}"
            )
    total = 0
    for t in chosen:
        t = t.float() if t.dtype in (torch.float16, torch.bfloat16) else t
        if block_norm == "instance":
            t = F.instance_norm(t.transpose(1, 2)).transpose(1, 2)
        else:
            t = F.layer_norm(t, t.shape[-1:])
        total = total + t
    average = total / top_k
    return F.layer_norm(average, average.shape[-1:])


def data2vec_loss(
    predictions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, beta: float = 2.0
) -> torch.Tensor:
    r"""data2vec's regression loss (Baevski et al. 2022, arXiv:2202.03555, equation 2; the scale is
    fairseq's default ``loss_scale = 1/√D``): smooth-L1 with β summed over the D features of each
    masked token, scaled by 1/√D, averaged over the masked tokens:

    .. math::  \mathcal{L} = \frac{1}{|M|}\sum_{t \in M} \frac{1}{\sqrt D}\sum_{d=1}^{D}
               \ell_1^{\beta}\big(f_{t,d} - \mathrm{sg}(y_{t,d})\big)

    Args:
        predictions: B×T×D student predictions (after the regression head).
        targets: B×T×D teacher targets (:func:`data2vec_targets`); no gradient reaches them.
        mask: B×T bool, True at the masked tokens (the only ones scored).
        beta: β > 0 of the smooth L1 (2 for vision).
    Returns:
        the scalar loss (fp32 for 16-bit inputs).
    """
    _check_pair(predictions, targets, "B×T×D features")
    if predictions.dim() != 3:
        raise ValueError(f"predictions must be B×T×D, got shape {tuple(predictions.shape)}")
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != predictions.shape[:2]:
        got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a bool B×T tensor {tuple(predictions.shape[:2])}, got {got}")
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not beta > 0:
        raise ValueError(f"beta must be a number > 0, got {beta!r}")
    if mask.device != predictions.device:
        raise ValueError(f"mask is on {mask.device} but predictions on {predictions.device}; move it")
    if inspects_values(mask) and not mask.any():
        raise ValueError("mask masks no token: data2vec scores masked tokens only; mask some")
    if predictions.dtype in (torch.float16, torch.bfloat16):
        predictions, targets = predictions.float(), targets.float()
    per_token = F.smooth_l1_loss(
        predictions[mask], targets.detach()[mask], reduction="none", beta=float(beta)
    )
    return per_token.sum(dim=-1).mean() / math.sqrt(predictions.shape[-1])
