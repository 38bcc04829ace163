"""``pyasynq group ls --queue Q``: the queue's groups of aggregating tasks."""

from __future__ import annotations

import argparse
from typing import Any

from . import output as out


def register(sub: Any) -> None:
    p = sub.add_parser("group", help="groups of aggregating tasks")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    v = verbs.add_parser("ls", aliases=["list"], help="the queue's groups and their sizes")
    v.add_argument("-q", "--queue", required=True, help="queue name")
    out.add_read_flags(v)
    v.set_defaults(func=ls)


@out.command
def ls(args: argparse.Namespace) -> int:
    with out.connect(args) as insp:
        groups = insp.groups(args.queue)
    if args.json:
        out.print_json(groups)
        return 0
    con = out.console()
    if not groups:
        con.print(f"No groups with aggregating tasks in queue {args.queue!r}.")
        return 0
    t = out.table("Group", "Size>")
    for g in groups:
        t.add_row(g.group, str(g.size))
    con.print(t)
    return 0
