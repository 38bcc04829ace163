"""How to reach Redis: a URL, or options for Sentinel and Cluster.

Accepted everywhere pyasynq takes ``redis`` (client, server, scheduler, inspector, CLI):

* ``redis://[user:password@]host[:port][/db]``, ``rediss://...`` (TLS, certificate
  verified), ``unix:///path/redis.sock?db=N``; a database that is not a number is refused;
* ``redis-sentinel://[:password@]host1[:port][,host2[:port]...][/db]?master=<name>``, asynq's
  form: the password is the *sentinel* password. pyasynq also reads ``username``,
  ``password`` (the Redis server's), ``sentinel_username`` and ``tls=true`` from the query;
* ``redis-cluster://[user:password@]host1:port[,host2:port...]`` and ``rediss-cluster://``;
* :class:`SentinelOptions` / :class:`ClusterOptions`;
* an existing redis-py client (``Redis``/``RedisCluster``, asyncio or not), never closed by
  pyasynq.

``rediss://`` URLs also read the TLS files, as redis-py's ``from_url`` does:
``ssl_ca_certs`` (a PEM file of the CAs to trust, e.g. a private CA; default: the system's),
``ssl_ca_path`` (a directory of them), and ``ssl_certfile`` / ``ssl_keyfile`` (a client
certificate, for servers that require one), e.g.
``rediss://redis.internal:6380/0?ssl_ca_certs=/etc/pyasynq/ca.pem``. The server's
certificate and host name are always verified: ``ssl_cert_reqs`` other than ``required``
and ``ssl_check_hostname=false`` are refused, and so is any ``ssl_*`` argument in a URL
without TLS.

Every form also reads ``connect_timeout`` (seconds to open a connection, TLS handshake
included; default :data:`DEFAULT_CONNECT_TIMEOUT`) and ``socket_timeout`` (seconds to
wait for a reply; default :data:`DEFAULT_SOCKET_TIMEOUT`) from the query, e.g.
``redis://host:6379/0?connect_timeout=2``.

Passwords are kept out of ``repr`` and of every message pyasynq writes.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urlsplit

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_SOCKET_TIMEOUT",
    "ClusterOptions",
    "SentinelOptions",
    "parse_url",
]

Address = tuple[str, int]

DEFAULT_CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection to Redis, TLS handshake included (go-redis' dial timeout).
One attempt: a Redis that was never reached is not retried, so a wrong host, port or
scheme fails within this time."""

DEFAULT_SOCKET_TIMEOUT = 5.0
"""Seconds to wait for a reply from Redis (the handshake's too)."""

_DB = re.compile(r"[0-9]{1,5}")


def _db(text: str) -> int:
    if not _DB.fullmatch(text):
        raise ValueError(
            f"bad database number {text!r} in the Redis URL: use a number, as in "
            "redis://host:6379/0"
        )
    return int(text)


def _timeout(value: object, name: str) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return seconds


# TLS settings a rediss:// URL may carry (redis-py reads them from the query); each names a
# file or directory that must exist.
_TLS_FILES = ("ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile")
_TRUE = ("1", "true", "yes", "on", "y")


def _tls_arg(scheme: str, key: str, value: str) -> None:
    """Refuse what would turn verification off or be ignored; check that files exist."""
    if scheme != "rediss":
        raise ValueError(
            f"{key} in the Redis URL needs TLS: use rediss:// (it has no effect on {scheme}://)"
        )
    if key in _TLS_FILES:
        if not os.path.exists(value):
            raise ValueError(f"{key}={value!r} in the Redis URL: no such file or directory")
    elif key == "ssl_cert_reqs":
        if value.lower() != "required":
            raise ValueError(
                f"ssl_cert_reqs={value!r}: pyasynq always verifies the server's certificate; "
                "to trust a private CA, give it with ssl_ca_certs=/path/to/ca.pem"
            )
    elif key == "ssl_check_hostname":
        if value.lower() not in _TRUE:
            raise ValueError(
                "ssl_check_hostname=false: pyasynq always checks that the certificate names "
                "the host; connect with a name the certificate lists (its subjectAltName)"
            )
    elif key not in ("ssl_min_version",):
        raise ValueError(
            f"unknown TLS argument {key!r} in the Redis URL: use ssl_ca_certs, ssl_ca_path, "
            "ssl_certfile, ssl_keyfile or ssl_min_version"
        )


def plain_url_settings(url: str) -> tuple[str, dict[str, float]]:
    """A ``redis://``, ``rediss://`` or ``unix://`` URL checked (its database must be a
    number: redis-py reads ``/abc`` as database 0), without the query arguments pyasynq
    reads itself, and the timeouts to connect with (redis-py's keyword names)."""
    parts = urlsplit(url)
    if parts.scheme != "unix":
        path = parts.path.strip("/")
        if path:
            _db(path)
    timeouts = {
        "socket_connect_timeout": DEFAULT_CONNECT_TIMEOUT,
        "socket_timeout": DEFAULT_SOCKET_TIMEOUT,
    }
    rest = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in ("connect_timeout", "socket_connect_timeout"):
            timeouts["socket_connect_timeout"] = _timeout(value, key)
        elif key == "socket_timeout":
            timeouts["socket_timeout"] = _timeout(value, key)
        else:
            if key == "db":
                _db(value)
            elif key.startswith("ssl"):
                _tls_arg(parts.scheme, key, value)
            rest.append((key, value))
    # Rebuilt by hand: urlunsplit would turn unix:///path into unix:/path.
    base = url.partition("?")[0]
    return (base + "?" + urlencode(rest) if rest else base), timeouts


def _addresses(netloc_hosts: str, default_port: int) -> list[Address]:
    out: list[Address] = []
    for raw in netloc_hosts.split(","):
        part = raw.strip()
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        if not sep:
            host, port = part, str(default_port)
        host = host.strip("[]")
        try:
            out.append((host, int(port)))
        except ValueError:
            raise ValueError(f"bad address {part!r}: use host:port") from None
    if not out:
        raise ValueError("the URL names no host")
    return out


def _check_addrs(addrs: Sequence[Address], what: str) -> list[Address]:
    if not addrs:
        raise ValueError(f"{what} needs at least one host:port address")
    out = []
    for a in addrs:
        if (
            not isinstance(a, tuple)
            or len(a) != 2
            or not isinstance(a[0], str)
            or not isinstance(a[1], int)
        ):
            raise TypeError(f"{what} addresses must be (host, port) tuples, got {a!r}")
        out.append(a)
    return out


@dataclass(frozen=True, kw_only=True)
class SentinelOptions:
    """Redis behind Sentinel (asynq's RedisFailoverClientOpt)."""

    master_name: str
    sentinels: Sequence[Address]
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    db: int = 0
    tls: bool = False
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT

    def __post_init__(self) -> None:
        if not self.master_name:
            raise ValueError("master_name is required (the name the sentinels monitor)")
        object.__setattr__(self, "sentinels", _check_addrs(self.sentinels, "sentinels"))
        _timeout(self.socket_timeout, "socket_timeout")
        _timeout(self.connect_timeout, "connect_timeout")

    def describe(self) -> str:
        """A one-line description for logs and errors, without passwords."""
        hosts = ",".join(f"{h}:{p}" for h, p in self.sentinels)
        return f"sentinel {self.master_name}@{hosts}/{self.db}"


@dataclass(frozen=True, kw_only=True)
class ClusterOptions:
    """A Redis Cluster reached through any of its nodes (asynq's RedisClusterClientOpt)."""

    nodes: Sequence[Address]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    max_redirects: int = 8
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", _check_addrs(self.nodes, "cluster"))
        _timeout(self.socket_timeout, "socket_timeout")
        _timeout(self.connect_timeout, "connect_timeout")

    def describe(self) -> str:
        """A one-line description for logs and errors, without passwords."""
        return "cluster " + ",".join(f"{h}:{p}" for h, p in self.nodes)


def parse_url(url: str) -> str | SentinelOptions | ClusterOptions:
    """The target a URL names: the URL itself for plain Redis, else options."""
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme in ("redis", "rediss", "unix"):
        return url
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    hosts = parts.netloc.rpartition("@")[2]
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    tls = query.get("tls", "").lower() in ("1", "true", "yes")
    connect_timeout = _timeout(
        query.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT), "connect_timeout"
    )
    socket_timeout = _timeout(query.get("socket_timeout", DEFAULT_SOCKET_TIMEOUT), "socket_timeout")
    if scheme == "redis-sentinel":
        master = query.get("master")
        if not master:
            raise ValueError("redis-sentinel:// URLs need ?master=<name>")
        db = _db(parts.path.strip("/") or query.get("db", "0"))
        return SentinelOptions(
            master_name=master,
            sentinels=_addresses(hosts, 26379),
            sentinel_username=query.get("sentinel_username") or user,
            sentinel_password=password,
            username=query.get("username"),
            password=query.get("password"),
            db=db,
            tls=tls,
            connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
        )
    if scheme in ("redis-cluster", "rediss-cluster"):
        if parts.path.strip("/") not in ("", "0"):
            raise ValueError("Redis Cluster has only database 0")
        return ClusterOptions(
            nodes=_addresses(hosts, 6379),
            username=user,
            password=password,
            tls=tls or scheme == "rediss-cluster",
            connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
        )
    raise ValueError(
        f"unsupported Redis URL scheme {scheme!r}: use redis://, rediss://, unix://, "
        "redis-sentinel:// or redis-cluster://"
    )
