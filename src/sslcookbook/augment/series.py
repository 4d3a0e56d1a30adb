"""Batched, per-sample random views of time series: float tensors B×C×L, one generator for the batch.

What a time-series view may change depends on what the label is. For the generated ``series`` (class =
which frequencies sit in which channel, and whether channel 0 changes regime) the views below that keep
the label are noise (:func:`jitter`), a slow drift (:func:`add_drift`), per-channel gain
(:func:`scaling`), small shifts (:func:`time_shift`), crops resampled to the full length
(:func:`crop_resize`, it stretches the time axis a little), hiding steps (:func:`mask_steps`) and a
smooth time warp (:func:`time_warp`).
:func:`permute_segments` cuts a series into pieces and shuffles them: it keeps a series' local frequencies
but destroys the order of events, so it is a valid view only when order carries no label (here it does:
a regime change from slow to fast becomes fast-slow-fast). Image views (flips, colour) have no meaning here.

Every op draws its random numbers for the whole batch at once on ``x``'s device with ``generator`` (on
that device) and never loops over samples in Python; the same seed gives the same views (Um et al. 2017,
"Data augmentation of wearable sensor data"; Iwana & Uchida 2021, "An empirical survey of data
augmentation for time series classification").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

Tensor = torch.Tensor


def _check(x: Tensor) -> Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"time-series views take a float batch B×C×L (series, channels, steps), got {shape}")
    return x


def _rand(shape, generator, x: Tensor) -> Tensor:
    return torch.rand(shape, generator=generator, device=x.device)


def _randn(shape, generator, x: Tensor) -> Tensor:
    return torch.randn(shape, generator=generator, device=x.device)


def _gather_time(x: Tensor, positions: Tensor) -> Tensor:
    """x sampled at fractional ``positions`` (B×L', clamped to [0, L−1]) by linear interpolation."""
    length = x.shape[-1]
    pos = positions.clamp(0, length - 1)
    left = pos.floor().long().clamp(max=length - 1)
    right = (left + 1).clamp(max=length - 1)
    w = (pos - left).unsqueeze(1).to(x.dtype)
    index = lambda i: i.unsqueeze(1).expand(-1, x.shape[1], -1)  # noqa: E731
    return torch.gather(x, 2, index(left)) * (1 - w) + torch.gather(x, 2, index(right)) * w


def jitter(x: Tensor, sigma: float = 0.1, generator: torch.Generator | None = None) -> Tensor:
    """Add white noise N(0, σ²) to every value."""
    _check(x)
    return x + sigma * _randn(x.shape, generator, x).to(x.dtype)


def scaling(x: Tensor, sigma: float = 0.2, generator: torch.Generator | None = None) -> Tensor:
    """Multiply each channel of each series by a gain drawn from N(1, σ²)."""
    _check(x)
    return x * (1 + sigma * _randn((x.shape[0], x.shape[1], 1), generator, x)).to(x.dtype)


def time_shift(x: Tensor, max_shift: float = 0.1, generator: torch.Generator | None = None) -> Tensor:
    """Shift each series by up to ``max_shift`` of its length either way, repeating the edge value into
    the gap (no wrap-around: the end of a series does not become its start)."""
    _check(x)
    length = x.shape[-1]
    shift = ((2 * _rand(x.shape[0], generator, x) - 1) * max_shift * length).round()
    positions = torch.arange(length, device=x.device)[None, :] - shift[:, None]
    return _gather_time(x, positions)


def crop_resize(
    x: Tensor, scale: tuple[float, float] = (0.8, 1.0), generator: torch.Generator | None = None
) -> Tensor:
    """A random window of ``scale`` (fraction of the length) per series, resampled to the full length."""
    _check(x)
    low, high = scale
    if not 0 < low <= high <= 1:
        raise ValueError(f"crop scale must satisfy 0 < low <= high <= 1, got {scale}")
    b, length = x.shape[0], x.shape[-1]
    size = (low + (high - low) * _rand(b, generator, x)) * (length - 1)
    start = _rand(b, generator, x) * (length - 1 - size)
    positions = start[:, None] + size[:, None] * torch.linspace(0, 1, length, device=x.device)[None, :]
    return _gather_time(x, positions)


def mask_steps(x: Tensor, ratio: float = 0.1, generator: torch.Generator | None = None) -> Tensor:
    """Set a random ``ratio`` of the time steps of each series (all channels at once) to 0."""
    _check(x)
    if not 0 <= ratio < 1:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    keep = _rand((x.shape[0], 1, x.shape[-1]), generator, x) >= ratio
    return x * keep.to(x.dtype)


def permute_segments(x: Tensor, segments: int = 4, generator: torch.Generator | None = None) -> Tensor:
    """Cut each series at ``segments − 1`` random points and put the pieces back in a random order.

    Keeps local shape, destroys order: a label-preserving view only when the order of events carries no
    label (not on ``series``, whose regime changes have an order).
    """
    _check(x)
    b, length = x.shape[0], x.shape[-1]
    if not 1 <= segments <= length:
        raise ValueError(f"segments must be in 1..{length} (the series length), got {segments}")
    # random distinct cut points per series: the first segments−1 of a random permutation of 1..L−1
    cuts = _rand((b, length - 1), generator, x).argsort(dim=1)[:, : segments - 1] + 1
    edges = torch.cat(
        [
            torch.zeros(b, 1, device=x.device, dtype=torch.long),
            cuts.sort(dim=1).values,
            torch.full((b, 1), length, device=x.device, dtype=torch.long),
        ],
        dim=1,
    )
    starts, sizes = edges[:, :-1], edges[:, 1:] - edges[:, :-1]
    order = _rand((b, segments), generator, x).argsort(dim=1)
    new_sizes = torch.gather(sizes, 1, order)
    new_ends = new_sizes.cumsum(dim=1)
    t = torch.arange(length, device=x.device).expand(b, length).contiguous()
    piece = torch.searchsorted(new_ends, t, right=True)  # which new piece holds step t
    offset = t - (torch.gather(new_ends, 1, piece) - torch.gather(new_sizes, 1, piece))
    source = torch.gather(torch.gather(starts, 1, order), 1, piece) + offset
    return torch.gather(x, 2, source.unsqueeze(1).expand(-1, x.shape[1], -1))


def add_drift(x: Tensor, sigma: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """Add a random walk to each channel whose end point has std ``sigma``: a slow drift of its own per
    view, so that two views of a series do not share their drift (a shortcut to tell series apart)."""
    _check(x)
    steps = _randn(x.shape, generator, x).to(x.dtype)
    return x + sigma * steps.cumsum(dim=-1) / x.shape[-1] ** 0.5


def time_warp(
    x: Tensor, strength: float = 0.2, knots: int = 4, generator: torch.Generator | None = None
) -> Tensor:
    """Resample each series along a smooth random monotone time axis.

    The local speed is 1 + ``strength``·N(0, 1) at ``knots`` + 2 evenly spaced points (clamped to ≥ 0.1),
    interpolated linearly; its running sum, rescaled to [0, L−1], gives where each output step reads.
    """
    _check(x)
    b, length = x.shape[0], x.shape[-1]
    speed = (1 + strength * _randn((b, 1, knots + 2), generator, x)).clamp(min=0.1)
    speed = torch.nn.functional.interpolate(speed, size=length, mode="linear", align_corners=True)[:, 0]
    warped = speed.cumsum(dim=1) - speed[:, :1]
    positions = warped / warped[:, -1:].clamp(min=1e-6) * (length - 1)
    return _gather_time(x, positions)


@dataclass(frozen=True)
class SeriesViews:
    """``views(x, generator)`` → ``count`` views of a float batch B×C×L: each op in order, with its
    strength here (0 turns an op off). The default is the label-preserving set for ``series``."""

    count: int = 2
    jitter: float = 0.1
    scaling: float = 0.2
    shift: float = 0.05
    crop: float = 0.9  # the smallest crop, as a fraction of the length (1: no crop)
    warp: float = 0.2
    mask: float = 0.0
    drift: float = 0.0
    segments: int = 1  # > 1: permute this many segments (not label-preserving on ``series``)

    def one(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.crop < 1:
            x = crop_resize(x, (self.crop, 1.0), generator)
        if self.warp:
            x = time_warp(x, self.warp, generator=generator)
        if self.shift:
            x = time_shift(x, self.shift, generator)
        if self.segments > 1:
            x = permute_segments(x, self.segments, generator)
        if self.scaling:
            x = scaling(x, self.scaling, generator)
        if self.jitter:
            x = jitter(x, self.jitter, generator)
        if self.drift:
            x = add_drift(x, self.drift, generator)
        if self.mask:
            x = mask_steps(x, self.mask, generator)
        return x

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        x = _check(x).float() if x.dtype in (torch.float16, torch.bfloat16) else _check(x)
        return [self.one(x, generator) for _ in range(self.count)]


#: Named view presets for the sequence methods: two label-preserving views, each with a drift of its own
#: (contrastive, TS2Vec: two views must not share a drift that tells series apart), one
#: lightly jittered view (CPC, masked patches: their pretext task is the view), none.
SERIES_PRESETS = {
    "series": SeriesViews(drift=1.0),
    "series_light": SeriesViews(count=1, jitter=0.05, scaling=0.1, shift=0.0, crop=1.0, warp=0.0),
    "series_none": SeriesViews(count=1, jitter=0.0, scaling=0.0, shift=0.0, crop=1.0, warp=0.0),
    "series_permuted": SeriesViews(segments=4),
}


def series_preset(name: str, **changes) -> SeriesViews:
    """The preset ``name`` of :data:`SERIES_PRESETS`, with fields replaced by ``changes``."""
    if name not in SERIES_PRESETS:
        raise ValueError(
            f"unknown time-series view preset {name!r}: choose one of {', '.join(SERIES_PRESETS)}"
        )
    return dataclasses.replace(SERIES_PRESETS[name], **changes)


__all__ = [
    "SERIES_PRESETS",
    "add_drift",
    "SeriesViews",
    "crop_resize",
    "jitter",
    "mask_steps",
    "permute_segments",
    "scaling",
    "series_preset",
    "time_shift",
    "time_warp",
]
