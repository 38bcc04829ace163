"""``pyasynq worker module:attr``: run a standalone processor.

``attr`` is a ServeMux (or a single handler callable). Flags set the server's
configuration; ``--config module:attr`` names a ServerConfig to start from.
``--processes N`` runs N supervised worker processes: a child that dies is replaced, and
SIGTERM/SIGINT are passed on for a graceful shutdown of all of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any

from pyasynq.config import ServerConfig
from pyasynq.mux import ServeMux

from .common import UsageError, load_object, redis_url


def register(sub: Any) -> None:
    p = sub.add_parser("worker", help="run a worker (Server) for the handlers in module:attr")
    p.add_argument("target", help="module:attribute of a ServeMux or handler, e.g. app.tasks:mux")
    p.add_argument("-q", "--queue", action="append", default=[], metavar="NAME[=PRIORITY]",
                   help="queue to process, repeatable (default: default=1)")  # fmt: skip
    p.add_argument("-c", "--concurrency", type=int, help="tasks run at once per process")
    p.add_argument("--strict", action="store_true", help="strict queue priority")
    p.add_argument("--shutdown-timeout", type=float, help="seconds to let tasks finish")
    p.add_argument("--log-level", help="debug, info, warn, error or fatal")
    p.add_argument("--config", help="module:attribute of a ServerConfig to start from")
    p.add_argument("--metrics-port", type=int,
                   help="serve worker metrics (--processes N: port..port+N-1)")  # fmt: skip
    p.add_argument("--loop", choices=("auto", "asyncio", "uvloop"),
                   help="event loop (default auto: uvloop when installed)")  # fmt: skip
    p.add_argument("-p", "--processes", type=int, default=1,
                   help="worker processes to run and supervise (default 1)")  # fmt: skip
    p.set_defaults(func=run)


def _queues(specs: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for spec in specs:
        name, _, prio = spec.partition("=")
        try:
            out[name] = int(prio) if prio else 1
        except ValueError:
            raise UsageError(f"bad --queue {spec!r}: use NAME or NAME=PRIORITY") from None
    return out


def build_config(args: argparse.Namespace) -> ServerConfig:
    base = ServerConfig()
    if args.config:
        base = load_object(args.config)
        if not isinstance(base, ServerConfig):
            raise UsageError(f"{args.config} is not a pyasynq.ServerConfig")
    changes: dict[str, Any] = {}
    if args.queue:
        changes["queues"] = _queues(args.queue)
    if args.concurrency is not None:
        changes["concurrency"] = args.concurrency
    if args.strict:
        changes["strict_priority"] = True
    if args.shutdown_timeout is not None:
        changes["shutdown_timeout"] = args.shutdown_timeout
    if args.log_level:
        changes["log_level"] = args.log_level
    if args.metrics_port is not None:
        changes["metrics_port"] = args.metrics_port
    if args.loop is not None:
        changes["event_loop"] = args.loop
    try:
        return dataclasses.replace(base, **changes)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from exc


def run(args: argparse.Namespace) -> int:
    if args.processes < 1:
        raise UsageError("--processes must be at least 1")
    config = build_config(args)
    handler = load_object(args.target)
    if not isinstance(handler, ServeMux) and not callable(handler):
        raise UsageError(f"{args.target} is neither a ServeMux nor a callable handler")
    url, embedded = redis_url(args.redis_url)
    stranded = False
    try:
        if args.processes == 1:
            code, stranded = _run_one(url, config, handler)
        else:
            code = _supervise(url, args)
    finally:
        if embedded is not None:
            embedded.release()
    if stranded:
        # A handler's non-daemon thread would keep the process alive for ever (the
        # Server warned which): the worker is done, so end without waiting for it.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _run_one(url: str, config: ServerConfig, handler: Any) -> tuple[int, bool]:
    """Run one worker; returns its exit status and whether threads a handler started
    are still running."""
    from pyasynq.errors import BrokerError
    from pyasynq.log import LogLevel
    from pyasynq.server import Server

    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s pid=%(process)d %(message)s",
        )
    # --log-level debug must reach the handler (the root's INFO dropped pyasynq's debug
    # lines), without turning on every other library's debug output.
    logging.getLogger("pyasynq").setLevel(int(LogLevel.parse(config.log_level)))
    tune_gc()
    try:
        left = Server(url, config=config)._run(handler, exits=True)
    except BrokerError as exc:
        raise UsageError(str(exc)) from exc
    return 0, bool(left)


# Young collections at most every this many net allocations (CPython's default is 700).
GC_YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Tune the collector for this process, which is a worker and nothing else.

    Everything loaded so far (the handlers' modules, pyasynq, redis) lives until exit:
    frozen, it is left out of every later collection, each of which walked all of it.
    And a task in flight holds a few dozen objects, so with the default threshold the
    tasks of one dequeue set off a young collection each time: together a tenth of a
    no-op task's CPU (docs/benchmarks.md). Unreachable cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), middle, old)


def _child_argv(url: str, args: argparse.Namespace, index: int = 0) -> list[str]:
    argv = [sys.executable, "-m", "pyasynq", "--redis-url", url, "worker", args.target]
    for q in args.queue:
        argv += ["--queue", q]
    for flag, value in (("--concurrency", args.concurrency), ("--shutdown-timeout",
                        args.shutdown_timeout), ("--log-level", args.log_level),
                        ("--config", args.config), ("--loop", args.loop)):  # fmt: skip
        if value is not None:
            argv += [flag, str(value)]
    if args.strict:
        argv.append("--strict")
    if args.metrics_port is not None:
        argv += ["--metrics-port", str(args.metrics_port + index)]
    return argv


def _supervise(url: str, args: argparse.Namespace) -> int:
    """Keep ``args.processes`` children alive until told to stop."""
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    children: dict[int, subprocess.Popen[bytes]] = {}
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for i in range(args.processes):
        children[i] = subprocess.Popen(_child_argv(url, args, i))
    print(f"pyasynq: supervising {args.processes} worker processes "
          f"(pids {' '.join(str(c.pid) for c in children.values())})", file=sys.stderr)  # fmt: skip
    while True:
        time.sleep(0.2)
        if stopping:
            for child in children.values():
                child.wait()
            return 0
        for i, child in list(children.items()):
            code = child.poll()
            if code is not None and not stopping:
                print(f"pyasynq: worker pid {child.pid} exited ({code}); starting a new one",
                      file=sys.stderr)  # fmt: skip
                children[i] = subprocess.Popen(_child_argv(url, args, i))
        if os.getppid() == 1:  # our parent died: do not linger as an orphan supervisor
            on_signal(signal.SIGTERM, None)
