"""Batched, per-sample random image augmentations on CPU or CUDA, and the view presets of SSL methods.

``views = preset("simclr", images.shape)(images, generator)`` returns a list of augmented float
batches (``preset("digits", ...)`` for small grayscale images such as the 8×8 digits).

Every op takes a float batch ``B×C×H×W`` with values in [0, 1] (``to_float`` converts uint8), draws
its random numbers for the whole batch at once (``torch.rand(..., generator=generator,
device=x.device)``), and never loops over samples in Python, so it runs the same on CPU and CUDA.
Ops with a probability ``p`` decide independently per sample whether to apply. A ``generator`` must
live on the images' device; the same seed gives the same outputs.

Modules: ``geometry`` (crop, affine, flip), ``colour`` (jitter, grayscale, solarize and the
adjustments they use), ``filters`` (blur, noise), ``convert`` (``to_float``, ``normalize``),
``presets`` (``ViewPipeline``, ``MultiView`` and the presets); ``_checks`` holds the argument checks
every op shares and ``_sampling`` the per-sample random draws and masked application.
"""

from .colour import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    color_jitter,
    grayscale,
    rgb_to_grayscale,
    solarize,
)
from .convert import normalize, to_float
from .filters import gaussian_blur, gaussian_noise
from .geometry import horizontal_flip, random_affine, random_resized_crop
from .presets import (
    PRESETS,
    MultiView,
    ViewPipeline,
    blur_kernel_size,
    byol,
    crop_flip,
    digits_views,
    multicrop,
    preset,
    simclr,
)
from .series import SERIES_PRESETS, SeriesViews, permute_segments, series_preset, time_warp
from .strong import cutout, rand_augment, weak_strong_views

__all__ = [
    "PRESETS",
    "MultiView",
    "ViewPipeline",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "blur_kernel_size",
    "byol",
    "color_jitter",
    "digits_views",
    "gaussian_blur",
    "gaussian_noise",
    "grayscale",
    "horizontal_flip",
    "multicrop",
    "normalize",
    "preset",
    "random_affine",
    "random_resized_crop",
    "rgb_to_grayscale",
    "simclr",
    "solarize",
    "to_float",
    "crop_flip",
    "cutout",
    "rand_augment",
    "weak_strong_views",
    "SERIES_PRESETS",
    "SeriesViews",
    "permute_segments",
    "series_preset",
    "time_warp",
]
