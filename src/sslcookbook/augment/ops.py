"""Batched image augmentations with per-sample randomness.

Every op takes a float batch ``B×C×H×W`` with values in [0, 1] (``to_float`` converts uint8), draws
its random numbers for the whole batch at once (``torch.rand(..., generator=generator,
device=x.device)``), and never loops over samples in Python, so it runs the same on CPU and CUDA.
Ops with a probability ``p`` decide independently per sample whether to apply. A ``generator`` must
live on the images' device; the same seed gives the same outputs.

Conventions that differ from torchvision (distribution-level, not bitwise, parity):
- crops are continuous boxes (sub-pixel), resampled bilinearly without antialiasing;
- colour jitter applies its four adjustments in a random order drawn per sample (torchvision draws
  one order per call); hue is shifted in HSV, exactly as torchvision and ``colorsys`` define it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

# ITU-R 601-2 luma, the weights torchvision and PIL use for grayscale.
_LUMA = (0.2989, 0.587, 0.114)


# --------------------------------------------------------------------------------------------------
# validation and random helpers
# --------------------------------------------------------------------------------------------------


def _check_batch(x: object, op: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{op}: expected a torch.Tensor of images B×C×H×W, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(
            f"{op}: expected a batch of images B×C×H×W, got shape {tuple(x.shape)}; "
            "add a batch dimension with images.unsqueeze(0) or stack single images with torch.stack"
        )


def _check_images(x: Tensor, op: str, color: bool = False) -> None:
    _check_batch(x, op)
    if not x.is_floating_point():
        raise TypeError(
            f"{op}: expected float images in [0, 1], got dtype {x.dtype}; "
            "convert with sslcookbook.augment.to_float(images)"
        )
    if color and x.shape[1] not in (1, 3):
        raise ValueError(
            f"{op}: expected 1 (grayscale) or 3 (RGB) channels, got {x.shape[1]} (shape {tuple(x.shape)}); "
            "images must be channels-first B×C×H×W"
        )


def _check_generator(generator: torch.Generator | None, x: Tensor, op: str) -> None:
    if generator is not None and generator.device.type != x.device.type:
        raise ValueError(
            f"{op}: generator is on {generator.device} but the images are on {x.device}; "
            f"create it with torch.Generator(device={str(x.device)!r}).manual_seed(seed)"
        )


def _check_probability(p: float, op: str) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: p must be a probability in [0, 1], got {p}")
    return p


def _rand(shape: tuple[int, ...] | int, generator: torch.Generator | None, x: Tensor) -> Tensor:
    """Uniform [0, 1) float32 numbers on the images' device."""
    return torch.rand(shape, generator=generator, device=x.device)


def _uniform(u: Tensor, low: float, high: float) -> Tensor:
    return low + (high - low) * u


def _as_range(value: float | Sequence[float], name: str, op: str) -> tuple[float, float]:
    """``(low, high)`` from a pair, validated."""
    if isinstance(value, (int, float)):
        raise TypeError(f"{op}: {name} must be a (low, high) pair, got {value!r}")
    low, high = (float(v) for v in value)
    if low > high:
        raise ValueError(f"{op}: {name} must be (low, high) with low <= high, got {tuple(value)}")
    return low, high


def _per_sample(factor: float | Tensor, x: Tensor, op: str) -> Tensor:
    """A scalar or a (B,) tensor as a B×1×1×1 tensor of the images' dtype and device."""
    if not isinstance(factor, torch.Tensor):
        return torch.full((x.shape[0], 1, 1, 1), float(factor), dtype=x.dtype, device=x.device)
    if factor.ndim == 0:
        factor = factor.expand(x.shape[0])
    if factor.shape != (x.shape[0],):
        raise ValueError(
            f"{op}: expected a scalar or one factor per image (shape ({x.shape[0]},)), "
            f"got shape {tuple(factor.shape)}"
        )
    return factor.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def _select(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Per-sample choice: ``a[i]`` where ``mask[i]`` else ``b[i]``."""
    return torch.where(mask.view(-1, 1, 1, 1), a, b)


def _apply_where(
    x: Tensor, mask: Tensor, fn: Callable[..., Tensor], *args: Tensor, inplace: bool = False
) -> Tensor:
    """``fn(x, *args)[i]`` for the images where ``mask[i]``, ``x[i]`` elsewhere.

    ``fn`` maps a batch and per-image arguments (first dimension B) to a batch of the same shape.
    On CPU only the selected images are gathered and computed (``inplace`` then writes them into
    ``x``); on CUDA every image is computed and the results selected, which avoids the host
    synchronisation that gathering a data-dependent subset needs. Both give the same values.
    """
    if x.device.type != "cpu":
        return _select(mask, fn(x, *args), x)
    index = mask.nonzero().squeeze(1)
    if index.numel() == 0:
        return x
    selected = fn(x.index_select(0, index), *(a.index_select(0, index) for a in args))
    return (x if inplace else x.clone()).index_copy_(0, index, selected)


def _output_size(size: int | Sequence[int] | None, x: Tensor, op: str) -> tuple[int, int]:
    if size is None:
        return int(x.shape[-2]), int(x.shape[-1])
    if isinstance(size, int):
        size = (size, size)
    if len(size) != 2 or any(int(s) < 1 for s in size):
        raise ValueError(f"{op}: size must be a positive int or an (height, width) pair, got {size!r}")
    return int(size[0]), int(size[1])


# --------------------------------------------------------------------------------------------------
# conversion
# --------------------------------------------------------------------------------------------------


def to_float(images: Tensor, dtype: torch.dtype = torch.float32, check_range: bool = True) -> Tensor:
    """uint8 images (0–255) → ``dtype`` in [0, 1]; float images pass through unchanged.

    With ``check_range`` a float batch is checked to be finite and within [0, 1] (one reduction;
    on CUDA it synchronises once). uint8 input needs no check.
    """
    _check_batch(images, "to_float")
    if images.dtype == torch.uint8:
        return images.to(dtype).div_(255.0)
    if not images.is_floating_point():
        raise TypeError(
            f"to_float: expected uint8 images (0-255) or float images in [0, 1], got dtype {images.dtype}; "
            "convert with images.to(torch.uint8) if they hold 0-255 values, or images.float() / 255"
        )
    if check_range and images.numel() > 0:
        low, high = (float(v) for v in torch.aminmax(images.detach()))  # NaN propagates into both
        if math.isnan(low) or math.isnan(high):
            raise ValueError("to_float: images contain NaN; check the data loading and any preprocessing")
        if low < -1e-3 or high > 1.0 + 1e-3:
            hint = (
                "they look like 0-255 values: pass them as uint8 or divide by 255"
                if high > 1.5 and math.isfinite(high)
                else "clamp them with images.clamp(0, 1) or undo any normalisation first"
            )
            raise ValueError(
                f"to_float: float images must lie in [0, 1], got range [{low:g}, {high:g}]; {hint}"
            )
    return images


# --------------------------------------------------------------------------------------------------
# geometric ops
# --------------------------------------------------------------------------------------------------


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
    _check_images(x, op)
    _check_generator(generator, x, op)
    out_size = _output_size(size, x, op)
    s_lo, s_hi = _as_range(scale, "scale", op)
    r_lo, r_hi = _as_range(ratio, "ratio", op)
    if s_lo <= 0 or r_lo <= 0:
        raise ValueError(
            f"{op}: scale and ratio must be positive, got scale={tuple(scale)}, ratio={tuple(ratio)}"
        )
    batch, height, width = x.shape[0], x.shape[-2], x.shape[-1]
    tries = 10

    u = _rand((batch, tries, 2), generator, x)
    area = height * width * _uniform(u[..., 0], s_lo, s_hi)
    aspect = torch.exp(_uniform(u[..., 1], math.log(r_lo), math.log(r_hi)))
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
    pos = torch.where(any_fits.unsqueeze(1), _rand((batch, 2), generator, x), centred)
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
    _check_images(x, op)
    _check_generator(generator, x, op)
    p = _check_probability(p, op)
    deg_lo, deg_hi = (
        (-float(degrees), float(degrees))
        if isinstance(degrees, (int, float))
        else _as_range(degrees, "degrees", op)
    )
    t_x, t_y = (
        (float(translate), float(translate)) if isinstance(translate, (int, float)) else map(float, translate)
    )
    if not (0 <= t_x <= 1 and 0 <= t_y <= 1):
        raise ValueError(f"{op}: translate must be fractions of the image size in [0, 1], got {translate!r}")
    s_lo, s_hi = _as_range(scale, "scale", op)
    if s_lo <= 0:
        raise ValueError(f"{op}: scale must be positive, got {tuple(scale)}")
    if p == 0.0:
        return x
    batch, height, width = x.shape[0], x.shape[-2], x.shape[-1]

    u = _rand((batch, 5), generator, x)
    angle = torch.deg2rad(_uniform(u[:, 0], deg_lo, deg_hi))
    shift_x = _uniform(u[:, 1], -t_x, t_x) * width  # pixels
    shift_y = _uniform(u[:, 2], -t_y, t_y) * height
    zoom = _uniform(u[:, 3], s_lo, s_hi)
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
    return _apply_where(
        x, applied, lambda images, th: _warp(images, th, (height, width), padding_mode), theta
    )


def horizontal_flip(x: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Mirror each image left–right with probability ``p``."""
    op = "horizontal_flip"
    _check_images(x, op)
    _check_generator(generator, x, op)
    p = _check_probability(p, op)
    if p == 0.0:
        return x
    applied = _rand(x.shape[0], generator, x) < p
    return _apply_where(x, applied, lambda images: images.flip(-1))


# --------------------------------------------------------------------------------------------------
# colour ops (deterministic adjustments with per-sample factors, then their random versions)
# --------------------------------------------------------------------------------------------------


def rgb_to_grayscale(x: Tensor) -> Tensor:
    """Luma ``0.2989 R + 0.587 G + 0.114 B`` as a B×1×H×W batch (1-channel input is returned as is)."""
    _check_images(x, "rgb_to_grayscale", color=True)
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(dim=1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """``factor·x + (1 − factor)·other``, clamped to [0, 1]."""
    return torch.lerp(other, x, factor).clamp_(0.0, 1.0)


def adjust_brightness(x: Tensor, factor: float | Tensor) -> Tensor:
    """``clamp(f·x)``; ``factor`` is a scalar or one per image."""
    _check_images(x, "adjust_brightness")
    return (x * _per_sample(factor, x, "adjust_brightness")).clamp_(0.0, 1.0)


def adjust_contrast(x: Tensor, factor: float | Tensor) -> Tensor:
    """``clamp(f·x + (1 − f)·m)`` with ``m`` the image's mean luma."""
    _check_images(x, "adjust_contrast", color=True)
    mean = rgb_to_grayscale(x).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(x, mean, _per_sample(factor, x, "adjust_contrast"))


def adjust_saturation(x: Tensor, factor: float | Tensor) -> Tensor:
    """``clamp(f·x + (1 − f)·gray(x))`` per pixel; a no-op for 1-channel images."""
    _check_images(x, "adjust_saturation", color=True)
    if x.shape[1] == 1:
        return x
    return _blend(x, rgb_to_grayscale(x), _per_sample(factor, x, "adjust_saturation"))


def adjust_hue(x: Tensor, shift: float | Tensor) -> Tensor:
    """Rotate the HSV hue by ``shift`` turns (in [-0.5, 0.5]), keeping value and saturation.

    RGB → HSV as in ``colorsys.rgb_to_hsv``; back with ``c = V − C·clamp(min(k, 4 − k), 0, 1)``,
    ``k = (n + 6H) mod 6``, ``n = 5, 3, 1`` for R, G, B, where ``C = max − min`` is the chroma.
    A no-op for 1-channel images.
    """
    _check_images(x, "adjust_hue", color=True)
    if x.shape[1] == 1:
        return x
    shift = _per_sample(shift, x, "adjust_hue").view(-1, 1, 1)
    r, g, b = x.unbind(dim=1)
    max_c = torch.maximum(torch.maximum(r, g), b)
    chroma = max_c - torch.minimum(torch.minimum(r, g), b)
    # Gray pixels (chroma 0) get hue 0 from 0 · (1 / tiny); their output is max_c whatever the hue.
    inv_chroma = 1.0 / chroma.clamp(min=torch.finfo(x.dtype).tiny)
    r_is_max = r == max_c
    g_is_max = (g == max_c) & ~r_is_max
    # 6·hue in the sector of the largest channel: (g − b)/C for R, 2 + (b − r)/C for G, 4 + (r − g)/C for B.
    hue6 = torch.where(
        r_is_max,
        (g - b) * inv_chroma,
        torch.where(g_is_max, 2.0 + (b - r) * inv_chroma, 4.0 + (r - g) * inv_chroma),
    )
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    k = torch.remainder((hue6 + 6.0 * shift).unsqueeze(1) + n, 6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return (max_c.unsqueeze(1) - chroma.unsqueeze(1) * ramp).clamp_(0.0, 1.0)


def _jitter_range(value: float | Sequence[float], name: str, op: str) -> tuple[float, float]:
    """``v`` → ``(max(0, 1 − v), 1 + v)``; a pair is taken as the factor range."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{op}: {name} must be >= 0, got {value}")
        return max(0.0, 1.0 - float(value)), 1.0 + float(value)
    low, high = _as_range(value, name, op)
    if low < 0:
        raise ValueError(f"{op}: {name} factors must be >= 0, got {tuple(value)}")
    return low, high


def color_jitter(
    x: Tensor,
    brightness: float | Sequence[float] = 0.4,
    contrast: float | Sequence[float] = 0.4,
    saturation: float | Sequence[float] = 0.4,
    hue: float | Sequence[float] = 0.1,
    p: float = 0.8,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Random brightness, contrast, saturation and hue, in a random order per image, with prob. ``p``.

    Factors are drawn per image: brightness/contrast/saturation ``~ U(max(0, 1 − v), 1 + v)`` (or
    ``U(low, high)`` for a pair), hue shift ``~ U(−h, h)`` turns with ``h <= 0.5`` (HSV rotation, see
    ``adjust_hue``). Each image gets its own order of the four adjustments (an ``argsort`` of random
    keys), applied in four rounds: in round r each adjustment acts on the images whose r-th step it is.
    Each step clamps to [0, 1] (as torchvision).
    Saturation and hue are no-ops for 1-channel images.
    """
    op = "color_jitter"
    _check_images(x, op, color=True)
    _check_generator(generator, x, op)
    p = _check_probability(p, op)
    ranges = [_jitter_range(v, n, op) for v, n in ((brightness, "brightness"), (contrast, "contrast"))]
    ranges.append(_jitter_range(saturation, "saturation", op))
    if isinstance(hue, (int, float)):
        if not 0 <= hue <= 0.5:
            raise ValueError(f"{op}: hue must be in [0, 0.5] (a fraction of the colour wheel), got {hue}")
        hue_range = (-float(hue), float(hue))
    else:
        hue_range = _as_range(hue, "hue", op)
        if hue_range[0] < -0.5 or hue_range[1] > 0.5:
            raise ValueError(f"{op}: hue must lie within [-0.5, 0.5], got {tuple(hue)}")
    if p == 0.0:
        return x
    batch = x.shape[0]

    u = _rand((batch, 5), generator, x)
    order = _rand((batch, 4), generator, x).argsort(dim=1)  # order[:, r] = adjustment applied in round r
    applied = u[:, 4] < p
    factors = [_uniform(u[:, i], *ranges[i]) for i in range(3)] + [_uniform(u[:, 3], *hue_range)]

    adjusters = [adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue]
    # Skip adjustments that are the identity for every image (range (1, 1), or no colour channels).
    rgb = x.shape[1] == 3
    active = [ranges[0] != (1.0, 1.0), ranges[1] != (1.0, 1.0), ranges[2] != (1.0, 1.0) and rgb]
    active.append(hue_range != (0.0, 0.0) and rgb)
    # chosen[:, r, i]: image gets adjustment i in round r
    chosen = (order.unsqueeze(2) == torch.arange(4, device=x.device)) & applied.view(-1, 1, 1)
    x = x.clone()  # the rounds below write into it
    for step in range(4):
        for i, adjust in enumerate(adjusters):
            if active[i]:
                x = _apply_where(x, chosen[:, step, i], adjust, factors[i], inplace=True)
    return x


def grayscale(x: Tensor, p: float = 0.2, generator: torch.Generator | None = None) -> Tensor:
    """Replace each image by its luma (repeated over the C channels) with probability ``p``."""
    op = "grayscale"
    _check_images(x, op, color=True)
    _check_generator(generator, x, op)
    p = _check_probability(p, op)
    if p == 0.0 or x.shape[1] == 1:
        return x
    applied = _rand(x.shape[0], generator, x) < p
    return _apply_where(x, applied, lambda images: rgb_to_grayscale(images).expand_as(images))


def solarize(
    x: Tensor, threshold: float = 0.5, p: float = 0.2, generator: torch.Generator | None = None
) -> Tensor:
    """Invert pixels ``>= threshold`` (``x → 1 − x``) with probability ``p`` per image."""
    op = "solarize"
    _check_images(x, op)
    _check_generator(generator, x, op)
    p = _check_probability(p, op)
    if p == 0.0:
        return x
    applied = (_rand(x.shape[0], generator, x) < p).view(-1, 1, 1, 1)
    return torch.where(applied & (x >= threshold), 1.0 - x, x)


# --------------------------------------------------------------------------------------------------
# filtering and noise
# --------------------------------------------------------------------------------------------------


def gaussian_blur(
    x: Tensor,
    kernel_size: int,
    sigma: float | Sequence[float] = (0.1, 2.0),
    p: float = 0.5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Gaussian blur with ``σ ~ U(sigma)`` per image, with probability ``p``.

    Kernel ``w_k ∝ exp(−k²/2σ²)``, ``|k| <= kernel_size // 2``, applied separably (rows, then
    columns) with reflect padding: on CUDA as one grouped convolution over the batch folded into
    channels (1×(B·C)×H×W, ``groups = B·C``), on CPU as shifted multiply-adds (see ``_separable_blur``).
    """
    op = "gaussian_blur"
    _check_images(x, op)
    _check_generator(generator, x, op)
    p = _check_probability(p, op)
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"{op}: kernel_size must be a positive odd int, got {kernel_size!r}")
    sig_lo, sig_hi = (
        (float(sigma), float(sigma)) if isinstance(sigma, (int, float)) else _as_range(sigma, "sigma", op)
    )
    if sig_lo <= 0:
        raise ValueError(f"{op}: sigma must be positive, got {sigma!r}")
    batch, channels, height, width = x.shape
    radius = kernel_size // 2
    if radius >= min(height, width):
        raise ValueError(
            f"{op}: kernel_size {kernel_size} is too large for {height}×{width} images (reflect padding "
            f"needs kernel_size // 2 < min(H, W)); use kernel_size <= {2 * min(height, width) - 1}"
        )
    if p == 0.0 or radius == 0:
        return x

    u = _rand((batch, 2), generator, x)
    sig = _uniform(u[:, 0], sig_lo, sig_hi)
    applied = u[:, 1] < p
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sig.unsqueeze(1)) ** 2)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).to(x.dtype)
    return _apply_where(x, applied, _separable_blur, kernel)


def _separable_blur(x: Tensor, kernel: Tensor, method: str | None = None) -> Tensor:
    """Convolve image i with ``kernel[i]`` (odd length k) along rows then columns, reflect padding.

    ``"conv"``: one grouped convolution per pass over the batch folded into channels
    (1×(B·C)×H×W, ``groups = B·C``), fast with cuDNN. ``"shifted"``: k multiply-adds of shifted
    slices per pass, about 5× faster than the grouped convolution on CPU for small kernels.
    Default: ``"conv"`` on CUDA, ``"shifted"`` elsewhere.
    """
    batch, channels, height, width = x.shape
    size = kernel.shape[1]
    radius = size // 2
    method = method or ("conv" if x.device.type == "cuda" else "shifted")
    groups = batch * channels
    weights = kernel.repeat_interleave(channels, dim=0)  # (B·C, k): one kernel per image-channel
    padded = F.pad(x.reshape(1, groups, height, width), (radius, radius, radius, radius), mode="reflect")
    if method == "conv":
        y = F.conv2d(padded, weights.view(groups, 1, size, 1), groups=groups)
        y = F.conv2d(y, weights.view(groups, 1, 1, size), groups=groups)
    elif method == "shifted":
        padded = padded[0]
        w = weights.view(groups, 1, 1, size)
        rows = padded[:, :height, :] * w[..., 0]
        for i in range(1, size):
            rows.addcmul_(padded[:, i : i + height, :], w[..., i])
        y = rows[:, :, :width] * w[..., 0]
        for i in range(1, size):
            y.addcmul_(rows[:, :, i : i + width], w[..., i])
    else:
        raise ValueError(f"_separable_blur: method must be 'conv' or 'shifted', got {method!r}")
    return y.reshape(batch, channels, height, width).clamp_(0.0, 1.0)


def gaussian_noise(
    x: Tensor, std: float = 0.05, p: float = 1.0, generator: torch.Generator | None = None
) -> Tensor:
    """Add ``N(0, std²)`` noise per pixel, with probability ``p`` per image, and clamp to [0, 1]."""
    op = "gaussian_noise"
    _check_images(x, op)
    _check_generator(generator, x, op)
    p = _check_probability(p, op)
    if std < 0:
        raise ValueError(f"{op}: std must be >= 0, got {std}")
    if p == 0.0 or std == 0:
        return x
    applied = (_rand(x.shape[0], generator, x) < p).to(x.dtype).view(-1, 1, 1, 1)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + (std * applied) * noise).clamp_(0.0, 1.0)


def normalize(
    x: Tensor,
    mean: float | Sequence[float],
    std: float | Sequence[float],
    generator: torch.Generator | None = None,
) -> Tensor:
    """``(x − mean) / std`` per channel (scalars or one value per channel).

    Deterministic: ``generator`` is accepted, unused, so that it composes like the random ops.
    """
    op = "normalize"
    _check_images(x, op)
    channels = x.shape[1]
    stats = []
    for name, value in (("mean", mean), ("std", std)):
        values = [float(value)] * channels if isinstance(value, (int, float)) else [float(v) for v in value]
        if len(values) != channels:
            raise ValueError(f"{op}: {name} has {len(values)} values but the images have {channels} channels")
        stats.append(torch.tensor(values, dtype=x.dtype, device=x.device).view(1, channels, 1, 1))
    if (stats[1] <= 0).any():
        raise ValueError(f"{op}: std must be positive, got {std!r}")
    return (x - stats[0]) / stats[1]
