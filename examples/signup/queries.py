"""The example's queries on users and verify_emails (simplebank's tables, models.py), each
on a SQLAlchemy ``AsyncSession`` from ``db.py``."""

from __future__ import annotations

import secrets
import time

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from .db import unique_violation
from .models import User, VerifyEmail

__all__ = [
    "User",
    "VerifyEmail",
    "create_user",
    "get_user",
    "mark_sent",
    "use_verify_email",
    "verify_email_for_task",
]

VERIFY_EMAIL_TTL = 15 * 60  # seconds a secret code stays valid, as in simplebank


async def create_user(
    session: AsyncSession, *, username: str, hashed_password: str, full_name: str, email: str
) -> User:
    """Insert a user; raises db.UniqueViolation on a taken username or email."""
    user = User(
        username=username,
        hashed_password=hashed_password,
        full_name=full_name,
        email=email,
        is_email_verified=False,
        created_at=time.time(),
    )
    session.add(user)
    try:
        await session.flush()  # the INSERT now, so a taken name fails here
    except IntegrityError as exc:
        violation = unique_violation(exc)
        if violation is None:
            raise
        raise violation from exc
    return user


async def get_user(session: AsyncSession, username: str) -> User | None:
    return await session.get(User, username)


async def verify_email_for_task(session: AsyncSession, user: User, task_id: str) -> VerifyEmail:
    """The verify_emails row of this task, created with a fresh secret code on the first
    attempt. Keyed by task id, so every retry of the task sends the same code and a
    retried task leaves one row, not one per attempt."""
    now = time.time()
    row = {
        "username": user.username,
        "email": user.email,
        "secret_code": secrets.token_urlsafe(24),
        "task_id": task_id,
        "created_at": now,
        "expired_at": now + VERIFY_EMAIL_TTL,
    }
    # INSERT ... ON CONFLICT (task_id) DO NOTHING, in each dialect's spelling.
    if session.get_bind().dialect.name == "postgresql":
        pg = postgresql.insert(VerifyEmail).values(row)
        await session.execute(pg.on_conflict_do_nothing(index_elements=["task_id"]))
    else:
        lite = sqlite.insert(VerifyEmail).values(row)
        await session.execute(lite.on_conflict_do_nothing(index_elements=["task_id"]))
    return (await session.scalars(select(VerifyEmail).where(VerifyEmail.task_id == task_id))).one()


async def mark_sent(session: AsyncSession, verify_email_id: int) -> None:
    await session.execute(
        update(VerifyEmail).where(VerifyEmail.id == verify_email_id).values(sent_at=time.time())
    )


async def use_verify_email(session: AsyncSession, email_id: int, secret_code: str) -> User | None:
    """Mark the code used and the user's email verified; None when the id/code pair is
    unknown, already used or expired."""
    # One UPDATE ... RETURNING: two clicks on the link cannot both use the code.
    username = await session.scalar(
        update(VerifyEmail)
        .where(
            VerifyEmail.id == email_id,
            VerifyEmail.secret_code == secret_code,
            VerifyEmail.is_used.is_(False),
            VerifyEmail.expired_at > time.time(),
        )
        .values(is_used=True)
        .returning(VerifyEmail.username)
    )
    if username is None:
        return None
    user = await session.get(User, username)
    assert user is not None  # verify_emails.username references users
    user.is_email_verified = True
    await session.flush()
    return user
