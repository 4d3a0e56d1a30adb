"""Where a fused Triton kernel starts to beat eager PyTorch, read off a committed benchmark csv.

For every (dtype, D) of ``bench_infonce.py``'s csv (columns backend, dtype, dim, rows_total_R, status,
median_ms) or ``bench_dino.py``'s (impl, dtype, K, student_rows, status, median_ms), it prints the Triton
and eager medians per row count, the largest R at which eager was faster, the smallest R from which Triton
was faster at every measured size, and the crossing of the two between them, interpolated linearly in
log R against log(eager ms / Triton ms). ``backend="auto"`` reads its thresholds from these figures
(``sslcookbook.kernels.infonce.AUTO_MIN_ROWS``); tests/test_kernels_auto.py checks they still agree.

    python benchmarks/kernel_crossover.py                                   # the H100 InfoNCE csv
    python benchmarks/kernel_crossover.py benchmarks/results/dino_nvidia-h100-80gb-hbm3.csv
"""

from __future__ import annotations

import argparse
import csv
import math
from dataclasses import dataclass
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_CSV = RESULTS_DIR / "infonce_nvidia-h100-80gb-hbm3.csv"
DTYPE_NAMES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


@dataclass(frozen=True)
class Crossover:
    """The measured comparison for one (dtype, width); rows in the csv's own measure."""

    dtype: str
    width: int
    speedups: dict[int, float]  # rows -> eager ms / Triton ms (> 1: Triton faster), where both ran
    eager_faster_up_to: int | None  # the largest rows at which eager was faster; None: never
    triton_faster_from: int | None  # the smallest rows from which Triton was faster at every size
    crossing: float | None  # interpolated rows where the two are equally fast

    def line(self) -> str:
        measured = ", ".join(f"{rows:,}: {s:.2f}×" for rows, s in sorted(self.speedups.items()))
        crossing = "—" if self.crossing is None else f"{self.crossing:,.0f}"
        return (
            f"{self.dtype}, width {self.width}: Triton speed-up vs eager {{{measured}}}; eager faster up to "
            f"{self.eager_faster_up_to}, Triton faster from {self.triton_faster_from}, crossing ≈ {crossing}"
        )


def read_medians(path: Path) -> dict[tuple[str, int], dict[int, dict[str, float]]]:
    """{(dtype, width): {rows: {backend: median ms}}} for the rows that ran ("ok")."""
    table: dict[tuple[str, int], dict[int, dict[str, float]]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["status"] != "ok":
                continue
            if "backend" in row:  # bench_infonce.py: R = 2N rows of width D
                backend, width, rows = row["backend"], int(row["dim"]), int(row["rows_total_R"])
            else:  # bench_dino.py: S·B student rows of K prototypes
                backend, width, rows = row["impl"], int(row["K"]), int(row["student_rows"])
            dtype = DTYPE_NAMES.get(row["dtype"], row["dtype"])
            table.setdefault((dtype, width), {}).setdefault(rows, {})[backend] = float(row["median_ms"])
    return table


def crossover(dtype: str, width: int, by_rows: dict[int, dict[str, float]]) -> Crossover:
    """The comparison of Triton with eager for one (dtype, width) of :func:`read_medians`."""
    both = {rows: ms for rows, ms in sorted(by_rows.items()) if {"eager", "triton"} <= ms.keys()}
    speedups = {rows: ms["eager"] / ms["triton"] for rows, ms in both.items()}
    losing = [rows for rows, s in speedups.items() if s <= 1.0]
    eager_up_to = max(losing) if losing else None
    after = [rows for rows in speedups if eager_up_to is None or rows > eager_up_to]  # all of them win
    triton_from = min(after) if after else None
    crossing = None
    if eager_up_to is not None and triton_from is not None:
        lo, hi = math.log(speedups[eager_up_to]), math.log(speedups[triton_from])
        fraction = -lo / (hi - lo)  # where the log speed-up crosses 0
        crossing = math.exp(math.log(eager_up_to) + fraction * math.log(triton_from / eager_up_to))
    return Crossover(dtype, width, speedups, eager_up_to, triton_from, crossing)


def crossovers(path: Path = DEFAULT_CSV) -> list[Crossover]:
    """One :class:`Crossover` per (dtype, width) measured in ``path``."""
    table = sorted(read_medians(path).items())
    return [crossover(dtype, width, by_rows) for (dtype, width), by_rows in table]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="?", type=Path, default=DEFAULT_CSV)
    args = parser.parse_args(argv)
    print(f"{args.csv}:")
    for found in crossovers(args.csv):
        print(" ", found.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
