"""The example's settings, read once from the environment (the library itself reads none).

Every process of the example (the API, the workers) reads the same variables, so one
environment describes one deployment:

=========================  =====================================  ===========================
variable                   meaning                                default
=========================  =====================================  ===========================
DATABASE_URL               ``sqlite:///path`` or ``postgresql://``  ``sqlite:///signup.sqlite``
REDIS_URL                  Redis for pyasynq (PYASYNQ_REDIS_URL    ``redis://127.0.0.1:6379/0``
                           wins)
SIGNUP_SMTP_HOST/PORT      where the worker sends mail             127.0.0.1 / 8025
SIGNUP_PUBLIC_URL          base of the verification link           http://127.0.0.1:8000
SIGNUP_PROCESS_IN          delay of send_verify_email, seconds     10 (the seed's)
SIGNUP_MAX_RETRY           retries of send_verify_email            10 (the seed's)
SIGNUP_CONCURRENCY         tasks at once per worker process        10
SIGNUP_RETRY_DELAY         first retry delay, doubling, seconds;   asynq's backoff
                           empty for asynq's default backoff
SIGNUP_LEASE_SECONDS       worker lease (heartbeat = lease / 5)    30 (asynq's)
SIGNUP_FORWARD_INTERVAL    how often due tasks are moved to        5 (asynq's)
                           pending, seconds
SIGNUP_LOG_LEVEL           debug, info, warn, error or fatal       info
=========================  =====================================  ===========================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Self
from urllib.parse import urlsplit


def _float(env: dict[str, str], name: str, default: float | None) -> float | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None


def _require(value: float | None) -> float:
    assert value is not None  # only for names given a default
    return value


@dataclass(frozen=True, kw_only=True)
class Settings:
    database_url: str = "sqlite:///signup.sqlite"
    redis_url: str = "redis://127.0.0.1:6379/0"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    public_url: str = "http://127.0.0.1:8000"
    process_in: float = 10.0
    max_retry: int = 10
    concurrency: int = 10
    retry_delay: float | None = None
    lease_seconds: float = 30.0
    forward_interval: float = 5.0
    log_level: str = "info"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Self:
        env = dict(os.environ if environ is None else environ)
        d = cls()
        return cls(
            database_url=env.get("DATABASE_URL") or d.database_url,
            redis_url=env.get("PYASYNQ_REDIS_URL") or env.get("REDIS_URL") or d.redis_url,
            smtp_host=env.get("SIGNUP_SMTP_HOST") or d.smtp_host,
            smtp_port=int(env.get("SIGNUP_SMTP_PORT") or d.smtp_port),
            public_url=(env.get("SIGNUP_PUBLIC_URL") or d.public_url).rstrip("/"),
            process_in=_require(_float(env, "SIGNUP_PROCESS_IN", d.process_in)),
            max_retry=int(env.get("SIGNUP_MAX_RETRY") or d.max_retry),
            concurrency=int(env.get("SIGNUP_CONCURRENCY") or d.concurrency),
            retry_delay=_float(env, "SIGNUP_RETRY_DELAY", None),
            lease_seconds=_require(_float(env, "SIGNUP_LEASE_SECONDS", d.lease_seconds)),
            forward_interval=_require(_float(env, "SIGNUP_FORWARD_INTERVAL", d.forward_interval)),
            log_level=env.get("SIGNUP_LOG_LEVEL") or d.log_level,
        )


def redact(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
