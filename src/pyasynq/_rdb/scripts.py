"""The Lua scripts, one file per operation in ``lua/``, loaded once from package data."""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib import resources

# Scripts that must keep running when Redis is full (used_memory > maxmemory under
# `noeviction`): taking, finishing and recovering tasks is what frees memory, so a full
# Redis drains instead of jamming. Redis refuses every other script that may write (the
# enqueue scripts among them) before it runs, so a refused enqueue stores nothing. Each
# of these adds at most a lease entry or a few hash fields per task it takes, and frees a
# whole task when it ends. The flag is a shebang line (Redis 7.0+); `legacy_source` is
# the text without it, for older servers, which cannot compile it.
ALLOW_OOM = frozenset({
    "dequeue", "dequeue_many", "done", "done_many", "mark_complete", "requeue", "retry",
    "archive", "extend_leases", "forward", "quarantine", "delete_expired_completed",
    "lease_orphans", "write_server_state", "snooze",
    # Limits: admitting or parking a task and giving its slot back (a zset entry or a few
    # per task) must go on too, or a limited task would be put back and taken again.
    "limit_acquire", "limit_wake",
})  # fmt: skip
_SHEBANG = "#!lua flags=allow-oom\n"


@cache
def legacy_source(name: str) -> str:
    """The text of ``lua/<name>.lua`` as written: no flags line."""
    try:
        return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text("utf-8")
    except FileNotFoundError:
        raise KeyError(f"no Lua script named {name!r}") from None


@cache
def source(name: str) -> str:
    """The text sent to Redis: ``lua/<name>.lua``, behind a flags line for the scripts
    in ALLOW_OOM."""
    text = legacy_source(name)
    return _SHEBANG + text if name in ALLOW_OOM else text


def names() -> list[str]:
    """Every script shipped with pyasynq."""
    lua = resources.files(__package__).joinpath("lua")
    return sorted(p.name[:-4] for p in lua.iterdir() if p.name.endswith(".lua"))


@cache
def sha(name: str, *, legacy: bool = False) -> str:
    """SHA1 of the script, the name Redis knows it by for EVALSHA (``legacy``: of the
    text without the flags line)."""
    text = legacy_source(name) if legacy else source(name)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


_SCRIPT_LINE = re.compile(r"script: ([0-9a-f]{40}), on @user_script:(\d+)")
_CALL = re.compile(r'redis\.p?call\("([A-Za-z]+)"(?:, "([A-Za-z]+)")?')


def command_in_error(text: str) -> tuple[str, str] | None:
    """For a Redis error raised inside one of our scripts (``... script: <sha>, on
    @user_script:<line>``): the script's name and the Redis command on that line (with
    its subcommand when it has one, e.g. ``memory|usage``), or None when unknown."""
    found = _SCRIPT_LINE.search(text)
    if not found:
        return None
    sha_, line = found.group(1), int(found.group(2))
    for name in names():
        for legacy in (False, True):
            if sha(name, legacy=legacy) == sha_:
                text_ = legacy_source(name) if legacy else source(name)
                lines = text_.splitlines()
                call = _CALL.search(lines[line - 1]) if 0 < line <= len(lines) else None
                if not call:
                    return name, "?"
                cmd = call.group(1).lower()
                if cmd in ("memory", "config", "client", "cluster", "script") and call.group(2):
                    cmd += "|" + call.group(2).lower()
                return name, cmd
    return None
