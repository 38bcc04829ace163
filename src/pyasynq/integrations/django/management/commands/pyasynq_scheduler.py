"""``python manage.py pyasynq_scheduler [module:attr]``: the periodic-task scheduler."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from pyasynq import Scheduler, Task

from ...loading import load
from ...settings import pyasynq_settings


class Command(BaseCommand):
    help = (
        'Run the pyasynq scheduler for the PYASYNQ["SCHEDULE"] entries and, if given, '
        "those a function module:attr registers (it is called with the Scheduler)."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "target", nargs="?", help="a function(scheduler) that registers entries"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        conf = pyasynq_settings()
        try:
            scheduler = Scheduler(conf["REDIS_URL"], **conf.get("SCHEDULER", {}))
            for entry in conf.get("SCHEDULE", []):
                spec, task_type, *rest = entry
                options = dict(rest[0]) if rest else {}
                payload = options.pop("payload", None)
                scheduler.register(spec, Task(task_type, payload), **options)
        except (TypeError, ValueError) as exc:
            raise CommandError(f"PYASYNQ scheduler settings: {exc}") from exc
        if opts["target"]:
            setup = load(opts["target"])
            if not callable(setup):
                raise CommandError(f"{opts['target']} is not a function(scheduler)")
            setup(scheduler)
        if not scheduler.entries():
            raise CommandError('nothing to schedule: set PYASYNQ["SCHEDULE"] or give module:attr')
        scheduler.run()  # until SIGTERM/SIGINT
