"""Geometric ops: random resized crop, random affine, horizontal flip.

Unlike torchvision (parity is distribution-level, not bitwise), crops are continuous boxes (sub-pixel),
resampled bilinearly without antialiasing; crop and affine warp the whole batch with one ``grid_sample``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ._checks import as_range, check_random_op, output_size
from ._sampling import apply_where, rand, uniform

Tensor = torch.Tensor


def _affine_grid(theta: Tensor, height: int, width: int) -> Tensor:
    """``F.affine_grid(theta, (B, C, height, width), align_corners=False)`` by broadcasting.

    Same values; on CPU it avoids a batched matmul of B small matrices that costs more than the
    resampling itself.
    """
    xs = (torch.arange(width, device=theta.device, dtype=theta.dtype) * 2 + 1) / width - 1
    ys = (torch.arange(height, device=theta.device, dtype=theta.dtype) * 2 + 1) / height - 1
    coef = theta.transpose(1, 2).unsqueeze(1)  # (B, 1, 3, 2): rows are the x, y and offset terms
    return ys.view(1, height, 1, 1) * coef[:, :, 1:2] + (
        xs.view(1, 1, width, 1) * coef[:, :, 0:1] + coef[:, :, 2:3]
    )


def _warp(x: Tensor, theta: Tensor, size: tuple[int, int], padding_mode: str) -> Tensor:
    # Sampling coordinates in half precision would be off by a fraction of a pixel: warp in float32.
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    grid = _affine_grid(theta.to(work.dtype), size[0], size[1])
    out = F.grid_sample(work, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)
    return out.clamp_(0.0, 1.0).to(x.dtype)  # bilinear weights sum to 1 only up to rounding


def random_resized_crop(
    x: Tensor,
    size: int | Sequence[int] | None,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> Tensor:
    """Crop a random box per image and resize it to ``size`` (int, (h, w), or None for the input size).

    The box is sampled as in Inception / torchvision's RandomResizedCrop: area fraction
    ``~ U(scale)``, aspect ratio ``w/h ~ logU(ratio)``; up to 10 tries per image (vectorised) for a
    box that fits, else the largest centred box with the ratio clamped to ``ratio``. Boxes are
    continuous, all resampled with one ``affine_grid`` + bilinear ``grid_sample`` (no antialiasing).
    """
    op = "random_resized_crop"
    check_random_op(x, generator, op)
    out_size = output_size(size, x, op)
    s_lo, s_hi = as_range(scale, "scale", op)
    r_lo, r_hi = as_range(ratio, "ratio", op)
    if s_lo <= 0 or r_lo <= 0:
        raise ValueError(
            f"{op}: scale and ratio must be positive, got scale={tuple(scale)}, ratio={tuple(ratio)}"
        )
    batch, height, width = x.shape[0], x.shape[-2], x.shape[-1]
    tries = 10

    u = rand((batch, tries, 2), generator, x)
    area = height * width * uniform(u[..., 0], s_lo, s_hi)
    aspect = torch.exp(uniform(u[..., 1], math.log(r_lo), math.log(r_hi)))
    box_w = torch.sqrt(area * aspect)
    box_h = torch.sqrt(area / aspect)
    fits = (box_w <= width) & (box_h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # first fitting try (0 if none fits)
    box_w = box_w.gather(1, first).squeeze(1)
    box_h = box_h.gather(1, first).squeeze(1)

    # Fallback when no try fits: the whole image, aspect ratio clamped into `ratio`, centred.
    in_ratio = width / height
    if in_ratio < r_lo:
        fb_w, fb_h = float(width), width / r_lo
    elif in_ratio > r_hi:
        fb_w, fb_h = height * r_hi, float(height)
    else:
        fb_w, fb_h = float(width), float(height)
    any_fits = fits.any(dim=1)
    box_w = torch.where(any_fits, box_w, torch.full_like(box_w, fb_w))
    box_h = torch.where(any_fits, box_h, torch.full_like(box_h, fb_h))
    centred = torch.full((batch, 2), 0.5, device=x.device)
    pos = torch.where(any_fits.unsqueeze(1), rand((batch, 2), generator, x), centred)
    left = pos[:, 0] * (width - box_w)
    top = pos[:, 1] * (height - box_h)

    # Output normalised coords [-1, 1] → input normalised coords of the box (align_corners=False).
    theta = torch.zeros(batch, 2, 3, device=x.device)
    theta[:, 0, 0] = box_w / width
    theta[:, 0, 2] = (2 * left + box_w) / width - 1
    theta[:, 1, 1] = box_h / height
    theta[:, 1, 2] = (2 * top + box_h) / height - 1
    return _warp(x, theta, out_size, padding_mode="border")


def random_affine(
    x: Tensor,
    degrees: float | Sequence[float] = 15.0,
    translate: float | Sequence[float] = 0.1,
    scale: Sequence[float] = (0.9, 1.1),
    p: float = 1.0,
    padding_mode: str = "zeros",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Random rotation, translation and scaling per image, one bilinear ``grid_sample`` for the batch.

    Angle ``~ U(-degrees, degrees)`` (or ``U(degrees)`` for a pair), shift ``~ U(-t, t)`` of the width
    and height (``translate`` = t or (t_x, t_y)), zoom ``~ U(scale)``; rotation is about the centre in
    pixel space, so non-square images are not sheared. Pixels from outside the image are filled per
    ``padding_mode`` (``"zeros"``: black, right for digits on a black background).
    """
    op = "random_affine"
    p = check_random_op(x, generator, op, p)
    deg_lo, deg_hi = (
        (-float(degrees), float(degrees))
        if isinstance(degrees, (int, float))
        else as_range(degrees, "degrees", op)
    )
    t_x, t_y = (
        (float(translate), float(translate)) if isinstance(translate, (int, float)) else map(float, translate)
    )
    if not (0 <= t_x <= 1 and 0 <= t_y <= 1):
        raise ValueError(f"{op}: translate must be fractions of the image size in [0, 1], got {translate!r}")
    s_lo, s_hi = as_range(scale, "scale", op)
    if s_lo <= 0:
        raise ValueError(f"{op}: scale must be positive, got {tuple(scale)}")
    if p == 0.0:
        return x
    batch, height, width = x.shape[0], x.shape[-2], x.shape[-1]

    u = rand((batch, 5), generator, x)
    angle = torch.deg2rad(uniform(u[:, 0], deg_lo, deg_hi))
    shift_x = uniform(u[:, 1], -t_x, t_x) * width  # pixels
    shift_y = uniform(u[:, 2], -t_y, t_y) * height
    zoom = uniform(u[:, 3], s_lo, s_hi)
    applied = u[:, 4] < p

    # Output pixel q maps back to input pixel R(-angle)(q - shift) / zoom (centred coordinates);
    # in normalised coordinates n = q / (W/2, H/2) this is D^-1 R(-angle) D / zoom plus an offset.
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.empty(batch, 2, 3, device=x.device)
    theta[:, 0, 0] = cos / zoom
    theta[:, 0, 1] = sin * (height / width) / zoom
    theta[:, 1, 0] = -sin * (width / height) / zoom
    theta[:, 1, 1] = cos / zoom
    theta[:, 0, 2] = -(cos * shift_x + sin * shift_y) / zoom / (width / 2)
    theta[:, 1, 2] = -(-sin * shift_x + cos * shift_y) / zoom / (height / 2)
    return apply_where(x, applied, lambda images, th: _warp(images, th, (height, width), padding_mode), theta)


def horizontal_flip(x: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Mirror each image left–right with probability ``p``."""
    op = "horizontal_flip"
    p = check_random_op(x, generator, op, p)
    if p == 0.0:
        return x
    applied = rand(x.shape[0], generator, x) < p
    return apply_where(x, applied, lambda images: images.flip(-1))
