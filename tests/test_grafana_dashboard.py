"""contrib/grafana/pyasynq.json: generated from scripts/grafana_dashboard.py, a well-formed
dashboard, and every metric and label its queries name is one the exporters really
export (asynq's queue metrics from a real Redis, the worker metrics after real calls)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

pytest.importorskip("prometheus_client", reason="needs the prometheus extra")

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pyasynq import Client, Inspector, Task
from pyasynq._rdb.codec import TaskMessage
from pyasynq.metrics import QueueMetricsCollector, WorkerMetrics

ROOT = Path(__file__).resolve().parents[1]
METRIC = re.compile(r"\b((?:asynq|pyasynq)_[a-z_]+)\b")
BY = re.compile(r"by \(([^)]*)\)")
SELECTOR_LABELS = re.compile(r"([a-z_]+)=~?\"")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "grafana_dashboard", ROOT / "scripts" / "grafana_dashboard.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "contrib" / "grafana" / "pyasynq.json").read_text())
    return data


def test_the_committed_json_is_what_the_generator_builds() -> None:
    gen = _generator()
    assert gen.render() == (ROOT / "contrib" / "grafana" / "pyasynq.json").read_text(), (
        "run python scripts/grafana_dashboard.py"
    )
    assert gen.main(["--check"]) == 0


def test_the_dashboard_is_well_formed() -> None:
    d = _dashboard()
    assert d["uid"] and d["title"] and isinstance(d["schemaVersion"], int)
    panels = d["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    variables = {v["name"] for v in d["templating"]["list"]}
    assert variables == {"datasource", "queue", "type"}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert p["targets"], p["title"]
        for t in p["targets"]:
            expr = t["expr"]
            assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}")
            assert set(re.findall(r"\$(\w+)", expr)) <= variables | {"__rate_interval"}
    # No two panels overlap on the grid.
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, p["title"]
        cells |= mine


def _exported(redis_url: str) -> dict[str, set[str]]:
    """Sample name -> label names, from real expositions of both exporters."""
    with Client(redis_url) as client:
        client.enqueue(Task("t"), queue="q")
    registry = CollectorRegistry()
    with Inspector(redis_url) as inspector:
        registry.register(QueueMetricsCollector(inspector))
        text = generate_latest(registry).decode()
    worker = WorkerMetrics()
    msg = TaskMessage(type="t", id="1", queue="q", retry=1)
    worker(msg, 0.1, None)
    worker(msg, 0.1, ValueError("x"))
    worker.task_started(msg, 0.5)
    text += generate_latest(worker.registry).decode()
    out: dict[str, set[str]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, set()).update(s.labels)
    return out


def test_every_query_names_exported_metrics_and_labels(redis_url: str, r: redis.Redis) -> None:
    exported = _exported(redis_url)
    d = _dashboard()
    queries = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    queries += [v["definition"] for v in d["templating"]["list"] if "definition" in v]
    named: set[str] = set()
    for q in queries:
        metrics = set(METRIC.findall(q))
        assert metrics, q
        unknown = metrics - set(exported)
        assert not unknown, f"{q}: not exported: {unknown}"
        named |= metrics
        labels = set().union(*(exported[m] for m in metrics))
        used = set(SELECTOR_LABELS.findall(q))
        for group in BY.findall(q):
            used |= {x.strip() for x in group.split(",")}
        assert used <= labels, f"{q}: labels {used - labels} are not exported"
    # The dashboard covers the new per-type metrics.
    assert {
        "pyasynq_task_outcomes_total",
        "pyasynq_task_duration_seconds_bucket",
        "pyasynq_task_queue_wait_seconds_bucket",
        "asynq_queue_latency_seconds",
    } <= named
