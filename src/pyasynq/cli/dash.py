"""``pyasynq dash``: a live terminal view of the queues (sizes, latency, processing and
failure rates) and the running servers, redrawn in place every ``--interval`` seconds.
Ctrl-C quits. ``--once`` prints one frame and exits (for scripts and tests).

Rates are the change of each queue's all-time processed/failed counters between two
refreshes, so they cover every server writing to this Redis, Go ones included.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pyasynq._sync.connection import describe
from pyasynq.errors import PyAsynqError
from pyasynq.inspection import QueueInfo, ServerInfo

from . import output as out
from .common import UsageError
from .server import queues_text, uptime

if TYPE_CHECKING:
    from rich.console import RenderableType

    from pyasynq._sync.inspector import Inspector


# Module-level so tests can drive the refresh loop without waiting.
sleep = time.sleep
monotonic = time.monotonic


def register(sub: Any) -> None:
    p = sub.add_parser("dash", help="live view of queues, rates and servers (Ctrl-C quits)")
    p.add_argument("-n", "--interval", type=float, default=2.0,
                   help="seconds between refreshes (default 2)")  # fmt: skip
    p.add_argument("--once", action="store_true", help="print one frame and exit")
    p.set_defaults(func=run)


@dataclass
class Sample:
    at: float  # monotonic() of the read
    queues: list[QueueInfo] = field(default_factory=list)
    servers: list[ServerInfo] = field(default_factory=list)
    error: str | None = None


def take(insp: Inspector) -> Sample:
    at = monotonic()
    try:
        return Sample(at, out.queue_infos(insp), insp.servers())
    except PyAsynqError as exc:  # Redis went away: keep the view up and say so
        return Sample(at, error=str(exc))


def rates(prev: Sample | None, cur: Sample) -> dict[str, tuple[float, float]]:
    """Queue -> (processed/s, failed/s) between two samples."""
    if prev is None or cur.at <= prev.at:
        return {}
    before = {q.queue: q for q in prev.queues}
    dt = cur.at - prev.at
    out_: dict[str, tuple[float, float]] = {}
    for q in cur.queues:
        b = before.get(q.queue)
        if b is not None:
            # A counter that wrapped (or a queue recreated) reads as 0, not negative.
            out_[q.queue] = (
                max(0, q.processed_total - b.processed_total) / dt,
                max(0, q.failed_total - b.failed_total) / dt,
            )
    return out_


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def view(where: str, cur: Sample, prev: Sample | None, interval: float) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    now = datetime.now(UTC)
    head = Text.assemble(
        ("pyasynq dash", "bold"),
        f"  {where}  {now:%Y-%m-%d %H:%M:%S} UTC  every {out.fmt_duration(interval)}",
        "  (Ctrl-C to quit)",
    )
    parts: list[RenderableType] = [head]
    if cur.error:
        parts.append(Text(f"Redis: {cur.error}; retrying", style="bold red"))
    per_sec = rates(prev, cur)
    q_t = out.table("Queue", "State", "Size>", "Pending>", "Active>", "Sched>", "Retry>",
                    "Archived>", "Latency>", "Proc/s>", "Fail/s>", "Err today>",
                    title="Queues")  # fmt: skip
    for q in cur.queues:
        p, f = per_sec.get(q.queue, (None, None))
        q_t.add_row(
            q.queue,
            Text("paused", style="yellow") if q.paused else "run",
            str(q.size),
            str(q.pending),
            str(q.active),
            str(q.scheduled),
            str(q.retry),
            str(q.archived),
            out.fmt_duration(q.latency.total_seconds()),
            _rate(p),
            _rate(f),
            out.error_rate(q.processed, q.failed),
        )
    parts.append(q_t if cur.queues else Text("No queues yet."))
    s_t = out.table("Host", "PID>", "Status", "Busy>", "Queues (priority)", "Uptime>",
                    title="Servers")  # fmt: skip
    for s in cur.servers:
        s_t.add_row(s.host, str(s.pid), s.status, f"{len(s.active_workers)}/{s.concurrency}",
                    queues_text(s), uptime(s, now))  # fmt: skip
    parts.append(s_t if cur.servers else Text("No running servers."))
    return Group(*parts)


@out.command
def run(args: argparse.Namespace) -> int:
    if args.interval <= 0:
        raise UsageError("--interval must be a positive number of seconds")
    with out.connect(args) as insp:
        where = describe(out.broker_for(insp).redis)
        con = out.console()
        cur = take(insp)
        if args.once:
            con.print(view(where, cur, None, args.interval))
            return 0
        from rich.live import Live

        try:
            with Live(view(where, cur, None, args.interval), console=con,
                      auto_refresh=False, screen=False) as live:  # fmt: skip
                while True:
                    sleep(args.interval)
                    prev, cur = cur, take(insp)
                    live.update(view(where, cur, prev, args.interval), refresh=True)
        except KeyboardInterrupt:
            return 0
