"""Batched, per-sample random image augmentations on CPU or CUDA, and the view presets of SSL methods.

``views = preset("simclr", images.shape)(images, generator)`` returns a list of augmented float
batches; see ``ops`` for the individual augmentations and ``presets`` for the recipes.
"""

from .ops import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    color_jitter,
    gaussian_blur,
    gaussian_noise,
    grayscale,
    horizontal_flip,
    normalize,
    random_affine,
    random_resized_crop,
    rgb_to_grayscale,
    solarize,
    to_float,
)
from .presets import (
    PRESETS,
    MultiView,
    ViewPipeline,
    blur_kernel_size,
    byol,
    digits_views,
    multicrop,
    preset,
    simclr,
)

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
]
