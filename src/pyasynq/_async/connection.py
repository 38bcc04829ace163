"""Turning what the user gave (a URL, Sentinel/Cluster options or a redis-py client) into a
client, with the retry policy that carries pyasynq through a failover."""

from __future__ import annotations

import inspect
import random
import re
from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    AuthenticationError,
    ConnectionError,
    NoPermissionError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
    TimeoutError,
)

from pyasynq._rdb import scripts
from pyasynq.connection import ClusterOptions, SentinelOptions, parse_url, plain_url_settings
from pyasynq.errors import BrokerError

AnyRedis: TypeAlias = Redis | RedisCluster
Target: TypeAlias = str | Redis | RedisCluster | SentinelOptions | ClusterOptions


def _retry() -> Retry:
    # A few quick reconnects inside one call; longer outages (a failover takes seconds)
    # are ridden out by pyasynq's own loops, which retry with bounded backoff. A timeout
    # is not retried here: each try would wait the whole timeout again. Refused
    # credentials are not retried where redis-py lets us say so (is_retryable, 6.x+).
    kw: dict[str, Any] = {}
    if "is_retryable" in inspect.signature(Retry.__init__).parameters:
        kw["is_retryable"] = _worth_retrying
    return Retry(
        ExponentialBackoff(cap=0.5, base=0.05), 3, supported_errors=(ConnectionError,), **kw
    )


_RETRY_ON = [ConnectionError, ReadOnlyError]

# What Redis answers when the credentials are missing or wrong (redis-py drops the
# error code from some of them, so the texts are matched too).
_NO_PASSWORD = ("NOAUTH", "Authentication required", "HELLO must be called")
_NO_PASSWORD_SET = ("without any password configured", "no password is set")
_REFUSED = ("WRONGPASS", "invalid password", "invalid username-password")
# A command refused inside a Lua script: Redis names neither NOPERM nor the command.
_SCRIPT_NOPERM = "The user executing the script can't run this command"


def refused(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is Redis refusing the credentials or the
    command (NOAUTH, WRONGPASS, NOPERM): retrying cannot help, the configuration must
    change."""
    cur: BaseException | None = exc
    while cur is not None:
        if isinstance(cur, AuthenticationError | NoPermissionError):
            return True
        text = str(cur)
        if text.startswith("NOPERM") or any(
            marker in text
            for marker in (*_NO_PASSWORD, *_NO_PASSWORD_SET, *_REFUSED, _SCRIPT_NOPERM)
        ):
            return True
        cur = cur.__cause__
    return False


def _worth_retrying(exc: Exception) -> bool:
    return not refused(exc)


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
    url, timeouts = plain_url_settings(url)
    client = Redis.from_url(
        url,
        decode_responses=False,
        retry=_retry(),
        retry_on_error=list(_RETRY_ON),
        socket_connect_timeout=timeouts["socket_connect_timeout"],
        socket_timeout=timeouts["socket_timeout"],
    )
    if client.connection_pool.connection_kwargs.get("decode_responses"):
        # A URL query argument beats the keyword in redis-py.
        raise ValueError(
            "remove decode_responses from the Redis URL: pyasynq reads bytes (task "
            "messages and payloads)"
        )
    return client


def _sentinel(o: SentinelOptions) -> Redis:
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": o.socket_timeout,
        "socket_connect_timeout": o.connect_timeout,
    }
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
        socket_connect_timeout=o.connect_timeout,
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
            socket_connect_timeout=o.connect_timeout,
            decode_responses=False,
            retry=_retry(),
            retry_on_error=list(_RETRY_ON),
        )
    except (RedisError, RedisClusterException) as exc:  # the sync client connects when made
        hint = _explain(
            exc,
            o.describe(),
            has_password=o.password is not None,
            tls=o.tls,
            connect_timeout=o.connect_timeout,
            read_timeout=o.socket_timeout,
        )
        raise BrokerError(hint or f"cannot reach Redis at {o.describe()}: {exc}") from exc


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


def explain(exc: BaseException, client: AnyRedis, where: str, reached: bool) -> str | None:
    """A message that says what to check, for a failure the user fixes in the URL or in
    Redis (credentials, permissions, host, TLS), or None. ``reached``: whether Redis ever
    answered this client (a timeout then is an outage, not a wrong address)."""
    kw = _kwargs(client)
    pool_class = getattr(getattr(client, "connection_pool", None), "connection_class", None)
    tls = bool(kw.get("ssl")) or (
        isinstance(pool_class, type) and issubclass(pool_class, SSLConnection)
    )
    return _explain(
        exc,
        where,
        has_password=bool(kw.get("password")),
        tls=tls,
        connect_timeout=None if reached else kw.get("socket_connect_timeout"),
        read_timeout=None if reached else kw.get("socket_timeout"),
        first=not reached,
    )


def _explain(
    exc: BaseException,
    where: str,
    *,
    has_password: bool,
    tls: bool,
    connect_timeout: float | None,
    read_timeout: float | None,
    first: bool = False,
) -> str | None:
    text = str(exc)
    if refused(exc):
        if _SCRIPT_NOPERM in text:
            found = scripts.command_in_error(text)
            what = (
                f"NOPERM: the {found[0]} script may not run '{found[1]}'"
                if found
                else "NOPERM: a Lua script called a command this user may not run"
            )
            return (
                f"Redis at {where} does not let this user do what pyasynq needs ({what}): "
                "give the ACL user the rules of its role in docs/security.md"
            )
        if text.startswith("NOPERM") or isinstance(exc, NoPermissionError):
            code = "" if text.startswith("NOPERM") else "NOPERM "  # redis-py drops it
            return (
                f"Redis at {where} does not let this user do what pyasynq needs ({code}{text}): "
                "give the ACL user the rules of its role in docs/security.md"
            )
        if any(m in text for m in _NO_PASSWORD_SET):
            return (
                f"Redis at {where} has no password set, but the URL gives one: remove it "
                "from the URL, or set one in Redis (requirepass)"
            )
        if not has_password:
            return (
                f"Redis at {where} requires a password: put it in the URL "
                "(redis://:PASSWORD@host:port, or redis://USER:PASSWORD@host:port for an "
                "ACL user)"
            )
        return (
            f"Redis at {where} refused the password: check the user and password in the URL "
            "(redis://[USER]:PASSWORD@host:port)"
        )
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return _bad_certificate(text, where)
    if isinstance(exc, MasterNotFoundError):
        return f"no sentinel gave the address of the master ({_one_line(text)})"
    tls_hint = (
        "; the URL asks for TLS (rediss://): a server without TLS never completes the "
        "handshake, so use redis:// for it"
        if tls
        else ""
    )
    if isinstance(exc, TimeoutError) and connect_timeout and "connecting" in text:
        return (
            f"no connection to Redis at {where} within {connect_timeout:g} s: check the host "
            f"and port, and that Redis runs there{tls_hint} (raise connect_timeout in the URL "
            "for a slow network)"
        )
    if isinstance(exc, TimeoutError) and read_timeout:
        return (
            f"Redis at {where} took the connection but did not answer within "
            f"{read_timeout:g} s: check that this address is a Redis server{tls_hint}"
        )
    if first and isinstance(exc, ConnectionError) and _NOTHING_THERE.search(text):
        # Never answered: a wrong address or a Redis that is not running, not an outage.
        return (
            f"cannot reach Redis at {where} ({_one_line(text)}): check that Redis runs "
            "there and the host and port (or socket path) in the URL"
        )
    return None


# What the OS says when nothing listens at the address (TCP, or a Unix socket path).
_NOTHING_THERE = re.compile(r"Connection refused|Error 111|Error 2 |No such file or directory")


def _bad_certificate(text: str, where: str) -> str:
    """TLS verification refused the server (fail closed): say which check and the fix."""
    reason = text.partition("certificate verify failed: ")[2].partition(" (_ssl")[0].rstrip(".")
    if "mismatch" in reason or "Hostname" in reason:
        fix = (
            "connect with a host name the certificate lists (its subjectAltName), or have "
            "the certificate reissued for this one"
        )
    else:
        fix = (
            "the certificate is not signed by a CA this client trusts: give the CA that "
            "signed it with ?ssl_ca_certs=/path/to/ca.pem in the rediss:// URL"
        )
    reason = reason or "verify failed"
    return f"TLS to Redis at {where} refused the server's certificate ({reason}): {fix}"


# redis-py puts the repr of each sentinel's client (a ~900-character dump of the pool's
# settings) into MasterNotFoundError; keep the sentinel's address and its error.
_CLIENT_REPR = re.compile(r"<redis\.[\w.]*Redis\((.*?)\)> - ")
_HOST = re.compile(r"host=([^,)]+),port=(\d+)")


def _one_line(text: str) -> str:
    def short(m: re.Match[str]) -> str:
        found = _HOST.search(m.group(1))
        return f"sentinel {found.group(1)}:{found.group(2)}: " if found else "sentinel: "

    text = _CLIENT_REPR.sub(short, text).replace("\n", " ")
    return text if len(text) <= 400 else text[:400] + "..."
