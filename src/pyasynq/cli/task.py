"""``pyasynq task ls|inspect|wait|cancel|archive|delete|run|archiveall|deleteall|runall|
enqueue``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyasynq._rdb.goopts import parse_go_duration
from pyasynq.task import Task, TaskInfo, TaskProgress, TaskState

from . import output as out
from .common import UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from pyasynq._sync.inspector import Inspector

S = TaskState
RUN_ALL = (S.SCHEDULED, S.RETRY, S.ARCHIVED, S.AGGREGATING)
ARCHIVE_ALL = (S.PENDING, S.SCHEDULED, S.RETRY, S.AGGREGATING)
DELETE_ALL = (S.PENDING, S.SCHEDULED, S.RETRY, S.ARCHIVED, S.COMPLETED, S.AGGREGATING)


def register(sub: Any) -> None:
    p = sub.add_parser("task", help="list, inspect and act on tasks; enqueue one")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    v = verbs.add_parser("ls", aliases=["list"], help="one page of the tasks in a state")
    _queue(v)
    v.add_argument("-s", "--state", required=True, help=f"one of {', '.join(out.STATES)}")
    v.add_argument("-g", "--group", help="the group (required for aggregating tasks)")
    v.add_argument("--page", type=out.positive_int, default=1, help="page number (from 1)")
    v.add_argument("--size", type=out.positive_int, default=30, help="tasks per page (30)")
    out.add_read_flags(v)
    v.set_defaults(func=ls)

    v = verbs.add_parser("inspect", help="everything about one task")
    _queue(v)
    _id(v)
    out.add_read_flags(v)
    v.set_defaults(func=inspect)

    _register_wait(verbs)

    v = verbs.add_parser("cancel", help="ask the servers to cancel running tasks")
    v.add_argument("ids", nargs="+", metavar="TASK_ID")
    v.set_defaults(func=cancel)

    for verb, func, text in (
        ("archive", archive, "archive a task"),
        ("delete", delete, "delete a task that is not running"),
        ("run", run_one, "move a scheduled, retry, archived, completed or aggregating task "
                         "to pending"),
    ):  # fmt: skip
        v = verbs.add_parser(verb, help=text, aliases=["rm", "remove"] if verb == "delete" else [])
        _queue(v)
        _id(v)
        v.set_defaults(func=func)

    for verb, states, text in (
        ("archiveall", ARCHIVE_ALL, "archive every task in a state"),
        ("deleteall", DELETE_ALL, "delete every task in a state"),
        ("runall", RUN_ALL, "move every task in a state to pending"),
    ):
        v = verbs.add_parser(verb, help=text)
        _queue(v)
        v.add_argument("-s", "--state", required=True,
                       help=f"one of {', '.join(s.value for s in states)}")  # fmt: skip
        v.add_argument("-g", "--group", help="the group (required for aggregating tasks)")
        v.set_defaults(func=bulk, verb=verb, states=states)

    v = verbs.add_parser("enqueue", help="enqueue a task")
    v.add_argument("-t", "--type", required=True, help="task type, e.g. email:send")
    data = v.add_mutually_exclusive_group()
    data.add_argument("-p", "--payload", help="payload text (UTF-8)")
    data.add_argument("--payload-hex", help="payload bytes in hex")
    data.add_argument("--payload-file", help="read the payload from a file ('-' for stdin)")
    v.add_argument("-q", "--queue", help="queue (default: default)")
    v.add_argument("--max-retry", type=int, help="retries before archiving (default 25)")
    v.add_argument("--task-id", help="task id (default: a random UUID)")
    v.add_argument("--timeout", help="time limit per attempt: seconds or 1m30s")
    v.add_argument("--deadline", help="finish by: ISO 8601 time (UTC if no zone) or Unix s")
    v.add_argument("--process-in", help="run after this delay: seconds or 1m30s")
    v.add_argument("--process-at", help="run at: ISO 8601 time (UTC if no zone) or Unix s")
    v.add_argument("--unique", help="refuse duplicates (same type and payload) for this long")
    v.add_argument("--retention", help="keep the task this long after it succeeds")
    v.add_argument("--group", help="group for aggregation")
    v.add_argument("--header", action="append", default=[], metavar="KEY=VALUE",
                   help="task header, repeatable")  # fmt: skip
    out.add_read_flags(v)
    v.set_defaults(func=enqueue)


def _queue(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--queue", required=True, help="queue name")


def _id(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--id", required=True, help="task id")


# --- reading ------------------------------------------------------------------------------

Column = tuple[str, Callable[[TaskInfo, datetime], str]]


def _err(t: TaskInfo, _now: datetime) -> str:
    return t.last_err[:80] + ("…" if len(t.last_err) > 80 else "")


COMMON: list[Column] = [
    ("ID", lambda t, _: t.id),
    ("Type", lambda t, _: t.type),
    ("Payload", lambda t, _: out.short_bytes(t.payload)),
]
RETRIED: Column = ("Retried>", lambda t, _: f"{t.retried}/{t.max_retry}")
LAST_FAILED: Column = ("Last failed", lambda t, now: out.fmt_time(t.last_failed_at, now))
COLUMNS: dict[TaskState, list[Column]] = {
    S.PENDING: [*COMMON, RETRIED],
    S.ACTIVE: [
        *COMMON,
        ("Orphaned", lambda t, _: "yes" if t.is_orphaned else ""),
        RETRIED,
        ("Progress", lambda t, _: fmt_progress(t, 40)),
    ],
    S.SCHEDULED: [*COMMON, ("Process at", lambda t, now: out.fmt_time(t.next_process_at, now))],
    S.RETRY: [
        *COMMON,
        ("Next retry", lambda t, now: out.fmt_time(t.next_process_at, now)),
        RETRIED,
        LAST_FAILED,
        ("Last error", _err),
    ],
    S.ARCHIVED: [*COMMON, RETRIED, LAST_FAILED, ("Last error", _err)],
    S.COMPLETED: [
        *COMMON,
        ("Completed", lambda t, now: out.fmt_time(t.completed_at, now)),
        ("Result", lambda t, _: out.short_bytes(t.result, 40)),
    ],
    S.AGGREGATING: [*COMMON, ("Group", lambda t, _: t.group)],
}


@out.command
def ls(args: argparse.Namespace) -> int:
    state = out.parse_state(args.state)
    if state is S.AGGREGATING and not args.group:
        raise UsageError("aggregating tasks are listed per group: add --group GROUP")
    if state is not S.AGGREGATING and args.group:
        raise UsageError("--group applies only to --state aggregating")
    with out.connect(args) as insp, out.usage():
        tasks = insp.list_tasks(
            args.queue, state, group=args.group, page_size=args.size, page=args.page
        )
    if args.json:
        out.print_json(tasks)
        return 0
    con = out.console()
    if not tasks:
        where = f"group {args.group!r} of " if args.group else ""
        page = f" on page {args.page}" if args.page > 1 else ""
        con.print(f"No {state.value} tasks in {where}queue {args.queue!r}{page}.")
        return 0
    now = datetime.now(UTC)
    cols = COLUMNS[state]
    t = out.table(*(c for c, _ in cols))
    for task in tasks:
        t.add_row(*(f(task, now) for _, f in cols))
    con.print(t)
    if len(tasks) == args.size:
        con.print(
            f"Page {args.page}, {args.size} per page; more may follow: --page {args.page + 1}"
        )
    return 0


def fmt_progress(t: TaskInfo, width: int = 200) -> str:
    """``40% resized 4/10``: the last progress the task's handler reported, or ``-``."""
    p = t.progress
    if p is None:
        return "-"
    text = f"{p.fraction:.0%}" + (f" {p.message}" if p.message else "")
    return text[:width] + ("…" if len(text) > width else "")


def task_fields(t: TaskInfo) -> list[tuple[str, str]]:
    now = datetime.now(UTC)
    payload, kind = out.show_bytes(t.payload)
    rows = [
        ("ID", t.id),
        ("Queue", t.queue),
        ("Type", t.type),
        ("State", t.state.value + (" (orphaned: its worker is gone)" if t.is_orphaned else "")),
        (f"Payload ({kind})", payload),
        ("Headers", ", ".join(f"{k}={v}" for k, v in sorted(t.headers.items())) or "-"),
        ("Group", t.group or "-"),
        ("Retried", f"{t.retried} of {t.max_retry}"),
        ("Progress", fmt_progress(t)),
        ("Last error", t.last_err or "-"),
        ("Last failed", out.fmt_time(t.last_failed_at, now)),
        ("Timeout", out.fmt_duration(t.timeout.total_seconds()) if t.timeout else "-"),
        ("Deadline", out.fmt_time(t.deadline, now)),
        ("Next process at", out.fmt_time(t.next_process_at, now)),
        ("Retention", out.fmt_duration(t.retention.total_seconds()) if t.retention else "-"),
        ("Completed at", out.fmt_time(t.completed_at, now)),
    ]
    if t.result:
        result, rkind = out.show_bytes(t.result)
        rows.append((f"Result ({rkind})", result))
    return rows


def render_task(con: Console, t: TaskInfo) -> None:
    table = out.table("Field", "Value")
    table.show_header = False
    for k, v in task_fields(t):
        table.add_row(k, v)
    con.print(table)


@out.command
def inspect(args: argparse.Namespace) -> int:
    with out.connect(args) as insp:
        info = insp.get_task_info(args.queue, args.id)
    if args.json:
        out.print_json(info)
    else:
        render_task(out.console(), info)
    return 0


def _register_wait(verbs: Any) -> None:
    v = verbs.add_parser(
        "wait", help="wait until a task finishes; print its result (and progress on stderr)"
    )
    _queue(v)
    _id(v)
    v.add_argument("--timeout", type=float, help="give up after this many seconds")
    out.add_read_flags(v)
    v.set_defaults(func=wait)


@out.command
def wait(args: argparse.Namespace) -> int:
    from pyasynq._sync.client import Client

    def shown(p: TaskProgress) -> None:
        print(f"progress: {p.fraction:.0%} {p.message}".rstrip(), file=sys.stderr, flush=True)

    with out.redis(args) as url:
        with out.usage():
            client = Client(url)
        with client:
            client.ping()
            with out.usage():
                result = client.wait_result(
                    args.id, queue=args.queue, timeout=args.timeout, on_progress=shown
                )
    text, kind = out.show_bytes(result)
    if args.json:
        out.print_json({"id": args.id, "queue": args.queue, "result": text,
                        "result_encoding": kind})  # fmt: skip
    elif result:
        print(text)
    return 0


# --- acting on one task -------------------------------------------------------------------


@out.command
def cancel(args: argparse.Namespace) -> int:
    with out.connect(args) as insp:
        for task_id in args.ids:
            n = insp.cancel_processing(task_id)
            print(f"Sent a cancel request for task {task_id!r} ({n} servers listening)")
    return 0


@out.command
def archive(args: argparse.Namespace) -> int:
    with out.connect(args) as insp:
        insp.archive_task(args.queue, args.id)
    print(f"Archived task {args.id!r} in queue {args.queue!r}")
    return 0


@out.command
def delete(args: argparse.Namespace) -> int:
    with out.connect(args) as insp:
        insp.delete_task(args.queue, args.id)
    print(f"Deleted task {args.id!r} from queue {args.queue!r}")
    return 0


@out.command
def run_one(args: argparse.Namespace) -> int:
    with out.connect(args) as insp:
        insp.run_task(args.queue, args.id)
    print(f"Moved task {args.id!r} in queue {args.queue!r} to pending")
    return 0


# --- many tasks ---------------------------------------------------------------------------

DONE = {
    "archiveall": "Archived {n} {state} tasks in {where}queue {queue!r}",
    "deleteall": "Deleted {n} {state} tasks from {where}queue {queue!r}",
    "runall": "Moved {n} {state} tasks in {where}queue {queue!r} to pending",
}


def in_state(insp: Inspector, queue: str, state: TaskState, group: str | None) -> int:
    """How many tasks the bulk operation will meet (for the progress bar's total)."""
    if state is S.AGGREGATING:
        return next((g.size for g in insp.groups(queue) if g.group == group), 0)
    return int(getattr(insp.get_queue_info(queue), state.value))


def with_progress(
    con: Console, label: str, total: int, work: Callable[[Callable[[int], object]], int]
) -> int:
    """Run ``work(on_progress)``; on a terminal, with a progress bar that goes away after."""
    if not con.is_terminal:
        return work(lambda _done: None)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=con, transient=True) as bar:
        job = bar.add_task(label, total=max(total, 1))

        def step(done: int) -> None:
            bar.update(job, completed=done, total=max(total, done))

        return work(step)


@out.command
def bulk(args: argparse.Namespace) -> int:
    state = out.parse_state(args.state, args.states, f"{args.verb}")
    if state is S.AGGREGATING and not args.group:
        raise UsageError("aggregating tasks are handled per group: add --group GROUP")
    if state is not S.AGGREGATING and args.group:
        raise UsageError("--group applies only to --state aggregating")
    with out.connect(args) as insp:
        op = {
            "archiveall": insp.archive_all_tasks,
            "deleteall": insp.delete_all_tasks,
            "runall": insp.run_all_tasks,
        }[args.verb]
        total = in_state(insp, args.queue, state, args.group)
        label = f"{args.verb} {state.value}"
        with out.usage():
            n = with_progress(
                out.console(stderr=True),
                label,
                total,
                lambda step: op(args.queue, state, group=args.group, on_progress=step),
            )
    where = f"group {args.group!r} of " if args.group else ""
    print(DONE[args.verb].format(n=n, state=state.value, where=where, queue=args.queue))
    return 0


# --- enqueue ------------------------------------------------------------------------------


def parse_duration(text: str | None, flag: str) -> float | None:
    """Seconds, or a Go duration such as 1m30s."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return parse_go_duration(text).total_seconds()
    except ValueError:
        raise UsageError(
            f"{flag}: expected seconds or a duration like 1m30s, got {text!r}"
        ) from None


def parse_time(text: str | None, flag: str) -> datetime | None:
    """Unix seconds, or an ISO 8601 time (UTC when it has no zone)."""
    if text is None:
        return None
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{flag}: expected an ISO 8601 time (2030-01-02T15:04:05Z) or Unix seconds, "
            f"got {text!r}"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def read_payload(args: argparse.Namespace) -> bytes | None:
    if args.payload is not None:
        return str(args.payload).encode("utf-8", "surrogateescape")
    if args.payload_hex is not None:
        try:
            return bytes.fromhex(args.payload_hex)
        except ValueError:
            raise UsageError(f"--payload-hex: not hex: {args.payload_hex!r}") from None
    if args.payload_file is not None:
        if args.payload_file == "-":
            return sys.stdin.buffer.read()
        try:
            return Path(args.payload_file).read_bytes()
        except OSError as exc:
            raise UsageError(f"--payload-file: {exc}") from None
    return None


def enqueue_options(args: argparse.Namespace) -> dict[str, Any]:
    headers = {}
    for h in args.header:
        key, sep, value = h.partition("=")
        if not sep or not key:
            raise UsageError(f"--header: expected KEY=VALUE, got {h!r}")
        headers[key] = value
    opts: dict[str, Any] = {
        "queue": args.queue,
        "max_retry": args.max_retry,
        "task_id": args.task_id,
        "timeout": parse_duration(args.timeout, "--timeout"),
        "deadline": parse_time(args.deadline, "--deadline"),
        "process_in": parse_duration(args.process_in, "--process-in"),
        "process_at": parse_time(args.process_at, "--process-at"),
        "unique": parse_duration(args.unique, "--unique"),
        "retention": parse_duration(args.retention, "--retention"),
        "group": args.group,
        "headers": headers or None,
    }
    return {k: v for k, v in opts.items() if v is not None}


@out.command
def enqueue(args: argparse.Namespace) -> int:
    from pyasynq._sync.client import Client

    payload = read_payload(args)
    opts = enqueue_options(args)
    with out.usage():
        task = Task(args.type, payload)
    with out.redis(args) as url:
        with out.usage():
            client = Client(url)
        with client:
            client.ping()
            with out.usage():
                info = client.enqueue(task, **opts)
    if args.json:
        out.print_json(info)
        return 0
    when = ""
    if info.state is S.SCHEDULED:
        when = f", to run {out.fmt_time(info.next_process_at)}"
    print(f"Enqueued task {info.id!r} to queue {info.queue!r} ({info.state.value}{when})")
    return 0
