"""The example's queries on users and verify_emails (simplebank's tables)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from .db import Database, Row, Transaction

VERIFY_EMAIL_TTL = 15 * 60  # seconds a secret code stays valid, as in simplebank


@dataclass(frozen=True)
class User:
    username: str
    full_name: str
    email: str
    is_email_verified: bool
    created_at: float

    @classmethod
    def from_row(cls, row: Row) -> User:
        return cls(
            username=row["username"],
            full_name=row["full_name"],
            email=row["email"],
            is_email_verified=bool(row["is_email_verified"]),  # SQLite gives 0/1
            created_at=float(row["created_at"]),
        )

    def public(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "full_name": self.full_name,
            "email": self.email,
            "is_email_verified": self.is_email_verified,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class VerifyEmail:
    id: int
    username: str
    email: str
    secret_code: str
    task_id: str
    is_used: bool
    expired_at: float
    sent_at: float | None

    @classmethod
    def from_row(cls, row: Row) -> VerifyEmail:
        return cls(
            id=int(row["id"]),
            username=row["username"],
            email=row["email"],
            secret_code=row["secret_code"],
            task_id=row["task_id"],
            is_used=bool(row["is_used"]),
            expired_at=float(row["expired_at"]),
            sent_at=None if row["sent_at"] is None else float(row["sent_at"]),
        )


_USER_COLUMNS = "username, full_name, email, is_email_verified, created_at"


async def create_user(
    tx: Transaction, *, username: str, hashed_password: str, full_name: str, email: str
) -> User:
    """Insert a user; raises db.UniqueViolation on a taken username or email."""
    now = time.time()
    await tx.execute(
        "INSERT INTO users (username, hashed_password, full_name, email, is_email_verified,"
        " created_at) VALUES (?, ?, ?, ?, FALSE, ?)",
        username, hashed_password, full_name, email, now,
    )  # fmt: skip
    return User(username, full_name, email, False, now)


async def get_user(db: Database | Transaction, username: str) -> User | None:
    row = await db.fetchone(f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?", username)
    return None if row is None else User.from_row(row)


async def verify_email_for_task(tx: Transaction, user: User, task_id: str) -> VerifyEmail:
    """The verify_emails row of this task, created with a fresh secret code on the first
    attempt. Keyed by task id, so every retry of the task sends the same code and a
    retried task leaves one row, not one per attempt."""
    now = time.time()
    await tx.execute(
        "INSERT INTO verify_emails (username, email, secret_code, task_id, created_at,"
        " expired_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (task_id) DO NOTHING",
        user.username, user.email, secrets.token_urlsafe(24), task_id, now,
        now + VERIFY_EMAIL_TTL,
    )  # fmt: skip
    row = await tx.fetchone("SELECT * FROM verify_emails WHERE task_id = ?", task_id)
    assert row is not None
    return VerifyEmail.from_row(row)


async def mark_sent(tx: Transaction, verify_email_id: int) -> None:
    await tx.execute(
        "UPDATE verify_emails SET sent_at = ? WHERE id = ?", time.time(), verify_email_id
    )


async def use_verify_email(tx: Transaction, email_id: int, secret_code: str) -> User | None:
    """Mark the code used and the user's email verified; None when the id/code pair is
    unknown, already used or expired."""
    row = await tx.fetchone(
        "SELECT * FROM verify_emails WHERE id = ? AND secret_code = ? AND is_used = FALSE"
        " AND expired_at > ?",
        email_id, secret_code, time.time(),
    )  # fmt: skip
    if row is None:
        return None
    ve = VerifyEmail.from_row(row)
    await tx.execute("UPDATE verify_emails SET is_used = TRUE WHERE id = ?", ve.id)
    await tx.execute("UPDATE users SET is_email_verified = TRUE WHERE username = ?", ve.username)
    return await get_user(tx, ve.username)
