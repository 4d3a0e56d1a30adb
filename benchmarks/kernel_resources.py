"""Compile the SigLIP kernels for a GPU target without a GPU, and print each tile's registers, spills and
shared memory: the numbers behind ``kernels/siglip.py``'s ``_tile_config`` table.

Triton compiles ahead of time for a named target (the wheel ships ``ptxas``), so this runs on any Linux
machine with triton installed, a CPU-only one included. It also catches what the interpreter cannot: a
kernel that runs in numpy but does not compile for the GPU. Register spills mean slow local-memory
traffic; 255 registers with 8 warps leave room for one program per SM. Which tile is *fastest* is
measured on a GPU (``bench_siglip.py --tile-sweep``).

    python benchmarks/kernel_resources.py                 # the table's entries, sm_90 (H100/H200)
    python benchmarks/kernel_resources.py --out benchmarks/results/siglip_kernel_resources_sm90.md
    python benchmarks/kernel_resources.py --dims 256 --tiles 64,64,8,2 64,32,8,2 --arch 80
"""

from __future__ import annotations

import argparse
import datetime
import glob
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.pop("TRITON_INTERPRET", None)  # compile, do not interpret (before the kernels are imported)

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sslcookbook.kernels import siglip as K  # noqa: E402

ELEMENT = {"bf16": 2, "fp16": 2, "fp32": 4}
SCALARS = {"SCALE": "*fp32", "BIAS": "*fp32"}


def signatures(dtype: str) -> dict[str, dict[str, str]]:
    ints = {"n_rows": "i32", "n_cols": "i32", "dim": "i32", "stride_x": "i32", "stride_y": "i32"}
    rows = {"X": f"*{dtype}", "Y": f"*{dtype}", **SCALARS, "ROW_LOSS": "*fp32", "ROW_DT": "*fp32"}
    rows |= {"ROW_DB": "*fp32", "DX": "*fp32", **ints, "stride_dx": "i32", "tile_scale": "fp32"}
    cols = {"X": f"*{dtype}", "Y": f"*{dtype}", **SCALARS, "GRAD": "*fp32", "DY": f"*{dtype}", **ints}
    cols |= {"stride_dy": "i32", "tile_scale": "fp32"}
    return {"_siglip_rows_kernel": rows, "_siglip_cols_kernel": cols}


def resources(kernel, signature: dict, constants: dict, config, target: GPUTarget) -> str:
    """'R registers, S spill bytes, M KiB shared' from ptxas -v on the compiled PTX."""
    source = ASTSource(kernel, {**signature, **dict.fromkeys(constants, "constexpr")}, constants)
    compiled = triton.compile(
        source, target=target, options={"num_warps": config.num_warps, "num_stages": config.num_stages}
    )
    ptxas = glob.glob(os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/ptxas"))[0]
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
        f.write(compiled.asm["ptx"])
    arch = f"sm_{target.arch}a" if target.arch >= 90 else f"sm_{target.arch}"
    out = subprocess.run(
        [ptxas, "-v", "--gpu-name", arch, f.name, "-o", os.devnull], capture_output=True, text=True
    )
    os.unlink(f.name)
    regs = spills = "?"
    for line in out.stderr.splitlines():
        if "Used" in line and "registers" in line:
            regs = line.split("Used")[1].split("registers")[0].strip()
        if "spill stores" in line:
            spills = line.split("bytes spill stores")[0].split(",")[-1].strip()
    return (
        f"{regs:>3} registers, {spills:>5} bytes spilled, {compiled.metadata.shared / 1024:5.0f} KiB shared"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dims", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    p.add_argument("--dtypes", nargs="+", choices=sorted(ELEMENT), default=["bf16", "fp32"])
    p.add_argument("--tiles", nargs="+", help="block_out,block_loop,warps,stages (default: the table's)")
    p.add_argument("--arch", type=int, default=90, help="compute capability ×10 (90: H100/H200, 80: A100)")
    p.add_argument("--out", type=Path, help="also write the lines to this Markdown file")
    args = p.parse_args(argv)
    target = GPUTarget("cuda", args.arch, 32)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    header = f"triton {triton.__version__}, target sm_{args.arch}, compiled {date} UTC; fp32 dots are 'ieee'"
    print(header, flush=True)
    lines = []
    for dtype in args.dtypes:
        for dim in args.dims:
            block_d = K._block_d(dim)
            if block_d * ELEMENT[dtype] > K._MAX_ROW_BYTES:
                continue
            configs = [K._tile_config(block_d, ELEMENT[dtype])]
            if args.tiles:
                configs = [K._TileConfig(*map(int, tile.split(","))) for tile in args.tiles]
            for config in configs:
                base = {
                    "NEGATIVE_ONLY": False,
                    "DOT_PRECISION": "ieee" if dtype == "fp32" else "tf32",
                    "BLOCK_OUT": config.block_out,
                    "BLOCK_LOOP": config.block_loop,
                    "BLOCK_D": block_d,
                }
                for name, signature in signatures(dtype).items():
                    constants = dict(base)
                    if name == "_siglip_rows_kernel":
                        constants |= {"COMPUTE_DX": True, "COMPUTE_SCALARS": True}
                    start = time.perf_counter()
                    try:
                        report = resources(getattr(K, name), signature, constants, config, target)
                    except Exception as error:
                        report = f"FAILED {type(error).__name__}: {str(error).splitlines()[0][:200]}"
                    tile = f"{config.block_out}×{config.block_loop} w{config.num_warps} s{config.num_stages}"
                    seconds = time.perf_counter() - start
                    print(f"{dtype} D={dim:<5} {tile:<15} {name:<20} {report} ({seconds:.0f} s)", flush=True)
                    lines.append(f"| {dtype} | {dim} | {tile} | {name} | {report} |")
    if args.out:
        table = [
            "| dtype | D | tile (out×loop, warps, stages) | kernel | resources |",
            "|---|---|---|---|---|",
        ]
        title = "# SigLIP kernels: registers, spills and shared memory per tile (compiled, not run)"
        args.out.write_text("\n".join([title, "", header + ".", "", *table, *lines, ""]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
