"""A custom logger with asynq's five levels, as the seed asks (asynq.Logger: Debug, Info,
Warn, Error, Fatal), writing one logfmt line per event::

    time=2025-01-02T03:04:05.678Z level=info pid=4242 msg="sent verify email" username=alice

pyasynq's Server accepts any object with these methods (``Server(..., logger=...)``) and
calls them with one formatted message; the example's own code adds key=value fields.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Any, NoReturn, TextIO

LEVELS = {"debug": 10, "info": 20, "warn": 30, "error": 40, "fatal": 50}
_BARE = re.compile(r"^[^\s=\"\\]+$")


def _value(v: object) -> str:
    if isinstance(v, bytes):
        v = v.decode("utf-8", "backslashreplace")
    text = str(v)
    if text and _BARE.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class StructuredLogger:
    """asynq's Logger interface over logfmt lines; ``with_fields`` binds context."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        level: str = "info",
        fields: dict[str, object] | None = None,
    ) -> None:
        name = level.lower().replace("warning", "warn")
        if name not in LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LEVELS)}; got {level!r}")
        self.stream = stream
        self.level = name
        self.fields = dict(fields or {})
        self._lock = threading.Lock()

    def with_fields(self, **fields: object) -> StructuredLogger:
        child = StructuredLogger(self.stream, level=self.level, fields={**self.fields, **fields})
        child._lock = self._lock  # one stream, one lock: lines never interleave
        return child

    def _log(self, level: str, args: tuple[Any, ...], fields: dict[str, object]) -> None:
        if LEVELS[level] < LEVELS[self.level]:
            return
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        parts = [f"time={now}", f"level={level}", f"pid={os.getpid()}"]
        parts.append(f"msg={_value(' '.join(str(a) for a in args))}")
        parts += [f"{k}={_value(v)}" for k, v in {**self.fields, **fields}.items()]
        line = " ".join(parts) + "\n"
        stream = self.stream or sys.stderr
        with self._lock:
            stream.write(line)
            stream.flush()

    def debug(self, *args: Any, **fields: object) -> None:
        self._log("debug", args, fields)

    def info(self, *args: Any, **fields: object) -> None:
        self._log("info", args, fields)

    def warn(self, *args: Any, **fields: object) -> None:
        self._log("warn", args, fields)

    def error(self, *args: Any, **fields: object) -> None:
        self._log("error", args, fields)

    def fatal(self, *args: Any, **fields: object) -> NoReturn:
        """Log, then exit the process with status 1 at once (asynq's and Go's Fatal)."""
        self._log("fatal", args, fields)
        os._exit(1)
