"""Colour ops: deterministic adjustments with per-sample factors (brightness, contrast, saturation,
hue), their random version ``color_jitter``, grayscale and solarize.

Colour jitter applies its four adjustments in a random order drawn per sample (torchvision draws one
order per call); hue is shifted in HSV, exactly as torchvision and ``colorsys`` define it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._checks import as_range, check_images, check_random_op, per_sample
from ._sampling import apply_where, rand, uniform

Tensor = torch.Tensor

# ITU-R 601-2 luma, the weights torchvision and PIL use for grayscale.
_LUMA = (0.2989, 0.587, 0.114)


def rgb_to_grayscale(x: Tensor) -> Tensor:
    """Luma ``0.2989 R + 0.587 G + 0.114 B`` as a B×1×H×W batch (1-channel input is returned as is)."""
    check_images(x, "rgb_to_grayscale", color=True)
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(dim=1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """``factor·x + (1 − factor)·other``, clamped to [0, 1]."""
    return torch.lerp(other, x, factor).clamp_(0.0, 1.0)


def adjust_brightness(x: Tensor, factor: float | Tensor) -> Tensor:
    """``clamp(f·x)``; ``factor`` is a scalar or one per image."""
    check_images(x, "adjust_brightness")
    return (x * per_sample(factor, x, "adjust_brightness")).clamp_(0.0, 1.0)


def adjust_contrast(x: Tensor, factor: float | Tensor) -> Tensor:
    """``clamp(f·x + (1 − f)·m)`` with ``m`` the image's mean luma."""
    check_images(x, "adjust_contrast", color=True)
    mean = rgb_to_grayscale(x).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(x, mean, per_sample(factor, x, "adjust_contrast"))


def adjust_saturation(x: Tensor, factor: float | Tensor) -> Tensor:
    """``clamp(f·x + (1 − f)·gray(x))`` per pixel; a no-op for 1-channel images."""
    check_images(x, "adjust_saturation", color=True)
    if x.shape[1] == 1:
        return x
    return _blend(x, rgb_to_grayscale(x), per_sample(factor, x, "adjust_saturation"))


def adjust_hue(x: Tensor, shift: float | Tensor) -> Tensor:
    """Rotate the HSV hue by ``shift`` turns (in [-0.5, 0.5]), keeping value and saturation.

    RGB → HSV as in ``colorsys.rgb_to_hsv``; back with ``c = V − C·clamp(min(k, 4 − k), 0, 1)``,
    ``k = (n + 6H) mod 6``, ``n = 5, 3, 1`` for R, G, B, where ``C = max − min`` is the chroma.
    A no-op for 1-channel images.
    """
    check_images(x, "adjust_hue", color=True)
    if x.shape[1] == 1:
        return x
    shift = per_sample(shift, x, "adjust_hue").view(-1, 1, 1)
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
    low, high = as_range(value, name, op)
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
    p = check_random_op(x, generator, op, p, color=True)
    ranges = [_jitter_range(v, n, op) for v, n in ((brightness, "brightness"), (contrast, "contrast"))]
    ranges.append(_jitter_range(saturation, "saturation", op))
    if isinstance(hue, (int, float)):
        if not 0 <= hue <= 0.5:
            raise ValueError(f"{op}: hue must be in [0, 0.5] (a fraction of the colour wheel), got {hue}")
        hue_range = (-float(hue), float(hue))
    else:
        hue_range = as_range(hue, "hue", op)
        if hue_range[0] < -0.5 or hue_range[1] > 0.5:
            raise ValueError(f"{op}: hue must lie within [-0.5, 0.5], got {tuple(hue)}")
    if p == 0.0:
        return x
    batch = x.shape[0]

    u = rand((batch, 5), generator, x)
    order = rand((batch, 4), generator, x).argsort(dim=1)  # order[:, r] = adjustment applied in round r
    applied = u[:, 4] < p
    factors = [uniform(u[:, i], *ranges[i]) for i in range(3)] + [uniform(u[:, 3], *hue_range)]

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
                x = apply_where(x, chosen[:, step, i], adjust, factors[i], inplace=True)
    return x


def grayscale(x: Tensor, p: float = 0.2, generator: torch.Generator | None = None) -> Tensor:
    """Replace each image by its luma (repeated over the C channels) with probability ``p``."""
    op = "grayscale"
    p = check_random_op(x, generator, op, p, color=True)
    if p == 0.0 or x.shape[1] == 1:
        return x
    applied = rand(x.shape[0], generator, x) < p
    return apply_where(x, applied, lambda images: rgb_to_grayscale(images).expand_as(images))


def solarize(
    x: Tensor, threshold: float = 0.5, p: float = 0.2, generator: torch.Generator | None = None
) -> Tensor:
    """Invert pixels ``>= threshold`` (``x → 1 − x``) with probability ``p`` per image."""
    op = "solarize"
    p = check_random_op(x, generator, op, p)
    if p == 0.0:
        return x
    applied = (rand(x.shape[0], generator, x) < p).view(-1, 1, 1, 1)
    return torch.where(applied & (x >= threshold), 1.0 - x, x)
