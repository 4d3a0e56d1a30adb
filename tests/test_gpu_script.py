"""benchmarks/gpu_train.sh, the one call a lent GPU gets: every benchmark it runs exists and accepts the
options it is given (a typo there would cost scarce device time), and its limits fit one device call."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_train.sh"


def commands() -> list[tuple[str, list[str]]]:
    """(benchmark file, its --options) for every ``$PY benchmarks/X.py ...`` command of the script."""
    text = SCRIPT.read_text().replace("\\\n", " ")  # join continued lines
    found = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for match in re.finditer(r"\$PY (benchmarks/\w+\.py)([^;|&]*)", line):
            found.append((match.group(1), re.findall(r"(?<!\S)(--[a-z][a-z0-9-]*)", match.group(2))))
    return found


def test_the_script_runs_the_kernel_and_training_benchmarks():
    names = {name for name, _ in commands()}
    assert {"benchmarks/bench_infonce.py", "benchmarks/bench_train.py", "benchmarks/gpu_parity.py"} <= names


@pytest.mark.parametrize("name", sorted({name for name, _ in commands()} - {"benchmarks/gpu_parity.py"}))
def test_every_option_the_script_passes_is_one_the_benchmark_accepts(name):
    help_text = subprocess.run(
        [sys.executable, str(ROOT / name), "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120
    ).stdout
    accepted = set(re.findall(r"(--[a-z][a-z0-9-]*)", help_text))
    for script, options in commands():
        if script == name:
            assert set(options) <= accepted, f"{name} does not accept {set(options) - accepted}"


def test_the_step_limits_fit_one_device_call():
    limits = [int(n) for n in re.findall(r"step \w+ (\d+) ", SCRIPT.read_text().replace("\\\n", " "))]
    assert len(limits) >= 6 and sum(limits) <= 590  # one device call may run 600 s


def test_the_test_files_it_runs_on_the_gpu_exist():
    named = re.findall(r"(tests/test_\w+\.py)", SCRIPT.read_text())
    assert named and all((ROOT / path).is_file() for path in named)
