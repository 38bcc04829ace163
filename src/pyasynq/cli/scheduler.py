"""``pyasynq scheduler module:attr``: run a scheduler for the periodic tasks in attr.

``attr`` is what a PeriodicTaskManager takes as provider: a list of
``PeriodicTaskConfig``, a callable returning one (plain or ``async``), or an object with
``get_configs()``; the entries follow it every ``--sync-interval``. A ``Scheduler`` or
``PeriodicTaskManager`` built in the module is run as it is (it brings its own Redis, so
``--redis-url`` and the flags below do not apply to it).

Start one on every replica: each tick is enqueued once in the whole deployment.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from pyasynq.log import LogLevel

from .common import UsageError, load_object, redis_url


def register(sub: Any) -> None:
    p = sub.add_parser(
        "scheduler", help="run a scheduler (periodic tasks) for the configs in module:attr"
    )
    p.add_argument(
        "target",
        help="module:attribute of a list of PeriodicTaskConfig, a provider (callable or "
        "object with get_configs()), a Scheduler or a PeriodicTaskManager",
    )
    p.add_argument("--location", "--tz", dest="location",
                   help="time zone of specs without CRON_TZ= (default UTC)")  # fmt: skip
    p.add_argument("--heartbeat-interval", type=float, help="seconds between entry writes (10)")
    p.add_argument("--sync-interval", type=float,
                   help="seconds between provider calls (default 180)")  # fmt: skip
    p.add_argument("--log-level", help="debug, info, warn, error or fatal")
    p.set_defaults(func=run)


def _build(args: argparse.Namespace, url: str, target: Any) -> Any:
    from pyasynq.scheduler import PeriodicTaskManager

    options: dict[str, Any] = {}
    if args.location:
        options["location"] = args.location
    if args.heartbeat_interval is not None:
        options["heartbeat_interval"] = args.heartbeat_interval
    if args.log_level:
        options["log_level"] = args.log_level
    if args.sync_interval is not None:
        options["sync_interval"] = args.sync_interval
    try:
        return PeriodicTaskManager(url, target, **options)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{args.target}: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    from pyasynq.errors import BrokerError
    from pyasynq.scheduler import PeriodicTaskManager, Scheduler

    target = load_object(args.target)
    try:
        level = LogLevel.parse(args.log_level or "info")
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=int(level),
            format="%(asctime)s %(levelname)s %(name)s pid=%(process)d %(message)s",
        )
    if isinstance(target, Scheduler | PeriodicTaskManager):
        runner: Any = target
        embedded = None
    else:
        url, embedded = redis_url(args.redis_url)
        runner = _build(args, url, target)
    try:
        runner.run()
    except BrokerError as exc:
        raise UsageError(str(exc)) from exc
    except (TypeError, ValueError) as exc:  # the provider's first answer was unusable
        raise UsageError(f"{args.target}: {exc}") from exc
    finally:
        if embedded is not None:
            embedded.release()
    return 0
