"""``pyasynq cron ls`` and ``pyasynq cron history ENTRY_ID``: periodic tasks of the
running schedulers and what they enqueued."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from . import output as out


def register(sub: Any) -> None:
    p = sub.add_parser("cron", help="periodic tasks (scheduler entries)")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    v = verbs.add_parser("ls", aliases=["list"], help="entries of the running schedulers")
    out.add_read_flags(v)
    v.set_defaults(func=ls)
    v = verbs.add_parser("history", help="tasks an entry enqueued, newest first")
    v.add_argument("entry_ids", nargs="+", metavar="ENTRY_ID")
    v.add_argument("--page", type=out.positive_int, default=1, help="page number (from 1)")
    v.add_argument("--size", type=out.positive_int, default=30, help="events per page (30)")
    out.add_read_flags(v)
    v.set_defaults(func=history)


@out.command
def ls(args: argparse.Namespace) -> int:
    with out.connect(args) as insp:
        entries = insp.scheduler_entries()
    if args.json:
        out.print_json(entries)
        return 0
    con = out.console()
    if not entries:
        con.print("No scheduler entries (no scheduler is running).")
        return 0
    now = datetime.now(UTC)
    t = out.table("Entry ID", "Spec", "Type", "Payload", "Options", "Next", "Previous")
    for e in entries:
        t.add_row(
            e.id,
            e.spec,
            e.task_type,
            out.short_bytes(e.task_payload, 40),
            " ".join(e.raw_options) or "-",
            out.fmt_time(e.next_enqueue_at, now),
            out.fmt_time(e.prev_enqueue_at, now),
        )
    con.print(t)
    return 0


@out.command
def history(args: argparse.Namespace) -> int:
    with out.connect(args) as insp:
        events = {
            e: insp.list_scheduler_enqueue_events(e, page_size=args.size, page=args.page)
            for e in args.entry_ids
        }
    if args.json:
        out.print_json([{"entry_id": e, **out.jsonable(ev)} for e, evs in events.items()
                        for ev in evs])  # fmt: skip
        return 0
    con = out.console()
    now = datetime.now(UTC)
    t = out.table("Entry ID", "Enqueued at", "Task ID")
    for e, evs in events.items():
        for ev in evs:
            t.add_row(e, out.fmt_time(ev.enqueued_at, now), ev.task_id)
    if t.row_count:
        con.print(t)
    else:
        con.print("No enqueue events for " + ", ".join(repr(e) for e in args.entry_ids) + ".")
    return 0
