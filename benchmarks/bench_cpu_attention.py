"""bf16 attention on the CPU: PyTorch's fused kernel against the library's ``attend`` (fp32 inside).

    python benchmarks/bench_cpu_attention.py                  # the op, then whole ViT training steps
    python benchmarks/bench_cpu_attention.py --quick          # fewer repeats and steps

Under bf16 autocast (``TrainConfig(amp=True)``) PyTorch runs ``scaled_dot_product_attention`` in bf16,
and its CPU kernel is then slower than in fp32 at short sequences, while the linear layers around it
get faster. ``models/attention.attend`` runs attention in fp32 on the CPU. Two measurements, each
variant timed in turns (one call of each per round, median over rounds, so other work on the machine
slows them alike):

1. the op, forward and backward, at the sequence lengths of the library's ViTs (17 tokens: ViT-Tiny on
   the 8×8 digits with CLS; 65: on 32×32 CIFAR-10) and longer ones: fp32 SDPA, bf16 SDPA (PyTorch's
   kernel) and bf16 through ``attend``;
2. a whole ``fit`` step (views, loss, backward, AdamW, EMA) of the ViT recipes' ``cpu`` profile: fp32,
   bf16 autocast with PyTorch's bf16 attention, and bf16 autocast with ``attend`` (the library as is).

Results: ``benchmarks/results/cpu_attention_<device>.md`` and ``.json`` (device, versions, date, load).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _machine import run_header, slug, write_results  # benchmarks/_machine.py (scripts run from this folder)

from sslcookbook.models import attention as attention_module
from sslcookbook.models import vit
from sslcookbook.recipes import get_recipe
from sslcookbook.runner import load_splits
from sslcookbook.train import fit

RESULTS = Path(__file__).resolve().parent / "results"
# (batch, heads, tokens, head width): ViT-Tiny's 3 heads of 64
SHAPES = [(128, 3, 17, 64), (128, 3, 65, 64), (32, 3, 257, 64), (16, 3, 513, 64), (8, 3, 1025, 64)]
RECIPES = ["data2vec", "ijepa", "mae"]
STEP_VARIANTS = ["fp32", "bf16, PyTorch's bf16 attention", "bf16, attend (fp32 attention)"]


def pytorch_attention(q, k, v, attn_mask=None, is_causal=False):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)


def fp32_attention(q, k, v, attn_mask=None, is_causal=False):
    """What ``attend`` does with bf16 on the CPU, at every length (the op table's variant, which finds
    ``CPU_FP32_MAX_KEYS``): attention in fp32, the result cast back."""
    return pytorch_attention(q.float(), k.float(), v.float(), attn_mask, is_causal).to(q.dtype)


@contextlib.contextmanager
def patched_attention(function):
    """Every ViT block calls ``function`` instead of ``attend`` (vit.py looks ``attend`` up at call time)."""
    saved = vit.attend
    vit.attend = function
    try:
        yield
    finally:
        vit.attend = saved


def in_turns(calls: dict, rounds: int, warm_up: int = 2) -> dict:
    """Median seconds of each zero-argument call, one call of each per round."""
    for _ in range(warm_up):
        for call in calls.values():
            call()
    times = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def attention_call(shape, dtype, function):
    """One forward and backward of ``function`` on fixed random q, k, v of ``shape`` in ``dtype``."""
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(shape, generator=generator).to(dtype).requires_grad_() for _ in range(3))

    def call():
        function(q, k, v).sum().backward()

    return call


def measure_op(shapes, rounds: int) -> list[dict]:
    rows = []
    for shape in shapes:
        calls = {
            "fp32 SDPA": attention_call(shape, torch.float32, pytorch_attention),
            "bf16 SDPA (PyTorch)": attention_call(shape, torch.bfloat16, pytorch_attention),
            "bf16 via fp32 SDPA": attention_call(shape, torch.bfloat16, fp32_attention),
        }
        seconds = in_turns(calls, rounds)
        row = {"shape": list(shape), **{name: round(1000 * s, 3) for name, s in seconds.items()}}
        speedup = seconds["bf16 SDPA (PyTorch)"] / seconds["bf16 via fp32 SDPA"]
        row["via fp32 over PyTorch bf16"] = round(speedup, 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def measure_steps(recipes, steps: int, rounds: int) -> list[dict]:
    """ms per ``fit`` step of each recipe's cpu profile in the three ``STEP_VARIANTS``."""
    rows = []
    for recipe in recipes:
        resolved = get_recipe(recipe).resolve("cpu", {})
        setting = resolved.setting
        train, _ = load_splits(setting.data, setting.train_subset, setting.test_subset)
        views = resolved.views(train.image_shape)

        def train_steps(amp: bool, function, resolved=resolved, train=train, views=views):
            torch.manual_seed(0)
            method = resolved.build(in_channels=train.image_shape[0], image_size=train.image_shape[-1])
            config = resolved.setting.train.replace(
                epochs=1, max_steps_per_epoch=steps, amp=amp, log_every=steps, knn_every=0
            )

            def call():
                with patched_attention(function):
                    fit(method, train, views, config, device="cpu", progress=False)

            return call

        calls = {
            STEP_VARIANTS[0]: train_steps(False, attention_module.attend),
            STEP_VARIANTS[1]: train_steps(True, pytorch_attention),
            STEP_VARIANTS[2]: train_steps(True, attention_module.attend),
        }
        seconds = in_turns(calls, rounds, warm_up=1)
        row = {
            "recipe": recipe,
            "batch": setting.train.batch_size,
            "steps": steps,
            **{name: round(1000 * s / steps, 1) for name, s in seconds.items()},
        }
        fp32 = seconds[STEP_VARIANTS[0]]
        row["speed-up over fp32"] = {name: round(fp32 / s, 2) for name, s in seconds.items()}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def markdown(head: dict, op_rows: list[dict], step_rows: list[dict]) -> str:
    lines = [
        f"# bf16 attention on the CPU ({head['device']})",
        "",
        f"{head['date']}; torch {head['torch']}; {head['threads']} threads; Python {head['python']}; "
        f"CPU flags: {head['cpu_flags'] or 'none of note'}; native bf16 (oneDNN): {head['native_bf16']}; "
        f"load average {head['load_before']} before, {head['load_after']} after. Written by "
        f"`python benchmarks/bench_cpu_attention.py{head['args']}`; every variant timed in turns, median.",
        "",
        "## The op: forward + backward, ms (q, k, v: batch × heads × tokens × 64)",
        "",
        "| batch × heads × tokens × width | fp32 SDPA | bf16 SDPA (PyTorch) | bf16 via fp32 SDPA | "
        "via fp32 over PyTorch bf16 |",
        "|---|---|---|---|---|",
    ]
    for r in op_rows:
        lines.append(
            f"| {' × '.join(map(str, r['shape']))} | {r['fp32 SDPA']:.2f} | {r['bf16 SDPA (PyTorch)']:.2f} | "
            f"{r['bf16 via fp32 SDPA']:.2f} | {r['via fp32 over PyTorch bf16']:.2f}× |"
        )
    lines += [
        "",
        "## A whole `fit` step of the ViT recipes' `cpu` profile, ms (speed-up over fp32)",
        "",
        "| recipe | batch | " + " | ".join(STEP_VARIANTS) + " |",
        "|---|---|" + "---|" * len(STEP_VARIANTS),
    ]
    for r in step_rows:
        cells = [f"{r[name]:.1f} ({r['speed-up over fp32'][name]:.2f}×)" for name in STEP_VARIANTS]
        lines.append(f"| {r['recipe']} | {r['batch']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipes", nargs="*", default=RECIPES, help="ViT recipes whose fit step is timed")
    p.add_argument("--steps", type=int, default=20, help="fit steps per timed call")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds (median)")
    p.add_argument("--quick", action="store_true", help="3 rounds of 8 steps, two shapes")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    rounds, steps, shapes = (3, 8, SHAPES[:2]) if args.quick else (args.rounds, args.steps, SHAPES)
    head = run_header(argv)
    op_rows = measure_op(shapes, 3 * rounds)
    step_rows = measure_steps(args.recipes, steps, rounds)
    head["load_after"] = round(os.getloadavg()[0], 2)
    result = {"header": head, "op": op_rows, "steps": step_rows}
    text = markdown(head, op_rows, step_rows)
    print(text)
    if not args.no_write:
        stem = RESULTS / f"cpu_attention_{slug(head['device'])}"
        write_results(stem, result, text)
    return result


if __name__ == "__main__":
    main()
