"""examples/otel_tracing runs as its docs page says and prints one trace."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs the integrations-test group")

ROOT = Path(__file__).resolve().parents[2]


def _spans(out: str) -> list[dict[str, object]]:
    """The JSON objects ConsoleSpanExporter printed, one after another."""
    dec, spans, i = json.JSONDecoder(), [], 0
    while (i := out.find("{", i)) >= 0:
        obj, i = dec.raw_decode(out, i)
        spans.append(obj)
    return spans


def test_example_prints_one_trace(pyasynq_redis_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.otel_tracing.app", pyasynq_redis_url],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    spans = _spans(done.stdout)
    names = sorted(str(s["name"]) for s in spans)
    assert names == ["enqueue default", "process default", "process default", "render", "render"]
    assert len({s["context"]["trace_id"] for s in spans}) == 1  # type: ignore[index]
