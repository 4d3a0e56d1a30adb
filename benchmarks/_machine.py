"""What machine a benchmark ran on, for the header of its results (shared by the benchmark scripts)."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import sys
from pathlib import Path

import torch

#: The CPU features that change PyTorch's CPU speed (vector width, native bf16, Intel's AMX tiles).
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def _cpuinfo(field: str) -> str | None:
    """The first ``field : value`` of /proc/cpuinfo (None when absent or unreadable)."""
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        if line.startswith(field):
            return line.split(":", 1)[1].strip()
    return None


def device_name() -> str:
    """The CUDA device's name, else the CPU model with its core count."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    model = _cpuinfo("model name")
    return f"{model} ({os.cpu_count()} cores)" if model else platform.processor() or "cpu"


def cpu_flags() -> str:
    """Which of ``SPEED_FLAGS`` this CPU has, space-separated ("" when /proc/cpuinfo is unreadable): machines
    that print the same model name (a cloud's "Intel Xeon Processor") can differ by 2× on the same run."""
    present = set((_cpuinfo("flags") or "").split())
    return " ".join(flag for flag in SPEED_FLAGS if flag in present)


def slug(text: str, length: int | None = 40) -> str:
    """``text`` as a file-name part: lower case, runs of other characters as one "-", at most ``length``
    characters (None: all of them)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:length]


def run_header(argv: list[str] | None) -> dict:
    """The header of a CPU benchmark's results: device, CPU flags, native bf16, versions, threads, UTC date,
    the load average before the run (``load_after`` is the caller's to add) and the command's arguments."""
    return {
        "device": device_name(),
        "cpu_flags": cpu_flags(),
        "native_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_before": round(os.getloadavg()[0], 2),
        "args": "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:])),
    }


def write_results(stem: Path, result: dict, text: str) -> None:
    """``stem``.json (the result) and ``stem``.md (the table), creating the folder."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(text)
    print("wrote", stem.with_suffix(".md"))
