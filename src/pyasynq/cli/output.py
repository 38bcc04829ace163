"""What the inspection commands share: connecting, turning errors into one line, and
showing values (rich tables for people, ``--json`` for scripts).

JSON keeps stable keys: times are ISO 8601 strings (UTC) or null, spans are seconds in a
key ending ``_seconds``, and bytes (payloads, results) are text when they are printable
UTF-8, else hex, with a sibling ``<key>_encoding`` of ``"text"`` or ``"hex"``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pyasynq.errors import PyAsynqError, QueueNotFoundError
from pyasynq.inspection import QueueInfo
from pyasynq.task import TaskState

from .common import UsageError, redis_url

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from pyasynq._sync.inspector import Inspector

CLI_EXTRA_HINT = "the pyasynq command line needs rich: pip install 'pyasynq[cli]'"
STATES = tuple(s.value for s in TaskState)
WIDE = 200  # columns when output is not a terminal: never cut ids in pipes and logs


def require_rich() -> None:
    try:
        import rich  # noqa: F401
    except ImportError:
        raise UsageError(CLI_EXTRA_HINT) from None


Handler = Callable[[argparse.Namespace], "int | None"]


def command(fn: Handler) -> Callable[[argparse.Namespace], int]:
    """Wrap a command: rich must be installed; pyasynq errors (queue or task not found,
    wrong state, unreachable Redis) end as one line on stderr with status 1, and the
    library's ValueError for a bad argument (a blank name, say) as a usage error."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        require_rich()
        try:
            return int(fn(args) or 0)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        except PyAsynqError as exc:
            print(f"pyasynq: {exc}", file=sys.stderr)
            return 1
        except BrokenPipeError:
            # The reader went away (`pyasynq task ls ... | head`): stop quietly, and keep
            # the interpreter's final flush from raising again.
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1

    return run


@contextlib.contextmanager
def usage() -> Iterator[None]:
    """ValueError/TypeError from the library (bad state, page, option) as a UsageError."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from exc


@contextlib.contextmanager
def redis(args: argparse.Namespace) -> Iterator[str]:
    """The Redis URL to use; the embedded server, if one was started for this command,
    is stopped afterwards."""
    url, embedded = redis_url(args.redis_url)
    try:
        yield url
    finally:
        if embedded is not None:
            embedded.release()


@contextlib.contextmanager
def connect(args: argparse.Namespace) -> Iterator[Inspector]:
    """A sync Inspector on the configured Redis, checked with a PING (an unreachable
    Redis is a BrokerError naming host, port and db, never the password)."""
    from pyasynq._sync.inspector import Inspector

    with redis(args) as url:
        with usage():
            inspector = Inspector(url)
        try:
            inspector.ping()
            yield inspector
        finally:
            inspector.close()


def queue_infos(inspector: Inspector) -> list[QueueInfo]:
    """QueueInfo of every queue; one deleted meanwhile is left out."""
    infos = []
    for q in inspector.queues():
        try:
            infos.append(inspector.get_queue_info(q))
        except QueueNotFoundError:
            continue
    return infos


def broker_for(inspector: Inspector) -> Any:
    """The inspector's broker, for the few raw reads (INFO) the Inspector lacks."""
    return inspector._broker


# --- plain values -------------------------------------------------------------------------


def show_bytes(data: bytes) -> tuple[str, str]:
    """``(text, "text")`` when ``data`` is printable UTF-8 (newlines and tabs allowed),
    else ``(hex, "hex")``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data.hex(), "hex"
    if all(c.isprintable() or c in "\n\t\r" for c in text):
        return text, "text"
    return data.hex(), "hex"


def short_bytes(data: bytes, limit: int = 60) -> str:
    """A payload for a table cell: text or ``hex:...``, cut to ``limit`` characters."""
    text, kind = show_bytes(data)
    text = text.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    if kind == "hex":
        text = "hex:" + text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fmt_duration(seconds: float) -> str:
    """A span the way Go prints one, rounded for people: 250ms, 45s, 1m30s, 2h5m, 3d4h."""
    neg, s = seconds < 0, abs(seconds)
    if s < 1:
        out = f"{round(s * 1000)}ms" if s else "0s"
    elif s < 60:
        out = f"{s:.0f}s" if s >= 10 else f"{s:.1f}s".replace(".0s", "s")
    elif s < 3600:
        m, sec = divmod(round(s), 60)
        out = f"{m}m{sec}s" if sec else f"{m}m"
    elif s < 86400:
        h, rest = divmod(round(s), 3600)
        out = f"{h}h{rest // 60}m" if rest // 60 else f"{h}h"
    else:
        d, rest = divmod(round(s), 86400)
        out = f"{d}d{rest // 3600}h" if rest // 3600 else f"{d}d"
    return "-" + out if neg else out


def fmt_time(when: datetime | None, now: datetime | None = None) -> str:
    """UTC time with how far it is from now: ``2023-11-14 22:13:20 (in 5m)``."""
    if when is None:
        return "-"
    now = now or datetime.now(UTC)
    delta = (when - now).total_seconds()
    rel = f"in {fmt_duration(delta)}" if delta >= 0 else f"{fmt_duration(-delta)} ago"
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M:%S} ({rel})"


def fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def error_rate(processed: int, failed: int) -> str:
    return f"{failed / processed:.2%}" if processed else "0.00%"


# --- JSON ---------------------------------------------------------------------------------

_SKIP_JSON = {"options"}  # SchedulerEntry.options: raw_options carries the same facts


def jsonable(value: Any) -> Any:
    """A value of the Inspector's types as JSON data (see the module docstring)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            if f.name in _SKIP_JSON:
                continue
            v = getattr(value, f.name)
            if isinstance(v, timedelta):
                out[f"{f.name}_seconds"] = v.total_seconds()
            elif isinstance(v, bytes):
                out[f.name], out[f"{f.name}_encoding"] = show_bytes(v)
            elif v is None and f.name in ("timeout", "retention"):
                out[f"{f.name}_seconds"] = None
            else:
                out[f.name] = jsonable(v)
        return out
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return show_bytes(value)[0]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def print_json(data: Any) -> None:
    print(json.dumps(jsonable(data), indent=2, ensure_ascii=False))


# --- rich ---------------------------------------------------------------------------------


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr); wide and plain when not a terminal."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    width = None if tty else int(os.environ.get("COLUMNS", "0") or 0) or WIDE
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def table(*columns: str, title: str | None = None) -> Table:
    """A table whose numeric-looking columns (given with a trailing ``>``) align right."""
    from rich import box
    from rich.table import Table

    t = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for c in columns:
        if c.endswith(">"):
            t.add_column(c[:-1], justify="right", no_wrap=True)
        else:
            t.add_column(c, overflow="fold")
    return t


def add_read_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON for scripts")


def parse_state(
    text: str, allowed: tuple[TaskState, ...] | None = None, verb: str = ""
) -> TaskState:
    """A --state value, or a UsageError naming the valid ones (those ``allowed``)."""
    names = [s.value for s in allowed] if allowed else list(STATES)
    try:
        st = TaskState(text.strip().lower())
    except ValueError:
        raise UsageError(f"unknown state {text!r}; use one of {', '.join(names)}") from None
    if allowed and st not in allowed:
        raise UsageError(
            f"{verb} does not apply to {st.value} tasks; use one of {', '.join(names)}"
        )
    return st


def positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n
