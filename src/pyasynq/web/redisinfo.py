"""The Redis page's data. The public Inspector has no INFO call, so this module is the
one place the dashboard reaches past it (to ``inspector._broker``), as ``pyasynq stats``
does; everything else goes through the public AsyncInspector."""

from __future__ import annotations

from typing import Any

from pyasynq._async.connection import describe
from pyasynq._async.inspector import AsyncInspector
from pyasynq._rdb.ops import Command
from pyasynq._rdb.ops.settings import RedisSettings
from pyasynq.errors import BrokerError

SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Server", ("redis_version", "valkey_version", "redis_mode", "os", "arch_bits",
                "tcp_port", "uptime_in_seconds")),
    ("Clients", ("connected_clients", "blocked_clients", "maxclients")),
    ("Memory", ("used_memory_human", "used_memory_peak_human", "used_memory_rss_human",
                "maxmemory_human", "maxmemory_policy", "mem_fragmentation_ratio")),
    ("Persistence", ("loading", "rdb_changes_since_last_save", "rdb_last_bgsave_status",
                     "aof_enabled", "aof_last_write_status")),
    ("Stats", ("total_connections_received", "total_commands_processed",
               "instantaneous_ops_per_sec", "keyspace_hits", "keyspace_misses",
               "expired_keys", "evicted_keys", "rejected_connections")),
    ("Replication", ("role", "connected_slaves", "master_host", "master_port",
                     "master_link_status")),
)  # fmt: skip

Section = tuple[str, list[tuple[str, str]]]


async def redis_info(inspector: AsyncInspector) -> tuple[str, list[tuple[str, list[Section]]]]:
    """Where Redis is (never with the password), and per node its INFO sections as
    (name, [(field, value)]). A Redis that refuses INFO (some managed ones do) gives a
    node with no sections."""
    broker = inspector._broker
    where = describe(broker.redis)
    try:
        reply = await broker.run(Command(("INFO",)))
    except BrokerError as exc:
        if "unknown command" in str(exc).lower() or "noperm" in str(exc).lower():
            return where, [(where, [])]
        raise
    if not isinstance(reply, dict):
        return where, [(where, [])]
    # A cluster client may answer per node: {"host:port": {...}, ...}.
    if reply and "redis_version" not in reply and all(isinstance(v, dict) for v in reply.values()):
        return where, [(str(node), _sections(info)) for node, info in sorted(reply.items())]
    return where, [(where, _sections(reply))]


def _sections(info: dict[str, Any]) -> list[Section]:
    out: list[Section] = []
    for title, fields in SECTIONS:
        rows = [(f, str(info[f])) for f in fields if f in info]
        if rows:
            out.append((title, rows))
    keyspace = [
        (k, ", ".join(f"{sk}={sv}" for sk, sv in v.items()) if isinstance(v, dict) else str(v))
        for k, v in sorted(info.items())
        if k.startswith("db") and k[2:].isdigit()
    ]
    if keyspace:
        out.append(("Keyspace", keyspace))
    return out


async def redis_settings(inspector: AsyncInspector) -> RedisSettings:
    """Eviction policy and persistence: whether Redis itself may lose tasks (unknown
    parts are None when INFO or CONFIG is refused)."""
    return await inspector._broker.redis_settings()
