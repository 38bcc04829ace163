"""A local SMTP sink (aiosmtpd) that keeps every message in a SQLite file.

Stand-alone::

    python -m examples.signup.smtp_sink --port 8025 --store mail.sqlite [--refuse-for 3]

or in-process: ``SmtpSink(store, port=..., refuse_for=2.0).start()`` ... ``.stop()``.

``refuse_for`` makes it answer ``451`` (a temporary failure: "try again later") to every
message during that many seconds after the first delivery attempt, so senders have to
retry. ``delay`` holds each message that long before accepting it (to keep tasks in
flight). Accepted messages go to the ``messages`` table, refused attempts to
``refusals``; ``MailStore`` reads them back.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import signal
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at REAL NOT NULL,
        mail_from TEXT NOT NULL,
        rcpt_to TEXT NOT NULL,
        subject TEXT,
        task_id TEXT,
        worker_pid INTEGER,
        body TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS refusals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        refused_at REAL NOT NULL,
        rcpt_to TEXT NOT NULL,
        task_id TEXT
    )""",
)


@dataclass(frozen=True)
class Message:
    id: int
    received_at: float
    rcpt_to: str
    subject: str
    task_id: str
    worker_pid: int
    body: str


class MailStore:
    """The sink's SQLite file: written by the sink, read by tests and the demo."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            for ddl in _SCHEMA:
                conn.execute(ddl)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10)
        conn.row_factory = sqlite3.Row
        return conn

    def add_message(self, mail_from: str, rcpt_to: str, raw: bytes) -> None:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        body = msg.get_body(("plain",))
        text = body.get_content() if body is not None else raw.decode(errors="replace")
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO messages (received_at, mail_from, rcpt_to, subject, task_id,"
                " worker_pid, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (time.time(), mail_from, rcpt_to, msg["Subject"], msg["X-Task-Id"],
                 int(msg["X-Worker-Pid"] or 0), text),
            )  # fmt: skip

    def add_refusal(self, rcpt_to: str, raw: bytes) -> None:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO refusals (refused_at, rcpt_to, task_id) VALUES (?, ?, ?)",
                (time.time(), rcpt_to, msg["X-Task-Id"]),
            )

    def messages(self) -> list[Message]:
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM messages ORDER BY id").fetchall()
        return [
            Message(
                id=r["id"],
                received_at=r["received_at"],
                rcpt_to=r["rcpt_to"],
                subject=r["subject"] or "",
                task_id=r["task_id"] or "",
                worker_pid=r["worker_pid"] or 0,
                body=r["body"],
            )
            for r in rows
        ]

    def counts(self) -> tuple[int, int, int]:
        """(messages, distinct recipients, refusals)."""
        with self._connect() as conn:
            m, rcpts = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT rcpt_to) FROM messages"
            ).fetchone()
            (refused,) = conn.execute("SELECT COUNT(*) FROM refusals").fetchone()
        return int(m), int(rcpts), int(refused)


class _Handler:
    """aiosmtpd handler: refuse during the window, else store."""

    def __init__(self, store: MailStore, refuse_for: float, delay: float) -> None:
        self.store = store
        self.refuse_for = refuse_for
        self.delay = delay
        self.first_attempt: float | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = time.monotonic()
        if self.first_attempt is None:
            self.first_attempt = now
        raw: bytes = envelope.original_content or envelope.content
        rcpts = ", ".join(envelope.rcpt_tos)
        if now - self.first_attempt < self.refuse_for:
            await asyncio.to_thread(self.store.add_refusal, rcpts, raw)
            return "451 4.3.0 Mail server temporarily unavailable, try again later"
        if self.delay:
            await asyncio.sleep(self.delay)
        # Stored even if the sender vanished meanwhile: a real server that received the
        # whole message delivers it too (the classic source of duplicate mail).
        await asyncio.to_thread(self.store.add_message, envelope.mail_from, rcpts, raw)
        return "250 Message accepted for delivery"


class SmtpSink:
    """The sink on 127.0.0.1:``port``, served from a background thread."""

    def __init__(
        self,
        store: str | Path,
        *,
        port: int,
        host: str = "127.0.0.1",
        refuse_for: float = 0.0,
        delay: float = 0.0,
    ) -> None:
        self.store = MailStore(store)
        self.host = host
        self.port = port
        self.refuse_for = refuse_for
        self.handler = _Handler(self.store, refuse_for, delay)
        self._controller = Controller(self.handler, hostname=host, port=port)

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8025)
    p.add_argument("--store", default="mail.sqlite", help="SQLite file for the messages")
    p.add_argument("--refuse-for", type=float, default=0.0,
                   help="answer 451 for this many seconds after the first attempt")  # fmt: skip
    p.add_argument("--delay", type=float, default=0.0, help="seconds to hold each message")
    args = p.parse_args(argv)
    sink = SmtpSink(args.store, port=args.port, host=args.host,
                    refuse_for=args.refuse_for, delay=args.delay).start()  # fmt: skip
    print(f"SMTP sink on {args.host}:{args.port}, messages in {args.store}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    sink.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
