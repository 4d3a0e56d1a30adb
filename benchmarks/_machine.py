"""What machine a benchmark ran on, for the header of its results (shared by the benchmark scripts)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def device_name() -> str:
    """The CUDA device's name, else the CPU model with its core count."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    return platform.processor() or "cpu"


#: The CPU features that change PyTorch's CPU speed (vector width, native bf16, Intel's AMX tiles).
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_flags() -> str:
    """Which of ``SPEED_FLAGS`` this CPU has, space-separated ("" when /proc/cpuinfo is unreadable): machines
    that print the same model name (a cloud's "Intel Xeon Processor") can differ by 2× on the same run."""
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return " ".join(flag for flag in SPEED_FLAGS if flag in present)
    return ""
