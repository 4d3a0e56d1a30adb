"""View pipelines and the view presets of the SSL methods.

A ``ViewPipeline`` applies ops in order to a batch; a ``MultiView`` holds one pipeline per view and
returns a list of independently augmented views of the same images. Presets:

- ``simclr`` (Chen et al., 2020): crop, flip, colour jitter (0.8s, 0.8s, 0.8s, 0.2s, p=0.8),
  grayscale (0.2), Gaussian blur (p=0.5, kernel ≈ 10% of the size; skipped below 16 px). Two views.
- ``byol`` (Grill et al., 2020): the asymmetric pair (blur 1.0 / 0.1, solarize 0.0 / 0.2), also
  used by Barlow Twins and VICReg.
- ``multicrop`` (Caron et al., 2020/2021): two BYOL-style global crops plus small local crops.
- ``digits`` (``digits_views``): affine + mild crop + brightness/contrast + noise for tiny grayscale
  images (8×8 scikit-learn digits); no flips, which would change a digit's identity.
- ``crop_flip`` (He et al., 2022; Xie et al., 2022): resized crop and flip only, one view: masked image
  modelling's views (MAE, SimMIM).

``preset(name, image_shape)`` builds the preset a recipe names; the crop-and-colour presets refuse
grayscale or sub-16 px images and point to ``digits``.

``strength`` is one dial for notebooks: 1 is the paper's recipe, 0 gives (nearly) identity views,
values above 1 strengthen the colour distortion further (geometry and probabilities stay capped).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import torch

from .colour import color_jitter, grayscale, solarize
from .convert import normalize, to_float
from .filters import gaussian_blur, gaussian_noise
from .geometry import horizontal_flip, random_affine, random_resized_crop

Tensor = torch.Tensor
Size = int | tuple[int, int]


def _describe(op: Callable) -> str:
    if isinstance(op, partial):
        args = [repr(a) for a in op.args] + [f"{k}={v!r}" for k, v in op.keywords.items()]
        return f"{getattr(op.func, '__name__', repr(op.func))}({', '.join(args)})"
    return getattr(op, "__name__", repr(op))


class ViewPipeline:
    """Ops applied in order to a batch, each called as ``op(x, generator=generator)``.

    ``ViewPipeline([partial(random_resized_crop, size=32), partial(horizontal_flip, p=0.5)])``.
    Calling it accepts uint8 (0–255) or float ([0, 1]) images B×C×H×W and returns float.
    """

    def __init__(self, ops: Sequence[Callable[..., Tensor]]):
        ops = list(ops)
        for op in ops:
            if not callable(op):
                raise TypeError(
                    f"ViewPipeline: every op must be callable as op(x, generator=g), got {op!r}; "
                    "wrap ops with arguments in functools.partial"
                )
        self.ops = ops

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.apply(to_float(images), generator)

    def apply(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Run the ops on a float batch already in [0, 1] (no conversion or range check)."""
        for op in self.ops:
            x = op(x, generator=generator)
        return x

    def __len__(self) -> int:
        return len(self.ops)

    def __repr__(self) -> str:
        inner = "".join(f"\n    {_describe(op)}," for op in self.ops)
        return f"ViewPipeline([{inner}\n])"


class MultiView:
    """One ``ViewPipeline`` per view: ``views = multi(images, generator)`` is a list of ``num_views``
    float batches, each augmented independently (views may differ in size, as in multi-crop)."""

    def __init__(self, pipelines: Sequence[ViewPipeline]):
        pipelines = list(pipelines)
        if not pipelines:
            raise ValueError("MultiView needs at least one ViewPipeline")
        for pipe in pipelines:
            if not isinstance(pipe, ViewPipeline):
                raise TypeError(f"MultiView: expected ViewPipeline objects, got {type(pipe).__name__}")
        self.pipelines = pipelines

    @property
    def num_views(self) -> int:
        return len(self.pipelines)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        x = to_float(images)
        return [pipe.apply(x, generator) for pipe in self.pipelines]

    def __repr__(self) -> str:
        inner = "".join("\n  " + repr(p).replace("\n", "\n  ") + "," for p in self.pipelines)
        return f"MultiView(num_views={self.num_views}, pipelines=[{inner}\n])"


# --------------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------------


def _check_strength(strength: float) -> float:
    strength = float(strength)
    if not (strength >= 0 and math.isfinite(strength)):
        raise ValueError(f"strength must be a finite number >= 0 (1 = the paper's recipe), got {strength}")
    return strength


def _min_side(size: Size) -> int:
    return size if isinstance(size, int) else min(size)


def blur_kernel_size(size: Size) -> int:
    """Odd kernel of about 10% of the image side, at least 3 (23 for 224 px, 3 for 32 px)."""
    return max(3, int(0.1 * _min_side(size))) | 1


def _crop(size: Size, crop_scale: Sequence[float], ramp: float) -> Callable:
    """Resized crop whose area range and aspect range shrink towards the full image as ``ramp`` → 0."""
    low, high = (float(s) + (1.0 - ramp) * (1.0 - float(s)) for s in crop_scale)
    ratio = ((3 / 4) ** ramp, (4 / 3) ** ramp)
    return partial(random_resized_crop, size=size, scale=(low, high), ratio=ratio)


def _color_ops(
    brightness: float, contrast: float, saturation: float, hue: float, gray_p: float
) -> list[Callable]:
    return [
        partial(
            color_jitter,
            brightness=brightness,
            contrast=contrast,
            saturation=saturation,
            hue=min(hue, 0.5),
            p=0.8,
        ),
        partial(grayscale, p=gray_p),
    ]


def _tail(size: Size, blur: bool | None, blur_p: float, solarize_p: float, normalize_stats) -> list[Callable]:
    ops: list[Callable] = []
    if blur is None:
        blur = _min_side(size) >= 16
    if blur and blur_p > 0:
        ops.append(partial(gaussian_blur, kernel_size=blur_kernel_size(size), sigma=(0.1, 2.0), p=blur_p))
    if solarize_p > 0:
        ops.append(partial(solarize, threshold=0.5, p=solarize_p))
    if normalize_stats is not None:
        mean, std = normalize_stats
        ops.append(partial(normalize, mean=tuple(mean), std=tuple(std)))
    return ops


# --------------------------------------------------------------------------------------------------
# presets
# --------------------------------------------------------------------------------------------------


def simclr(
    size: Size,
    strength: float = 1.0,
    crop_scale: Sequence[float] = (0.08, 1.0),
    blur: bool | None = None,
    color_strength: float | None = None,
    normalize_stats: tuple[Sequence[float], Sequence[float]] | None = None,
) -> MultiView:
    """SimCLR's two views (Chen et al., 2020, appendix A).

    Per view: resized crop (area ``crop_scale``, ratio 3/4–4/3) → flip (0.5) → colour jitter
    (0.8c, 0.8c, 0.8c, 0.2c; p=0.8) → grayscale (0.2) → Gaussian blur (σ ∈ [0.1, 2], p=0.5, kernel
    ``blur_kernel_size(size)``; ``blur=None`` blurs only when the side is >= 16 px).
    ``c = color_strength`` (default ``strength``; SimCLR uses 0.5 on CIFAR-10). With ``t = min(strength,
    1)`` the crop range and ratio range shrink towards the full image and the flip, grayscale and
    blur probabilities scale by ``t``, so ``strength=0`` gives identity views (up to the resize).
    ``normalize_stats=(mean, std)`` appends ``normalize``.
    """
    ramp = min(_check_strength(strength), 1.0)
    c = _check_strength(strength if color_strength is None else color_strength)
    view = ViewPipeline(
        [_crop(size, crop_scale, ramp), partial(horizontal_flip, p=0.5 * ramp)]
        + _color_ops(0.8 * c, 0.8 * c, 0.8 * c, 0.2 * c, gray_p=0.2 * ramp)
        + _tail(size, blur, 0.5 * ramp, 0.0, normalize_stats)
    )
    return MultiView([view, view])


def byol(
    size: Size,
    strength: float = 1.0,
    crop_scale: Sequence[float] = (0.08, 1.0),
    blur: bool | None = None,
    color_strength: float | None = None,
    normalize_stats: tuple[Sequence[float], Sequence[float]] | None = None,
) -> MultiView:
    """BYOL's asymmetric pair (Grill et al., 2020, table 6), used by Barlow Twins and VICReg too.

    Both: crop → flip (0.5) → jitter (0.4c, 0.4c, 0.2c, 0.1c; p=0.8) → grayscale (0.2); then blur
    with p = 1.0 / 0.1 and solarize with p = 0.0 / 0.2 for view 1 / view 2. ``strength``,
    ``color_strength``, ``blur`` and ``normalize_stats`` as in ``simclr``.
    """
    ramp = min(_check_strength(strength), 1.0)
    c = _check_strength(strength if color_strength is None else color_strength)
    head = [_crop(size, crop_scale, ramp), partial(horizontal_flip, p=0.5 * ramp)] + _color_ops(
        0.4 * c, 0.4 * c, 0.2 * c, 0.1 * c, gray_p=0.2 * ramp
    )
    first = ViewPipeline(head + _tail(size, blur, 1.0 * ramp, 0.0, normalize_stats))
    second = ViewPipeline(head + _tail(size, blur, 0.1 * ramp, 0.2 * ramp, normalize_stats))
    return MultiView([first, second])


def multicrop(
    size: Size,
    local_size: Size | None = None,
    num_local: int = 4,
    strength: float = 1.0,
    global_scale: Sequence[float] = (0.4, 1.0),
    local_scale: Sequence[float] = (0.05, 0.4),
    normalize_stats: tuple[Sequence[float], Sequence[float]] | None = None,
) -> MultiView:
    """Multi-crop (SwAV, Caron et al., 2020; DINO, Caron et al., 2021): 2 global + ``num_local`` local views.

    Global views are BYOL's pair with crops of area ``global_scale`` at ``size``; local views use
    area ``local_scale`` at ``local_size`` (default 3/7 of ``size``: 96 for 224) with blur p=0.5.
    """
    if num_local < 0:
        raise ValueError(f"multicrop: num_local must be >= 0, got {num_local}")
    if local_size is None:
        local_size = max(4, round(_min_side(size) * 3 / 7))
    global_views = byol(size, strength, crop_scale=global_scale, normalize_stats=normalize_stats).pipelines
    ramp = min(_check_strength(strength), 1.0)
    local = ViewPipeline(
        [_crop(local_size, local_scale, ramp), partial(horizontal_flip, p=0.5 * ramp)]
        + _color_ops(0.4 * strength, 0.4 * strength, 0.2 * strength, 0.1 * strength, gray_p=0.2 * ramp)
        + _tail(local_size, None, 0.5 * ramp, 0.0, normalize_stats)
    )
    return MultiView(global_views + [local] * num_local)


def digits_views(strength: float = 1.0, size: Size | None = None, num_views: int = 2) -> MultiView:
    """Affine/intensity views for tiny grayscale images such as the 8×8 scikit-learn digits.

    Per view, with ``s = strength``: random affine (±15s°, shift ±10s%, zoom 1 ± 0.1s, black fill)
    → resized crop (area ``[1 − 0.4s, 1]``, ratio ``(3/4)^s``–``(4/3)^s``; output ``size``, default
    the input size) → brightness and contrast jitter (0.4s, p=0.8) → Gaussian noise (σ = 0.05s).
    No flips: a mirrored digit is a different (or no) digit. Works for any channel count.
    """
    s = _check_strength(strength)
    if num_views < 1:
        raise ValueError(f"digits_views: num_views must be >= 1, got {num_views}")
    view = ViewPipeline(
        [
            partial(
                random_affine,
                degrees=15.0 * s,
                translate=min(0.1 * s, 0.5),
                scale=(max(0.1, 1 - 0.1 * s), 1 + 0.1 * s),
            ),
            partial(
                random_resized_crop,
                size=size,
                scale=(max(0.05, 1 - 0.4 * s), 1.0),
                ratio=((3 / 4) ** s, (4 / 3) ** s),
            ),
            partial(color_jitter, brightness=0.4 * s, contrast=0.4 * s, saturation=0.0, hue=0.0, p=0.8),
            partial(gaussian_noise, std=0.05 * s),
        ]
    )
    return MultiView([view] * num_views)


#: Each preset's name and the function that builds it (its arguments are the preset's knobs).
PRESETS: dict[str, Callable[..., MultiView]] = {
    "simclr": simclr,
    "byol": byol,
    "multicrop": multicrop,
    "digits": digits_views,
}
#: The smallest image side at which the crop-and-colour presets (simclr, byol, multicrop) make sense.
MIN_CROP_COLOUR_SIDE = 16


def preset(name: str, image_shape: Sequence[int], strength: float = 1.0, **kwargs) -> MultiView:
    """The views of preset ``name`` for images of ``image_shape`` = (C, H, W) (or (B, C, H, W)).

    Each preset builds what its name says. ``"simclr"``, ``"byol"`` and ``"multicrop"`` are their
    papers' crop-and-colour recipes, for RGB images of side >= 16 px; for grayscale or smaller images,
    where crops, flips and colour jitter would destroy the content, they raise a ValueError that
    points to ``"digits"``: ``digits_views`` (affine and intensity views), for images of any channel
    count and size, such as the 8×8 digits. Views keep the input's height and width unless ``size``
    is given; ``kwargs`` go to the builder.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown view preset {name!r}: choose one of {', '.join(PRESETS)}")
    shape = tuple(int(d) for d in image_shape)
    if len(shape) == 4:
        shape = shape[1:]
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"preset: image_shape must be (C, H, W), got {tuple(image_shape)}")
    channels, height, width = shape
    size: Size = kwargs.pop("size", height if height == width else (height, width))
    if name == "digits":
        return digits_views(strength, size=size, **kwargs)
    if name == "crop_flip":  # no colour: any channel count (on the digits pass flip=False)
        return crop_flip(size, strength=strength, **kwargs)
    if channels != 3 or min(height, width) < MIN_CROP_COLOUR_SIDE:
        raise ValueError(
            f"preset {name!r} is for RGB images of at least {MIN_CROP_COLOUR_SIDE}×{MIN_CROP_COLOUR_SIDE} "
            f"px, got {channels}×{height}×{width}: use preset 'digits' for 1-channel images or images "
            f"smaller than {MIN_CROP_COLOUR_SIDE} px (affine and intensity views; crops, flips and colour "
            "jitter would destroy them)"
        )
    return PRESETS[name](size, strength=strength, **kwargs)


def crop_flip(
    size: Size,
    strength: float = 1.0,
    crop_scale: Sequence[float] = (0.2, 1.0),
    flip: bool = True,
    num_views: int = 1,
) -> MultiView:
    """Crop and flip only: the views of masked image modelling (MAE, He et al., 2022: resized crop of area
    0.2–1 and a horizontal flip, no colour distortion; SimMIM, Xie et al., 2022: area 0.67–1). Masking is
    the task's corruption, so the views stay close to the image. ``num_views`` copies (1 for MAE and
    SimMIM); ``strength`` shrinks the crop range towards the full image and the flip probability, as in
    ``simclr``.
    """
    ramp = min(_check_strength(strength), 1.0)
    if num_views < 1:
        raise ValueError(f"crop_flip: num_views must be >= 1, got {num_views}")
    ops: list[Callable] = [_crop(size, crop_scale, ramp)]
    if flip:
        ops.append(partial(horizontal_flip, p=0.5 * ramp))
    return MultiView([ViewPipeline(ops)] * num_views)


PRESETS["crop_flip"] = crop_flip
