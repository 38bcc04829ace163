"""``python manage.py pyasynq_worker app.tasks:mux``: a pyasynq worker with Django set up."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from pyasynq import ServeMux, Server

from ...loading import load
from ...settings import pyasynq_settings


class Command(BaseCommand):
    help = "Run a pyasynq worker for the handlers of a ServeMux (module:attr or module.attr)."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("target", help="the ServeMux (or handler), e.g. shop.tasks:mux")
        parser.add_argument(
            "-q", "--queue", action="append", default=[], metavar="NAME[=PRIORITY]",
            help='queue to process, repeatable (default: PYASYNQ["WORKER"]["queues"])',
        )  # fmt: skip
        parser.add_argument("-c", "--concurrency", type=int, help="tasks run at once")

    def handle(self, *args: Any, **opts: Any) -> None:
        conf = pyasynq_settings()
        handler = load(opts["target"])
        if not isinstance(handler, ServeMux) and not callable(handler):
            raise CommandError(f"{opts['target']} is neither a ServeMux nor a handler")
        config = dict(conf.get("WORKER", {}))
        if opts["queue"]:
            config["queues"] = _queues(opts["queue"])
        if opts["concurrency"] is not None:
            config["concurrency"] = opts["concurrency"]
        try:
            server = Server(conf["REDIS_URL"], **config)
        except (TypeError, ValueError) as exc:
            raise CommandError(f'PYASYNQ["WORKER"]: {exc}') from exc
        server.run(handler)  # until SIGTERM/SIGINT


def _queues(specs: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for spec in specs:
        name, _, prio = spec.partition("=")
        try:
            out[name] = int(prio) if prio else 1
        except ValueError:
            raise CommandError(f"bad --queue {spec!r}: use NAME or NAME=PRIORITY") from None
    return out
