"""``shapes``: a synthetic data set whose label is a shape and whose nuisances are everything else.

Each image shows one filled shape (circle, square, triangle, cross, ring, star, crescent, heart) with a
random colour, on a random two-colour linear-gradient background, at a random position, scale and
rotation, plus mild Gaussian pixel noise. Colours are drawn independently of the class, so colour
statistics carry no label information: a model has to learn the outline. Rasterised with signed
distance functions on a coordinate grid, vectorised over the batch (antialiased by a one-pixel ramp).
"""

from __future__ import annotations

import math

import torch

from .dataset import ImageDataset

SHAPE_CLASSES = ["circle", "square", "triangle", "cross", "ring", "star", "crescent", "heart"]
SHAPES_TRAIN_SIZE = 5000
SHAPES_TEST_SIZE = 1000
SHAPES_TRAIN_SEED = 0
SHAPES_TEST_SEED = 1
# The colour-shortcut variant (registry name ``shapes_colour_shortcut``): 16 px and 2,000 training images,
# so that notebook 01 trains its crop/colour ablation in CPU minutes.
SHAPES_SHORTCUT_PIXELS = 16
SHAPES_SHORTCUT_TRAIN_SIZE = 2000
SHAPES_SHORTCUT_TEST_SIZE = 1000

_CHUNK = 2048  # images rasterised at once: bounds the temporary float memory to ~40 MB at 32×32


def _box(px: torch.Tensor, py: torch.Tensor, half_x: float, half_y: float) -> torch.Tensor:
    qx, qy = px.abs() - half_x, py.abs() - half_y
    outside = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2)
    return outside + torch.maximum(qx, qy).clamp(max=0)


def _circle(px: torch.Tensor, py: torch.Tensor, radius: float) -> torch.Tensor:
    return torch.sqrt(px**2 + py**2) - radius


def _triangle(px: torch.Tensor, py: torch.Tensor, radius: float) -> torch.Tensor:
    """Equilateral triangle with circumradius ``radius``, pointing up: max of three edge half-planes."""
    inradius = radius / 2
    d = -py - inradius  # bottom edge
    for angle in (math.pi / 6, 5 * math.pi / 6):  # the two slanted edges' outward normals
        d = torch.maximum(d, px * math.cos(angle) + py * math.sin(angle) - inradius)
    return d


def _star(px: torch.Tensor, py: torch.Tensor, outer: float, inner: float) -> torch.Tensor:
    """Five-pointed star: radius varies linearly in angle between ``outer`` tips and ``inner`` notches."""
    angle = torch.atan2(py, px) - math.pi / 2
    phase = torch.remainder(angle * 5 / (2 * math.pi), 1.0)  # 0 at a tip, 0.5 at a notch
    edge = inner + (outer - inner) * (2 * (phase - 0.5)).abs()
    # Dividing by the radial slope keeps the ramp near one pixel wide (radius grows along the tips).
    return (torch.sqrt(px**2 + py**2) - edge) * 0.6


def _heart(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """A square turned 45° (point down) with two discs on its upper edges."""
    c, s = math.cos(math.pi / 4), math.sin(math.pi / 4)
    ry = py + 0.15
    half = 0.5
    square = _box(px * c - ry * s, px * s + ry * c, half, half)
    offset = half * math.sqrt(2) / 2
    left = _circle(px + offset, ry - offset, half)
    right = _circle(px - offset, ry - offset, half)
    return torch.minimum(square, torch.minimum(left, right))


def _shape_sdf(label: int, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Signed distance (negative inside) of class ``label`` in unit shape coordinates (extent ~[-1, 1])."""
    name = SHAPE_CLASSES[label]
    if name == "circle":
        return _circle(px, py, 0.8)
    if name == "square":
        return _box(px, py, 0.7, 0.7)
    if name == "triangle":
        return _triangle(px, py + 0.1, 1.0)
    if name == "cross":
        return torch.minimum(_box(px, py, 0.95, 0.28), _box(px, py, 0.28, 0.95))
    if name == "ring":
        return (torch.sqrt(px**2 + py**2) - 0.7).abs() - 0.22
    if name == "star":
        return _star(px, py, 1.0, 0.42)
    if name == "crescent":
        return torch.maximum(_circle(px, py, 0.9), -_circle(px - 0.45, py, 0.7))
    if name == "heart":
        return _heart(px, py)
    raise AssertionError(f"no signed distance function for class {name!r}")


def _rasterise(
    labels: torch.Tensor, params: dict[str, torch.Tensor], size: int, return_coverage: bool = False
):
    """Float images n×3×size×size in [0, 1] for one chunk of labels and per-image parameters (and, with
    ``return_coverage``, the shape's coverage of each pixel, n×size×size in [0, 1])."""
    n = labels.shape[0]
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1  # pixel centres in [-1, 1]
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    gx, gy = gx.expand(n, size, size), gy.expand(n, size, size)

    def per_image(name: str) -> torch.Tensor:
        return params[name].view(n, 1, 1)

    # Inverse similarity transform: image coordinates -> unit shape coordinates.
    dx, dy = gx - per_image("cx"), gy - per_image("cy")
    cos, sin, scale = torch.cos(per_image("angle")), torch.sin(per_image("angle")), per_image("scale")
    px, py = (dx * cos + dy * sin) / scale, (-dx * sin + dy * cos) / scale

    distance = torch.empty(n, size, size)
    for label in labels.unique().tolist():
        rows = labels == label
        distance[rows] = _shape_sdf(label, px[rows], py[rows])
    pixels_per_unit = scale * (size / 2)
    coverage = (0.5 - distance * pixels_per_unit).clamp(0, 1).unsqueeze(1)  # n×1×H×W

    ramp = (gx * per_image("grad_cos") + gy * per_image("grad_sin")).unsqueeze(1) * 0.5 + 0.5
    bg_a, bg_b = params["bg_a"].view(n, 3, 1, 1), params["bg_b"].view(n, 3, 1, 1)
    background = bg_a + (bg_b - bg_a) * ramp
    foreground = params["fg"].view(n, 3, 1, 1)
    image = background + (foreground - background) * coverage
    image = image + params["noise_std"].view(n, 1, 1, 1) * params["noise"]
    return (image, coverage[:, 0]) if return_coverage else image


def _vivid(hue: torch.Tensor, saturation: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """HSV → RGB (n×3), vectorised: ``c = V − V·S·clamp(min(k, 4 − k), 0, 1)``, k = (m + 6H) mod 6."""
    m = torch.tensor([5.0, 3.0, 1.0])
    k = torch.remainder(m + 6 * hue.unsqueeze(1), 6)
    return value.unsqueeze(1) * (1 - saturation.unsqueeze(1) * torch.minimum(k, 4 - k).clamp(0, 1))


def make_shapes(n: int, size: int = 32, seed: int = 0, colour_shortcut: bool = False) -> ImageDataset:
    """Generate ``n`` RGB images of ``SHAPE_CLASSES`` (:func:`make_shapes_with_masks` without the masks)."""
    return make_shapes_with_masks(n, size, seed, colour_shortcut)[0]


def make_shapes_with_masks(
    n: int, size: int = 32, seed: int = 0, colour_shortcut: bool = False
) -> tuple[ImageDataset, torch.Tensor]:
    """Generate ``n`` RGB images (uint8, n×3×size×size) of ``SHAPE_CLASSES``, deterministic in ``seed``.

    Labels are balanced (``n // 8`` or one more per class) and shuffled. Nuisances, all independent of
    the label: shape colour (uniform RGB, pushed away from the background when too close), background
    gradient (colour uniform, second end within ±0.25, random direction), centre (±0.3 of the half-width),
    scale (0.35–0.65 of the half-width), rotation (uniform), Gaussian noise (std 0–0.04).

    ``colour_shortcut=True`` makes colour the easiest way to tell *images* apart while it still says
    nothing about the *class*: a flat background and a shape in two vivid colours drawn per image (hues
    uniform, the shape's at least a quarter turn of the colour wheel from the background's), no
    gradient and no noise; the shapes are larger and more central (scale 0.55–0.85, centre ±0.15) so
    that their outline stays legible at 16 px. Any crop of an image then shares its colours, so a
    view-matching method trained without colour distortion can match views by colour alone (SimCLR's
    Figure 5).

    Returns the data set and the object masks, bool n×size×size: True where the shape covers at least
    half of the pixel (what an attention map or a segmentation is scored against).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int (number of images), got {n!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an int >= 8 pixels (shapes are unreadable below that), got {size!r}")
    g = torch.Generator().manual_seed(seed)
    num_classes = len(SHAPE_CLASSES)
    labels = (torch.arange(n) % num_classes)[torch.randperm(n, generator=g)]

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape, generator=g)

    bg_a = uniform(0, 1, n, 3)
    bg_b = (bg_a + uniform(-0.25, 0.25, n, 3)).clamp(0, 1)
    fg = uniform(0, 1, n, 3)
    # Keep the shape visible: a foreground too close to the mean background is moved half a cube away.
    too_close = (fg - (bg_a + bg_b) / 2).norm(dim=1) < 0.45
    fg[too_close] = torch.remainder(fg[too_close] + 0.5, 1.0)
    gradient_angle = uniform(0, 2 * math.pi, n)

    params = {
        "cx": uniform(-0.3, 0.3, n),
        "cy": uniform(-0.3, 0.3, n),
        "scale": uniform(0.35, 0.65, n),
        "angle": uniform(0, 2 * math.pi, n),
        "grad_cos": torch.cos(gradient_angle),
        "grad_sin": torch.sin(gradient_angle),
        "bg_a": bg_a,
        "bg_b": bg_b,
        "fg": fg,
        "noise_std": uniform(0, 0.04, n),
    }
    if colour_shortcut:  # drawn after the plain set's parameters, which stay as they were
        bg_hue = uniform(0, 1, n)
        params["bg_a"] = params["bg_b"] = _vivid(bg_hue, uniform(0.5, 1, n), uniform(0.5, 1, n))
        fg_hue = torch.remainder(bg_hue + uniform(0.25, 0.75, n), 1.0)
        params["fg"] = _vivid(fg_hue, uniform(0.5, 1, n), uniform(0.6, 1, n))
        params["noise_std"] = torch.zeros(n)
        # Larger and more central shapes than the plain set's: at 16 px the outline must stay legible.
        params["scale"] = uniform(0.55, 0.85, n)
        params["cx"], params["cy"] = uniform(-0.15, 0.15, n), uniform(-0.15, 0.15, n)
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    masks = torch.empty(n, size, size, dtype=torch.bool)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        chunk = {key: value[start:stop] for key, value in params.items()}
        chunk["noise"] = torch.randn(stop - start, 3, size, size, generator=g)
        pixels, coverage = _rasterise(labels[start:stop], chunk, size, return_coverage=True)
        images[start:stop] = (pixels * 255).round_().clamp_(0, 255).to(torch.uint8)
        masks[start:stop] = coverage >= 0.5
    variant = "shapes_colour_shortcut" if colour_shortcut else "shapes"
    return ImageDataset(images, labels, list(SHAPE_CLASSES), f"{variant}-{size}px-seed{seed}"), masks
