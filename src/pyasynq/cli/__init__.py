"""The ``pyasynq`` command line. One module per noun; this one dispatches.

User mistakes (bad flags, unknown queue, unreachable Redis) end with one clear line on
stderr and a non-zero status, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import cron, dash, group, metrics, queue, scheduler, server, stats, task, web, worker
from .common import UsageError
from .embedded import register as register_embedded

__all__ = ["UsageError", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyasynq", description="Run and operate pyasynq (asynq-compatible) task queues."
    )
    parser.add_argument(
        "--redis-url",
        help="Redis URL (default: $PYASYNQ_REDIS_URL, $REDIS_URL, else the embedded Redis "
        "shared by all commands in ./.pyasynq/redis: see `pyasynq embedded status`)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    worker.register(sub)
    scheduler.register(sub)
    for noun in (stats, queue, task, group, server, cron, dash, metrics):
        noun.register(sub)
    web.register(sub)
    register_embedded(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"pyasynq: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
