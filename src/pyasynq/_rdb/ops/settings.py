"""What Redis' own configuration means for the tasks in it: whether a full Redis evicts
task data, whether a restart loses it. Read with INFO (allowed on most managed Redis) and
``CONFIG GET save`` (often refused there: then the RDB schedule is unknown).

What each eviction policy does to pyasynq's keys (docs/redis-setup.md says the same):

* ``noeviction``: nothing is evicted; writes that need memory are refused (OOM). The
  worker's scripts run anyway (see scripts.ALLOW_OOM), so a full Redis drains.
* ``allkeys-*``: any key may go, task hashes and queue lists included: tasks are lost.
* ``volatile-*``: only keys with a TTL may go. Task data never has one; uniqueness locks,
  daily processed/failed counters, and server, worker and scheduler heartbeats do. When
  none of those is left, writes are refused as with ``noeviction``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Command

SAFE_POLICY = "noeviction"


def read_info(*sections: str) -> Command:
    """INFO of ``sections`` (one: older Redis take one), or every default section
    (memory and persistence among them)."""
    return Command(("INFO", *sections))


def read_save() -> Command:
    """The RDB snapshot schedule (``""`` = no snapshots)."""
    return Command(("CONFIG", "GET", "save"))


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """The settings of one Redis that decide whether tasks survive; None = unknown."""

    maxmemory: int | None = None  # bytes, 0 = no limit
    policy: str | None = None  # maxmemory-policy
    aof: bool | None = None  # appendonly
    rdb_save: str | None = None  # the `save` schedule, "" = no RDB snapshots

    @property
    def evicts_tasks(self) -> bool:
        """Whether a full Redis deletes task data (an allkeys-* policy)."""
        return bool(self.policy and self.policy.startswith("allkeys-"))

    @property
    def persistence(self) -> str:
        """``aof``, ``rdb``, ``aof+rdb``, ``none`` or ``unknown``."""
        rdb = None if self.rdb_save is None else self.rdb_save.strip() != ""
        if self.aof:
            return "aof+rdb" if rdb else "aof"
        if rdb:
            return "rdb"
        if self.aof is False and rdb is False:
            return "none"
        return "unknown"

    def describe_persistence(self) -> str:
        """One line for people: what is on, and what a restart loses."""
        p = self.persistence
        if p == "none":
            return "none (no RDB snapshots, AOF off): a Redis restart loses every task"
        if p == "unknown":
            aof = {True: "AOF on", False: "AOF off", None: "AOF unknown"}[self.aof]
            return f"unknown ({aof}; the RDB schedule could not be read)"
        parts = []
        if self.aof:
            parts.append("AOF")
        if p in ("rdb", "aof+rdb"):
            parts.append(f"RDB snapshots (save {self.rdb_save})")
        text = " + ".join(parts)
        if p == "rdb":
            text += ": a crash loses the tasks written since the last snapshot"
        return text

    def eviction_warning(self) -> str | None:
        """What the eviction policy does to tasks, when it is not noeviction."""
        if not self.policy or self.policy == SAFE_POLICY:
            return None
        if self.evicts_tasks:
            return (
                f"Redis maxmemory-policy is {self.policy!r}: when Redis is full it deletes "
                "task data to make room, so tasks are lost, acknowledged ones included. Set "
                "`maxmemory-policy noeviction` for a task queue."
            )
        return (
            f"Redis maxmemory-policy is {self.policy!r}: when Redis is full it deletes keys "
            "that have a TTL. Task data has none and is kept, but uniqueness locks (a "
            "duplicate unique task can then be enqueued), daily counters and server "
            "heartbeats can go. Set `maxmemory-policy noeviction` for a task queue."
        )

    def persistence_warning(self) -> str | None:
        if self.persistence != "none":
            return None
        return (
            'Redis has no persistence (no RDB snapshots: save ""; AOF off): a restart of '
            "Redis loses every task. Turn on `appendonly yes` (or RDB snapshots) in its "
            "configuration."
        )

    def warnings(self) -> list[str]:
        return [w for w in (self.eviction_warning(), self.persistence_warning()) if w]

    def as_dict(self) -> dict[str, Any]:
        """For JSON output."""
        return {
            "maxmemory": self.maxmemory,
            "maxmemory_policy": self.policy,
            "aof_enabled": self.aof,
            "rdb_save": self.rdb_save,
            "persistence": self.persistence,
            "warnings": self.warnings(),
        }


def _text(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _node(reply: object) -> dict[str, Any]:
    """A reply as one node's dict: a cluster client may answer {node: {...}, ...}; then
    the first node speaks for all (they share one configuration in practice)."""
    if not isinstance(reply, dict):
        return {}
    if reply and all(isinstance(v, dict) for v in reply.values()):
        return dict(next(iter(reply.values())))
    return {_text(k): v for k, v in reply.items()}


def _int(v: object) -> int | None:
    try:
        return int(_text(v))
    except (TypeError, ValueError):
        return None


def settings_from(info: object, save: object = None) -> RedisSettings:
    """The settings from an INFO reply and a ``CONFIG GET save`` reply (either may be
    None or an error: unknown)."""
    i = _node(info)
    aof = _int(i.get("aof_enabled"))
    s = _node(save)
    if not s and isinstance(save, list | tuple) and len(save) == 2:  # a raw [name, value]
        s = {_text(save[0]): save[1]}
    rdb = _text(s["save"]) if "save" in s else None
    policy = i.get("maxmemory_policy")
    return RedisSettings(
        maxmemory=_int(i.get("maxmemory")),
        policy=None if policy is None else _text(policy),
        aof=None if aof is None else aof == 1,
        rdb_save=rdb,
    )


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # unreachable


def out_of_memory_message(what: str, info: object) -> str:
    """The error for a write Redis refused because it is full (OOM), with the limit and
    the policy from ``info`` (an INFO reply, or None when it could not be read)."""
    i = _node(info)
    limit = _int(i.get("maxmemory"))
    policy = _text(i.get("maxmemory_policy", "?"))
    size = "?" if limit is None else _human(limit)
    return (
        f"Redis is out of memory (maxmemory {size}, policy {policy}): {what} was refused "
        "and nothing was stored. Free memory (delete tasks you no longer need), raise "
        "maxmemory, or let the workers drain the queues; workers keep running meanwhile"
    )


def read_time() -> Command:
    """Redis's clock (``TIME``). In a Cluster any node answers: masters on synced hosts
    agree, and pyasynq only needs one clock that every one of its processes shares."""
    return Command(("TIME",))


def time_result(reply: Any) -> int:
    """``TIME``'s ``[seconds, microseconds]`` as Unix nanoseconds."""
    sec, usec = reply
    return int(sec) * 1_000_000_000 + int(usec) * 1_000
