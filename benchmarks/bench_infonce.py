"""Benchmark NT-Xent (SimCLR) forward + backward: fused Triton kernel vs PyTorch eager vs torch.compile.

Size: R = 2N is the *total* number of rows, both views stacked (N = R/2 rows per view); the logits
matrix is R×R. R runs from 1,024 to 262,144 in ×4 steps, with D ∈ {128, 256} and bf16 / fp32 inputs.

Measured per configuration: median wall time of one training step (loss forward + backward w.r.t. both
views; CUDA events, after warm-up), peak memory (torch.cuda.max_memory_allocated during the steps,
inputs and their gradients included) and the time of the first step (Triton JIT / torch.compile).

FLOPs (multiply-adds ×2; the exponentials are not counted):
  model    = 6·R²·D   the logits (2R²D) and the two gradient matmuls dZ = GZ + GᵀZ (4R²D); same for
                      every backend, so model TFLOP/s compares backends directly.
  executed = 10·R²·D  for the Triton kernel, which recomputes the logits in each of its two backward
                      kernels (forward 2R²D, dQ kernel 2R²D + 2R²D, dK kernel 2R²D + 2R²D);
           = 6·R²·D   for eager and torch.compile, which keep the logits.
  fraction of peak = executed TFLOP/s / the device's dense peak for the dtype: bf16 tensor cores,
  fp32 without tensor cores (or TF32 with --tf32). H100 SXM / H200: 989, 67 (TF32 495) TFLOP/s.
  Other GPUs: pass --peak-tflops.

Both baselines run ``sslcookbook.losses.contrastive.nt_xent_reference`` (logits in the input dtype,
cross-entropy in fp32), torch.compile with dynamic shapes so it compiles once per dtype. An out-of-memory
error is recorded as "OOM" and that backend is not tried at larger R (at R = 262,144 one fp32 logits matrix
alone is 256 GiB). A time budget (default 330 s) skips configurations that would overrun it. A parity
check (Triton and eager against an fp64 reference at R = 4,096) runs first.

Results are written after every configuration to benchmarks/results/infonce_<device>.csv and .md
(``--quick``: infonce_<device>_quick.*), each row with device, torch/triton versions and UTC date.
Without a GPU the script runs the eager reference only, fp32, at small R, and says so.

    python benchmarks/bench_infonce.py            # full sweep, about 5 minutes on an H100
    python benchmarks/bench_infonce.py --quick    # bf16, D = 128, R ≤ 16,384: about a minute
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gc
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from _machine import slug  # benchmarks/_machine.py (scripts run from this folder)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

# Dense (no sparsity) peak TFLOP/s: (16-bit tensor cores, TF32 tensor cores, fp32 without tensor cores).
PEAKS = {
    "H100 SXM": (989.0, 495.0, 67.0),
    "H100 PCIe": (756.0, 378.0, 51.0),
    "H100 NVL": (835.0, 418.0, 60.0),
    "H200 SXM": (989.0, 495.0, 67.0),
    "H200 NVL": (835.0, 418.0, 60.0),
    "A100": (312.0, 156.0, 19.5),
}

CSV_FIELDS = [
    "utc_date",
    "device",
    "torch",
    "triton",
    "backend",
    "dtype",
    "dim",
    "rows_total_R",
    "rows_per_view_N",
    "status",
    "median_ms",
    "first_step_s",
    "repeats",
    "peak_mib",
    "model_tflops",
    "exec_tflops",
    "peak_tflops",
    "frac_of_peak",
    "loss",
    "note",
]
PARITY_FIELDS = [
    "utc_date",
    "device",
    "torch",
    "triton",
    "dtype",
    "dim",
    "rows_total_R",
    "backend",
    "loss_abs_err",
    "grad_rel_err",
]


def device_peak_key(name: str) -> str | None:
    upper = name.upper()
    for chip in ("H200", "H100"):
        if chip in upper:
            if "NVL" in upper:
                return f"{chip} NVL"
            if "PCIE" in upper and chip == "H100":
                return "H100 PCIe"
            return f"{chip} SXM"
    if "A100" in upper:
        return "A100"
    return None


def peak_tflops(device_name: str, dtype: torch.dtype, tf32: bool, override: float | None) -> float | None:
    if override is not None:
        return override
    key = device_peak_key(device_name)
    if key is None:
        return None
    tensor16, tensor32, fp32 = PEAKS[key]
    if dtype in (torch.bfloat16, torch.float16):
        return tensor16
    return tensor32 if tf32 else fp32


def fmt(value, digits: int = 3) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.{digits}g}"
    return str(value)


class Recorder:
    """Keeps every row and rewrites the CSV and Markdown files after each one."""

    def __init__(self, csv_path: Path, md_path: Path, header: dict, notes: list[str]):
        self.csv_path, self.md_path, self.header, self.notes = csv_path, md_path, header, notes
        self.rows: list[dict] = []
        self.parity: list[dict] = []
        self.tile_configs: list[str] = []
        csv_path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.write()

    def add_parity(self, row: dict) -> None:
        self.parity.append(row)
        self.write()

    def write(self) -> None:
        tmp = self.csv_path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: fmt(row.get(k), 4) for k in CSV_FIELDS})
        tmp.replace(self.csv_path)
        if self.parity:
            parity_path = self.csv_path.with_name(self.csv_path.stem + "_parity.csv")
            with parity_path.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=PARITY_FIELDS)
                writer.writeheader()
                for row in self.parity:
                    writer.writerow({k: fmt(row.get(k), 3) for k in PARITY_FIELDS})
        tmp = self.md_path.with_suffix(".md.tmp")
        tmp.write_text(self.markdown())
        tmp.replace(self.md_path)

    def markdown(self) -> str:
        h = self.header
        lines = [
            f"# NT-Xent forward + backward: {h['device']}",
            "",
            f"torch {h['torch']} (CUDA {h['cuda']}), triton {h['triton']}, run started {h['started']} (UTC).",
            "",
            *[f"- {note}" for note in self.notes],
            "",
        ]
        if self.parity:
            lines += [
                "## Parity against an fp64 reference",
                "",
                "| dtype | D | R | backend | loss abs. error | grad max rel. error |",
                "|---|---|---|---|---|---|",
            ]
            for p in self.parity:
                lines.append(
                    f"| {p['dtype']} | {p['dim']} | {p['rows_total_R']} | {p['backend']} | "
                    f"{fmt(p['loss_abs_err'])} | {fmt(p['grad_rel_err'])} |"
                )
            lines.append("")
        groups: dict[tuple, dict] = {}
        for row in self.rows:
            groups.setdefault((row["dtype"], row["dim"]), {}).setdefault(row["rows_total_R"], {})[
                row["backend"]
            ] = row
        backends = list(dict.fromkeys(row["backend"] for row in self.rows))
        for (dtype, dim), by_rows in groups.items():
            lines += [f"## {dtype}, D = {dim}", ""]
            cols = ["R (N per view)"]
            cols += [f"{b} ms" for b in backends] + [f"{b} peak MiB" for b in backends]
            cols += [f"{b} exec TFLOP/s (% peak)" for b in backends]
            cols += [f"triton speed-up vs {b}" for b in backends if b != "triton" and "triton" in backends]
            lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            for rows_total, cells in sorted(by_rows.items()):
                out = [f"{rows_total:,} ({rows_total // 2:,})"]
                for b in backends:
                    r = cells.get(b)
                    out.append(
                        "" if r is None else (fmt(r["median_ms"]) if r["status"] == "ok" else r["status"])
                    )
                for b in backends:
                    r = cells.get(b)
                    out.append("" if r is None or r["status"] != "ok" else fmt(r.get("peak_mib"), 4))
                for b in backends:
                    r = cells.get(b)
                    if r is None or r["status"] != "ok":
                        out.append("")
                    else:
                        frac = r.get("frac_of_peak")
                        pct = (
                            f" ({100 * frac:.0f} %)"
                            if isinstance(frac, float) and not math.isnan(frac)
                            else ""
                        )
                        out.append(fmt(r["exec_tflops"]) + pct)
                if "triton" in backends:
                    t = cells.get("triton")
                    for b in backends:
                        if b == "triton":
                            continue
                        r = cells.get(b)
                        ok = t is not None and r is not None and t["status"] == r["status"] == "ok"
                        out.append(f"{r['median_ms'] / t['median_ms']:.2f}×" if ok else "")
                lines.append("| " + " | ".join(out) + " |")
            lines.append("")
        not_measured = [r for r in self.rows if r["status"] != "ok" and r.get("note")]
        if not_measured:
            lines += ["## Not measured", ""]
            for r in not_measured:
                lines.append(
                    f"- {r['dtype']}, D = {r['dim']}, R = {r['rows_total_R']:,}, {r['backend']}: "
                    f"{r['status']} ({r['note']})"
                )
            lines.append("")
        if self.tile_configs:
            lines += ["## Triton tiles used", ""]
            lines += [f"- {line}" for line in self.tile_configs]
            lines.append("")
        return "\n".join(lines)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def describe(error: BaseException) -> str:
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line[:200]}"


def cuda_context_alive(device: torch.device) -> bool:
    if device.type != "cuda":
        return True
    try:
        torch.cuda.synchronize(device)
        torch.zeros(1, device=device).add_(1).item()
    except Exception:
        return False
    return True


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def make_views(rows_total: int, dim: int, dtype: torch.dtype, device: torch.device, seed: int = 0):
    g = torch.Generator(device=device).manual_seed(seed)
    n = rows_total // 2
    z1 = torch.randn(n, dim, generator=g, device=device, dtype=torch.float32).to(dtype)
    z2 = (z1.float() + 0.5 * torch.randn(n, dim, generator=g, device=device)).to(dtype)  # correlated views
    return z1.requires_grad_(), z2.requires_grad_()


def measure(loss_fn, z1, z2, device: torch.device, target_s: float, max_repeats: int) -> dict:
    """One or two warm-up steps, then timed steps until target_s of measured time or max_repeats."""

    def step():
        z1.grad = None
        z2.grad = None
        loss = loss_fn(z1, z2)
        loss.backward()
        return loss

    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    loss = step()
    synchronize(device)
    first_step_s = time.perf_counter() - start
    if first_step_s < 1.0:  # the first step included compilation; warm caches and clocks once more
        loss = step()
        synchronize(device)
    times_ms: list[float] = []
    while len(times_ms) < max_repeats and sum(times_ms) < 1000.0 * target_s:
        if device.type == "cuda":
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            loss = step()
            end.record()
            end.synchronize()
            times_ms.append(begin.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            loss = step()
            times_ms.append(1000.0 * (time.perf_counter() - t0))
    peak_mib = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    return {
        "median_ms": statistics.median(times_ms),
        "first_step_s": first_step_s,
        "repeats": len(times_ms),
        "peak_mib": peak_mib,
        "loss": float(loss.detach()),
    }


def run_config(loss_fn, backend: str, rows_total: int, dim: int, dtype, device, args, peak) -> dict:
    """Measure one configuration. Returns the row's fields with status ok / OOM / ERROR; never raises."""
    result = failure = None
    try:
        z1, z2 = make_views(rows_total, dim, dtype, device)
        result = measure(loss_fn, z1, z2, device, args.target_s, args.max_repeats)
    except Exception as error:  # OOM, compile errors...: record them, never crash the sweep
        failure = {"status": "OOM" if is_oom(error) else "ERROR", "note": describe(error)}
    # Outside the except block, so the exception's traceback no longer pins the tensors.
    z1 = z2 = None
    free_memory(device)
    if failure is not None:
        return failure
    seconds = result["median_ms"] / 1000.0
    exec_flops = (10.0 if backend == "triton" else 6.0) * rows_total**2 * dim
    exec_tflops = exec_flops / seconds / 1e12
    return {
        **result,
        "status": "ok",
        "model_tflops": 6.0 * rows_total**2 * dim / seconds / 1e12,
        "exec_tflops": exec_tflops,
        "peak_tflops": peak if peak is not None else "",
        "frac_of_peak": exec_tflops / peak if peak else float("nan"),
    }


def summary(fields: dict) -> str:
    if fields["status"] != "ok":
        return f"{fields['status']} {fields.get('note', '')}"
    peak = fmt(fields["peak_mib"], 4) or "n/a"
    return (
        f"{fields['median_ms']:9.3f} ms (×{fields['repeats']}), peak {peak} MiB, "
        f"{fields['exec_tflops']:.1f} TFLOP/s executed"
    )


def parity(reference, dtype, dim, rows_total, device, backends) -> list[dict]:
    """Loss and gradient errors of each backend against nt_xent_reference on the fp64 copy of the inputs."""
    z1, z2 = make_views(rows_total, dim, dtype, device, seed=1)
    t1, t2 = (z.detach().double().requires_grad_() for z in (z1, z2))
    truth = reference(t1, t2, 0.5)
    truth_grads = torch.autograd.grad(truth, [t1, t2])
    out = []
    for name, fn in backends.items():
        loss = fn(z1, z2)
        grads = torch.autograd.grad(loss, [z1, z2])
        grad_err = max(
            ((g.double() - gt).abs().max() / gt.abs().max()).item() for g, gt in zip(grads, truth_grads)
        )
        out.append(
            {"backend": name, "loss_abs_err": abs(loss.item() - truth.item()), "grad_rel_err": grad_err}
        )
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sweep (bf16, D=128, R up to 16,384)")
    p.add_argument("--rows", type=int, nargs="+", help="total rows R = 2N (default 1024 … 262144, ×4)")
    p.add_argument("--dims", type=int, nargs="+", help="embedding widths D (default 128 256)")
    p.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), help="default bf16 fp32")
    p.add_argument("--backends", nargs="+", choices=["triton", "eager", "compile"], help="default: all three")
    p.add_argument("--temperature", type=float, default=0.5)
    p.add_argument(
        "--peak-tflops", type=float, help="dense peak TFLOP/s for the %% of peak (else by GPU name)"
    )
    p.add_argument("--tf32", action="store_true", help="allow TF32 for fp32 matmuls (torch and the kernel)")
    p.add_argument("--target-s", type=float, default=1.0, help="measured time per configuration (s)")
    p.add_argument("--max-repeats", type=int, default=50)
    p.add_argument("--time-budget-s", type=float, default=330.0, help="skip what would run past this (s)")
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    p.add_argument(
        "--cpu-triton-smoke",
        action="store_true",
        help="(testing this script) run the Triton kernel through the CPU interpreter at tiny sizes",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    wall_start = time.perf_counter()
    if args.cpu_triton_smoke:
        os.environ["TRITON_INTERPRET"] = "1"  # must precede the kernel import below
    from sslcookbook.kernels import infonce as kernels
    from sslcookbook.kernels import triton_available
    from sslcookbook.losses.contrastive import nt_xent_reference

    on_gpu = torch.cuda.is_available() and not args.cpu_triton_smoke
    device = torch.device("cuda" if on_gpu else "cpu")
    device_name = torch.cuda.get_device_name(device) if on_gpu else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32

    notes = [
        "R = 2N is the total number of rows (both views); the logits matrix is R×R; N rows per view.",
        f"Time: median of one forward + backward step (temperature {args.temperature}), after warm-up.",
        "Peak memory: torch.cuda.max_memory_allocated during the steps, inputs and gradients included.",
        "FLOPs: model = 6·R²·D for every backend; executed = 10·R²·D for Triton (the logits are "
        "recomputed in both backward kernels), 6·R²·D for eager / torch.compile.",
        "eager and compile run nt_xent_reference (logits in the input dtype, cross-entropy in fp32); "
        "torch.compile(dynamic=True).",
        f"TF32 for fp32 matmuls: {'on' if args.tf32 else 'off'} (torch and the Triton kernel alike).",
        f"Time budget {args.time_budget_s:.0f} s: configurations predicted to overrun it are skipped.",
    ]
    if on_gpu:
        default_rows = [1024, 4096, 16384, 65536, 262144]
        default_backends = ["triton", "eager", "compile"] if triton_available() else ["eager", "compile"]
        default_dtypes, default_dims = ["bf16", "fp32"], [128, 256]
        if args.quick:
            default_rows, default_dtypes, default_dims = [1024, 4096, 16384], ["bf16"], [128]
        parity_rows = 4096 if not args.quick else 1024
        if not triton_available():
            notes.append("triton is not importable here: the Triton backend was not run.")
    elif args.cpu_triton_smoke:
        default_rows, default_dtypes, default_dims = [64, 256], ["fp32"], [16]
        default_backends = ["triton", "eager"]
        parity_rows = 64
        notes.append(
            "SMOKE TEST of this script: Triton through the CPU interpreter; the timings mean nothing."
        )
    else:
        default_rows = [1024, 2048] if args.quick else [1024, 2048, 4096]
        default_dtypes, default_dims, default_backends = ["fp32"], [128, 256], ["eager"]
        parity_rows = None
        notes.append(
            "No GPU: only the PyTorch eager reference ran, fp32, at small R. The Triton kernel needs a GPU "
            "for speed (the interpreter checks correctness only) and torch.compile is not benchmarked on CPU."
        )
    rows_list = args.rows or default_rows
    dims = args.dims or default_dims
    dtype_names = args.dtypes or default_dtypes
    backends = args.backends or default_backends
    if not on_gpu and not args.cpu_triton_smoke:
        backends = [b for b in backends if b == "eager"] or ["eager"]
    if any(r < 2 or r % 2 for r in rows_list):
        raise SystemExit("--rows must be even numbers ≥ 2 (R = 2N rows, both views)")

    try:
        import triton

        triton_version = triton.__version__
    except Exception:
        triton_version = "n/a"
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    header = {
        "device": device_name,
        "torch": torch.__version__,
        "triton": triton_version,
        "cuda": torch.version.cuda or "n/a",
        "started": started,
    }
    stem = "infonce_" + slug(device_name, None) + ("-interpreter-smoke" if args.cpu_triton_smoke else "")
    stem += "_quick" if args.quick else ""
    recorder = Recorder(args.out_dir / f"{stem}.csv", args.out_dir / f"{stem}.md", header, notes)
    print(f"device: {device_name}; writing {recorder.csv_path} and {recorder.md_path}", flush=True)

    temperature = args.temperature
    loss_fns = {}
    if "triton" in backends:
        loss_fns["triton"] = lambda a, b: kernels.nt_xent(a, b, temperature)
    if "eager" in backends:
        loss_fns["eager"] = lambda a, b: nt_xent_reference(a, b, temperature)
    if "compile" in backends:
        loss_fns["compile"] = torch.compile(lambda a, b: nt_xent_reference(a, b, temperature), dynamic=True)

    def base_row(backend, dtype_name, dim, rows_total):
        return {
            "utc_date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            "device": device_name,
            "torch": torch.__version__,
            "triton": triton_version,
            "backend": backend,
            "dtype": dtype_name,
            "dim": dim,
            "rows_total_R": rows_total,
            "rows_per_view_N": rows_total // 2,
        }

    # Parity first: a wrong kernel makes its timings meaningless.
    if parity_rows is not None and "triton" in backends:
        for dtype_name in dtype_names:
            for dim in dims:
                try:
                    fns = {"triton": loss_fns["triton"]}
                    fns["eager"] = lambda a, b: nt_xent_reference(a, b, temperature)
                    for p in parity(nt_xent_reference, DTYPES[dtype_name], dim, parity_rows, device, fns):
                        recorder.add_parity({**base_row(p["backend"], dtype_name, dim, parity_rows), **p})
                except Exception as error:  # record and carry on; the timings below still run
                    message = describe(error)
                    print(f"parity {dtype_name} D={dim}: {message}", flush=True)
                    recorder.add_parity(
                        {
                            **base_row("triton", dtype_name, dim, parity_rows),
                            "loss_abs_err": f"ERROR {message}",
                        }
                    )
                free_memory(device)

    context_lost = False
    for dtype_name in dtype_names:
        dtype = DTYPES[dtype_name]
        peak = peak_tflops(device_name, dtype, args.tf32, args.peak_tflops) if on_gpu else None
        for dim in dims:
            stopped: dict[str, tuple[str, str]] = {}  # backend → (status, why) for larger R
            last_step_s: dict[str, tuple[int, float]] = {}  # backend → (R, seconds per step)
            for rows_total in sorted(rows_list):
                for backend in backends:
                    row = base_row(backend, dtype_name, dim, rows_total)
                    remaining = args.time_budget_s - (time.perf_counter() - wall_start)
                    predicted = 0.0
                    if backend in last_step_s:  # the work grows as R²; warm-up + at least 2 steps
                        prev_rows, prev_s = last_step_s[backend]
                        predicted = 3 * prev_s * (rows_total / prev_rows) ** 2
                    if context_lost:
                        recorder.add({**row, "status": "SKIPPED", "note": "CUDA context lost earlier"})
                    elif backend in stopped:
                        status, note = stopped[backend]
                        recorder.add({**row, "status": status, "note": note})
                    elif remaining <= 0 or predicted > remaining:
                        note = f"time budget: predicted {predicted:.0f} s, {max(remaining, 0):.0f} s left"
                        recorder.add({**row, "status": "SKIPPED", "note": note})
                    else:
                        fields = run_config(
                            loss_fns[backend], backend, rows_total, dim, dtype, device, args, peak
                        )
                        recorder.add({**row, **fields})
                        print(
                            f"{dtype_name} D={dim} R={rows_total:>7} {backend:>8}: {summary(fields)}",
                            flush=True,
                        )
                        if fields["status"] == "ok":
                            last_step_s[backend] = (rows_total, fields["median_ms"] / 1000.0)
                        elif fields["status"] == "OOM":
                            stopped[backend] = ("OOM", f"out of memory at R={rows_total:,}")
                        else:
                            stopped[backend] = ("SKIPPED", f"error at R={rows_total:,}")
                            context_lost = not cuda_context_alive(device)
    for (name, block_d, element_size), config in getattr(kernels, "_working_configs", {}).items():
        recorder.tile_configs.append(
            f"{name}, BLOCK_D {block_d}, {element_size}-byte elements: {config.block_out} output × "
            f"{config.block_loop} streamed rows, {config.num_warps} warps, {config.num_stages} stages"
        )
    recorder.write()
    print(f"done in {time.perf_counter() - wall_start:.0f} s: {recorder.md_path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
