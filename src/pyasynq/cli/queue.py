"""``pyasynq queue ls|inspect|history|pause|unpause|rm``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pyasynq.errors import QueueNotEmptyError
from pyasynq.inspection import LimitInfo, QueueInfo

from . import output as out
from .stats import STATE_COLUMNS


def register(sub: Any) -> None:
    p = sub.add_parser("queue", help="list, inspect, pause, unpause and remove queues")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    v = verbs.add_parser("ls", aliases=["list"], help="queue names")
    out.add_read_flags(v)
    v.set_defaults(func=ls)

    v = verbs.add_parser("inspect", help="sizes by state, latency, memory, counters")
    v.add_argument("queues", nargs="+", metavar="QUEUE")
    out.add_read_flags(v)
    v.set_defaults(func=inspect)

    v = verbs.add_parser("history", help="processed and failed per day")
    v.add_argument("queues", nargs="+", metavar="QUEUE")
    v.add_argument("-x", "--days", type=out.positive_int, default=7,
                   help="days to show, today first (default 7)")  # fmt: skip
    out.add_read_flags(v)
    v.set_defaults(func=history)

    v = verbs.add_parser("pause", help="stop servers from taking tasks from the queues")
    v.add_argument("queues", nargs="+", metavar="QUEUE")
    v.add_argument("--allow-unknown", action="store_true",
                   help="pause a queue that has no task yet, so that it starts paused")  # fmt: skip
    v.set_defaults(func=pause)

    v = verbs.add_parser("unpause", aliases=["resume"], help="let servers take tasks again")
    v.add_argument("queues", nargs="+", metavar="QUEUE")
    v.set_defaults(func=unpause)

    v = verbs.add_parser("rm", aliases=["remove", "delete"], help="remove queues")
    v.add_argument("queues", nargs="+", metavar="QUEUE")
    v.add_argument("-f", "--force", action="store_true",
                   help="remove even with tasks in it (never while tasks are active)")  # fmt: skip
    v.set_defaults(func=rm)


@out.command
def ls(args: argparse.Namespace) -> int:
    with out.connect(args) as insp:
        names = insp.queues()
    if args.json:
        out.print_json(names)
    else:
        for name in names:
            print(name)
    return 0


def _render_limits(con: Any, limits: list[LimitInfo]) -> None:
    """Fleet-wide limits in use (pyasynq only): running/cap, starts/rate, waiting."""
    t = out.table("Limit", "Running>", "Started>", "Waiting>", title="Fleet-wide limits")
    for lim in limits:
        running = f"{lim.running}/{lim.concurrency}" if lim.concurrency else str(lim.running)
        started = f"{lim.started}/{lim.rate} per {lim.per:g}s" if lim.rate else "-"
        t.add_row(lim.name, running, started, str(lim.waiting))
    con.print(t)


def _render_info(con: Any, i: QueueInfo) -> None:
    head = out.table("Queue", "Paused", "Size>", "Groups>", "Latency>", "Memory>",
                     "Processed today>", "Failed today>", "Error rate>",
                     "Processed total>", "Failed total>")  # fmt: skip
    head.add_row(
        i.queue,
        "yes" if i.paused else "no",
        str(i.size),
        str(i.groups),
        out.fmt_duration(i.latency.total_seconds()),
        out.fmt_bytes(i.memory_usage),
        str(i.processed),
        str(i.failed),
        out.error_rate(i.processed, i.failed),
        str(i.processed_total),
        str(i.failed_total),
    )
    con.print(head)
    states = out.table(*(f"{c.capitalize()}>" for c in STATE_COLUMNS), title="Tasks by state")
    states.add_row(*(str(getattr(i, c)) for c in STATE_COLUMNS))
    con.print(states)


@out.command
def inspect(args: argparse.Namespace) -> int:
    with out.connect(args) as insp:
        infos = [insp.get_queue_info(q) for q in args.queues]
        limits = [insp.get_limits(q) for q in args.queues]
    if args.json:
        out.print_json(infos)
        return 0
    con = out.console()
    for n, info in enumerate(infos):
        if n:
            con.print()
        _render_info(con, info)
        if limits[n]:
            _render_limits(con, limits[n])
    return 0


@out.command
def history(args: argparse.Namespace) -> int:
    with out.connect(args) as insp:
        days = [d for q in args.queues for d in insp.history(q, args.days)]
    if args.json:
        out.print_json(days)
        return 0
    t = out.table("Queue", "Date (UTC)", "Processed>", "Succeeded>", "Failed>", "Error rate>")
    for d in days:
        t.add_row(
            d.queue,
            d.date.isoformat(),
            str(d.processed),
            str(d.processed - d.failed),
            str(d.failed),
            out.error_rate(d.processed, d.failed),
        )
    out.console().print(t)
    return 0


@out.command
def pause(args: argparse.Namespace) -> int:
    with out.connect(args) as insp:
        known = set(insp.queues())
        unknown = [q for q in args.queues if q not in known]
        if unknown and not args.allow_unknown:
            # A name never used looks like a typo: setting the flag (as asynq would) would
            # leave the real queue running. Nothing is paused then.
            names = ", ".join(repr(q) for q in unknown)
            what = f"queue {names} does not" if len(unknown) == 1 else f"queues {names} do not"
            print(
                f"pyasynq: {what} exist; check the name (pyasynq queue ls), or pass "
                "--allow-unknown to pause before the first task",
                file=sys.stderr,
            )
            return 1
        for q in args.queues:
            insp.pause_queue(q)
            print(f"Paused queue {q!r}")
    return 0


@out.command
def unpause(args: argparse.Namespace) -> int:
    with out.connect(args) as insp:
        for q in args.queues:
            insp.unpause_queue(q)
            print(f"Unpaused queue {q!r}")
    return 0


@out.command
def rm(args: argparse.Namespace) -> int:
    with out.connect(args) as insp:
        for q in args.queues:
            try:
                insp.delete_queue(q, force=args.force)
            except QueueNotEmptyError:
                # The library's message speaks of force=True; here it is a flag.
                print(
                    f"pyasynq: queue {q!r} is not empty; pass --force to remove it with its tasks",
                    file=sys.stderr,
                )
                return 1
            print(f"Removed queue {q!r}")
    return 0
