"""Build contrib/grafana/pyasynq.json, the Grafana dashboard over asynq's queue metrics
(``asynq_*``, :class:`pyasynq.metrics.QueueMetricsCollector`) and the worker metrics
(``pyasynq_*``, :class:`pyasynq.metrics.WorkerMetrics`).

The JSON is generated from this file: edit the panels here, then run
``python scripts/grafana_dashboard.py``. ``--check`` exits 1 when the committed JSON
differs from what this file builds; tests/test_grafana_dashboard.py also checks that every
metric an expression names is one the exporters really export.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "contrib" / "grafana" / "pyasynq.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "[$__rate_interval]"
Q = 'queue=~"$queue"'
QT = 'queue=~"$queue", type=~"$type"'


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"refId": ref, "datasource": DS, "expr": expr, "legendFormat": legend}


class Layout:
    """Places panels left to right on Grafana's 24-column grid, rows top to bottom."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.x = self.y = 0
        self.row_h = 0

    def _id(self) -> int:
        return len(self.panels) + 1

    def row(self, title: str) -> None:
        self.y += self.row_h
        self.x, self.row_h = 0, 0
        self.panels.append(
            {
                "id": self._id(),
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def panel(
        self,
        title: str,
        targets: list[tuple[str, str]],
        *,
        unit: str = "short",
        kind: str = "timeseries",
        w: int = 8,
        h: int = 8,
        stack: bool = False,
        description: str = "",
    ) -> None:
        if self.x + w > 24:
            self.y += self.row_h
            self.x, self.row_h = 0, 0
        custom: dict[str, Any] = {}
        options: dict[str, Any] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}
        }
        if kind == "timeseries":
            mode = "normal" if stack else "none"
            custom = {
                "fillOpacity": 20 if stack else 0,
                "lineWidth": 1,
                "stacking": {"mode": mode, "group": "A"},
            }
            options = {
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"},
            }
        self.panels.append(
            {
                "id": self._id(),
                "type": kind,
                "title": title,
                "description": description,
                "datasource": DS,
                "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
                "targets": [
                    _target(expr, legend, chr(ord("A") + i))
                    for i, (expr, legend) in enumerate(targets)
                ],
                "fieldConfig": {"defaults": {"unit": unit, "custom": custom}, "overrides": []},
                "options": options,
            }
        )
        self.x += w
        self.row_h = max(self.row_h, h)


def _quantiles(metric: str) -> list[tuple[str, str]]:
    return [
        (
            f"histogram_quantile({p}, sum by (le, type) (rate({metric}_bucket{{{QT}}}{RATE})))",
            f"{{{{type}}}} p{int(p * 100)}",
        )
        for p in (0.5, 0.95, 0.99)
    ]


def build() -> dict[str, Any]:
    g = Layout()
    g.row("Queues (asynq metrics, from Redis)")
    g.panel(
        "Tasks by state",
        [(f"sum by (state) (asynq_tasks_enqueued_total{{{Q}}})", "{{state}}")],
        stack=True,
        description="Tasks in each state, all selected queues.",
    )
    g.panel(
        "Queue latency",
        [(f"max by (queue) (asynq_queue_latency_seconds{{{Q}}})", "{{queue}}")],
        unit="s",
        description="Age of the oldest pending task.",
    )
    g.panel(
        "Processed and failed per second",
        [
            (
                f"sum by (queue) (rate(asynq_tasks_processed_total{{{Q}}}{RATE}))",
                "{{queue}} processed",
            ),
            (f"sum by (queue) (rate(asynq_tasks_failed_total{{{Q}}}{RATE}))", "{{queue}} failed"),
        ],
        unit="ops",
    )
    g.panel("Queue size", [(f"sum by (queue) (asynq_queue_size{{{Q}}})", "{{queue}}")])
    g.panel(
        "Memory (approx.)",
        [(f"sum by (queue) (asynq_queue_memory_usage_approx_bytes{{{Q}}})", "{{queue}}")],
        unit="bytes",
    )
    g.panel("Paused queues", [(f"sum(asynq_queue_paused_total{{{Q}}})", "paused")], kind="stat")
    g.row("Task types (pyasynq worker metrics, from each worker's /metrics)")
    g.panel(
        "Outcomes per second",
        [
            (f"sum by (outcome) (rate(pyasynq_task_outcomes_total{{{QT}}}{RATE}))", "{{outcome}}"),
        ],
        unit="ops",
        stack=True,
        description="succeeded, retried, archived, revoked or snoozed, per handler run.",
    )
    g.panel(
        "Throughput by type",
        [
            (f"sum by (type) (rate(pyasynq_tasks_processed_total{{{QT}}}{RATE}))", "{{type}}"),
        ],
        unit="ops",
    )
    g.panel(
        "Failure ratio by type",
        [
            (
                f"sum by (type) (rate(pyasynq_tasks_failed_total{{{QT}}}{RATE})) / "
                f"sum by (type) (rate(pyasynq_tasks_processed_total{{{QT}}}{RATE}))",
                "{{type}}",
            )
        ],
        unit="percentunit",
    )
    g.panel(
        "Handler duration",
        _quantiles("pyasynq_task_duration_seconds"),
        unit="s",
        w=12,
        description="Handler wall time, quantiles per task type.",
    )
    g.panel(
        "Queue wait",
        _quantiles("pyasynq_task_queue_wait_seconds"),
        unit="s",
        w=12,
        description="From becoming pending (enqueued, or due and forwarded) to the "
        "handler's start, quantiles per task type.",
    )
    return {
        "title": "pyasynq",
        "uid": "pyasynq-overview",
        "description": "asynq queue metrics and pyasynq worker metrics per task type",
        "tags": ["pyasynq", "asynq"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                _var("queue", "label_values(asynq_queue_size, queue)"),
                _var("type", "label_values(pyasynq_tasks_processed_total, type)"),
            ]
        },
        "panels": g.panels,
    }


def _var(name: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": name,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {},
        "refresh": 2,
        "sort": 1,
        "hide": 0,
        "options": [],
    }


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python scripts/grafana_dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
