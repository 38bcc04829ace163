"""``pyasynq embedded status|stop``: the shared embedded Redis that commands use when no
Redis is configured (docs/embedded.md). It stops by itself when the last pyasynq process
using it exits; ``stop`` ends it now, for everyone."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from pyasynq import embedded

from . import output as out


def register(sub: Any) -> None:
    p = sub.add_parser("embedded", help="the shared embedded Redis: status, stop")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name, func, text in (
        ("status", status, "where it runs, its data, who uses it"),
        ("stop", stop, "stop it now, even while commands use it"),
    ):
        v = verbs.add_parser(name, help=text)
        v.add_argument("--data-dir", type=Path, default=embedded.DEFAULT_DATA_DIR,
                       help="its data directory (default ./.pyasynq/redis)")  # fmt: skip
        if name == "status":
            out.add_read_flags(v)
        v.set_defaults(func=func)


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def status(args: argparse.Namespace) -> int:
    st = embedded.status(args.data_dir)
    if args.json:
        data = dataclasses.asdict(st)
        data.update(data_dir=str(st.data_dir), url=st.url, tcp_url=st.tcp_url)
        out.print_json(data)
        return 0
    rows = [
        ("model", f"shared; {st.model} (or on `pyasynq embedded stop`)"),
        ("data", f"{embedded.shown_dir(st.data_dir)} (append-only file in appendonlydir/)"),
    ]
    if not st.running:
        rows.append(("state", "not running (the next command without a Redis URL starts it)"))
    else:
        rows += [
            ("state", f"running, pid {st.pid}"),
            ("socket", f"{st.socket} ({st.url})"),
            ("tcp", f"127.0.0.1:{st.port} ({st.tcp_url})"),
            ("users", str(len(st.users)) if st.users else "none"),
        ]
        rows += [("", f"pid {pid}: {_command(pid)}".rstrip(": ")) for pid in st.users]
    for key, value in rows:
        print(f"{key:<7} {value}")
    return 0


def stop(args: argparse.Namespace) -> int:
    st = embedded.status(args.data_dir)
    pid = embedded.stop(args.data_dir)
    where = embedded.shown_dir(st.data_dir)
    if pid is None:
        print(f"pyasynq: no embedded Redis running in {where}", file=sys.stderr)
        return 0
    users = f"; {len(st.users)} user(s) lose their connection" if st.users else ""
    print(f"pyasynq: stopped the embedded Redis in {where} (pid {pid}){users}", file=sys.stderr)
    return 0
