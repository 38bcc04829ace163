"""Turning what the user gave (a URL, Sentinel/Cluster options or a redis-py client) into a
client, with the retry policy that carries pyasynq through a failover."""

from __future__ import annotations

import inspect
import random
from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    ConnectionError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
    TimeoutError,
)

from pyasynq.connection import ClusterOptions, SentinelOptions, parse_url
from pyasynq.errors import BrokerError

AnyRedis: TypeAlias = Redis | RedisCluster
Target: TypeAlias = str | Redis | RedisCluster | SentinelOptions | ClusterOptions


def _retry() -> Retry:
    # A few quick reconnects inside one call; longer outages (a failover takes seconds)
    # are ridden out by pyasynq's own loops, which retry with bounded backoff.
    return Retry(ExponentialBackoff(cap=0.5, base=0.05), 3)


_RETRY_ON = [ConnectionError, TimeoutError, ReadOnlyError]


def connect(target: Target) -> tuple[AnyRedis, bool]:
    """The client to use and whether pyasynq owns it (and so closes it)."""
    if isinstance(target, Redis | RedisCluster):
        if _kwargs(target).get("decode_responses"):
            raise ValueError(
                "pyasynq needs a redis-py client made with decode_responses=False: task "
                "messages and payloads are bytes"
            )
        return target, False
    if isinstance(target, str):
        parsed = parse_url(target)
        if isinstance(parsed, str):
            return _from_url(parsed), True
        target = parsed
    if isinstance(target, SentinelOptions):
        return _sentinel(target), True
    if isinstance(target, ClusterOptions):
        return _cluster(target), True
    raise TypeError(
        "redis must be a URL such as 'redis://localhost:6379/0', SentinelOptions, "
        f"ClusterOptions or a redis-py client, got {type(target).__name__}"
    )


def _from_url(url: str) -> Redis:
    # rediss:// verifies the server certificate by default (redis-py's ssl_cert_reqs
    # "required"); it is never turned off here.
    client = Redis.from_url(
        url, decode_responses=False, retry=_retry(), retry_on_error=list(_RETRY_ON)
    )
    if client.connection_pool.connection_kwargs.get("decode_responses"):
        # A URL query argument beats the keyword in redis-py.
        raise ValueError(
            "remove decode_responses from the Redis URL: pyasynq reads bytes (task "
            "messages and payloads)"
        )
    return client


def _sentinel(o: SentinelOptions) -> Redis:
    sentinel_kwargs: dict[str, Any] = {"socket_timeout": o.socket_timeout}
    if o.sentinel_username:
        sentinel_kwargs["username"] = o.sentinel_username
    if o.sentinel_password:
        sentinel_kwargs["password"] = o.sentinel_password
    if o.tls:
        sentinel_kwargs["ssl"] = True
    sentinel: Any = Sentinel(
        list(o.sentinels),
        sentinel_kwargs=sentinel_kwargs,
        socket_timeout=o.socket_timeout,
        username=o.username,
        password=o.password,
        db=o.db,
        ssl=o.tls,
        decode_responses=False,
    )
    master: Redis = sentinel.master_for(
        o.master_name, retry=_retry(), retry_on_error=list(_RETRY_ON)
    )
    return master


def _cluster(o: ClusterOptions) -> RedisCluster:
    try:
        return RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in o.nodes],
            username=o.username,
            password=o.password,
            ssl=o.tls,
            max_connections=64,
            socket_timeout=o.socket_timeout,
            decode_responses=False,
            retry=_retry(),
            retry_on_error=list(_RETRY_ON),
        )
    except (RedisError, RedisClusterException) as exc:  # the sync client connects when made
        raise BrokerError(f"cannot reach Redis at {o.describe()}: {exc}") from exc


def _kwargs(client: Any) -> dict[str, Any]:
    if isinstance(client, RedisCluster):
        # The asyncio cluster client keeps them itself, the sync one in its nodes manager.
        found = getattr(client, "connection_kwargs", None)
        kw: dict[str, Any] = dict(
            found if found is not None else client.nodes_manager.connection_kwargs
        )
        return kw
    return dict(client.connection_pool.connection_kwargs)


def _node_kwargs(cluster: Any, cls: Any = Redis) -> dict[str, Any]:
    """Connection settings of a cluster client that ``cls`` accepts, minus what is per
    node."""
    accepted = inspect.signature(cls.__init__).parameters
    skip = ("host", "port", "connection_class", "retry", "redis_connect_func")
    return {k: v for k, v in _kwargs(cluster).items() if k not in skip and k in accepted}


def clone(client: AnyRedis) -> AnyRedis:
    """A client with its own connections to the same place (for another thread)."""
    c: Any = client
    if isinstance(client, RedisCluster):
        nodes = c.get_nodes() or list(c.nodes_manager.startup_nodes.values())
        seeds = [ClusterNode(n.host, int(n.port)) for n in nodes]
        kw = _node_kwargs(c, RedisCluster)
        copy: AnyRedis = RedisCluster(startup_nodes=seeds, retry=_retry(), **kw)
        return copy
    pool = c.connection_pool
    if hasattr(pool, "service_name"):
        # Sentinel-managed: the same sentinels, but through a Sentinel of our own, since
        # its connections belong to one event loop (the clone serves another thread).
        old = pool.sentinel_manager
        addrs = [
            (
                s.connection_pool.connection_kwargs["host"],
                s.connection_pool.connection_kwargs["port"],
            )
            for s in old.sentinels
        ]
        fresh_manager: Any = Sentinel(
            addrs,
            min_other_sentinels=old.min_other_sentinels,
            sentinel_kwargs=dict(old.sentinel_kwargs),
            **old.connection_kwargs,
        )
        master: Redis = fresh_manager.master_for(
            pool.service_name, retry=_retry(), retry_on_error=list(_RETRY_ON)
        )
        return master
    fresh = type(pool)(connection_class=pool.connection_class, **pool.connection_kwargs)
    return Redis.from_pool(fresh)  # the client owns (and closes) this pool


def node_client(cluster: AnyRedis, host: str, port: int) -> Redis:
    """A plain client to one node of ``cluster``, with the cluster's credentials."""
    return Redis(host=host, port=port, **_node_kwargs(cluster))


def pubsub_client(client: AnyRedis, channel: str) -> tuple[Redis, bool]:
    """A plain client for SUBSCRIBE to ``channel``. Returns the client and whether the
    caller must close it. In a cluster, classic PUBLISH reaches every node, but its reply
    counts only the subscribers of the node that took it: subscribe on the master of the
    channel's slot, where PUBLISH is routed (redis-py and go-redis both do), so that count
    covers every server."""
    c: Any = client
    if isinstance(client, RedisCluster):
        try:
            node = c.get_node_from_key(channel)
        except SlotNotCoveredError:  # slots not known yet: any node still gets the messages
            node = random.choice(c.get_nodes() or [c.get_default_node()])
        return Redis(host=node.host, port=int(node.port), **_node_kwargs(c)), True
    return client, False


def describe(client: AnyRedis) -> str:
    """Where the client points, without credentials (safe for logs and errors)."""
    c: Any = client
    if isinstance(client, RedisCluster):
        nodes = c.get_nodes() or list(c.nodes_manager.startup_nodes.values())
        return "cluster " + ",".join(f"{n.host}:{n.port}" for n in nodes[:6])
    pool = c.connection_pool
    kw = pool.connection_kwargs
    if hasattr(pool, "service_name"):
        return f"sentinel master {pool.service_name}/{kw.get('db', 0)}"
    if "path" in kw:
        where = f"unix:{kw['path']}"
    else:
        where = f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"
    return f"{where}/{kw.get('db', 0)}"
