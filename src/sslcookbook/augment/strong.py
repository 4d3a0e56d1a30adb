r"""Strong augmentation for semi-supervised learning: batched RandAugment with random magnitudes, and Cutout.

RandAugment (Cubuk et al. 2020) applies ``num_ops`` operations drawn uniformly from a fixed list; FixMatch
(Sohn et al. 2020) draws each operation's magnitude uniformly at random per image (its "RA" variant) and
then applies Cutout (DeVries & Taylor 2017), a square of half the image side filled with gray. Here every
image of the batch gets its own operations, magnitudes and Cutout square, drawn at once from the
``generator``; no Python loop runs over images. :func:`weak_strong_views` pairs a weak view with the
strong one, the two views FixMatch trains on.

Operations (a magnitude m ∈ [0, ``magnitude``] per image, with a random sign where one makes sense):
identity, autocontrast, brightness and contrast (factor 1 ± 0.9m), sharpness (1 ± 0.9m), posterize
(8 − ⌊4m⌉ bits), solarize (threshold 1 − m), rotate (±30m°), shear x/y (±0.3m), translate x/y (±0.3m of
the side). Geometric ones fill with black, right for digits on a black background.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn.functional as F

from ._checks import check_random_op, per_sample
from ._sampling import apply_where, rand
from .colour import adjust_brightness, adjust_contrast
from .convert import to_float
from .geometry import _warp
from .presets import MultiView, ViewPipeline, digits_views

Tensor = torch.Tensor


def _identity(x: Tensor, m: Tensor) -> Tensor:
    return x


def _autocontrast(x: Tensor, m: Tensor) -> Tensor:
    low = x.amin(dim=(-2, -1), keepdim=True)
    high = x.amax(dim=(-2, -1), keepdim=True)
    scale = torch.where(high > low, 1.0 / (high - low).clamp_min(1e-6), torch.ones_like(high))
    return torch.where(high > low, (x - low) * scale, x).clamp_(0.0, 1.0)


def _brightness(x: Tensor, m: Tensor) -> Tensor:
    return adjust_brightness(x, 1.0 + 0.9 * m)


def _contrast(x: Tensor, m: Tensor) -> Tensor:
    return adjust_contrast(x, 1.0 + 0.9 * m)


def _sharpness(x: Tensor, m: Tensor) -> Tensor:
    # PIL's ImageEnhance.Sharpness: blend with a smoothed image (3×3 kernel, centre 5, others 1, / 13).
    kernel = torch.ones(3, 3, dtype=x.dtype, device=x.device)
    kernel[1, 1] = 5.0
    kernel = (kernel / 13.0).expand(x.shape[1], 1, 3, 3)
    smooth = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=x.shape[1])
    return torch.lerp(smooth, x, per_sample(1.0 + 0.9 * m, x, "sharpness")).clamp_(0.0, 1.0)


def _posterize(x: Tensor, m: Tensor) -> Tensor:
    shift = 2.0 ** torch.round(4.0 * m.abs())  # keep 8 − round(4m) bits
    step = per_sample(shift, x, "posterize")
    return (torch.floor(x * 255.0 / step) * step / 255.0).clamp_(0.0, 1.0)


def _solarize(x: Tensor, m: Tensor) -> Tensor:
    threshold = per_sample(1.0 - m.abs(), x, "solarize")
    return torch.where(x >= threshold, 1.0 - x, x)


def _affine(x: Tensor, theta: Tensor) -> Tensor:
    return _warp(x, theta, (x.shape[-2], x.shape[-1]), padding_mode="zeros")


def _matrices(m: Tensor, kind: str, height: int, width: int) -> Tensor:
    """B×2×3 normalised-coordinate maps from output to input pixels for one geometric op."""
    theta = torch.zeros(m.shape[0], 2, 3, dtype=torch.float32, device=m.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    if kind == "rotate":
        angle = torch.deg2rad(30.0 * m)
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta[:, 0, 0], theta[:, 0, 1] = cos, sin * (height / width)
        theta[:, 1, 0], theta[:, 1, 1] = -sin * (width / height), cos
    elif kind == "shear_x":
        theta[:, 0, 1] = 0.3 * m * (height / width)
    elif kind == "shear_y":
        theta[:, 1, 0] = 0.3 * m * (width / height)
    elif kind == "translate_x":
        theta[:, 0, 2] = 2 * 0.3 * m
    elif kind == "translate_y":
        theta[:, 1, 2] = 2 * 0.3 * m
    return theta


def _geometric(kind: str) -> Callable[[Tensor, Tensor], Tensor]:
    def op(x: Tensor, m: Tensor) -> Tensor:
        return _affine(x, _matrices(m, kind, x.shape[-2], x.shape[-1]))

    op.__name__ = kind
    return op


#: The operations, in the order their index is drawn; each maps (images, signed magnitudes) to images.
RAND_AUGMENT_OPS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "identity": _identity,
    "autocontrast": _autocontrast,
    "brightness": _brightness,
    "contrast": _contrast,
    "sharpness": _sharpness,
    "posterize": _posterize,
    "solarize": _solarize,
    "rotate": _geometric("rotate"),
    "shear_x": _geometric("shear_x"),
    "shear_y": _geometric("shear_y"),
    "translate_x": _geometric("translate_x"),
    "translate_y": _geometric("translate_y"),
}


def rand_augment(
    x: Tensor,
    num_ops: int = 2,
    magnitude: float = 1.0,
    ops: Sequence[str] | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """RandAugment on a float batch in [0, 1]: ``num_ops`` rounds, each applying to every image one op drawn
    uniformly from ``ops`` (default: all of :data:`RAND_AUGMENT_OPS`) at a magnitude drawn uniformly from
    [0, ``magnitude``] (FixMatch's random-magnitude RandAugment), with a random sign for signed ops."""
    op = "rand_augment"
    check_random_op(x, generator, op, color=True)
    if isinstance(num_ops, bool) or not isinstance(num_ops, int) or num_ops < 0:
        raise ValueError(f"{op}: num_ops must be an int >= 0, got {num_ops!r}")
    if not 0.0 <= float(magnitude) <= 1.0:
        raise ValueError(f"{op}: magnitude must be in [0, 1] (1: the strongest), got {magnitude}")
    names = list(RAND_AUGMENT_OPS) if ops is None else list(ops)
    unknown = [name for name in names if name not in RAND_AUGMENT_OPS]
    if unknown or not names:
        raise ValueError(f"{op}: unknown ops {unknown or names}; choose from {', '.join(RAND_AUGMENT_OPS)}")
    batch = x.shape[0]
    for _ in range(num_ops):
        u = rand((batch, 3), generator, x)  # op choice, magnitude, sign: drawn for every image, every round
        choice = (u[:, 0] * len(names)).long().clamp_(max=len(names) - 1)
        signed = u[:, 1] * float(magnitude) * torch.where(u[:, 2] < 0.5, -1.0, 1.0)
        for index, name in enumerate(names):
            if name != "identity":
                x = apply_where(x, choice == index, RAND_AUGMENT_OPS[name], signed)
    return x


def cutout(
    x: Tensor, size: float = 0.5, fill: float = 0.5, generator: torch.Generator | None = None
) -> Tensor:
    """Cutout: per image, a square of side ``size`` × the shorter side, centred at a uniformly random pixel
    (it may stick out of the image), set to ``fill`` (FixMatch: half the side, gray)."""
    op = "cutout"
    check_random_op(x, generator, op)
    if not 0.0 <= float(size) <= 1.0 or not 0.0 <= float(fill) <= 1.0:
        raise ValueError(f"{op}: size and fill must be in [0, 1], got size {size}, fill {fill}")
    height, width = x.shape[-2], x.shape[-1]
    u = rand((x.shape[0], 2), generator, x)
    side = max(1, round(float(size) * min(height, width))) if size > 0 else 0
    cy, cx = (u[:, 0] * height).floor(), (u[:, 1] * width).floor()
    ys = torch.arange(height, device=x.device, dtype=torch.float32).view(1, height, 1)
    xs = torch.arange(width, device=x.device, dtype=torch.float32).view(1, 1, width)
    top, left = cy - side // 2, cx - side // 2
    inside = (
        (ys >= top.view(-1, 1, 1))
        & (ys < (top + side).view(-1, 1, 1))
        & (xs >= left.view(-1, 1, 1))
        & (xs < (left + side).view(-1, 1, 1))
    )
    return torch.where(inside.unsqueeze(1), torch.full_like(x, float(fill)), x)


def strong_pipeline(
    weak: ViewPipeline, num_ops: int = 2, magnitude: float = 1.0, cutout_size: float = 0.5
) -> ViewPipeline:
    """The weak view's ops, then RandAugment, then Cutout: FixMatch's strong view."""
    ops = list(weak.ops) + [partial(rand_augment, num_ops=num_ops, magnitude=magnitude)]
    if cutout_size > 0:
        ops.append(partial(cutout, size=cutout_size))
    return ViewPipeline(ops)


def weak_strong_views(
    image_shape: Sequence[int],
    weak_strength: float = 0.5,
    num_ops: int = 2,
    magnitude: float = 1.0,
    cutout_size: float = 0.5,
) -> MultiView:
    """Two views per image, ``[weak, strong]``: the weak one a mild ``digits`` view (affine and intensity,
    ``weak_strength``; FixMatch's is flip-and-shift, which would mirror digits), the strong one the weak
    ops followed by :func:`rand_augment` and :func:`cutout`. Works for any channel count and size."""
    shape = tuple(int(d) for d in image_shape)[-3:]
    if len(shape) != 3:
        raise ValueError(f"weak_strong_views: image_shape must be (C, H, W), got {tuple(image_shape)}")
    size = shape[1] if shape[1] == shape[2] else (shape[1], shape[2])
    weak = digits_views(weak_strength, size=size, num_views=1).pipelines[0]
    return MultiView([weak, strong_pipeline(weak, num_ops, magnitude, cutout_size)])


def strong_views(images: Tensor, generator: torch.Generator | None = None, **kwargs) -> Tensor:
    """One strong view of uint8 or float ``images``: :func:`weak_strong_views`' second view."""
    return weak_strong_views(images.shape, **kwargs).pipelines[1](to_float(images), generator)


__all__ = [
    "RAND_AUGMENT_OPS",
    "cutout",
    "rand_augment",
    "strong_pipeline",
    "strong_views",
    "weak_strong_views",
]
