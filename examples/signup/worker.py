"""The processor: a standalone worker process that sends the verification emails.

Run it as its own process (settings from the environment, see ``settings.py``)::

    python -m examples.signup.worker

which builds the Server as the seed does (queues critical 10 / default 5, an error handler,
a custom logger), or through pyasynq's CLI with this module's ``mux`` and ``config``::

    python -m pyasynq worker examples.signup.worker:mux \
        --config examples.signup.worker:config --processes 2

For each ``task:send_verify_email`` the handler reads the user, records a verify_emails row
with a secret code (one row per task, reused by retries), and sends the email over SMTP.
An unknown user is SkipRetry (archived at once, error "user ... not found"); an SMTP
failure raises, so the task is retried with backoff.
"""

from __future__ import annotations

import asyncio

from pyasynq import (
    ServeMux,
    Server,
    ServerConfig,
    SkipRetry,
    Task,
    current_task,
    default_retry_delay,
)
from pyasynq.config import RetryDelayFunc

from . import queries
from .db import Database
from .distributor import (
    QUEUE_CRITICAL,
    QUEUE_DEFAULT,
    TASK_SEND_VERIFY_EMAIL,
    PayloadSendVerifyEmail,
)
from .logger import StructuredLogger
from .mailer import Mailer, verify_email_message
from .settings import Settings, redact

settings = Settings.from_env()
log = StructuredLogger(level=settings.log_level)


class TaskProcessor:
    """The seed's RedisTaskProcessor: the handlers and what they need, opened lazily on
    the server's event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.mailer = Mailer(settings.smtp_host, settings.smtp_port)
        self._db: Database | None = None
        self._db_lock = asyncio.Lock()

    async def db(self) -> Database:
        async with self._db_lock:
            if self._db is None:
                db = Database(self.settings.database_url)
                try:
                    await db.create_schema()
                except BaseException:
                    await db.close()  # the next task tries again with a fresh engine
                    raise
                self._db = db
            return self._db

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def process_task_send_verify_email(self, task: Task) -> None:
        ctx = current_task()
        try:
            payload = PayloadSendVerifyEmail.from_task(task)
        except ValueError as exc:
            raise SkipRetry(str(exc)) from exc  # a bad payload stays bad: do not retry
        tlog = log.with_fields(task_id=ctx.id, retry=ctx.retry_count, username=payload.username)
        tlog.info("sending verify email")
        db = await self.db()
        async with db.session() as session:
            user = await queries.get_user(session, payload.username)
        if user is None:
            # SkipRetry: the user will not appear by retrying (with enqueue-after-commit a
            # task only exists for committed users), so archive the task at once.
            raise SkipRetry(f"user {payload.username!r} not found: skip retry")
        async with db.transaction() as session:
            ve = await queries.verify_email_for_task(session, user, ctx.id)
        if ve.sent_at is not None:
            # Sent by an earlier run of this task that died before acknowledging it.
            tlog.info("verify email already sent", email=user.email, verify_email_id=ve.id)
            return
        msg = verify_email_message(user, ve, public_url=self.settings.public_url, task_id=ctx.id)
        await self.mailer.send(msg)  # raises on refusal: the task is retried
        async with db.transaction() as session:
            await queries.mark_sent(session, ve.id)
        tlog.info("sent verify email", email=user.email, verify_email_id=ve.id)


def report_error(task: Task, err: BaseException) -> None:
    """The seed's ErrorHandler: log every failed attempt with the task's type and payload."""
    log.error(
        "process task failed",
        type=task.type,
        payload=task.payload or b"",
        error=f"{type(err).__name__}: {err}",
    )


def retry_delay_func(settings: Settings) -> RetryDelayFunc:
    """asynq's default backoff, or ``SIGNUP_RETRY_DELAY`` doubling per retry (max 60 s)."""
    if settings.retry_delay is None:
        return default_retry_delay
    base = settings.retry_delay

    def delay(retried: int, error: BaseException, task: Task) -> float:
        return min(base * 2.0**retried, 60.0)

    return delay


def build_config(settings: Settings) -> ServerConfig:
    lease = settings.lease_seconds
    return ServerConfig(
        queues={QUEUE_CRITICAL: 10, QUEUE_DEFAULT: 5},
        concurrency=settings.concurrency,
        error_handler=report_error,
        logger=log.with_fields(component="pyasynq"),
        log_level=settings.log_level,
        retry_delay_func=retry_delay_func(settings),
        lease_duration=lease,
        heartbeat_interval=lease / 5,
        recoverer_interval=min(60.0, lease / 3),
        delayed_task_check_interval=settings.forward_interval,
        task_check_interval=min(1.0, settings.forward_interval),
    )


processor = TaskProcessor(settings)
mux = ServeMux()
mux.handle(TASK_SEND_VERIFY_EMAIL, processor.process_task_send_verify_email)
config = build_config(settings)


async def serve() -> None:
    server = Server(settings.redis_url, config=config)
    try:
        await server.serve(mux, signals=True)  # until SIGTERM/SIGINT, then graceful
    finally:
        await processor.close()


def main() -> None:
    log.info(
        "start task processor",
        redis=redact(settings.redis_url),
        database=redact(settings.database_url),
        smtp=f"{settings.smtp_host}:{settings.smtp_port}",
    )
    asyncio.run(serve())


if __name__ == "__main__":
    main()
