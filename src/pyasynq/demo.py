"""The README's main job: the seed's sign-up service, end to end (``make demo``).

``python -m pyasynq.demo`` runs ``examples/signup`` from this source checkout: an HTTP API
that creates users and enqueues ``task:send_verify_email``, two worker processes that send
the verification emails, a local SMTP sink, and Redis (an embedded server when neither
``PYASYNQ_REDIS_URL`` nor ``REDIS_URL`` is set). It signs up a batch of users, shows the
emails going out, prints a summary and stops what it started. ``--help`` lists the flags.

It needs the checkout (the example is not part of the installed package) and the
``examples`` extra: ``pip install -e '.[examples]'`` (``make demo`` does both).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

# What the example imports beyond pyasynq (the `examples` extra; psycopg only for
# PostgreSQL).
_NEEDS = ("starlette", "uvicorn", "httpx", "aiosmtpd", "sqlalchemy", "greenlet", "aiosqlite")


def _checkout() -> Path | None:
    """The source tree that holds examples/signup: this file's, else the current one."""
    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (root / "examples" / "signup" / "demo.py").is_file():
            return root
    return None


def main(argv: list[str] | None = None) -> int:
    root = _checkout()
    if root is None:
        print(
            "pyasynq demo: examples/signup/ not found. The demo runs from a source checkout: "
            "`make demo` in the repository.",
            file=sys.stderr,
        )
        return 2
    missing = [m for m in _NEEDS if importlib.util.find_spec(m) is None]
    if missing:
        print(
            f"pyasynq demo: missing {', '.join(missing)}; install the examples extra: "
            "pip install -e '.[examples]' (or `make demo`)",
            file=sys.stderr,
        )
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    demo = importlib.import_module("examples.signup.demo")
    return int(demo.main(argv))


if __name__ == "__main__":
    sys.exit(main())
