"""Build the Go asynq benchmark programs (benchmarks/go) with the Go on this machine, so
that every run measures Go asynq beside pyasynq without a flag. Standard library only."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

GO_DIR = Path(__file__).resolve().parent / "go"
PROGRAMS = ("client", "worker")


def find_go() -> str | None:
    """$PYASYNQ_GO, else `go` on PATH, else Go's default install directory."""
    for candidate in (os.environ.get("PYASYNQ_GO"), shutil.which("go"), "/usr/local/go/bin/go"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def build(log_path: Path) -> tuple[str | None, str]:
    """(the directory of the built binaries, "") or (None, why Go asynq is n/a).

    `go build` is incremental (Go's build cache), so a rebuild of unchanged sources takes
    a second or two; the first one downloads asynq v0.26.0 through the Go module proxy."""
    go = find_go()
    if go is None:
        return None, "no Go toolchain (install Go 1.24+, or pass --go-bin DIR)"
    out = GO_DIR / "bin"
    try:
        res = subprocess.run(
            [go, "build", "-o", f"{out}/", *(f"./{p}" for p in PROGRAMS)],
            cwd=GO_DIR,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"go build failed: {exc}"
    log_path.write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["?"])[-1]
        return None, f"go build failed ({last}); see {log_path}"
    return str(out), ""


def version() -> str:
    """The asynq version benchmarks/go requires and the Go that built it, e.g.
    "v0.26.0 (go1.26.0)"."""
    asynq = next(
        (
            line.split()[-1]
            for line in (GO_DIR / "go.mod").read_text().splitlines()
            if "github.com/hibiken/asynq " in line
        ),
        "?",
    )
    go = find_go()
    if go is None:
        return asynq
    try:
        out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True,
                             timeout=30, check=False).stdout.strip()  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return f"{asynq} ({out})" if out else asynq
