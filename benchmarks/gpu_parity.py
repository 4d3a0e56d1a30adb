"""Kernel parity on a GPU: the Triton kernels against an fp64 PyTorch reference, in fp32 and bf16.

For each kernel and shape, the loss and the input gradients of the Triton backend and of the eager
reference in the same dtype are compared with the fp64 reference; the table reports the largest
relative errors, so the kernel can be judged against what eager PyTorch achieves in that dtype.
Shapes are deliberately awkward (rows and widths that are not multiples of the tiles).

    python benchmarks/gpu_parity.py   # needs CUDA; writes results/kernel_parity_<device>.{csv,md}

The SigLIP kernel (kernels/siglip.py) is compared through its own two functions, siglip_loss_triton and
siglip_loss_reference, with gradients for both feature sets, the scale and the bias. On a lent GPU
machine (no network there), one command runs every check and benchmark, with the peers' wheels
downloaded beforehand into an ignored .whl/ folder and carried (``pip download --no-deps -d .whl
siglip-kernel==0.1.2 open-clip-torch==3.3.0``)::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; \\
    export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1; \\
    TRITON_INTERPRET=0 python3 -m pytest tests/test_kernels_siglip.py -q -p no:cacheprovider \\
        > $OUT/pytest_siglip_gpu.txt 2>&1; tail -3 $OUT/pytest_siglip_gpu.txt; \\
    python3 benchmarks/gpu_parity.py 2>&1 | tee $OUT/gpu_parity_log.txt; \\
    python3 benchmarks/bench_siglip.py --out-dir $OUT --tile-sweep 16384 --time-budget-s 240 \\
        2>&1 | tee $OUT/bench_siglip_log.txt; \\
    cp benchmarks/results/kernel_parity_* $OUT/
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from _machine import slug as file_slug  # noqa: E402  (benchmarks/_machine.py: the script's folder)

from sslcookbook import losses  # noqa: E402
from sslcookbook.kernels import siglip  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def loss_and_grads(fn, inputs, dtype, **kw):
    xs = [x.detach().to(dtype).requires_grad_(True) for x in inputs]
    loss = fn(*xs, **kw)
    grads = torch.autograd.grad(loss, xs)
    return loss.detach(), [g.detach() for g in grads]


def compare(name, shape, fn_triton, fn_ref, inputs, fixed=(), **kw):
    rows = []
    exact_loss, exact_grads = loss_and_grads(lambda *a: fn_ref(*a, *fixed, **kw), inputs, torch.float64)
    for dname, dtype in DTYPES.items():
        fixed_d = [f.to(dtype) for f in fixed]
        row = {"kernel": name, "shape": shape, "dtype": dname}
        for backend, fn in (("triton", fn_triton), ("eager", fn_ref)):
            loss, grads = loss_and_grads(
                lambda *a, fn=fn, fixed_d=fixed_d: fn(*a, *fixed_d, **kw), inputs, dtype
            )
            row[f"{backend}_loss_rel_err"] = f"{rel_err(loss, exact_loss):.2e}"
            row[f"{backend}_grad_rel_err"] = f"{max(rel_err(g, e) for g, e in zip(grads, exact_grads)):.2e}"
        rows.append(row)
        print(row, flush=True)
    return rows


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("gpu_parity.py needs a CUDA device (the CPU is covered by the interpreter tests)")
    torch.manual_seed(0)
    dev = torch.device("cuda")
    rows = []
    for n, d, tau in [(1, 16, 0.5), (7, 48, 0.05), (130, 64, 0.2), (1000, 128, 0.1), (4097, 256, 0.5)]:
        z1, z2 = torch.randn(n, d, device=dev), torch.randn(n, d, device=dev)
        rows += compare(
            "nt_xent",
            f"N={n} D={d} tau={tau}",
            lambda a, b, t=tau: losses.nt_xent(a, b, t, backend="triton"),
            lambda a, b, t=tau: losses.nt_xent(a, b, t, backend="torch"),
            [z1, z2],
        )
    for n, m, d in [(33, 1000, 128), (256, 4096 + 256, 128)]:
        q, k = torch.randn(n, d, device=dev), torch.randn(m, d, device=dev)
        rows += compare(
            "info_nce",
            f"N={n} M={m} D={d} tau=0.2",
            lambda a, b: losses.info_nce(a, b, 0.2, backend="triton"),
            lambda a, b: losses.info_nce(a, b, 0.2, backend="torch"),
            [q, k],
        )
    for s, t, b, k in [(4, 2, 7, 257), (10, 2, 64, 4096), (10, 2, 256, 65536)]:
        student = 3 * torch.randn(s, b, k, device=dev)
        teacher, center = 3 * torch.randn(t, b, k, device=dev), 0.1 * torch.randn(k, device=dev)
        rows += compare(
            "dino_loss",
            f"S={s} T={t} B={b} K={k}",
            lambda x, te, c: losses.dino_loss(x, te, c, 0.1, 0.04, backend="triton"),
            lambda x, te, c: losses.dino_loss(x, te, c, 0.1, 0.04, backend="torch"),
            [student],
            fixed=(teacher, center),
        )
    # SigLIP: B = 1, a partial tile, t = 100 / 0.1 extremes, D = 500 (padded to 512), and a large B. The
    # scale and bias are inputs too (their gradients are compared); the kernel reads them as fp32.
    for n, d, scale, bias in [
        (1, 16, 10.0, -10.0),
        (7, 48, 100.0, -10.0),
        (130, 64, 0.1, 5.0),
        (2049, 500, 10.0, -10.0),
        (4097, 256, 10.0, -10.0),
        (16385, 256, 10.0, -10.0),
    ]:
        x = torch.nn.functional.normalize(torch.randn(n, d, device=dev), dim=1)
        y = torch.nn.functional.normalize(x + torch.randn(n, d, device=dev), dim=1)
        t, b = torch.tensor(scale, device=dev), torch.tensor(bias, device=dev)
        rows += compare(
            "siglip_loss",
            f"B={n} D={d} t={scale} b={bias}",
            lambda a, c, s, o: siglip.siglip_loss_triton(a, c, s.float(), o.float()),
            lambda a, c, s, o: siglip.siglip_loss_reference(a, c, s, o),
            [x, y, t, b],
        )
    for n, m, d in [(7, 130, 48), (1000, 4103, 256)]:  # the chunked loss's other-rank blocks
        x = torch.nn.functional.normalize(torch.randn(n, d, device=dev), dim=1)
        y = torch.nn.functional.normalize(torch.randn(m, d, device=dev), dim=1)
        t, b = torch.tensor(10.0, device=dev), torch.tensor(-10.0, device=dev)
        rows += compare(
            "siglip_loss negative_only",
            f"B={n} M={m} D={d} t=10 b=-10",
            lambda a, c, s, o: siglip.siglip_loss_triton(a, c, s.float(), o.float(), negative_only=True),
            lambda a, c, s, o: siglip.siglip_loss_reference(a, c, s, o, negative_only=True),
            [x, y, t, b],
        )
    device = torch.cuda.get_device_name()
    stamp = {
        "device": device,
        "torch": torch.__version__,
        "triton": __import__("triton").__version__,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    rows = [{**r, **stamp} for r in rows]
    slug = file_slug(device, None)
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / f"kernel_parity_{slug}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cols = [
        "kernel",
        "shape",
        "dtype",
        "triton_loss_rel_err",
        "eager_loss_rel_err",
        "triton_grad_rel_err",
        "eager_grad_rel_err",
    ]
    lines = [
        f"# Kernel parity on {device}",
        "",
        f"torch {stamp['torch']}, triton {stamp['triton']}, {stamp['date']}. Relative errors against an fp64 "
        "reference; `eager` is the PyTorch reference run in the same dtype.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows]
    (RESULTS / f"kernel_parity_{slug}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
