"""The sign-up HTTP API (Starlette), the seed's "create user" RPC over HTTP.

Run: ``uvicorn examples.signup.api:app --port 8000`` (settings from the environment, see
``settings.py``).

``POST /users`` ``{"username", "full_name", "email", "password"}`` creates the user and,
once the transaction has committed, distributes ``task:send_verify_email`` (queue
critical, max_retry 10, process_in 10 s by default). Answers: 201 with the user and the
task; 400 for a body that is not a JSON object; 422 with per-field messages for invalid
fields; 409 for a taken username or email. Nothing is enqueued unless the user was
committed.

``GET /users/{username}``, ``GET /verify_email?email_id=&secret_code=`` (the link in the
email) and ``GET /healthz`` complete the picture.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pyasynq import AsyncClient
from pyasynq.integrations.sqlalchemy import EnqueueAfterCommitError

from . import queries
from .db import Database, UniqueViolation
from .distributor import PayloadSendVerifyEmail, TaskDistributor
from .settings import Settings

logger = logging.getLogger("signup.api")

USERNAME = re.compile(r"^[a-z0-9_]{3,40}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


def validate(body: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """The cleaned fields, and a message per invalid field."""
    errors: dict[str, str] = {}
    clean: dict[str, str] = {}
    for name in ("username", "full_name", "email", "password"):
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            errors[name] = "required (a non-empty string)"
            continue
        clean[name] = value.strip() if name != "password" else value
    if "username" in clean and not USERNAME.match(clean["username"]):
        errors["username"] = "3-40 characters: lowercase letters, digits and underscores"
    if "full_name" in clean and len(clean["full_name"]) > 100:
        errors["full_name"] = "at most 100 characters"
    if "email" in clean and (len(clean["email"]) > 200 or not EMAIL.match(clean["email"])):
        errors["email"] = "not a valid email address"
    if "password" in clean and not 6 <= len(clean["password"]) <= 100:
        errors["password"] = "6-100 characters"
    return clean, errors


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    n, r, p = 2**14, 8, 1
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


async def create_user(request: Request) -> JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return JSONResponse({"error": "the body must be a JSON object"}, status_code=400)
    fields, errors = validate(body)
    if errors:
        return JSONResponse({"error": "invalid fields", "fields": errors}, status_code=422)

    db: Database = request.app.state.db
    distributor: TaskDistributor = request.app.state.distributor
    hashed = await asyncio.to_thread(hash_password, fields["password"])
    try:
        async with db.transaction() as session:
            user = await queries.create_user(
                session,
                username=fields["username"],
                hashed_password=hashed,
                full_name=fields["full_name"],
                email=fields["email"],
            )
            # Not enqueued yet: only once COMMIT succeeds, so a worker never looks for a
            # user that is not there (and a rolled-back sign-up sends nothing).
            pending = distributor.distribute_task_send_verify_email_after_commit(
                session, PayloadSendVerifyEmail(user.username)
            )
    except UniqueViolation as exc:
        return JSONResponse(
            {"error": f"{exc.column} already exists", "field": exc.column}, status_code=409
        )
    except EnqueueAfterCommitError as exc:
        # The user is committed; only the email task is missing. Say so rather than
        # pretend the sign-up failed.
        logger.error("user %s created but not enqueued: %s", fields["username"], exc)
        return JSONResponse(
            {"user": user.public(), "verify_email_task": None, "warning": str(exc)},
            status_code=201,
        )
    info = pending.info
    assert info is not None
    task = {
        "id": info.id,
        "type": info.type,
        "queue": info.queue,
        "state": str(info.state),
        "max_retry": info.max_retry,
        "next_process_at": info.next_process_at.isoformat() if info.next_process_at else None,
    }
    return JSONResponse({"user": user.public(), "verify_email_task": task}, status_code=201)


async def get_user(request: Request) -> JSONResponse:
    db: Database = request.app.state.db
    async with db.session() as session:
        user = await queries.get_user(session, request.path_params["username"])
    if user is None:
        return JSONResponse({"error": "user not found"}, status_code=404)
    return JSONResponse({"user": user.public()})


async def verify_email(request: Request) -> JSONResponse:
    try:
        email_id = int(request.query_params["email_id"])
        code = request.query_params["secret_code"]
    except (KeyError, ValueError):
        return JSONResponse({"error": "email_id and secret_code are required"}, 400)
    db: Database = request.app.state.db
    async with db.transaction() as session:
        user = await queries.use_verify_email(session, email_id, code)
    if user is None:
        return JSONResponse({"error": "unknown, used or expired code"}, status_code=404)
    return JSONResponse({"user": user.public()})


async def healthz(request: Request) -> JSONResponse:
    db: Database = request.app.state.db
    async with db.session() as session:
        await session.execute(text("SELECT 1"))
    await request.app.state.client.ping()
    return JSONResponse({"ok": True})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    settings = Settings.from_env()
    db = Database(settings.database_url)
    await db.create_schema()
    client = AsyncClient(settings.redis_url)
    app.state.db = db
    app.state.client = client
    app.state.distributor = TaskDistributor(
        client, max_retry=settings.max_retry, process_in=settings.process_in
    )
    try:
        yield
    finally:
        await client.aclose()
        await db.close()


app = Starlette(
    routes=[
        Route("/users", create_user, methods=["POST"]),
        Route("/users/{username}", get_user, methods=["GET"]),
        Route("/verify_email", verify_email, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ],
    lifespan=lifespan,
)
