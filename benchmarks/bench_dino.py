"""Benchmark the fused DINO loss: Triton kernel vs PyTorch eager vs torch.compile, forward + backward.

    python benchmarks/bench_dino.py            # the full grid (a GPU: about 3-4 minutes)
    python benchmarks/bench_dino.py --quick    # B = 64 only, fewer repetitions

Shapes follow DINO's multi-crop setting: S = 10 student crops (2 global + 8 local), T = 2 teacher crops,
B images, K prototypes (4,096 and 65,536, the paper's head), in bf16 and fp32. Each configuration times
forward + backward with CUDA events (median after warm-up) and measures the peak memory allocated
above the inputs. A parity column compares the Triton loss and gradient with the eager reference on the
same inputs. Every configuration runs in its own try/except (an OOM is recorded, not fatal) and the CSV
and Markdown files are rewritten after each one, so an interrupted run keeps what it measured.

Results go to benchmarks/results/dino_<device>.csv and .md, each row with the device, torch and triton
versions and the UTC date. Without a GPU only the eager reference runs, at small sizes, and the files
say so: those numbers are not kernel measurements.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import functools
import gc
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _machine import slug  # benchmarks/_machine.py (scripts run from this folder)

from sslcookbook.losses.dino import dino_loss, dino_loss_reference

N_CROPS, N_TEACHER = 10, 2
STUDENT_TEMPERATURE, TEACHER_TEMPERATURE = 0.1, 0.04
COMPILE_TIME_BUDGET_S = 180.0  # torch.compile configurations after this much wall time are skipped
MEASURED = ["median_ms", "peak_mib", "speedup_vs_eager", "loss_rel_diff", "grad_rel_diff"]
FIELDS = [
    "device",
    "torch",
    "triton",
    "date_utc",
    "dtype",
    "S",
    "T",
    "B",
    "K",
    "student_rows",
    "impl",
    "status",
    *MEASURED,
]


def environment() -> dict[str, str]:
    try:
        import triton

        triton_version = triton.__version__
    except Exception:
        triton_version = "not installed"
    device = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"CPU ({platform.processor() or 'cpu'})"
    )
    return {
        "device": device,
        "torch": torch.__version__,
        "triton": triton_version,
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
    }


def device_slug(device: str) -> str:
    return "cpu" if device.startswith("CPU") else slug(device, None)


def make_inputs(batch: int, k: int, dtype: torch.dtype, device: str, seed: int = 0):
    """Student logits of S crops, teacher logits of the first T (correlated with them), a center."""
    g = torch.Generator(device=device).manual_seed(seed)
    student = torch.randn(N_CROPS, batch, k, device=device, generator=g)
    teacher = student[:N_TEACHER] + 0.5 * torch.randn(N_TEACHER, batch, k, device=device, generator=g)
    center = teacher.mean(dim=(0, 1))
    return student.to(dtype).requires_grad_(), teacher.to(dtype), center


def forward_backward(loss_fn: Callable, student, teacher, center) -> torch.Tensor:
    student.grad = None
    loss = loss_fn(student, teacher, center, STUDENT_TEMPERATURE, TEACHER_TEMPERATURE)
    loss.backward()
    return loss.detach()


def time_ms(step: Callable[[], object], warmup: int, reps: int, cuda: bool) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(reps):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            step()
            times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def peak_mib(step: Callable[[], object]) -> float:
    """Peak memory allocated during one step, above what was allocated before it (the inputs)."""
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def parity(student, teacher, center) -> tuple[float, float]:
    """(|Δloss|/|loss|, max|Δgrad|/max|grad|) of the Triton kernel against the eager reference."""
    loss_ref = forward_backward(dino_loss_reference, student, teacher, center)
    grad_ref = student.grad.float()
    loss_tri = forward_backward(lambda *a: dino_loss(*a, backend="triton"), student, teacher, center)
    grad_diff = (student.grad.float() - grad_ref).abs().max() / grad_ref.abs().max()
    loss_diff = (loss_tri - loss_ref).abs() / loss_ref.abs()
    student.grad = None
    return loss_diff.item(), grad_diff.item()


def allow_many_compiled_shapes() -> None:
    """One compiled function serves every configuration: raise dynamo's recompilation limit."""
    import torch._dynamo

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(64, getattr(torch._dynamo.config, name)))


def write_outputs(
    rows: list[dict], env: dict[str, str], csv_path: Path, md_path: Path, notes: list[str]
) -> None:
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# DINO loss: fused Triton kernel vs PyTorch",
        "",
        f"Device: **{env['device']}** · torch {env['torch']} · triton {env['triton']} · "
        f"{env['date_utc']} UTC",
        "",
        f"Forward + backward of the DINO loss, S = {N_CROPS} student crops, T = {N_TEACHER} teacher crops, "
        f"τ_s = {STUDENT_TEMPERATURE}, τ_t = {TEACHER_TEMPERATURE}. Median of CUDA-event timings after "
        "warm-up; peak = memory allocated above the inputs during one step (includes the S·B·K gradient). "
        "Parity: Triton vs eager on the same inputs, relative to the eager loss / max |gradient|.",
        "",
        *notes,
        "",
        "| dtype | B | S·B | K | impl | status | median ms | × vs eager | peak MiB "
        "| loss rel. diff | grad rel. diff |",
        "|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dtype']} | {r['B']} | {r['student_rows']} | {r['K']} | {r['impl']} | {r['status']} | "
            f"{r['median_ms']} | {r['speedup_vs_eager']} | {r['peak_mib']} | {r['loss_rel_diff']} | "
            f"{r['grad_rel_diff']} |"
        )
    md_path.write_text("\n".join(lines) + "\n")


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:.{digits}g}" if abs(value) < 1e-2 else f"{value:.{digits}f}".rstrip("0").rstrip(".")


def run_config(
    config: dict, impls: list[str], loss_fns: dict, shape: tuple, warmup: int, reps: int, started: float
) -> list[dict]:
    """Time every implementation on one (B, K, dtype); failures become a status, never an exception."""
    cuda = shape[-1] == "cuda"
    try:
        inputs = make_inputs(*shape)
    except Exception as error:  # the inputs alone may not fit
        free_memory()
        status = "oom (inputs)" if is_oom(error) else f"error: {type(error).__name__}"
        return [{**config, "impl": impl, "status": status, **dict.fromkeys(MEASURED, "")} for impl in impls]
    rows, step = [], None
    for impl in impls:
        row = {**config, "impl": impl}
        rows.append(row)
        if impl == "compile" and time.perf_counter() - started > COMPILE_TIME_BUDGET_S:
            row["status"] = "skipped (time budget)"
            continue
        step = functools.partial(forward_backward, loss_fns[impl], *inputs)
        try:
            row["median_ms"] = time_ms(step, warmup, reps, cuda)
            row["peak_mib"] = peak_mib(step) if cuda else None
            if impl == "triton":
                row["loss_rel_diff"], row["grad_rel_diff"] = parity(*inputs)
            row["status"] = "ok"
        except Exception as error:
            message = " ".join(str(error).split()).replace("|", "/")  # one line, no Markdown table breaks
            row["status"] = "oom" if is_oom(error) else f"error: {type(error).__name__}: {message}"[:160]
        inputs[0].grad = None
        free_memory()
    del inputs, step  # release the tensors before the next configuration allocates its own
    free_memory()
    eager_ms = next((r.get("median_ms") for r in rows if r["impl"] == "eager"), None)
    for row in rows:
        ms = row.get("median_ms")
        row["speedup_vs_eager"] = fmt(eager_ms / ms, 2) if ms and eager_ms else ""
        row["median_ms"] = fmt(ms)
        row["peak_mib"] = fmt(row.get("peak_mib"), 4)
        row["loss_rel_diff"] = fmt(row.get("loss_rel_diff"), 2)
        row["grad_rel_diff"] = fmt(row.get("grad_rel_diff"), 2)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="B = 64 only, fewer repetitions")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)

    cuda = torch.cuda.is_available()
    env = environment()
    notes: list[str] = []
    if cuda:
        device = "cuda"
        dtypes = [torch.bfloat16, torch.float32]
        ks = [4096, 65536]
        batches = [64] if args.quick else [64, 256, 819]
        impls = ["triton", "eager", "compile"]
        warmup, reps = (2, 5) if args.quick else (3, 10)
        notes.append(
            "compile = torch.compile(dino_loss_reference), default settings: after the first shape change "
            "dynamo compiles a dynamic-shape graph that later shapes reuse. Compile time is excluded "
            f"(warm-up); configurations reached after {COMPILE_TIME_BUDGET_S:.0f} s skip it."
        )
    else:
        device = "cpu"
        dtypes = [torch.float32]
        ks = [1024] if args.quick else [1024, 4096]
        batches = [8] if args.quick else [8, 32]
        impls = ["eager"]
        warmup, reps = 1, 3
        notes.append(
            "**No GPU: only the eager PyTorch reference ran, at small sizes, timed with a wall clock and "
            "without memory figures. These are not kernel measurements** (Triton on a CPU runs only "
            "under its interpreter, which is for testing, not timing; torch.compile is skipped)."
        )
        print(notes[-1].replace("**", ""), file=sys.stderr)

    args.out.mkdir(parents=True, exist_ok=True)
    slug = device_slug(env["device"])
    csv_path, md_path = args.out / f"dino_{slug}.csv", args.out / f"dino_{slug}.md"
    compiled_reference = None
    if "compile" in impls:
        allow_many_compiled_shapes()
        compiled_reference = torch.compile(dino_loss_reference)
    loss_fns = {
        "triton": lambda *a: dino_loss(*a, backend="triton"),
        "eager": dino_loss_reference,
        "compile": compiled_reference,
    }

    rows: list[dict] = []
    started = time.perf_counter()
    for dtype in dtypes:
        for k in ks:
            for batch in batches:
                config = {
                    **env,
                    "dtype": str(dtype).removeprefix("torch."),
                    "S": N_CROPS,
                    "T": N_TEACHER,
                    "B": batch,
                    "K": k,
                    "student_rows": N_CROPS * batch,
                }
                config_rows = run_config(
                    config, impls, loss_fns, (batch, k, dtype, device), warmup, reps, started
                )
                for row in config_rows:
                    print(
                        f"{row['dtype']:>8} B={batch:<4} K={k:<6} {row['impl']:<8} {row['status']:<6} "
                        f"{row['median_ms']:>9} ms  peak {row['peak_mib']:>8} MiB  "
                        f"x{row['speedup_vs_eager']}",
                        flush=True,
                    )
                rows += config_rows
                write_outputs(rows, env, csv_path, md_path, notes)
    print(f"wrote {csv_path} and {md_path} ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
