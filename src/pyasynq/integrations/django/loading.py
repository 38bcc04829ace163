"""Import an object named ``module:attr`` or ``module.attr``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.utils.module_loading import import_string


def load(target: str) -> Any:
    path = target.replace(":", ".") if ":" in target else target
    try:
        return import_string(path)
    except ImportError as exc:
        raise CommandError(f"cannot import {target!r}: {exc}") from exc
