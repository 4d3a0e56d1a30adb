"""Benchmark the SigLIP sigmoid loss, forward + backward: the fused Triton kernel against PyTorch eager,
torch.compile and the published peers, ``siglip-kernel`` (PyPI) and open_clip's ``SigLipLoss``.

    python benchmarks/bench_siglip.py            # GPU: parity, then B = 4,096 … 131,072, D = 256, bf16
    python benchmarks/bench_siglip.py --quick    # GPU: B ≤ 16,384 (about a minute)
    python benchmarks/bench_siglip.py            # CPU: parity (Triton in the interpreter), small-B timings

Every backend computes L = −(1/B) Σ_ij log σ(z_ij (t x_i·y_j + b)) on the same inputs: L2-normalised,
correlated image and text features (B×D), a learnable log-scale t′ = log 10 (t = e^t′) and bias b = −10,
SigLIP's initialisation; each step is one forward and one backward that gives the gradients of x, y, t′
and b. ``eager`` is ``siglip_loss_reference`` (the kernel's reference: the B×B logits, ±1 labels and
``F.logsigmoid``), ``compile`` the same under ``torch.compile(dynamic=True)``, ``siglip-kernel`` its
``fused_siglip_loss`` (backend "auto", which takes t′ itself), ``open_clip`` ``SigLipLoss`` on one device
(it takes t). A peer that does not import is skipped, and the notes say why; on a GPU machine without
network access, carry their wheels (see gpu_parity.py's docstring for the one command).

Measured per configuration: the median of CUDA-event timings of one step after warm-up, the peak memory
allocated above the inputs during one step (the four gradients included), and the first step's time
(Triton JIT, torch.compile). An out-of-memory error is recorded as OOM and that backend is not tried at
larger B; a time budget skips what would overrun it. Parity first: each backend's loss and gradients
against the float64 reference on the same inputs (relative errors in the 2-norm).

FLOPs (multiply-adds ×2): model = 6·B²·D (the logits, dx and dy products) for every backend; the Triton
kernel executes 8·B²·D (its backward recomputes the logits once). Memory model: each B×B fp32 matrix of
the reference is B²·4 bytes (16 GiB at B = 65,536); the kernel keeps O(B·D).

Without a GPU: parity of the Triton kernel under the interpreter (fp32 and fp16, small B), of eager and
torch.compile and of open_clip, then CPU timings of eager, torch.compile and open_clip at small B in
fp32 (no peak memory: torch does not count CPU allocations). Those timings are not kernel measurements.

Results: benchmarks/results/siglip_<device>.csv and .md (``--quick``: ``_quick``), with device, versions
and UTC date, rewritten after every row so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gc
import importlib.util
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import device_name, slug  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
SCALE_INIT, BIAS_INIT = 10.0, -10.0
FIELDS = [
    "utc_date",
    "device",
    "torch",
    "triton",
    "backend",
    "dtype",
    "dim",
    "batch",
    "status",
    "median_ms",
    "first_step_s",
    "repeats",
    "peak_mib",
    "model_tflops",
    "loss",
    "note",
]
# (rows per program, streamed rows, warps, stages) tried by --tile-sweep against _tile_config's choice.
TILE_CANDIDATES = [
    (64, 64, 4, 3),
    (64, 64, 8, 2),
    (64, 32, 8, 2),
    (128, 64, 8, 2),
    (128, 32, 8, 3),
    (32, 64, 4, 3),
]
PARITY_FIELDS = ["utc_date", "device", "backend", "dtype", "dim", "batch", "loss", "dx", "dy", "dt", "db"]


def fmt(value, digits: int = 3) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.{digits}g}"
    return str(value)


def version(module_name: str) -> str:
    try:
        from importlib.metadata import version as dist_version

        return dist_version(module_name)
    except Exception:
        return "n/a"


# ----------------------------------------------------------------------------------------------------
# The backends, one signature: fn(x, y, log_scale, bias) -> loss
# ----------------------------------------------------------------------------------------------------


def load_open_clip_siglip():
    """open_clip's SigLipLoss class. ``import open_clip`` needs ftfy, timm, …; loss.py alone needs torch."""
    try:
        from open_clip.loss import SigLipLoss

        return SigLipLoss
    except Exception:
        spec = importlib.util.find_spec("open_clip")
        if spec is None or spec.origin is None:
            raise
        path = Path(spec.origin).parent / "loss.py"
        loss_spec = importlib.util.spec_from_file_location("_open_clip_loss", path)
        module = importlib.util.module_from_spec(loss_spec)
        loss_spec.loader.exec_module(module)
        return module.SigLipLoss


def backends(names: list[str], on_gpu: bool, notes: list[str]) -> dict:
    """name → loss function for every backend in ``names`` that can run here; the rest get a note."""
    from sslcookbook.kernels import siglip as K

    fns = {}
    for name in names:
        try:
            if name == "triton":
                if not K.AVAILABLE:
                    raise RuntimeError("triton is not importable")
                fns[name] = lambda x, y, lt, b: K.siglip_loss_triton(x, y, lt.exp(), b)
            elif name == "eager":
                fns[name] = lambda x, y, lt, b: K.siglip_loss_reference(x, y, lt.exp(), b)
            elif name == "compile":
                compiled = torch.compile(K.siglip_loss_reference, dynamic=True)
                fns[name] = lambda x, y, lt, b, f=compiled: f(x, y, lt.exp(), b)
            elif name == "siglip-kernel":
                if not on_gpu:
                    raise RuntimeError("its kernels need CUDA tensors")
                from siglip_kernel import fused_siglip_loss

                fns[name] = lambda x, y, lt, b, f=fused_siglip_loss: f(x, y, lt, b)
                notes.append(f"siglip-kernel {version('siglip-kernel')}: fused_siglip_loss(backend='auto').")
            elif name == "open_clip":
                loss_module = load_open_clip_siglip()()
                fns[name] = lambda x, y, lt, b, m=loss_module: m(x, y, lt.exp(), b)
                notes.append(f"open_clip {version('open-clip-torch')}: SigLipLoss() on one device.")
        except Exception as error:
            notes.append(f"{name}: not run ({type(error).__name__}: {str(error).splitlines()[0][:160]}).")
    return fns


# ----------------------------------------------------------------------------------------------------
# Measuring
# ----------------------------------------------------------------------------------------------------


def make_inputs(batch: int, dim: int, dtype: torch.dtype, device: torch.device, seed: int = 0):
    """Normalised, correlated pairs in ``dtype``; t′ = log 10 and b = −10 as fp32 0-d leaves."""
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(batch, dim, generator=g, device=device)
    y = x + torch.randn(batch, dim, generator=g, device=device)
    x = torch.nn.functional.normalize(x, dim=1).to(dtype).requires_grad_()
    y = torch.nn.functional.normalize(y, dim=1).to(dtype).requires_grad_()
    log_scale = torch.tensor(math.log(SCALE_INIT), device=device).requires_grad_()
    bias = torch.tensor(BIAS_INIT, device=device).requires_grad_()
    return [x, y, log_scale, bias]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step(fn, inputs) -> torch.Tensor:
    for t in inputs:
        t.grad = None
    loss = fn(*inputs)
    loss.backward()
    return loss.detach()


def measure(fn, inputs, device: torch.device, target_s: float, max_repeats: int) -> dict:
    synchronize(device)
    start = time.perf_counter()
    loss = step(fn, inputs)
    synchronize(device)
    first_step_s = time.perf_counter() - start
    step(fn, inputs)  # warm caches and clocks once more
    times_ms: list[float] = []
    while len(times_ms) < max_repeats and sum(times_ms) < 1000.0 * target_s:
        if device.type == "cuda":
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            loss = step(fn, inputs)
            end.record()
            end.synchronize()
            times_ms.append(begin.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            loss = step(fn, inputs)
            times_ms.append(1000.0 * (time.perf_counter() - t0))
    peak = float("nan")
    if device.type == "cuda":  # one more step, measured above what the inputs (and no grads) hold
        for t in inputs:
            t.grad = None
        synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step(fn, inputs)
        synchronize(device)
        peak = (torch.cuda.max_memory_allocated(device) - before) / 2**20
    return {
        "median_ms": statistics.median(times_ms),
        "first_step_s": first_step_s,
        "repeats": len(times_ms),
        "peak_mib": peak,
        "loss": float(loss.float()),
    }


def is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-300)).item()


def parity(fns: dict, dtype: torch.dtype, dim: int, batch: int, device: torch.device) -> list[dict]:
    """Each backend's loss and gradient errors against the float64 reference on the same inputs."""
    from sslcookbook.kernels.siglip import siglip_loss_reference

    inputs = make_inputs(batch, dim, dtype, device, seed=1)
    exact = [t.detach().double().requires_grad_() for t in inputs]
    truth = siglip_loss_reference(exact[0], exact[1], exact[2].exp(), exact[3])
    truth_grads = torch.autograd.grad(truth, exact)
    out = []
    for name, fn in fns.items():
        try:
            loss = fn(*inputs)
            grads = torch.autograd.grad(loss, inputs)
            errors = [rel_err(g, e) for g, e in zip(grads, truth_grads)]
            out.append(
                {
                    "backend": name,
                    "loss": rel_err(loss.detach(), truth.detach()),
                    **dict(zip(("dx", "dy", "dt", "db"), errors)),
                }
            )
        except Exception as error:
            out.append({"backend": name, "loss": f"ERROR {type(error).__name__}: {str(error)[:100]}"})
    del inputs, exact
    free_memory(device)
    return out


# ----------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------


class Recorder:
    """Keeps every row and rewrites the CSV and Markdown files after each one."""

    def __init__(self, stem: Path, header: dict, notes: list[str]):
        self.stem, self.header, self.notes = stem, header, notes
        self.rows: list[dict] = []
        self.parity: list[dict] = []
        self.tiles: list[str] = []
        stem.parent.mkdir(parents=True, exist_ok=True)

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.write()

    def write(self) -> None:
        with self.stem.with_suffix(".csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows({k: fmt(r.get(k), 4) for k in FIELDS} for r in self.rows)
        if self.parity:
            with self.stem.with_name(self.stem.name + "_parity.csv").open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=PARITY_FIELDS)
                writer.writeheader()
                writer.writerows({k: fmt(r.get(k), 3) for k in PARITY_FIELDS} for r in self.parity)
        self.stem.with_suffix(".md").write_text(self.markdown())

    def markdown(self) -> str:
        h = self.header
        lines = [
            f"# SigLIP loss forward + backward: {h['device']}",
            "",
            f"torch {h['torch']} (built for CUDA {h['cuda']}), triton {h['triton']}, run started "
            f"{h['started']} (UTC).",
            "",
            *[f"- {note}" for note in self.notes],
            "",
        ]
        if self.parity:
            lines += [
                "## Parity against the float64 reference (relative errors, 2-norm)",
                "",
                "| dtype | D | B | backend | loss | dx | dy | dt | db |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for p in self.parity:
                cells = [fmt(p.get(k)) for k in ("loss", "dx", "dy", "dt", "db")]
                lines.append(
                    f"| {p['dtype']} | {p['dim']} | {p['batch']} | {p['backend']} | "
                    + " | ".join(cells)
                    + " |"
                )
            lines.append("")
        groups: dict[tuple, dict] = {}
        for r in self.rows:
            groups.setdefault((r["dtype"], r["dim"]), {}).setdefault(r["batch"], {})[r["backend"]] = r
        names = list(dict.fromkeys(r["backend"] for r in self.rows))
        others = [n for n in names if n != "triton"]
        measured = [r.get("peak_mib") for r in self.rows if isinstance(r.get("peak_mib"), float)]
        peaks = names if any(not math.isnan(v) for v in measured) else []  # none on a CPU
        for (dtype, dim), by_batch in groups.items():
            cols = ["B", "one B×B fp32 matrix (MiB)"] + [f"{n} ms" for n in names]
            cols += [f"{n} peak MiB" for n in peaks]
            if "triton" in names:
                cols += [f"triton speed-up vs {n}" for n in others]
            lines += [f"## {dtype}, D = {dim}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            for batch, cells in sorted(by_batch.items()):
                out = [f"{batch:,}", fmt(batch * batch * 4 / 2**20, 4)]
                for n in names:
                    r = cells.get(n)
                    out.append(
                        "" if r is None else (fmt(r["median_ms"]) if r["status"] == "ok" else r["status"])
                    )
                for n in peaks:
                    r = cells.get(n)
                    out.append("" if r is None or r["status"] != "ok" else fmt(r.get("peak_mib"), 4))
                if "triton" in names:
                    t = cells.get("triton")
                    for n in others:
                        r = cells.get(n)
                        ok = t is not None and r is not None and t["status"] == r["status"] == "ok"
                        out.append(f"{r['median_ms'] / t['median_ms']:.2f}×" if ok else "")
                lines.append("| " + " | ".join(out) + " |")
            lines.append("")
        skipped = [r for r in self.rows if r["status"] != "ok" and r.get("note")]
        if skipped:
            lines += ["## Not measured", ""]
            lines += [
                f"- {r['dtype']}, B = {r['batch']:,}, {r['backend']}: {r['status']} ({r['note']})"
                for r in skipped
            ]
            lines.append("")
        if self.tiles:
            lines += ["## Triton tiles used", "", *[f"- {t}" for t in self.tiles], ""]
        return "\n".join(lines)


def tile_sweep(recorder: Recorder, fn, args, dtype_names: list[str], device: torch.device) -> None:
    """Time the kernel at B = args.tile_sweep with every tile of TILE_CANDIDATES (what ran is recorded)."""
    from sslcookbook.kernels import siglip as K

    table = K._tile_config
    recorder.tiles.append(
        f"Tile sweep at B = {args.tile_sweep:,}, D = {args.dim} (requested → ms, peak MiB):"
    )
    for dtype_name in dtype_names:
        for candidate in TILE_CANDIDATES:
            K._working_configs.clear()
            config = K._TileConfig(*candidate)
            K._tile_config = lambda block_d, element_size, c=config: c
            try:
                inputs = make_inputs(args.tile_sweep, args.dim, DTYPES[dtype_name], device)
                result = measure(fn, inputs, device, args.target_s, args.max_repeats)
                ran = sorted(
                    {
                        (c.block_out, c.block_loop, c.num_warps, c.num_stages)
                        for c in K._working_configs.values()
                    }
                )
                line = f"{fmt(result['median_ms'])} ms, {fmt(result['peak_mib'], 4)} MiB (ran {ran})"
            except Exception as error:
                line = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
            finally:
                K._tile_config = table
                inputs = None
                free_memory(device)
            recorder.tiles.append(f"{dtype_name} {candidate}: {line}")
            print(f"tile sweep {dtype_name} {candidate}: {line}", flush=True)
    K._working_configs.clear()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="GPU: B up to 16,384")
    p.add_argument("--batches", type=int, nargs="+", help="batch sizes B (default by device)")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), help="GPU default bf16; CPU fp32")
    p.add_argument(
        "--backends",
        nargs="+",
        choices=["triton", "eager", "compile", "siglip-kernel", "open_clip"],
        help="default: all that run here",
    )
    p.add_argument("--parity-batch", type=int, help="B of the parity check (GPU 4,096; CPU 96)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 for fp32 matmuls (torch and the kernel)")
    p.add_argument("--target-s", type=float, default=1.0, help="measured time per configuration (s)")
    p.add_argument("--max-repeats", type=int, default=30)
    p.add_argument("--time-budget-s", type=float, default=300.0, help="skip what would run past this (s)")
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    p.add_argument(
        "--tile-sweep",
        type=int,
        metavar="B",
        help="GPU: also time the Triton kernel at batch B with each tile of TILE_CANDIDATES (for the table)",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    wall_start = time.perf_counter()
    on_gpu = torch.cuda.is_available()
    if not on_gpu:
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before the kernel module is imported
    from sslcookbook.kernels import siglip as K

    device = torch.device("cuda" if on_gpu else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    name = device_name()
    notes = [
        "Step: loss forward + backward for x, y, t′ and b (t = e^t′ = 10, b = −10, SigLIP's initialisation); "
        "normalised, correlated features.",
        "eager = siglip_loss_reference (logits in the input dtype, then fp32); compile = the same under "
        "torch.compile(dynamic=True).",
        "Peak memory: above the inputs during one step, gradients included. FLOPs: model 6·B²·D, Triton "
        "executes 8·B²·D.",
    ]
    if on_gpu:
        default_batches = [4096, 8192, 16384] if args.quick else [4096, 8192, 16384, 32768, 65536, 131072]
        default_dtypes, parity_batch = ["bf16"], args.parity_batch or 4096
        default_backends = ["triton", "eager", "compile", "siglip-kernel", "open_clip"]
        parity_dtypes = ["bf16", "fp32"]
    else:
        default_batches, default_dtypes, parity_batch = (
            [256, 512, 1024, 2048],
            ["fp32"],
            args.parity_batch or 96,
        )
        default_backends = ["eager", "compile", "siglip-kernel", "open_clip"]  # siglip-kernel: a note
        parity_dtypes = ["fp32", "fp16"]
        notes.append(
            "No GPU: the Triton kernel ran in the interpreter for parity only (its CPU time means nothing); "
            "timings are CPU eager / torch.compile / open_clip in fp32, no peak memory. Not kernel figures."
        )
        notes.append(f"Load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.")
    batches = args.batches or default_batches
    dtype_names = args.dtypes or default_dtypes
    names = args.backends or default_backends
    fns = backends(list(dict.fromkeys(["triton", *names])), on_gpu, notes)
    if not on_gpu:
        fns = {n: f for n, f in fns.items() if n != "siglip-kernel"}

    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    header = {
        "device": name,
        "torch": torch.__version__,
        "triton": version("triton"),
        "cuda": torch.version.cuda or "n/a",
        "started": started,
    }
    stem = args.out_dir / ("siglip_" + slug(name, None) + ("_quick" if args.quick else ""))
    recorder = Recorder(stem, header, notes)
    print(f"device: {name}; writing {stem}.csv and .md", flush=True)

    def base(backend, dtype_name, batch):
        return {
            "utc_date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            "device": name,
            "torch": torch.__version__,
            "triton": header["triton"],
            "backend": backend,
            "dtype": dtype_name,
            "dim": args.dim,
            "batch": batch,
        }

    # Parity first: a wrong kernel makes its timings meaningless. The interpreter has no bf16.
    for dtype_name in parity_dtypes:
        # On the CPU, fp16 checks the kernel only (eager fp16 matmuls there are not what anyone runs).
        parity_fns = {n: f for n, f in fns.items() if on_gpu or dtype_name == "fp32" or n == "triton"}
        for p in parity(parity_fns, DTYPES[dtype_name], args.dim, parity_batch, device):
            recorder.parity.append({**base(p["backend"], dtype_name, parity_batch), **p})
            print(
                f"parity {dtype_name} B={parity_batch} {p['backend']:>13}: "
                + " ".join(f"{k} {fmt(p.get(k))}" for k in ("loss", "dx", "dy", "dt", "db")),
                flush=True,
            )
        recorder.write()

    timed = [n for n in names if n in fns and (on_gpu or n != "triton")]
    for dtype_name in dtype_names:
        stopped: dict[str, tuple[str, str]] = {}
        last: dict[str, tuple[int, float]] = {}
        for batch in sorted(batches):
            for backend in timed:
                row = base(backend, dtype_name, batch)
                remaining = args.time_budget_s - (time.perf_counter() - wall_start)
                predicted = 0.0
                if backend in last:  # the work grows as B²; first step, warm-up and at least 2 steps
                    prev_batch, prev_s = last[backend]
                    predicted = 4 * prev_s * (batch / prev_batch) ** 2
                if backend in stopped:
                    status, note = stopped[backend]
                    recorder.add({**row, "status": status, "note": note})
                    continue
                if remaining <= 0 or predicted > remaining:
                    note = f"time budget: predicted {predicted:.0f} s, {max(remaining, 0):.0f} s left"
                    recorder.add({**row, "status": "SKIPPED", "note": note})
                    continue
                result = failure = None
                try:
                    inputs = make_inputs(batch, args.dim, DTYPES[dtype_name], device)
                    result = measure(fns[backend], inputs, device, args.target_s, args.max_repeats)
                except Exception as error:
                    first = (str(error).strip().splitlines() or [""])[0][:160]
                    failure = {
                        "status": "OOM" if is_oom(error) else "ERROR",
                        "note": f"{type(error).__name__}: {first}",
                    }
                inputs = None
                free_memory(device)
                if failure is not None:
                    recorder.add({**row, **failure})
                    stopped[backend] = (
                        failure["status"] if failure["status"] == "OOM" else "SKIPPED",
                        f"{failure['status']} at B={batch:,}",
                    )
                    print(
                        f"{dtype_name} B={batch:>7} {backend:>13}: {failure['status']} {failure['note']}",
                        flush=True,
                    )
                    continue
                seconds = result["median_ms"] / 1000.0
                result["model_tflops"] = 6.0 * batch**2 * args.dim / seconds / 1e12
                recorder.add({**row, **result, "status": "ok"})
                last[backend] = (batch, seconds)
                print(
                    f"{dtype_name} B={batch:>7} {backend:>13}: {result['median_ms']:9.3f} ms "
                    f"(×{result['repeats']}), peak {fmt(result['peak_mib'], 4) or 'n/a'} MiB",
                    flush=True,
                )
    for (kernel, block_d, element_size, constants), config in K._working_configs.items():
        flags = ", ".join(f"{k}={v}" for k, v in constants if k != "DOT_PRECISION")
        recorder.tiles.append(
            f"{kernel} ({flags or 'backward'}), BLOCK_D {block_d}, {element_size}-byte elements: "
            f"{config.block_out} × {config.block_loop}, {config.num_warps} warps, {config.num_stages} stages"
        )
    if args.tile_sweep and on_gpu and "triton" in fns:
        tile_sweep(recorder, fns["triton"], args, dtype_names, device)
    recorder.write()
    print(f"done in {time.perf_counter() - wall_start:.0f} s: {stem}.md", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
