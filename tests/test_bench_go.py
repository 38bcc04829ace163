"""`make bench` builds the Go asynq benchmark programs with the machine's Go, and reports
Go asynq as n/a, with the reason, when there is no Go."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks import _go, _report


def test_without_go_the_go_row_is_na_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_go, "find_go", lambda: None)
    bin_dir, why = _go.build(tmp_path / "go-build.log")
    assert bin_dir is None
    assert why == "no Go toolchain (install Go 1.24+, or pass --go-bin DIR)"
    table, notes = _report.main_table({"asynq-go": {"na": why}})
    [row] = [line for line in table.splitlines() if line.startswith("| asynq-go")]
    columns = table.splitlines()[0].strip("|").count("|")  # every column but the name
    assert row.count("n/a") == columns
    assert notes == [f"asynq-go (all): {why}"]


@pytest.mark.interop
@pytest.mark.timeout(600)  # a first build downloads and compiles asynq and its modules
def test_the_go_benchmark_programs_build(tmp_path: Path) -> None:
    if _go.find_go() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no Go toolchain under CI=true: the Go benchmark programs must build")
        pytest.skip("no Go toolchain: the Go benchmark programs are not built")
    bin_dir, why = _go.build(tmp_path / "go-build.log")
    assert why == "" and bin_dir is not None
    for program in _go.PROGRAMS:
        assert os.access(Path(bin_dir) / program, os.X_OK)
    assert _go.version().startswith("v0.26.0 (go")
