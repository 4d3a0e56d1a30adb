"""Tests of sslcookbook.augment: batched, per-sample random augmentations and view presets."""

from __future__ import annotations

import colorsys
import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from sslcookbook import augment as A
from sslcookbook.augment._sampling import apply_where
from sslcookbook.augment.filters import _separable_blur
from sslcookbook.augment.geometry import _affine_grid

CUDA = torch.cuda.is_available()


def gen(seed: int = 0, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def images(
    batch: int = 6, channels: int = 3, height: int = 9, width: int = 13, seed: int = 0
) -> torch.Tensor:
    return torch.rand(batch, channels, height, width, generator=gen(seed))


# Every random op with arguments that make it do something on small images.
OPS = {
    "random_resized_crop": partial(A.random_resized_crop, size=(7, 11)),
    "random_resized_crop_none": partial(A.random_resized_crop, size=None, scale=(0.3, 1.0)),
    "random_affine": partial(A.random_affine, degrees=20, translate=0.1, scale=(0.8, 1.2)),
    "horizontal_flip": partial(A.horizontal_flip, p=0.5),
    "color_jitter": partial(A.color_jitter, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=0.8),
    "grayscale": partial(A.grayscale, p=0.5),
    "gaussian_blur": partial(A.gaussian_blur, kernel_size=5, p=0.5),
    "solarize": partial(A.solarize, p=0.5),
    "gaussian_noise": partial(A.gaussian_noise, std=0.1),
}
# Ops with a probability p, and arguments under which applying them changes every image.
P_OPS = {
    "random_affine": partial(A.random_affine, degrees=(20, 30), translate=0.0, scale=(1.0, 1.0)),
    "horizontal_flip": A.horizontal_flip,
    "color_jitter": partial(A.color_jitter, brightness=(1.5, 2.0), contrast=0.0, saturation=0.0, hue=0.0),
    "grayscale": A.grayscale,
    "gaussian_blur": partial(A.gaussian_blur, kernel_size=3, sigma=(1.0, 2.0)),
    "solarize": partial(A.solarize, threshold=0.0),
    "gaussian_noise": partial(A.gaussian_noise, std=0.2),
}


# ------------------------------------------------------------------------------------------------
# shapes, dtypes, ranges, probabilities, seeds
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("batch,channels", [(4, 1), (7, 3), (16, 3)])
def test_op_preserves_dtype_range_and_batch(name, batch, channels):
    x = images(batch, channels)
    out = OPS[name](x, generator=gen(1))
    expected_hw = (7, 11) if name == "random_resized_crop" else (9, 13)
    assert out.shape == (batch, channels, *expected_hw)
    assert out.dtype == x.dtype
    assert torch.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_keeps_float64(name):
    x = images(4, 3).double()
    assert OPS[name](x, generator=gen()).dtype == torch.float64


@pytest.mark.parametrize("name", sorted(P_OPS))
def test_p0_is_identity_and_p1_changes_every_image(name):
    x = images(8, 3) * 0.9 + 0.05  # away from the clamp bounds
    assert torch.equal(P_OPS[name](x, p=0.0, generator=gen()), x)
    out = P_OPS[name](x, p=1.0, generator=gen())
    changed = (out - x).abs().flatten(1).amax(dim=1)
    assert (changed > 1e-3).all(), changed


@pytest.mark.parametrize("name", sorted(OPS))
def test_same_seed_same_output_different_seed_different_output(name):
    x = images(8, 3)
    a = OPS[name](x, generator=gen(7))
    b = OPS[name](x, generator=gen(7))
    c = OPS[name](x, generator=gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("name", sorted(OPS))
def test_identical_images_get_different_augmentations(name):
    x = images(1, 3).expand(12, -1, -1, -1).contiguous()
    out = OPS[name](x, generator=gen(3))
    distinct = {tuple(row.tolist()) for row in out.flatten(1).round(decimals=5)}
    assert len(distinct) > 1


def test_global_rng_is_used_without_generator():
    x = images(8, 3)
    torch.manual_seed(5)
    a = A.color_jitter(x)
    torch.manual_seed(5)
    assert torch.equal(a, A.color_jitter(x))


# ------------------------------------------------------------------------------------------------
# geometry
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [9, 16, 5])
def test_full_crop_equals_bilinear_resize(size):
    x = images(4, 3, 9, 9)
    out = A.random_resized_crop(x, size, scale=(1.0, 1.0), ratio=(1.0, 1.0), generator=gen())
    expected = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_crop_falls_back_to_centred_box_when_no_try_fits():
    x = images(4, 3, 8, 12)
    out = A.random_resized_crop(x, None, scale=(1.0, 1.0), ratio=(1.0, 1.0), generator=gen())
    assert out.shape == (4, 3, 8, 12)
    square = A.random_resized_crop(x, 8, scale=(1.0, 1.0), ratio=(1.0, 1.0), generator=gen())
    torch.testing.assert_close(square, x[..., 2:10], atol=1e-5, rtol=0)


@pytest.mark.parametrize("ratio", [1.0, 2.0, 0.5])
def test_crop_box_has_the_sampled_area_and_aspect_and_lies_inside(ratio):
    # Channels hold the column and row coordinates, so the output reveals the box each image got.
    height = width = 16
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    coords = torch.stack([cols, rows, cols]).float() / width
    x = coords.expand(32, -1, -1, -1).contiguous()
    out = A.random_resized_crop(x, 16, scale=(0.25, 0.25), ratio=(ratio, ratio), generator=gen(2)) * width
    box_w, box_h = math.sqrt(64 * ratio), math.sqrt(64 / ratio)
    step_x = out[:, 0, 8, 2:15].diff(dim=-1)  # interior columns: bilinear is exact on a ramp
    step_y = out[:, 1, 2:15, 8].diff(dim=-1)
    torch.testing.assert_close(step_x, torch.full_like(step_x, box_w / 16), atol=1e-4, rtol=0)
    torch.testing.assert_close(step_y, torch.full_like(step_y, box_h / 16), atol=1e-4, rtol=0)
    assert out.min() >= 0 and out.max() <= 15
    left = out[:, 0, 8, 1] - 1.5 * box_w / 16 + 0.5  # pixel edge where each box starts
    assert (left > -1e-4).all() and (left + box_w < width + 1e-4).all()
    assert left.std() > 0.5  # boxes are placed at different positions


def test_crop_area_is_spread_over_the_scale_range():
    height = width = 32
    cols = torch.arange(width).float().expand(height, width) / width
    x = cols.expand(256, 1, -1, -1).contiguous()
    out = A.random_resized_crop(x, 32, scale=(0.1, 1.0), ratio=(1.0, 1.0), generator=gen()) * width
    box_w = out[:, 0, 16, 2:30].diff(dim=-1).mean(dim=-1) * 32
    area = (box_w / width) ** 2
    assert area.min() > 0.1 - 1e-3 and area.max() < 1.0 + 1e-3
    assert 0.45 < area.mean() < 0.65  # uniform on [0.1, 1] has mean 0.55


def test_affine_grid_matches_torch():
    theta = torch.randn(5, 2, 3, generator=gen())
    for height, width in [(7, 11), (1, 4), (16, 16)]:
        expected = F.affine_grid(theta, [5, 1, height, width], align_corners=False)
        torch.testing.assert_close(_affine_grid(theta, height, width), expected, atol=1e-6, rtol=0)


def test_horizontal_flip_twice_is_identity():
    x = images(6, 3)
    once = A.horizontal_flip(x, p=1.0, generator=gen())
    assert torch.equal(once, x.flip(-1))
    assert torch.equal(A.horizontal_flip(once, p=1.0, generator=gen()), x)
    # With p = 0.5 and the same seed the same images flip twice.
    half = A.horizontal_flip(A.horizontal_flip(x, generator=gen(4)), generator=gen(4))
    assert torch.equal(half, x)


def test_affine_identity_and_quarter_turn():
    x = images(4, 1, 7, 7)
    same = A.random_affine(x, degrees=0, translate=0.0, scale=(1.0, 1.0), generator=gen())
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    quarter = A.random_affine(x, degrees=(90, 90), translate=0.0, scale=(1.0, 1.0), generator=gen())
    turned = [torch.rot90(x, k, dims=(-2, -1)) for k in (1, -1)]
    assert any(torch.allclose(quarter, t, atol=1e-5) for t in turned)


def test_affine_on_non_square_images_does_not_shear():
    # A 180° turn maps the image onto itself reversed, whatever its aspect ratio.
    x = images(3, 1, 6, 10)
    out = A.random_affine(x, degrees=(180, 180), translate=0.0, scale=(1.0, 1.0), generator=gen())
    torch.testing.assert_close(out, x.flip(-1).flip(-2), atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------------
# colour
# ------------------------------------------------------------------------------------------------


def test_grayscale_gives_equal_channels_with_luma():
    x = images(5, 3)
    out = A.grayscale(x, p=1.0, generator=gen())
    luma = 0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    for c in range(3):
        torch.testing.assert_close(out[:, c], luma)
    one_channel = images(5, 1)
    assert torch.equal(A.grayscale(one_channel, p=1.0, generator=gen()), one_channel)


def test_solarize_exact():
    x = torch.tensor([0.0, 0.2, 0.49, 0.5, 0.7, 1.0]).view(1, 1, 2, 3).repeat(2, 3, 1, 1)
    out = A.solarize(x, threshold=0.5, p=1.0, generator=gen())
    expected = torch.tensor([0.0, 0.2, 0.49, 0.5, 0.3, 0.0]).view(1, 1, 2, 3).expand(2, 3, 2, 3)
    torch.testing.assert_close(out, expected, atol=1e-7, rtol=0)


def test_brightness_factor_on_constant_image():
    x = torch.full((4, 3, 5, 5), 0.4)
    out = A.color_jitter(x, brightness=(1.5, 1.5), contrast=0, saturation=0, hue=0, p=1.0, generator=gen())
    torch.testing.assert_close(out, torch.full_like(x, 0.6))
    # Factors are drawn per image within the range: each constant image is scaled by its own factor.
    out = A.color_jitter(x, brightness=0.5, contrast=0, saturation=0, hue=0, p=1.0, generator=gen())
    factor = out[:, 0, 0, 0] / 0.4
    assert torch.allclose(out, (0.4 * factor).view(-1, 1, 1, 1).expand_as(out))
    assert (factor >= 0.5 - 1e-6).all() and (factor <= 1.5 + 1e-6).all() and factor.std() > 0


def test_hue_matches_colorsys():
    x = images(3, 3, 4, 5)
    x[0, :, 0, 0] = torch.tensor([0.3, 0.3, 0.3])  # gray: hue undefined, must stay gray
    x[0, :, 0, 1] = torch.tensor([1.0, 1.0, 0.0])  # ties for the maximum
    shifts = torch.tensor([0.1, -0.35, 0.5])
    out = A.adjust_hue(x, shifts)
    for i in range(3):
        for row in range(4):
            for col in range(5):
                h, s, v = colorsys.rgb_to_hsv(*x[i, :, row, col].tolist())
                expected = colorsys.hsv_to_rgb((h + shifts[i].item()) % 1.0, s, v)
                torch.testing.assert_close(out[i, :, row, col], torch.tensor(expected), atol=1e-5, rtol=0)


def test_hue_with_zero_shift_and_full_turn_is_identity():
    x = images(4, 3)
    torch.testing.assert_close(A.adjust_hue(x, 0.0), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(A.adjust_hue(A.adjust_hue(x, 0.3), -0.3), x, atol=1e-5, rtol=0)


def test_saturation_contrast_brightness_match_torchvision():
    tvf = pytest.importorskip("torchvision.transforms.v2.functional")
    x = images(3, 3)
    for ours, theirs, factor in [
        (A.adjust_saturation, tvf.adjust_saturation, 1.7),
        (A.adjust_saturation, tvf.adjust_saturation, 0.3),
        (A.adjust_contrast, tvf.adjust_contrast, 1.6),
        (A.adjust_contrast, tvf.adjust_contrast, 0.4),
        (A.adjust_brightness, tvf.adjust_brightness, 1.3),
    ]:
        torch.testing.assert_close(ours(x, factor), theirs(x, factor), atol=1e-5, rtol=0)
    per_image = torch.tensor([0.5, 1.0, 1.5])
    expected = torch.stack([tvf.adjust_saturation(x[i], f.item()) for i, f in enumerate(per_image)])
    torch.testing.assert_close(A.adjust_saturation(x, per_image), expected, atol=1e-5, rtol=0)


def test_saturation_matches_an_independent_luma_blend():
    x = images(2, 3, 3, 3)
    out = A.adjust_saturation(x, 0.25)
    for i, row, col in [(0, 0, 0), (1, 2, 1), (0, 1, 2)]:
        r, g, b = x[i, :, row, col].tolist()
        gray = 0.2989 * r + 0.587 * g + 0.114 * b
        expected = [min(1.0, max(0.0, 0.25 * c + 0.75 * gray)) for c in (r, g, b)]
        torch.testing.assert_close(out[i, :, row, col], torch.tensor(expected), atol=1e-6, rtol=0)


def test_jitter_on_grayscale_ignores_saturation_and_hue():
    x = images(6, 1)
    out = A.color_jitter(x, brightness=0, contrast=0, saturation=0.9, hue=0.5, p=1.0, generator=gen())
    assert torch.equal(out, x)


def test_jitter_applies_adjustments_in_a_random_order_per_image():
    # Brightness ×2 then contrast ×0 gives the (clamped) mean; the other order gives 2× the mean.
    x = torch.full((64, 3, 2, 2), 0.2)
    x[:, :, 0, 0] = 0.8  # mean luma 0.35
    out = A.color_jitter(x, brightness=(2, 2), contrast=(0, 0), saturation=0, hue=0, p=1.0, generator=gen())
    values = out[:, 0, 0, 0]
    brightness_first = torch.isclose(values, torch.tensor(0.55), atol=1e-3)  # mean of [1, .4, .4, .4]
    contrast_first = torch.isclose(values, torch.tensor(0.7), atol=1e-3)
    assert (brightness_first | contrast_first).all()
    assert brightness_first.sum() > 10 and contrast_first.sum() > 10


# ------------------------------------------------------------------------------------------------
# blur, noise, normalize
# ------------------------------------------------------------------------------------------------


def test_blur_keeps_constant_images_and_reduces_noise_variance():
    const = torch.full((4, 3, 9, 11), 0.37)
    out = A.gaussian_blur(const, 5, sigma=(0.5, 2.0), p=1.0, generator=gen())
    torch.testing.assert_close(out, const)
    noise = images(8, 3, 16, 16)
    blurred = A.gaussian_blur(noise, 5, sigma=(1.0, 2.0), p=1.0, generator=gen())
    assert (blurred.var(dim=(1, 2, 3)) < 0.5 * noise.var(dim=(1, 2, 3))).all()
    torch.testing.assert_close(blurred.mean(), noise.mean(), atol=5e-3, rtol=0)


def test_blur_matches_torchvision_for_a_fixed_sigma():
    tvf = pytest.importorskip("torchvision.transforms.v2.functional")
    x = images(3, 3, 10, 12)
    out = A.gaussian_blur(x, 5, sigma=(1.3, 1.3), p=1.0, generator=gen())
    torch.testing.assert_close(out, tvf.gaussian_blur(x, [5, 5], [1.3, 1.3]), atol=1e-5, rtol=0)


def test_blur_methods_agree():
    x = images(5, 3, 11, 9)
    kernel = torch.rand(5, 7, generator=gen())
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    conv = _separable_blur(x, kernel, method="conv")
    shifted = _separable_blur(x, kernel, method="shifted")
    torch.testing.assert_close(conv, shifted, atol=1e-6, rtol=0)


def test_noise_has_the_requested_std():
    x = torch.full((4, 1, 32, 32), 0.5)
    out = A.gaussian_noise(x, std=0.05, generator=gen())
    assert abs((out - x).std().item() - 0.05) < 0.005


def test_normalize_per_channel():
    x = images(2, 3)
    out = A.normalize(x, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.5))
    torch.testing.assert_close(out[:, 1], (x[:, 1] - 0.4) / 0.25)
    with pytest.raises(ValueError, match="3 channels"):
        A.normalize(x, mean=(0.5,), std=(0.2, 0.2, 0.2))
    views = A.simclr(16, normalize_stats=((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))
    assert "normalize(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))" in repr(views)
    assert views(images(4, 3, 16, 16), gen())[0].min() < -1.0  # normalised output leaves [0, 1]


# ------------------------------------------------------------------------------------------------
# conversion and errors
# ------------------------------------------------------------------------------------------------


def test_to_float_converts_uint8_and_passes_float_through():
    u8 = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 1, 1, 3)
    torch.testing.assert_close(A.to_float(u8), torch.tensor([0.0, 0.2, 1.0]).view(1, 1, 1, 3))
    x = images(2, 3)
    assert A.to_float(x) is x


def test_errors_name_the_problem_and_the_fix():
    x = images(2, 3)
    with pytest.raises(ValueError, match="unsqueeze"):
        A.horizontal_flip(x[0])
    with pytest.raises(TypeError, match="to_float"):
        A.color_jitter((x * 255).to(torch.uint8))
    with pytest.raises(TypeError, match="uint8"):
        A.to_float(torch.zeros(1, 3, 4, 4, dtype=torch.int64))
    bad = x.clone()
    bad[1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        A.simclr(16)(bad)
    with pytest.raises(ValueError, match="uint8 or divide by 255"):
        A.to_float(x * 255)
    with pytest.raises(ValueError, match=r"1 \(grayscale\) or 3"):
        A.color_jitter(images(2, 4))
    with pytest.raises(ValueError, match="probability"):
        A.grayscale(x, p=1.5)
    with pytest.raises(ValueError, match="odd"):
        A.gaussian_blur(x, 4)
    with pytest.raises(ValueError, match="too large"):
        A.gaussian_blur(x, 19)
    with pytest.raises(ValueError, match="hue"):
        A.color_jitter(x, hue=0.7)
    with pytest.raises(ValueError, match="low <= high"):
        A.random_resized_crop(x, 8, scale=(1.0, 0.5))
    with pytest.raises(TypeError, match="partial"):
        A.ViewPipeline([A.horizontal_flip, "flip"])


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_generator_on_the_wrong_device_is_rejected():
    with pytest.raises(ValueError, match="torch.Generator"):
        A.horizontal_flip(images(2, 3).cuda(), generator=gen())


# ------------------------------------------------------------------------------------------------
# pipelines and presets
# ------------------------------------------------------------------------------------------------


def test_view_pipeline_accepts_uint8_and_float():
    pipe = A.ViewPipeline([partial(A.random_resized_crop, size=8), partial(A.horizontal_flip, p=0.5)])
    u8 = torch.randint(0, 256, (5, 3, 12, 12), dtype=torch.uint8, generator=gen())
    a = pipe(u8, generator=gen(1))
    b = pipe(A.to_float(u8), generator=gen(1))
    assert a.dtype == torch.float32 and a.shape == (5, 3, 8, 8)
    assert torch.equal(a, b)
    assert len(pipe) == 2 and "random_resized_crop(size=8)" in repr(pipe)


@pytest.mark.parametrize("shape", [(3, 32, 32), (3, 17, 24)])
def test_simclr_gives_two_independent_views(shape):
    views = A.simclr(shape[1:])
    assert views.num_views == 2
    x = torch.randint(0, 256, (6, *shape), dtype=torch.uint8, generator=gen())
    first, second = views(x, generator=gen(1))
    assert first.shape == second.shape == (6, *shape)
    assert first.dtype == torch.float32 and not torch.equal(first, second)
    again = views(x, generator=gen(1))
    assert torch.equal(again[0], first) and torch.equal(again[1], second)


def test_simclr_recipe_parameters():
    pipe = A.simclr(32).pipelines[0]
    described = repr(pipe)
    assert "scale=(0.08, 1.0)" in described and "kernel_size=3" in described
    assert "brightness=0.8" in described and "hue=0.2" in described and "p=0.8" in described
    assert "gaussian_blur" not in repr(A.simclr(12).pipelines[0])
    assert A.blur_kernel_size(224) == 23 and A.blur_kernel_size(32) == 3 and A.blur_kernel_size(96) == 9


def test_strength_zero_gives_identity_views_and_strength_changes_views():
    x = images(8, 3, 16, 16)
    for views in (A.simclr(16, strength=0.0)(x, gen()), A.digits_views(strength=0.0)(x, gen())):
        for view in views:
            torch.testing.assert_close(view, x, atol=1e-5, rtol=0)
    distance = [(A.simclr(16, strength=s)(x, gen(2))[0] - x).abs().mean().item() for s in (0.25, 1.0)]
    assert distance[0] < distance[1]


def test_preset_registry():
    digits = A.preset("digits", (1, 8, 8))
    x = torch.randint(0, 17, (10, 1, 8, 8), dtype=torch.uint8) * 15
    views = digits(x, generator=gen())
    assert digits.num_views == 2 and [v.shape for v in views] == [(10, 1, 8, 8)] * 2
    assert "horizontal_flip" not in repr(digits) and "random_affine" in repr(digits)
    rgb = A.preset("simclr", (3, 32, 32))
    assert "horizontal_flip" in repr(rgb)
    assert A.preset("byol", (8, 3, 32, 32)).num_views == 2  # a batch shape works too
    assert A.preset("digits", (1, 28, 28), strength=0.5).num_views == 2
    with pytest.raises(ValueError, match="simclr, byol, multicrop, digits"):
        A.preset("mocov9", (3, 32, 32))
    for name in ("simclr", "byol", "multicrop"):  # presets build what they name, or say which fits
        for shape in ((1, 8, 8), (1, 28, 28), (3, 8, 8)):
            with pytest.raises(ValueError, match="use preset 'digits' for 1-channel images"):
                A.preset(name, shape)


def test_digits_preset_gives_the_views_small_images_got_from_simclr_before_presets_were_explicit():
    # preset("simclr" or "byol", (1, 8, 8)) used to return these views silently; recipes that now name
    # "digits" must get the same ops, parameters and random draws, so the same views bit for bit.
    old = A.MultiView(
        [
            A.ViewPipeline(
                [
                    partial(A.random_affine, degrees=15.0, translate=0.1, scale=(0.9, 1.1)),
                    partial(A.random_resized_crop, size=8, scale=(0.6, 1.0), ratio=(3 / 4, 4 / 3)),
                    partial(A.color_jitter, brightness=0.4, contrast=0.4, saturation=0.0, hue=0.0, p=0.8),
                    partial(A.gaussian_noise, std=0.05),
                ]
            )
        ]
        * 2
    )
    new = A.preset("digits", (1, 8, 8))
    assert repr(new) == repr(old)
    x = torch.randint(0, 256, (32, 1, 8, 8), dtype=torch.uint8, generator=gen(1))
    old_generator, new_generator = gen(5), gen(5)
    for old_view, new_view in zip(old(x, old_generator), new(x, new_generator), strict=True):
        assert torch.equal(old_view, new_view)
    assert torch.equal(old_generator.get_state(), new_generator.get_state())


def test_byol_views_are_asymmetric():
    first, second = A.byol(32).pipelines
    assert "solarize" not in repr(first) and "solarize(threshold=0.5, p=0.2)" in repr(second)
    assert "p=1.0" in repr(first).split("gaussian_blur")[1]


def test_multicrop_sizes():
    views = A.multicrop(32, num_local=3)
    assert views.num_views == 5
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=gen())
    shapes = [v.shape for v in views(x, generator=gen())]
    assert shapes == [(4, 3, 32, 32)] * 2 + [(4, 3, 14, 14)] * 3


def test_digits_views_keep_digits_recognisable():
    # 1-nearest-neighbour (pixels) against other, unaugmented digits still finds the right class for
    # most views, less so as strength grows, and the views are far from copies of the input.
    # (SimCLR with a small CNN on these views: 99.6% linear probe, 78% with one label per class.)
    datasets = pytest.importorskip("sklearn.datasets")
    data = datasets.load_digits()
    x = torch.tensor(data.images[:700], dtype=torch.float32).unsqueeze(1) / 16
    labels = torch.tensor(data.target[:700])
    reference, query = x[:500].flatten(1), x[500:]

    def nearest_neighbour_accuracy(views: torch.Tensor) -> float:
        predicted = labels[:500][torch.cdist(views.flatten(1), reference).argmin(dim=1)]
        return (predicted == labels[500:]).float().mean().item()

    accuracy = {s: nearest_neighbour_accuracy(A.digits_views(s)(query, gen())[0]) for s in (0.5, 1.0, 2.0)}
    assert nearest_neighbour_accuracy(query) > 0.9
    assert accuracy[1.0] > 0.5 and accuracy[0.5] > accuracy[1.0] > accuracy[2.0]
    assert (A.digits_views()(query, gen())[0] - query).abs().mean() > 0.1


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_presets_on_cuda_are_seeded_and_match_cpu_ranges():
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8).cuda()
    for views in (A.simclr(32), A.byol(32), A.multicrop(32)):
        a = views(x, generator=gen(3, "cuda"))
        b = views(x, generator=gen(3, "cuda"))
        for va, vb in zip(a, b):
            assert va.is_cuda and torch.equal(va, vb) and va.min() >= 0 and va.max() <= 1
    # The CUDA path (adjust all, then select) and the CPU path (gather the subset) agree.
    y, shift, mask = images(16, 3), torch.rand(16) - 0.5, torch.rand(16) < 0.5
    cpu = apply_where(y, mask, A.adjust_hue, shift)
    cuda = apply_where(y.cuda(), mask.cuda(), A.adjust_hue, shift.cuda())
    torch.testing.assert_close(cuda.cpu(), cpu, atol=1e-5, rtol=0)


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", sorted(OPS))
def test_ops_on_cuda(name, dtype):
    x = images(16, 3).to("cuda", dtype)
    out = OPS[name](x, generator=gen(1, "cuda"))
    assert out.is_cuda and out.dtype == dtype
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, OPS[name](x, generator=gen(1, "cuda")))
