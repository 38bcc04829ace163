"""``pyasynq server ls``: the running servers and what their workers are doing."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from pyasynq.inspection import ServerInfo

from . import output as out


def register(sub: Any) -> None:
    p = sub.add_parser("server", help="running servers (workers)")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    v = verbs.add_parser("ls", aliases=["list"], help="servers alive at their last heartbeat")
    out.add_read_flags(v)
    v.set_defaults(func=ls)


def queues_text(s: ServerInfo) -> str:
    mode = " (strict)" if s.strict_priority else ""
    by_prio = sorted(s.queues.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{q}:{p}" for q, p in by_prio) + mode


def uptime(s: ServerInfo, now: datetime) -> str:
    return out.fmt_duration((now - s.started).total_seconds()) if s.started else "-"


@out.command
def ls(args: argparse.Namespace) -> int:
    with out.connect(args) as insp:
        servers = insp.servers()
    if args.json:
        out.print_json(servers)
        return 0
    con = out.console()
    if not servers:
        con.print("No running servers.")
        return 0
    now = datetime.now(UTC)
    t = out.table("Host", "PID>", "Server ID", "Status", "Busy>", "Queues (priority)", "Uptime>")
    for s in servers:
        t.add_row(
            s.host,
            str(s.pid),
            s.id,
            s.status,
            f"{len(s.active_workers)}/{s.concurrency}",
            queues_text(s),
            uptime(s, now),
        )
    con.print(t)
    busy = [(s, w) for s in servers for w in s.active_workers]
    if busy:
        w_t = out.table("Server", "Task ID", "Type", "Queue", "Payload", "Started", "Deadline",
                        title="Active workers")  # fmt: skip
        for s, w in busy:
            w_t.add_row(
                f"{s.host}:{s.pid}",
                w.task_id,
                w.task_type,
                w.queue,
                out.short_bytes(w.task_payload, 40),
                out.fmt_time(w.started, now),
                out.fmt_time(w.deadline, now),
            )
        con.print(w_t)
    return 0
