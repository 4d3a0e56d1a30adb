"""Execute the notebooks in a profile and record each one's wall time and the output of its check cell.

This is how the per-notebook budgets are measured (cpu: at most 5 minutes each on a 2-core laptop; gpu:
at most 10 minutes each on a T4-class card) and where the check values quoted in the notebooks come
from. Each notebook runs in a fresh kernel (nbclient), one after another, so the times do not overlap.
Results go to ``benchmarks/results/notebooks_<profile>_<device>.md`` and ``.json`` with the device,
library versions, load average and date; a run of some notebooks replaces their rows and keeps the others.

    python benchmarks/time_notebooks.py --profile cpu                  # every notebook
    python benchmarks/time_notebooks.py --profile gpu notebooks/02_contrastive.ipynb
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import nbformat
import torch
from _machine import cpu_flags, device_name, slug  # benchmarks/_machine.py (scripts run from this folder)
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from sslcookbook.profiles import NOTEBOOK_PROFILES

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def cell_text(cell) -> str:
    """The stdout/stderr text and plain-text results a code cell printed."""
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif "data" in output and "text/plain" in output["data"]:
            parts.append(output["data"]["text/plain"])
        elif output.get("output_type") == "error":
            parts.append(f"{output.get('ename')}: {output.get('evalue')}")
    return "".join(parts).strip()


def run_notebook(path: Path, profile: str, timeout: int) -> dict:
    nb = nbformat.read(path, as_version=4)
    os.environ["SSLCOOKBOOK_PROFILE"] = profile  # the kernel inherits the environment
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as e:
        error = str(e).strip().splitlines()[-1]
    seconds = time.perf_counter() - start
    code = [c for c in nb.cells if c.cell_type == "code"]
    return {
        "notebook": path.name,
        "seconds": round(seconds, 1),
        "passed": error is None,
        "error": error,
        "check_output": cell_text(code[-1]) if code else "",
        "date": datetime.date.today().isoformat(),
        "load_average_after": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def write_markdown(path: Path, meta: dict, rows: list[dict]) -> None:
    """The results table: one row per notebook with its wall time, outcome and check-cell output."""
    lines = [
        f"# Notebooks in the `{meta['profile']}` profile",
        "",
        f"{meta['device']}, CPU flags: {meta.get('cpu_flags') or 'unknown'}; torch {meta['torch']}, "
        f"Python {meta['python']}, "
        f"OMP_NUM_THREADS={meta['omp_num_threads']}; each notebook alone, one after another.",
        f"Command: `python benchmarks/time_notebooks.py --profile {meta['profile']}`.",
        "",
        "| notebook | wall time | check | date, load after, CPU flags | check cell output |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        shown = " ".join(row["check_output"].split())[:400].replace("|", "\\|")
        outcome = "passed" if row["passed"] else "FAILED"
        flags = row.get("cpu_flags", "unknown")
        when = f"{row.get('date', '')}, {row.get('load_average_after', '')}, {flags}"
        lines.append(f"| {row['notebook']} | {row['seconds']:.0f} s | {outcome} | {when} | {shown} |")
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--profile", default="cpu", choices=NOTEBOOK_PROFILES)
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    rows, flags = [], cpu_flags()
    for path in paths:
        print(f"{path.name} ({args.profile}) ...", flush=True)
        row = run_notebook(path, args.profile, args.timeout)
        outcome = "passed" if row["passed"] else f"FAILED: {row['error']}"
        print(f"  {row['seconds']:.0f} s, {outcome}", flush=True)
        # per row: a kept row of an earlier run may come from another machine printing the same model name
        rows.append({**row, "cpu_flags": flags})
    device = device_name()
    meta = {
        "profile": args.profile,
        "device": device,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpu_flags": flags,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"notebooks_{args.profile}_{slug(device)}"
    previous = RESULTS / f"{stem}.json"
    if previous.exists():  # keep the rows of the notebooks this run did not execute
        ran = {row["notebook"] for row in rows}
        kept = [row for row in json.loads(previous.read_text())["notebooks"] if row["notebook"] not in ran]
        rows = sorted(kept + rows, key=lambda row: row["notebook"])
    previous.write_text(json.dumps({**meta, "notebooks": rows}, indent=1) + "\n")
    write_markdown(RESULTS / f"{stem}.md", meta, rows)
    print(f"wrote {RESULTS / stem}.md")
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
