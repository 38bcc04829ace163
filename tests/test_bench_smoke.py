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
    "drain/s Redis I/O",
    "drain/s Redis I/O (lent client)",
    "latency p50 ms",
    "latency p99 ms",
    "worker RSS MiB",
    "worker CPU µs/task",
    "worker CPU µs/task I/O",
    "worker CPU µs/task I/O (lent)",
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
            # Enough tasks that the drain spans several of /proc's 10 ms CPU ticks: a
            # drain of 200 took ~15 ms and could read 0 µs of worker CPU.
            "--n",
            "2000",
            "--warmup",
            "200",
            "--batch",
            "500",
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
    assert raw["drain_noop"]["n"] == 2000
    assert raw["latency"]["samples"] == 5
    assert "## Targets" in lines and any(line.startswith("| batch enqueue") for line in lines)


@pytest.mark.slow
def test_scale_harness_measures_every_step(tmp_path: Path) -> None:
    """benchmarks/scale.py with tiny numbers: every step yields its figures. (Worker CPU
    comes from /proc in 10 ms ticks: each window is long enough for a few.)"""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.scale",
            "--python",
            sys.executable,
            "--out",
            str(tmp_path),
            "--backlog",
            "20000",
            "--n",
            "2000",
            "--warmup",
            "200",
            "--inflight",
            "16,64",
            "--hold",
            "0.1",
            "--rounds",
            "20",
            "--cpu-ms",
            "1",
            "--cpu-n",
            "200",
            "--idle-seconds",
            "1",
        ],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (report,) = tmp_path.glob("scale-*.md")
    text = report.read_text()
    assert "n/a" not in text, text
    raw = json.loads(next(tmp_path.glob("scale-*.json")).read_text())["results"]
    assert raw["idle"]["cpu_us_per_s"] > 0
    small, large = raw["backlog"]["small"], raw["backlog"]["large"]
    assert small["pending"][0] < 5000 and large["pending"][0] > 15000
    for node in (small, large, *raw["inflight"].values(), *raw["cpu"].values()):
        assert node["tasks"] > 0 and node["rate"] > 0, node
        assert node["redis"]["cmds_per_task"] > 0 and node["redis"]["usec_per_call"]["evalsha"] > 0
        assert node["worker_cpu_us_per_task"] > 0
    assert set(raw["inflight"]) == {"16", "64"} and set(raw["cpu"]) == {"1", "2"}
    assert raw["inflight"]["64"]["active"]["max"] > 16
    assert "lrem" in raw["inflight"]["64"]["redis"]["usec_per_call"]


@pytest.mark.slow
def test_enqueue_rates_measures_both_steps(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.enqueue_rates", "--out", str(tmp_path),
         "--n", "300", "--requests", "200", "--rounds", "2", "--repeat", "1"],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    (report,) = tmp_path.glob("enqueue-*.md")
    lines = report.read_text().splitlines()
    for first in ("| src | sync", "| src | async", "| src | True", "| src | False"):
        (row,) = [line for line in lines if line.startswith(first)]
        assert "failed" not in row and "n/a" not in row, row


@pytest.mark.slow
def test_cluster_scale_measures_both_layouts(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.cluster_scale", "--out", str(tmp_path),
         "--n", "1500", "--warmup", "300", "--processes", "3", "--concurrency", "8"],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads(next(tmp_path.glob("cluster-*.json")).read_text())
    assert [r["layout"] for r in rows] == ["one master", "three masters"]
    for r in rows:
        assert r["rate"] > 0 and not r["partial"] and r["worker_cpu_us_per_task"] > 0
    busy = [m["cpu_us_per_task"] for m in rows[1]["masters"]]
    assert len(busy) == 3 and all(b > 0 for b in busy)  # each master took part
    assert "Projection" in next(tmp_path.glob("cluster-*.md")).read_text()
