"""The benchmark harness end to end, for pyasynq alone with tiny numbers (no timing is
asserted: only that every metric of the report was measured)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = [
    "enqueue/s single",
    "enqueue/s batch",
    "drain/s no-op",
    "drain/s 1 ms sleep",
    "latency p50 ms",
    "latency p99 ms",
    "worker RSS MiB",
    "worker CPU µs/task",
    "Redis cmds/task",
    "Redis CPU µs/task",
]


def _row(table_lines: list[str], first_cell: str) -> list[str]:
    for line in table_lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in:\n" + "\n".join(table_lines))


@pytest.mark.slow
def test_harness_measures_every_metric_for_pyasynq(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--systems",
            "pyasynq",
            "--python",
            f"main={sys.executable}",
            "--out",
            str(tmp_path),
            "--n",
            "200",
            "--warmup",
            "50",
            "--batch",
            "100",
            "--samples",
            "5",
            "--latency-seconds",
            "1",
            "--concurrency",
            "4",
        ],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    reports = list(tmp_path.glob("*.md"))
    assert len(reports) == 1
    lines = reports[0].read_text().splitlines()
    header = _row(lines, "system")
    assert header[1:] == COLUMNS
    row = _row(lines, "**pyasynq**")
    assert "n/a" not in row, row
    assert all(float(c.split()[0].replace(",", "")) > 0 for c in row[1:]), row
    raw = json.loads(next(tmp_path.glob("*.json")).read_text())["results"]["pyasynq"]
    assert raw["drain_noop"]["n"] == 200
    assert raw["latency"]["samples"] == 5
    assert "## Targets" in lines and any(line.startswith("| batch enqueue") for line in lines)
