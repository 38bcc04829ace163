"""Go asynq, from binaries the user built (benchmarks/go; --go-bin DIR). The Go `client`
times single-call enqueues; pre-fills and latency probes use pyasynq's Client, which
writes the same wire format (asynq has no batch enqueue API: that column is n/a)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from typing import Any, NoReturn
from urllib.parse import urlparse

import pyasynq

NO_BATCH = "asynq has no batch enqueue API"


def _bin(name: str) -> str:
    path = os.path.join(os.environ.get("BENCH_GO_BIN", ""), name)
    if not os.access(path, os.X_OK):
        raise SystemExit(f"no Go binary {path}: build benchmarks/go and pass --go-bin")
    return path


def _addr(url: str) -> tuple[str, str]:
    u = urlparse(url)
    return f"{u.hostname}:{u.port or 6379}", (u.path.lstrip("/") or "0")


def connect(url: str) -> pyasynq.Client:
    return pyasynq.Client(url)


def enqueue(client: pyasynq.Client, kind: str, i: int) -> None:
    client.enqueue(pyasynq.Task(f"bench:{kind}", b"%d" % i if kind == "lat" else b""))


def enqueue_batch(client: pyasynq.Client, kind: str, ids: list[int]) -> None:
    """For pre-filling only: the "batch" column is NO_BATCH (see enqueue_benchmark)."""
    for result in client.enqueue_many([pyasynq.Task(f"bench:{kind}", b"") for _ in ids]):
        if result.error is not None:
            raise result.error


def close(client: pyasynq.Client) -> None:
    client.close()


def enqueue_benchmark(a: argparse.Namespace) -> dict[str, Any]:
    if a.mode == "batch":
        return {"na": NO_BATCH}
    addr, db = _addr(a.url)
    out = subprocess.run(
        [
            _bin("client"),
            "-redis-addr",
            addr,
            "-redis-db",
            db,
            "-n",
            str(a.n),
            "-warmup",
            str(a.warmup),
            "-kind",
            a.kind,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run_worker(url: str, concurrency: int) -> NoReturn:
    addr, db = _addr(url)
    exe = _bin("worker")
    os.execv(exe, [exe, "-redis-addr", addr, "-redis-db", db, "-concurrency", str(concurrency)])
