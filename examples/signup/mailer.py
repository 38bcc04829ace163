"""Sending the verification email over SMTP (the standard library's smtplib, run in a
thread so the worker's event loop keeps going)."""

from __future__ import annotations

import asyncio
import os
import smtplib
from email.message import EmailMessage
from urllib.parse import urlencode

from .models import User, VerifyEmail

SENDER = "Simple Bank <no-reply@simplebank.example>"


def verify_email_message(
    user: User, ve: VerifyEmail, *, public_url: str, task_id: str
) -> EmailMessage:
    link = f"{public_url}/verify_email?" + urlencode(
        {"email_id": ve.id, "secret_code": ve.secret_code}
    )
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = user.email
    msg["Subject"] = "Welcome to Simple Bank"
    # Trace headers: which task and which worker process sent this copy (the tests use
    # them to tie every duplicate to a worker that was killed mid-task).
    msg["X-Task-Id"] = task_id
    msg["X-Worker-Pid"] = str(os.getpid())
    msg["X-Verify-Email-Id"] = str(ve.id)
    msg.set_content(
        f"Hello {user.full_name},\n\n"
        "Thank you for registering with us!\n"
        f"Please verify your email address by opening this link:\n{link}\n"
    )
    return msg


class Mailer:
    def __init__(self, host: str, port: int, *, timeout: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    def _send(self, msg: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            smtp.send_message(msg)

    async def send(self, msg: EmailMessage) -> None:
        """Deliver or raise (smtplib.SMTPException, OSError): the task is then retried."""
        await asyncio.to_thread(self._send, msg)
