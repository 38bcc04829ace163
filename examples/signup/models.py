"""The example's tables as SQLAlchemy models, after simplebank's ``users`` and
``verify_emails``. Times are Unix seconds (DOUBLE PRECISION) so that SQLite and PostgreSQL
store and return the same thing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Double, ForeignKey, Integer, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(Text, primary_key=True)
    hashed_password: Mapped[str] = mapped_column(Text)
    full_name: Mapped[str] = mapped_column(Text)
    email: Mapped[str] = mapped_column(Text, unique=True)
    is_email_verified: Mapped[bool] = mapped_column(server_default=false())
    created_at: Mapped[float] = mapped_column(Double)

    def public(self) -> dict[str, Any]:
        """What the API shows of a user (never the password hash)."""
        return {
            "username": self.username,
            "full_name": self.full_name,
            "email": self.email,
            "is_email_verified": self.is_email_verified,
            "created_at": self.created_at,
        }


class VerifyEmail(Base):
    __tablename__ = "verify_emails"
    # AUTOINCREMENT: SQLite never reuses an id, so an old link never names a new row.
    __table_args__ = ({"sqlite_autoincrement": True},)

    # BIGSERIAL on PostgreSQL; SQLite makes only an INTEGER PRIMARY KEY its rowid.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    username: Mapped[str] = mapped_column(Text, ForeignKey("users.username"))
    email: Mapped[str] = mapped_column(Text)
    secret_code: Mapped[str] = mapped_column(Text)
    # One row per task: its retries reuse the row and its secret code.
    task_id: Mapped[str] = mapped_column(Text, unique=True)
    is_used: Mapped[bool] = mapped_column(server_default=false())
    created_at: Mapped[float] = mapped_column(Double)
    expired_at: Mapped[float] = mapped_column(Double)
    sent_at: Mapped[float | None] = mapped_column(Double)
