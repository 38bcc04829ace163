"""Generate the sync twins in src/pyasynq/_sync from src/pyasynq/_async.

The async modules are the source of truth. This rewrites each one token by token
(``async def`` -> ``def``, ``await x`` -> ``x``, ``AsyncClient`` -> ``Client``, ...).
``--check`` exits 1 when a committed twin differs from what would be generated (CI runs it).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "pyasynq" / "_async"
DST = ROOT / "src" / "pyasynq" / "_sync"

# Whole-word substitutions, applied in order.
SUBS = [
    ("async def", "def"),
    ("async with", "with"),
    ("async for", "for"),
    ("await ", ""),
    ("__aenter__", "__enter__"),
    ("__aexit__", "__exit__"),
    ("__aiter__", "__iter__"),
    ("__anext__", "__next__"),
    ("aclose", "close"),
    ("redis.asyncio", "redis"),
    ("pyasynq._async", "pyasynq._sync"),
    ("AsyncBroker", "Broker"),
    ("AsyncClient", "Client"),
    ("AsyncBatcher", "Batcher"),
    ("AsyncInspector", "Inspector"),
    ("AsyncResultListener", "ResultListener"),
    ("AsyncIterator", "Iterator"),
    ("AsyncIterable", "Iterable"),
    ("asyncio.sleep", "time.sleep"),
    ("import asyncio", "import time"),
    ("StopAsyncIteration", "StopIteration"),
    ("AsyncWire", "NoWire"),  # the async lane's asyncio Protocol; the sync lane has none
]
HEADER = "# Generated from pyasynq/_async by scripts/unasync.py: do not edit.\n"


def transform(text: str, name: str) -> str:
    for old, new in SUBS:
        tail = r"(?!\w)" if old[-1].isalnum() else ""
        text = re.sub(r"(?<!\w)" + re.escape(old) + tail, new, text)
    # Format like the rest of the tree, so the check does not flag line wrapping.
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", name, "-"],
        input=HEADER + text,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    # Renamed imports (redis.asyncio -> redis) can change their sorted order.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--select",
            "I",
            "--fix",
            "--quiet",
            "--stdin-filename",
            name,
            "-",
        ],
        input=done.stdout,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    return done.stdout


def main() -> int:
    check = "--check" in sys.argv
    stale = []
    DST.mkdir(exist_ok=True)
    wanted = set()
    for src in sorted(SRC.glob("*.py")):
        out = DST / src.name
        wanted.add(out.name)
        new = transform(src.read_text(), str(out))
        if not out.exists() or out.read_text() != new:
            stale.append(out)
            if not check:
                out.write_text(new)
    extra = [p for p in DST.glob("*.py") if p.name not in wanted]
    if check:
        for p in stale + extra:
            print(f"{p.relative_to(ROOT)} is out of date: run `make sync`", file=sys.stderr)
        return 1 if stale or extra else 0
    for p in extra:
        p.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
