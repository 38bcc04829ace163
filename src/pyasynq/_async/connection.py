"""Turning what the user gave (a URL or a redis-py client) into a connection pool."""

from __future__ import annotations

from urllib.parse import urlsplit

from redis.asyncio import Redis


def connect(target: str | Redis) -> tuple[Redis, bool]:
    """The client to use and whether pyasynq owns it (and so closes it)."""
    if isinstance(target, Redis):
        if target.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError(
                "pyasynq needs a redis-py client made with decode_responses=False: task "
                "messages and payloads are bytes"
            )
        return target, False
    if not isinstance(target, str):
        raise TypeError(
            "redis must be a URL such as 'redis://localhost:6379/0' or a redis-py client, "
            f"got {type(target).__name__}"
        )
    scheme = urlsplit(target).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            f"unsupported Redis URL scheme {scheme!r}: use redis://host:port/db, "
            "rediss://host:port/db (TLS) or unix:///path/to/redis.sock?db=N"
        )
    # rediss:// verifies the server certificate by default (redis-py's ssl_cert_reqs
    # "required"); it is never turned off here.
    client = Redis.from_url(target, decode_responses=False)
    if client.connection_pool.connection_kwargs.get("decode_responses"):
        # A URL query argument beats the keyword in redis-py.
        raise ValueError(
            "remove decode_responses from the Redis URL: pyasynq reads bytes (task "
            "messages and payloads)"
        )
    return client, True


def describe(client: Redis) -> str:
    """Where the client points, without credentials (safe for logs and errors)."""
    kw = client.connection_pool.connection_kwargs
    if "path" in kw:
        where = f"unix:{kw['path']}"
    else:
        where = f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"
    return f"{where}/{kw.get('db', 0)}"
