"""The pyasynq side of the interop tests, run as a real worker process:
``python -m pyasynq worker py_app:handler --config py_app:config``.

Behaviour mirrors the Go server program (go/cmd/server): ``INTEROP_HANDLE`` is a JSON
object of task type -> behaviour (``fail=N|always,sleep=SECONDS,result=TEXT``; type ``*``
is the fallback), ``INTEROP_RECORD`` is the file every handler event is appended to as
a JSON line, and ``INTEROP_CONFIG`` is a JSON object of ServerConfig fields that override
the fast test timings below (plus ``retry_delay``: seconds before every retry, default 0).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import pyasynq
from pyasynq.config import ServerConfig
from pyasynq.context import current_task

_handles: dict[str, str] = json.loads(os.environ.get("INTEROP_HANDLE", "{}"))
_record = os.environ.get("INTEROP_RECORD", "")


def _behaviour(spec: str) -> dict[str, Any]:
    out: dict[str, Any] = {"fail": 0, "sleep": 0.0, "result": ""}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, _, value = item.partition("=")
        if key == "fail":
            out["fail"] = -1 if value == "always" else int(value)
        elif key == "sleep":
            out["sleep"] = float(value)
        elif key == "result":
            out["result"] = value
        elif key != "ok":
            raise ValueError(f"unknown behaviour {key!r} in INTEROP_HANDLE")
    return out


_behaviours = {t: _behaviour(s) for t, s in _handles.items()}


def _event(name: str, **fields: Any) -> None:
    if not _record:
        return
    line = json.dumps({"event": name, "pid": os.getpid(), "t": time.time(), **fields})
    with open(_record, "a") as f:  # one write per line; O_APPEND keeps lines whole
        f.write(line + "\n")


async def handler(task: pyasynq.Task) -> None:
    b = _behaviours.get(task.type) or _behaviours.get("*") or _behaviour("")
    ctx = current_task()
    base = {
        "id": ctx.id, "type": task.type, "payload": (task.payload or b"").decode(),
        "queue": ctx.queue, "retried": ctx.retry_count, "max_retry": ctx.max_retry,
        "headers": task.headers, "deadline": ctx.deadline.timestamp(),
    }  # fmt: skip
    _event("start", **base)
    if b["sleep"]:
        try:
            await asyncio.sleep(b["sleep"])
        except asyncio.CancelledError:
            _event("canceled", **base)
            raise
    if b["fail"] < 0 or ctx.retry_count < b["fail"]:
        _event("fail", **base)
        raise RuntimeError(f"interop: {task.type} fails on attempt {ctx.retry_count + 1}")
    if b["result"]:
        text = b["result"].replace("{payload}", base["payload"]).replace("{id}", ctx.id)
        await ctx.result_writer.write(text.encode())
    _event("done", **base)


_overrides: dict[str, Any] = json.loads(os.environ.get("INTEROP_CONFIG", "{}"))
_retry_delay = float(_overrides.pop("retry_delay", 0.0))


def _fixed_delay(retried: int, error: BaseException, task: pyasynq.Task) -> float:
    return _retry_delay


def _aggregate(group: str, tasks: list[pyasynq.Task]) -> pyasynq.Task:
    _event("aggregate", group=group, size=len(tasks))
    kind = os.environ.get("INTEROP_AGGREGATE_TYPE", "aggregated")
    return pyasynq.Task(kind, b",".join(t.payload or b"" for t in tasks))


_fast: dict[str, Any] = {
    "concurrency": 10,
    "heartbeat_interval": 0.3,
    "lease_duration": 1.0,
    "recoverer_interval": 0.5,
    "delayed_task_check_interval": 0.2,
    "task_check_interval": 0.1,
    "shutdown_timeout": 2,
    "syncer_interval": 0.5,
    "janitor_interval": 0.5,
    "health_check_interval": 1,
    "retry_delay_func": _fixed_delay,
    "group_aggregator": _aggregate if os.environ.get("INTEROP_AGGREGATE_TYPE") else None,
}
config = ServerConfig(**{**_fast, **_overrides})
