"""Time series as in-memory float tensors: a generated set that needs no download, and ``ucr:<path>``.

A :class:`SeriesDataset` holds ``series`` float32 N×C×L, ``labels`` int64 N, the class names, and two
optional N×L bool masks: ``mask`` (True where a step was observed; False on padding and missing values)
and ``anomalies`` (True on the steps of an injected anomaly).

- :func:`make_series` (``series``, ``series_anomalies`` in ``data.load``): three-channel series whose
  class is a *pattern of frequencies* across the channels and whether channel 0 *changes regime* (its
  frequency doubles) part-way. What a view may change: phase, offset, amplitude, noise, drift, a smooth
  time warp and small shifts (the generator draws all of them per series). What a view must keep: which
  frequencies sit in which channel, and the order of the regimes (so segment permutation is *not* a
  label-preserving view here, see augment/series.py).
- :func:`load_ucr` (``ucr:<path>``): the UCR archive's ``*_TRAIN.tsv`` / ``*_TEST.tsv`` (label, then the
  values, tab-separated, NaN for missing / padding) and the UEA archive's ``*_TRAIN.ts`` / ``*_TEST.ts``
  (``@`` header lines, then ``dim1:dim2:...:label`` rows of comma-separated values, ``?`` for missing).
  Series of different lengths are **padded with a mask**: values past a series' end are 0 and ``mask`` is
  False there; so are missing values inside a series. Both splits are padded to the longest series of
  either, so one encoder sees one length.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .dataset import ImageDataset

SERIES_LENGTH = 128
SERIES_CHANNELS = 3
SERIES_TRAIN_SIZE, SERIES_TEST_SIZE = 1500, 600
SERIES_TRAIN_SEED, SERIES_TEST_SEED = 0, 1
SERIES_ANOMALY_FRACTION = 0.1  # of the series of ``series_anomalies`` that hold one anomaly
# Cycles per series of each channel, by frequency pattern; every frequency appears in two patterns, so no
# single channel's frequency names the class: the pattern across channels does.
SERIES_PATTERNS = {"a": (2.0, 5.0, 3.5), "b": (5.0, 3.5, 2.0), "c": (3.5, 2.0, 5.0)}
SERIES_CLASSES = [f"{p}-{regime}" for p in SERIES_PATTERNS for regime in ("steady", "switch")]


@dataclass(eq=False, repr=False)
class SeriesDataset:
    """A labelled time-series data set held in memory; see the module docstring."""

    series: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str = "series"
    mask: torch.Tensor | None = None
    anomalies: torch.Tensor | None = None

    def __post_init__(self) -> None:
        series, labels = self.series, self.labels
        if not isinstance(series, torch.Tensor) or series.dim() != 3 or not series.is_floating_point():
            shape = tuple(series.shape) if isinstance(series, torch.Tensor) else type(series).__name__
            raise ValueError(
                f"series must be a float tensor N×C×L (series, channels, steps), got {shape}; "
                "add a channel axis to univariate series with series.unsqueeze(1)"
            )
        if not isinstance(labels, torch.Tensor) or labels.shape != (series.shape[0],):
            raise ValueError(f"labels must be an int tensor of shape ({series.shape[0]},), one per series")
        if labels.dtype.is_floating_point:
            raise TypeError(f"labels must be int64 class indices, got {labels.dtype}; pass labels.long()")
        if series.shape[0] == 0:
            raise ValueError(f"data set {self.name!r} has no series")
        classes = list(self.classes)
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= len(classes):
            raise ValueError(
                f"labels must lie in 0..{len(classes) - 1} (one per class name), found {low}..{high}"
            )
        for what in ("mask", "anomalies"):
            value = getattr(self, what)
            if value is not None and (value.shape != series.shape[::2] or value.dtype != torch.bool):
                raise ValueError(
                    f"{what} must be a bool tensor N×L {tuple(series.shape[::2])}, got "
                    f"{value.dtype} of shape {tuple(value.shape)}"
                )
        if not bool(torch.isfinite(series).all()):
            raise ValueError("series hold NaN or infinite values: set them to 0 and mark them False in mask")
        self.series = series.float().contiguous()
        self.labels = labels.long().contiguous()
        self.classes = classes

    def __len__(self) -> int:
        return self.series.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.series[index], int(self.labels[index])

    def __repr__(self) -> str:
        n, c, length = self.series.shape
        extra = ", padded" if self.mask is not None else ""
        extra += ", anomalies" if self.anomalies is not None else ""
        return f"SeriesDataset(name={self.name!r}, n={n}, channels={c}, length={length}{extra})"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def series_shape(self) -> tuple[int, int]:
        """(C, L) of one series."""
        return tuple(self.series.shape[1:])

    @property
    def is_anomalous(self) -> torch.Tensor:
        """bool N: the series that hold an anomaly (all False when the data set has none)."""
        if self.anomalies is None:
            return torch.zeros(len(self), dtype=torch.bool)
        return self.anomalies.any(dim=1)

    def class_counts(self) -> torch.Tensor:
        return torch.bincount(self.labels, minlength=self.num_classes)

    def subset(self, n: int, seed: int = 0) -> SeriesDataset:
        """A class-stratified subset of ``min(n, len(self))`` series (as ``ImageDataset.subset``)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"subset size n must be a positive int, got {n!r}")
        if n >= len(self):
            return self
        return self._take(self._order(seed)[:n].sort().values, f"subset {n}, seed {seed}")

    def split(self, fraction: float, seed: int = 0) -> tuple[SeriesDataset, SeriesDataset]:
        """``(rest, held_out)``: a stratified ``fraction`` held out, as ``ImageDataset.split`` does."""
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
            raise ValueError(f"split fraction must be a number strictly between 0 and 1, got {fraction!r}")
        k = round(fraction * len(self))
        if not 1 <= k < len(self):
            raise ValueError(f"a fraction of {fraction} of {len(self)} series holds out {k}: choose another")
        order, tag = self._order(seed), f"{fraction:g} held out, seed {seed}"
        return self._take(order[k:].sort().values, f"rest of {tag}"), self._take(order[:k].sort().values, tag)

    def _order(self, seed: int) -> torch.Tensor:
        # The images' stratified order needs only .labels and .num_classes: one rule for both kinds of data.
        return ImageDataset._stratified_order(self, seed)

    def _take(self, keep: torch.Tensor, tag: str) -> SeriesDataset:
        def pick(t):
            return None if t is None else t[keep]

        return SeriesDataset(
            self.series[keep],
            self.labels[keep],
            list(self.classes),
            f"{self.name}[{tag}]",
            pick(self.mask),
            pick(self.anomalies),
        )


# ---------------------------------------------------------------------------------- generated series
def make_series(
    n: int,
    length: int = SERIES_LENGTH,
    seed: int = 0,
    anomaly_fraction: float = 0.0,
    noise: float = 0.3,
    drift: float = 2.0,
) -> SeriesDataset:
    """``n`` generated 3-channel series of ``length`` steps, 6 balanced classes, deterministic in ``seed``.

    Class = (frequency pattern a/b/c: which of 2, 3.5 and 5 cycles per series each channel carries) ×
    (steady, or channel 0 doubling its frequency at a change point drawn in 35–65% of the series). Per
    series and channel the nuisances are drawn: phase U(0, 2π), offset N(0, 0.5²), amplitude U(0.6, 1.4),
    a ±5% frequency jitter, a smooth monotone time warp (±4% of the length), white noise of std
    ``noise`` and a slow random-walk drift whose end point has std ``drift`` (sensors drift; it also
    hides the frequencies from features that merely measure energy, such as a random-init CNN's).
    With ``anomaly_fraction`` > 0 that fraction of the series gets one anomaly on a random
    channel, a spike (±4 for 2 steps) or a level shift (±2.5 for 8 steps), marked in ``anomalies``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if length < 32:
        raise ValueError(f"length must be at least 32 steps (the slowest pattern needs room), got {length}")
    if not 0.0 <= anomaly_fraction <= 1.0:
        raise ValueError(f"anomaly_fraction must be in [0, 1], got {anomaly_fraction}")
    g = torch.Generator().manual_seed(seed)
    c = SERIES_CHANNELS
    labels = torch.randperm(n, generator=g) % len(SERIES_CLASSES)
    pattern, switch = labels // 2, (labels % 2).bool()
    freqs = torch.tensor(list(SERIES_PATTERNS.values()))[pattern]  # n×C cycles per series
    freqs = freqs * (1 + 0.05 * (2 * torch.rand(n, c, generator=g) - 1))
    # time in [0, 1], warped smoothly: t + a·sin(2π f t + φ) with small a keeps it monotone
    t = torch.linspace(0, 1, length)
    warp_amp = 0.04 * (2 * torch.rand(n, 1, generator=g) - 1)
    warp_phase = 2 * math.pi * torch.rand(n, 1, generator=g)
    tw = t + warp_amp * torch.sin(2 * math.pi * t + warp_phase) / (2 * math.pi)
    tw = tw[:, None, :].expand(n, c, length)  # n×C×L
    change = 0.35 + 0.3 * torch.rand(n, 1, generator=g)
    # channel 0 of a "switch" series runs at twice its frequency after the change point: its phase
    # grows at rate f before and 2f after (continuous phase, so the switch itself is no spike).
    rate = freqs[:, :, None].expand(n, c, length).clone()
    after = (tw[:, 0] > change) & switch[:, None]
    cycles = rate * tw
    cycles[:, 0] = torch.where(after, freqs[:, :1] * (2 * tw[:, 0] - change), cycles[:, 0])
    phase = 2 * math.pi * torch.rand(n, c, 1, generator=g)
    amplitude = 0.6 + 0.8 * torch.rand(n, c, 1, generator=g)
    offset = 0.5 * torch.randn(n, c, 1, generator=g)
    x = amplitude * torch.sin(2 * math.pi * cycles + phase) + offset
    x = x + noise * torch.randn(n, c, length, generator=g)
    if drift:  # a random walk per channel whose end point has std ``drift``
        x = x + drift * torch.randn(n, c, length, generator=g).cumsum(dim=2) / math.sqrt(length)
    anomalies = None
    if anomaly_fraction > 0:
        anomalies = torch.zeros(n, length, dtype=torch.bool)
        hit = torch.rand(n, generator=g) < anomaly_fraction
        for i in hit.nonzero().flatten().tolist():
            spike = bool(torch.rand(1, generator=g) < 0.5)
            width, size = (2, 4.0) if spike else (8, 2.5)
            start = int(torch.randint(4, length - width - 4, (1,), generator=g))
            channel = int(torch.randint(0, c, (1,), generator=g))
            sign = 1.0 if bool(torch.rand(1, generator=g) < 0.5) else -1.0
            x[i, channel, start : start + width] += sign * size
            anomalies[i, start : start + width] = True
    return SeriesDataset(
        x.float(), labels.long(), list(SERIES_CLASSES), f"series(seed={seed})", None, anomalies
    )


def series_split(name: str, split: str) -> SeriesDataset:
    """The registered generated sets: ``series`` and ``series_anomalies`` (train seed 0, test seed 1)."""
    n = SERIES_TRAIN_SIZE if split == "train" else SERIES_TEST_SIZE
    seed = SERIES_TRAIN_SEED if split == "train" else SERIES_TEST_SEED
    fraction = SERIES_ANOMALY_FRACTION if name == "series_anomalies" else 0.0
    dataset = make_series(n, seed=seed, anomaly_fraction=fraction)
    dataset.name = f"{name}/{split}"
    return dataset


# ---------------------------------------------------------------------------------- UCR / UEA files
UCR_SUFFIXES = (".tsv", ".ts")


def load_ucr(path: str | os.PathLike, split: str = "train") -> SeriesDataset:
    """Load a UCR (``.tsv``) or UEA (``.ts``) data set; ``path`` is its folder (holding ``*_TRAIN.tsv`` and
    ``*_TEST.tsv``, or the ``.ts`` pair) or one of its two files. See the module docstring for the formats
    and the padding; class names come from the train file, sorted (numerically when they are numbers)."""
    files = _ucr_files(Path(path).expanduser())
    parsed = {s: _parse_ucr_file(f) for s, f in files.items()}
    names = sorted({label for label in parsed["train"][1]}, key=_label_key)
    unknown = sorted(set(parsed["test"][1]) - set(names), key=_label_key) if "test" in parsed else []
    if unknown:
        raise ValueError(
            f"{files['test']}: class labels {unknown} never appear in the train file {files['train']}"
        )
    if split not in parsed:
        raise FileNotFoundError(
            f"no {split} file beside {files['train']}: expected {_sibling(files['train'], split)}"
        )
    rows, labels = parsed[split]
    length = max(r.shape[1] for rows_, _ in parsed.values() for r in rows_)
    channels = {r.shape[0] for rows_, _ in parsed.values() for r in rows_}
    if len(channels) != 1:
        raise ValueError(f"{files[split]}: series have different numbers of dimensions {sorted(channels)}")
    series = torch.zeros(len(rows), channels.pop(), length)
    mask = torch.zeros(len(rows), length, dtype=torch.bool)
    for i, r in enumerate(rows):
        observed = ~torch.isnan(r)
        series[i, :, : r.shape[1]] = torch.nan_to_num(r, nan=0.0)
        mask[i, : r.shape[1]] = observed.all(dim=0)
    index = {name: i for i, name in enumerate(names)}
    label_ids = torch.tensor([index[label] for label in labels])
    return SeriesDataset(series, label_ids, names, f"ucr:{files[split]}", mask, None)


def _ucr_files(path: Path) -> dict[str, Path]:
    if path.is_dir():
        found = {}
        for split in ("train", "test"):
            hits = sorted(
                f
                for f in path.iterdir()
                if f.suffix.lower() in UCR_SUFFIXES and f.stem.upper().endswith(f"_{split.upper()}")
            )
            if len(hits) > 1:
                tsv = [h for h in hits if h.suffix.lower() == ".tsv"]
                hits = tsv or hits[:1]
            if hits:
                found[split] = hits[0]
        if "train" not in found:
            raise FileNotFoundError(
                f"{path} holds no <Name>_TRAIN.tsv or <Name>_TRAIN.ts file: pass the folder of one UCR/UEA "
                "data set (e.g. ucr:~/UCRArchive_2018/GunPoint) or the path of its train file"
            )
        return found
    if not path.is_file():
        raise FileNotFoundError(
            f"no UCR/UEA data set at {path}: pass a folder or a *_TRAIN.tsv / *_TRAIN.ts file"
        )
    if path.suffix.lower() not in UCR_SUFFIXES:
        raise ValueError(
            f"{path}: a UCR/UEA file ends in .tsv (UCR) or .ts (UEA), got {path.suffix or 'no suffix'!r}"
        )
    stem = path.stem.upper()
    if not (stem.endswith("_TRAIN") or stem.endswith("_TEST")):
        return {"train": path}  # a lone file: every series is the train split
    train = path if stem.endswith("_TRAIN") else _sibling(path, "train")
    files = {"train": train}
    test = _sibling(train, "test")
    if test.is_file():
        files["test"] = test
    if not train.is_file():
        raise FileNotFoundError(f"{path} has no train file beside it: expected {train}")
    return files


def _sibling(path: Path, split: str) -> Path:
    base = path.stem[: path.stem.upper().rfind("_")]
    return path.with_name(f"{base}_{split.upper()}{path.suffix}")


def _label_key(label: str):
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def _parse_ucr_file(path: Path) -> tuple[list[torch.Tensor], list[str]]:
    """Rows (C×L_i float tensors, NaN where missing; trailing NaNs dropped) and their label strings."""
    text = path.read_text(encoding="utf-8", errors="replace")
    parse = _parse_ts if path.suffix.lower() == ".ts" else _parse_tsv
    rows, labels = parse(text, path)
    if not rows:
        raise ValueError(f"{path} holds no series")
    return rows, labels


def _values(fields: list[str], path: Path, line: int) -> torch.Tensor:
    out = []
    for f in fields:
        f = f.strip()
        if f in ("?", "", "NaN", "nan"):
            out.append(math.nan)
            continue
        try:
            out.append(float(f))
        except ValueError:
            raise ValueError(f"{path}, line {line}: {f!r} is not a number") from None
    return torch.tensor(out, dtype=torch.float32)


def _trim(row: torch.Tensor, path: Path, line: int) -> torch.Tensor:
    """Drop the trailing steps missing in every channel (the archive pads shorter series with NaN)."""
    observed = (~torch.isnan(row)).any(dim=0).nonzero()
    if observed.numel() == 0:
        raise ValueError(f"{path}, line {line}: the series has no values")
    return row[:, : int(observed.max()) + 1]


def _parse_tsv(text: str, path: Path) -> tuple[list[torch.Tensor], list[str]]:
    rows, labels = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t") if "\t" in line else line.split(",")
        if len(fields) < 2:
            raise ValueError(
                f"{path}, line {number}: a UCR .tsv row is a label then the values, tab-separated; "
                f"found {len(fields)} field"
            )
        rows.append(_trim(_values(fields[1:], path, number)[None, :], path, number))
        labels.append(_clean_label(fields[0]))
    return rows, labels


def _parse_ts(text: str, path: Path) -> tuple[list[torch.Tensor], list[str]]:
    rows, labels, in_data, header = [], [], False, {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not in_data:
            if not stripped.startswith("@"):
                raise ValueError(
                    f"{path}, line {number}: a .ts file's header lines start with @; found {stripped[:40]!r}"
                )
            key, _, value = stripped[1:].partition(" ")
            key = key.lower()
            header[key] = value.strip().lower()
            if key == "timestamps" and header[key] == "true":
                raise ValueError(
                    f"{path}: .ts files with @timeStamps true are not supported; export them without"
                )
            in_data = key == "data"
            continue
        parts = stripped.split(":")
        labelled = header.get("classlabel", "true").startswith("true")
        if not labelled:
            raise ValueError(f"{path}: @classLabel false: this loader needs labelled series")
        if len(parts) < 2:
            raise ValueError(f"{path}, line {number}: a .ts row is dim1:dim2:...:label; found no ':'")
        dims = [_values(p.split(","), path, number) for p in parts[:-1]]
        length = max(d.shape[0] for d in dims)
        row = torch.full((len(dims), length), math.nan)
        for c, d in enumerate(dims):
            row[c, : d.shape[0]] = d
        rows.append(_trim(row, path, number))
        labels.append(_clean_label(parts[-1]))
    if not in_data:
        raise ValueError(f"{path}: no @data line: is it a UEA .ts file?")
    return rows, labels


def _clean_label(label: str) -> str:
    label = label.strip()
    try:  # "1", "1.0" and "1.000e+00" are one class
        value = float(label)
        return str(int(value)) if value.is_integer() else str(value)
    except ValueError:
        return label


__all__ = ["SERIES_CLASSES", "SeriesDataset", "load_ucr", "make_series", "series_split"]
