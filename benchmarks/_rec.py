"""What a benchmark handler calls inside a worker process (stdlib only: it runs in every
peer's venv, and the Go worker speaks the same file protocol).

- ``done()`` at the end of a drain task: the completion time goes into an in-process
  array (no Redis command, no syscall), so measuring adds the same tiny cost to every system.
  A daemon thread writes the running count to ``$BENCH_DIR/counts/<pid>`` every 50 ms and,
  once ``$BENCH_DIR/dump`` exists, all completion times to ``$BENCH_DIR/times/<pid>``
  (float64 seconds since the epoch, native byte order).
- ``started(i)`` at the start of a latency task: one datagram ``"<i> <time_ns>"`` to the
  driver's socket ``$BENCH_DIR/lat.sock``.
"""

from __future__ import annotations

import array
import contextlib
import os
import socket
import threading
import time

_DIR = os.environ.get("BENCH_DIR", "")
_times = array.array("d")
_pid = 0
_lock = threading.Lock()
_sock: socket.socket | None = None


def done() -> None:
    _times.append(time.time())
    if _pid != os.getpid():
        _start()


def started(i: int) -> None:
    global _sock  # noqa: PLW0603 - per-process state of a tiny module
    t = time.time_ns()
    if not _DIR:
        return
    if _sock is None:
        _sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    # OSError: the driver is not listening (yet), and that sample is simply lost
    with contextlib.suppress(OSError):
        _sock.sendto(b"%d %d" % (i, t), os.path.join(_DIR, "lat.sock"))


def _start() -> None:
    global _pid  # noqa: PLW0603
    with _lock:
        if _pid == os.getpid():
            return
        if _pid:  # a forked child inherits its parent's array: start afresh
            del _times[:-1]
        _pid = os.getpid()
        if _DIR:
            threading.Thread(target=_flush_loop, name="bench-rec", daemon=True).start()


def _write(path: str, data: bytes) -> None:
    head, tail = os.path.split(path)
    tmp = os.path.join(head, f".{tail}.tmp")  # readers skip dot files
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _flush_loop() -> None:
    pid = os.getpid()
    counts = os.path.join(_DIR, "counts")
    times = os.path.join(_DIR, "times")
    os.makedirs(counts, exist_ok=True)
    os.makedirs(times, exist_ok=True)
    written = dumped = -1
    while True:
        n = len(_times)
        if n != written:
            _write(os.path.join(counts, str(pid)), str(n).encode())
            written = n
        if n != dumped and os.path.exists(os.path.join(_DIR, "dump")):
            _write(os.path.join(times, str(pid)), _times[:n].tobytes())
            dumped = n
        time.sleep(0.05)
