"""The demo behind ``make demo``: the seed's sign-up service, end to end, on this machine.

It starts Redis (embedded when none is configured), the SMTP sink, the API and two worker
processes; signs up a batch of users through ``POST /users``; shows the emails going out;
prints a summary; and stops everything it started, on Ctrl-C and errors too.

Flags (``python -m pyasynq.demo --help``): ``--users`` (default 50, or
``PYASYNQ_DEMO_USERS``), ``--workers``, ``--process-in``, ``--refuse-for``,
``--retry-delay``, ``--database-url`` (default: SQLite in the run directory; or
``PYASYNQ_DEMO_DATABASE_URL``), ``--run-dir``, ``--timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx
import redis

from pyasynq import embedded
from pyasynq._rdb import keys
from pyasynq.embedded import SharedRedis

from .distributor import QUEUE_CRITICAL
from .settings import redact
from .smtp_sink import MailStore
from .stack import Stack, StackError


class DemoError(RuntimeError):
    pass


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pyasynq.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=int(os.environ.get("PYASYNQ_DEMO_USERS") or 50),
                   help="users to sign up (default 50, or $PYASYNQ_DEMO_USERS)")  # fmt: skip
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--process-in", type=float, default=1.0,
                   help="delay of each send_verify_email task, s (the seed uses 10)")  # fmt: skip
    p.add_argument(
        "--refuse-for",
        type=float,
        default=2.0,
        help="the SMTP sink refuses mail this long after its first attempt, s",
    )
    p.add_argument("--retry-delay", type=float, default=0.5,
                   help="first retry delay, doubling each retry, s")  # fmt: skip
    p.add_argument(
        "--database-url",
        default=os.environ.get("PYASYNQ_DEMO_DATABASE_URL"),
        help="sqlite:///... or postgresql://... (default: SQLite in --run-dir)",
    )
    p.add_argument("--run-dir", type=Path, default=Path(".pyasynq/demo"),
                   help="logs, mail and database of this run (emptied first)")  # fmt: skip
    p.add_argument("--timeout", type=float, default=45.0, help="give up after this long, s")
    args = p.parse_args(argv)
    if args.users < 1 or args.workers < 1:
        p.error("--users and --workers must be at least 1")
    return args


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through the finally blocks that stop everything


def _redis() -> tuple[str, SharedRedis | None]:
    url = embedded.configured_url()
    if url:
        print(f"  Redis       {redact(url)} (from PYASYNQ_REDIS_URL / REDIS_URL)")
        return url, None
    server = embedded.acquire()
    how = "started it" if server.started else "joined the running one"
    print(
        f"  Redis       {server.notice()}\n"
        f"              ({how}: {server.url}, pid {server.pid}; its append-only file stays\n"
        f"              in {embedded.shown_dir(server.data_dir)}/ after the demo)"
    )
    return server.url, server


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)  # a closed terminal: stop what we started too
    print("pyasynq demo: the seed's sign-up service, end to end\n")
    shared: SharedRedis | None = None
    try:
        url, shared = _redis()
        return Demo(args, url).run()
    except KeyboardInterrupt:
        print("\ninterrupted: stopped everything the demo started")
        return 130
    except (DemoError, StackError, RuntimeError) as exc:
        print(f"\ndemo failed: {exc}")
        return 1
    finally:
        if shared is not None:
            shared.release()
            print(
                f"Gave back the embedded Redis (stopped once no other pyasynq process uses "
                f"it; its data stays in {embedded.shown_dir(shared.data_dir)}/)."
            )


MARKER = ".pyasynq-demo"


def _fresh_run_dir(run_dir: Path) -> None:
    """Empty the run directory, if it is one the demo made (it holds our marker)."""
    if run_dir.exists():
        if any(run_dir.iterdir()) and not (run_dir / MARKER).exists():
            raise DemoError(f"{run_dir} exists and is not a demo run directory; pick --run-dir")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    (run_dir / MARKER).write_text("made by python -m pyasynq.demo; emptied by its next run\n")


@dataclass
class Signups:
    created: int
    rejected: list[str]
    task_ids: list[str]
    seconds: float


class Demo:
    def __init__(self, args: argparse.Namespace, redis_url: str) -> None:
        self.args = args
        self.redis_url = redis_url
        self.run_id = uuid.uuid4().hex[:6]
        self.r = redis.Redis.from_url(redis_url)
        self._created = 0  # users created so far (written by the sign-up thread)

    def run(self) -> int:
        a = self.args
        run_dir: Path = a.run_dir
        _fresh_run_dir(run_dir)
        db_url = a.database_url or f"sqlite:///{(run_dir / 'signup.sqlite').resolve()}"
        settings = {
            "SIGNUP_PROCESS_IN": str(a.process_in),
            "SIGNUP_MAX_RETRY": "10",
            "SIGNUP_RETRY_DELAY": str(a.retry_delay),
            "SIGNUP_FORWARD_INTERVAL": "0.2",
            "SIGNUP_LEASE_SECONDS": "5",
            "SIGNUP_CONCURRENCY": "10",
        }
        print(f"  database    {redact(db_url)}")
        print(f"  run files   {run_dir}/ (logs, mail, database)")
        print(
            f"  task        task:send_verify_email, queue=critical, max_retry=10, "
            f"process_in={a.process_in:g}s\n"
            "              (the seed delays it 10 s; the demo uses a short delay, and the API\n"
            "              enqueues only after the user's transaction committed)"
        )
        print(
            f"  SMTP sink   refuses all mail for {a.refuse_for:g}s after the first attempt, so "
            "you see retries;\n"
            f"              the demo's retry_delay_func retries after {a.retry_delay:g}s, "
            "doubling (asynq's default starts near 15 s)"
        )
        started = time.monotonic()
        with Stack(run_dir, redis_url=self.redis_url, database_url=db_url, settings=settings) as st:
            st.start_sink(refuse_for=a.refuse_for)
            print(f"  SMTP sink   127.0.0.1:{st.smtp_port}, messages in {run_dir}/mail.sqlite")
            api_url = st.start_api(wait=False)  # starts while the workers start
            pids = st.start_workers(a.workers)
            st.wait_api()
            print(f"  API         {api_url} (uvicorn, examples/signup/api.py)")
            print(f"  workers     {len(pids)} processes, pids {' '.join(map(str, pids))}, "
                  "queues critical=10 default=5\n")  # fmt: skip

            signups = self._sign_up_with_progress(api_url, st.mail_store, started + a.timeout)
            left = self._drain(signups.task_ids, started + a.timeout)
            took = time.monotonic() - started
        self._summary(st, signups, left, took)
        return 0

    # -- steps ----------------------------------------------------------------------

    def _sign_up_with_progress(self, api_url: str, store: MailStore, deadline: float) -> Signups:
        """Sign the users up (on a thread) while a progress bar follows the emails."""
        total = self.args.users
        done: list[Signups] = []
        failed: list[BaseException] = []

        def sign_up() -> None:
            try:
                done.append(asyncio.run(self._sign_up(api_url, total)))
            except BaseException as exc:
                failed.append(exc)

        thread = threading.Thread(target=sign_up, name="demo-signups", daemon=True)
        thread.start()
        print(f"signing up {total} users through POST /users; the emails go out meanwhile:")
        tty = sys.stdout.isatty()
        t0 = time.monotonic()
        last_print, last_shown = -1.0, (-1, -1)
        while True:
            if failed:
                raise DemoError(f"signing up failed: {failed[0]!r}")
            _, emailed, refused = store.counts()
            created = done[0].created if done else self._created
            target = created if done else total
            elapsed = time.monotonic() - t0
            width = 24
            fill = width * min(emailed, total) // total
            line = (f"signed up {created:>3}/{total}  emails [{'#' * fill}{'-' * (width - fill)}]"
                    f" {emailed:>3}/{total}  retries {refused:>3}  {elapsed:4.1f}s")  # fmt: skip
            finished = bool(done) and emailed >= target
            if tty:
                sys.stdout.write("\r" + line)
                sys.stdout.flush()
            elif finished or ((created, emailed) != last_shown and elapsed - last_print >= 1.0):
                print(line, flush=True)
                last_print, last_shown = elapsed, (created, emailed)
            if finished:
                break
            if time.monotonic() > deadline:
                raise DemoError(
                    f"only {emailed} of {total} users got their email before the timeout; "
                    f"see the worker logs in {self.args.run_dir}/"
                )
            time.sleep(0.1)
        if tty:
            sys.stdout.write("\n")
        signups = done[0]
        for reason in signups.rejected[:3]:
            print(f"  sign-up refused: {reason}")
        if not signups.created:
            raise DemoError(f"no user was created; see {self.args.run_dir}/api.log")
        return signups

    async def _sign_up(self, api_url: str, n: int) -> Signups:
        sem = asyncio.Semaphore(10)
        t0 = time.monotonic()
        rejected: list[str] = []
        task_ids: list[str] = []

        async def one(client: httpx.AsyncClient, i: int) -> None:
            name = f"user_{self.run_id}_{i:03d}"
            body = {"username": name, "full_name": f"Demo User {i}",
                    "email": f"{name}@example.com", "password": "correct horse"}  # fmt: skip
            async with sem:
                resp = await client.post(f"{api_url}/users", json=body)
            if resp.status_code == 201 and resp.json().get("verify_email_task"):
                task_ids.append(resp.json()["verify_email_task"]["id"])
                self._created += 1
            else:
                rejected.append(f"{name}: {resp.status_code} {resp.text[:200]}")

        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.gather(*(one(client, i) for i in range(1, n + 1)))
        return Signups(len(task_ids), rejected, task_ids, time.monotonic() - t0)

    def _drain(self, task_ids: list[str], deadline: float) -> int:
        """Wait until every task has finished (acknowledged or archived); how many are
        left at the deadline."""
        q = QUEUE_CRITICAL
        while True:
            pipe = self.r.pipeline(transaction=False)
            for tid in task_ids:
                pipe.hget(keys.task_key(q, tid), "state")
            left = sum(1 for s in pipe.execute() if s is not None and s != b"archived")
            if left == 0 or time.monotonic() > deadline:
                return left
            time.sleep(0.1)

    def _archived(self, task_ids: list[str]) -> int:
        pipe = self.r.pipeline(transaction=False)
        for tid in task_ids:
            pipe.zscore(keys.archived_key(QUEUE_CRITICAL), tid)
        return sum(1 for s in pipe.execute() if s is not None)

    def _summary(self, st: Stack, signups: Signups, left: int, took: float) -> None:
        messages, users, refused = st.mail_store.counts()
        archived = self._archived(signups.task_ids)
        dups = messages - users
        run_dir = self.args.run_dir
        logs = ", ".join(st.worker_log(i).name for i in range(len(st.workers)))
        print("\nSummary")
        print(f"  users signed up    {signups.created}")
        print(f"  emails delivered   {messages} to {users} users"
              + (f" ({dups} duplicates)" if dups else " (no duplicates)"))  # fmt: skip
        print(f"  retries            {refused} (deliveries the SMTP sink refused; each failed "
              "its task, which a worker retried)")  # fmt: skip
        print(f"  archived           {archived}")
        if left:
            print(f"  still running      {left} tasks at the timeout")
        print(f"  time taken         {took:.1f}s (from starting the sink, API and workers to the "
              f"last email; sign-ups {signups.seconds:.1f}s)")  # fmt: skip
        print("\nWhere to look")
        print(f"  worker logs        {run_dir}/{{{logs}}} (logfmt lines: grep 'level=error')")
        for i, line in enumerate(_sample_log_lines(st)):
            print(f"    {'e.g.' if i == 0 else '    '} {line}")
        print(f"  mail               {run_dir}/mail.sqlite (table messages)")
        print(f"  API log            {run_dir}/api.log")
        print(_cli_hint(self.redis_url))
        print("\nStopped the workers, the API and the SMTP sink.")


def _sample_log_lines(st: Stack) -> list[str]:
    """One failed attempt and one delivery from the workers' structured logs."""
    wanted = {'msg="process task failed"': None, 'msg="sent verify email"': None}
    found: dict[str, str] = {}
    for i in range(len(st.workers)):
        for line in st.worker_log(i).read_text(errors="replace").splitlines():
            for key in wanted:
                if key in line and key not in found:
                    found[key] = line if len(line) <= 220 else line[:217] + "..."
    return list(found.values())


def _cli_hint(redis_url: str) -> str:
    """What pyasynq's CLI can show about the queues, naming only commands that exist."""
    try:
        from pyasynq.cli import build_parser

        parser = build_parser()
        commands: set[str] = set()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                commands |= set(action.choices)
    except Exception:
        return ""
    url_flag = ""
    if os.environ.get("PYASYNQ_REDIS_URL") or os.environ.get("REDIS_URL"):
        url_flag = f" --redis-url {redact(redis_url)}"
    lines = []
    for cmd, what in (("stats", "queues and their counters"), ("dash", "a live view"),
                      ("metrics", "Prometheus metrics")):  # fmt: skip
        if cmd in commands:
            lines.append(f"  {what:<26} .venv/bin/python -m pyasynq{url_flag} {cmd}")
    if "task" in commands:
        lines.append(f"  {'archived tasks':<26} .venv/bin/python -m pyasynq{url_flag} task ls "
                     "-q critical -s archived")  # fmt: skip
    if not lines:
        return (f"  pyasynq CLI        .venv/bin/python -m pyasynq --help "
                f"(commands so far: {', '.join(sorted(commands))})")  # fmt: skip
    if not url_flag:
        lines.append("  (with no Redis URL the CLI opens the same embedded data in .pyasynq/redis)")
    return "\n".join(lines)
