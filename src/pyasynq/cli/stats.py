"""``pyasynq stats``: every queue at a glance, today's totals, and the Redis server."""

from __future__ import annotations

import argparse
from typing import Any

from pyasynq._rdb.ops import Command
from pyasynq._rdb.ops.settings import RedisSettings
from pyasynq.errors import BrokerError
from pyasynq.inspection import QueueInfo

from . import output as out

STATE_COLUMNS = ("pending", "active", "scheduled", "retry", "archived", "completed", "aggregating")
REDIS_FIELDS = (
    "redis_version",
    "redis_mode",
    "uptime_in_seconds",
    "connected_clients",
    "used_memory",
    "used_memory_human",
    "used_memory_peak_human",
    "maxmemory_policy",
)


def register(sub: Any) -> None:
    p = sub.add_parser("stats", help="queues, task counts by state, today's totals, Redis")
    out.add_read_flags(p)
    p.set_defaults(func=run)


def totals(infos: list[QueueInfo]) -> dict[str, int]:
    keys = ("size", *STATE_COLUMNS, "processed", "failed", "processed_total", "failed_total")
    return {k: sum(getattr(i, k) for i in infos) for k in keys}


def redis_info(inspector: Any) -> dict[str, Any]:
    """The INFO fields worth showing; {} when INFO is refused (managed Redis may)."""
    try:
        info = out.broker_for(inspector).run(Command(("INFO",)))
    except BrokerError:
        return {}
    if not isinstance(info, dict):
        return {}
    return {k: info[k] for k in REDIS_FIELDS if k in info}


def redis_settings(inspector: Any) -> RedisSettings:
    """Eviction policy and persistence: whether Redis itself may lose tasks."""
    settings: RedisSettings = out.broker_for(inspector).redis_settings()
    return settings


@out.command
def run(args: argparse.Namespace) -> int:
    with out.connect(args) as insp:
        infos = out.queue_infos(insp)
        redis = redis_info(insp)
        settings = redis_settings(insp)
    sums = totals(infos)
    if args.json:
        out.print_json({"queues": infos, "totals": sums, "redis": {**redis, **settings.as_dict()}})
        return 0
    con = out.console()
    t = out.table("Queue", "Paused", "Size>", *(f"{c.capitalize()}>" for c in STATE_COLUMNS),
                  "Latency>", title="Queues")  # fmt: skip
    for i in infos:
        t.add_row(
            i.queue,
            "paused" if i.paused else "",
            str(i.size),
            *(str(getattr(i, c)) for c in STATE_COLUMNS),
            out.fmt_duration(i.latency.total_seconds()),
        )
    if infos:
        t.add_section()
        t.add_row("total", "", str(sums["size"]), *(str(sums[c]) for c in STATE_COLUMNS), "")
        con.print(t)
    else:
        con.print("No queues yet: nothing was ever enqueued to this Redis.")
    daily = out.table("Processed>", "Succeeded>", "Failed>", "Error rate>",
                      title="Today (UTC), all queues")  # fmt: skip
    daily.add_row(
        str(sums["processed"]),
        str(sums["processed"] - sums["failed"]),
        str(sums["failed"]),
        out.error_rate(sums["processed"], sums["failed"]),
    )
    con.print(daily)
    if redis:
        r = out.table("Version", "Mode", "Uptime>", "Clients>", "Memory>", "Peak memory>",
                      title="Redis")  # fmt: skip
        r.add_row(
            str(redis.get("redis_version", "?")),
            str(redis.get("redis_mode", "?")),
            out.fmt_duration(float(redis.get("uptime_in_seconds", 0))),
            str(redis.get("connected_clients", "?")),
            str(redis.get("used_memory_human", "?")),
            str(redis.get("used_memory_peak_human", "?")),
        )
        con.print(r)
    policy = settings.policy or "unknown"
    con.print(
        f"Eviction policy: {policy}    Persistence: {settings.describe_persistence()}",
        markup=False,
    )
    for warning in settings.warnings():
        con.print(f"Warning: {warning}", style="bold yellow", markup=False)
    return 0
