"""Logging with asynq's five levels over any logger.

pyasynq logs through ``logging.getLogger("pyasynq...")`` by default. A user logger can be
a stdlib :class:`logging.Logger` (used as-is) or any object with asynq's methods
``debug``, ``info``, ``warn``/``warning``, ``error`` and ``fatal`` taking one message.
"""

from __future__ import annotations

import logging
import traceback
from enum import IntEnum
from types import TracebackType
from typing import Any, TypeAlias

__all__ = ["LogLevel", "Logger"]

# What a message can carry to show a traceback: the exception, or (type, value, traceback).
ExcInfo: TypeAlias = (
    "BaseException | tuple[type[BaseException], BaseException, TracebackType | None] | None"
)


class LogLevel(IntEnum):
    """asynq's five log levels, valued as the stdlib's (``WARN`` is ``logging.WARNING``,
    ``FATAL`` is ``logging.CRITICAL``). Where a level is expected its name works too."""

    DEBUG = logging.DEBUG
    INFO = logging.INFO
    WARN = logging.WARNING
    ERROR = logging.ERROR
    FATAL = logging.CRITICAL

    @classmethod
    def parse(cls, value: LogLevel | str | int) -> LogLevel:
        if isinstance(value, LogLevel):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value)
        if isinstance(value, str):
            name = value.strip().upper()
            name = {"WARNING": "WARN", "CRITICAL": "FATAL"}.get(name, name)
            if name in cls.__members__:
                return cls[name]
        raise ValueError(f"log level must be one of debug, info, warn, error, fatal; got {value!r}")


class Logger:
    """What pyasynq's components log through: level filtering, lazy %-formatting, and
    dispatch to a stdlib logger or a user logger with asynq's method names."""

    def __init__(self, target: Any = None, level: LogLevel | str = LogLevel.INFO) -> None:
        self.level = LogLevel.parse(level)
        self._std: logging.Logger | None = None
        self._user: Any = None
        if target is None:
            self._std = logging.getLogger("pyasynq")
        elif isinstance(target, logging.Logger | logging.LoggerAdapter):
            self._std = target  # type: ignore[assignment]
        else:
            for m in ("debug", "info", "error"):
                if not callable(getattr(target, m, None)):
                    raise TypeError(f"logger must have a {m}() method (asynq's Logger interface)")
            self._user = target

    def enabled(self, level: LogLevel) -> bool:
        """Whether a message at ``level`` would be written (by a stdlib logger too)."""
        if level < self.level:
            return False
        return self._std is None or self._std.isEnabledFor(int(level))

    def _emit(self, level: LogLevel, msg: str, args: tuple[Any, ...], exc: ExcInfo = None) -> None:
        if level < self.level:
            return
        if self._std is not None:
            self._std.log(int(level), msg, *args, exc_info=exc, stacklevel=3)
            return
        text = msg % args if args else msg
        if exc is not None:  # asynq's interface takes one message: the traceback goes in it
            parts = traceback.format_exception(*exc if isinstance(exc, tuple) else (exc,))
            text += "\n" + "".join(parts).rstrip()
        name = {
            LogLevel.DEBUG: ("debug",),
            LogLevel.INFO: ("info",),
            LogLevel.WARN: ("warn", "warning"),
            LogLevel.ERROR: ("error",),
            LogLevel.FATAL: ("fatal", "critical", "error"),
        }[level]
        for n in name:
            fn = getattr(self._user, n, None)
            if callable(fn):
                fn(text)
                return

    def log(self, level: LogLevel, msg: str, *args: Any, exc: ExcInfo = None) -> None:
        self._emit(level, msg, args, exc)

    def debug(self, msg: str, *args: Any, exc: ExcInfo = None) -> None:
        self._emit(LogLevel.DEBUG, msg, args, exc)

    def info(self, msg: str, *args: Any, exc: ExcInfo = None) -> None:
        self._emit(LogLevel.INFO, msg, args, exc)

    def warn(self, msg: str, *args: Any, exc: ExcInfo = None) -> None:
        self._emit(LogLevel.WARN, msg, args, exc)

    def error(self, msg: str, *args: Any, exc: ExcInfo = None) -> None:
        self._emit(LogLevel.ERROR, msg, args, exc)
