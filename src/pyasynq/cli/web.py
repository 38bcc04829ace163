"""``pyasynq web``: serve the web dashboard (pyasynq.web) with uvicorn.

Authentication is required: ``--user U`` with ``--password-env VAR`` or
``--password-file F`` (HTTP Basic). ``--insecure-open-dashboard`` serves it without, and
only on a loopback address. Anything else is refused before Redis is even touched.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from . import output as out
from .common import UsageError

if TYPE_CHECKING:
    from pyasynq.web import BasicAuth

WEB_EXTRA_HINT = "pyasynq web needs the web extra: pip install 'pyasynq[web]'"


def register(sub: Any) -> None:
    p = sub.add_parser("web", help="serve the web dashboard (queues, tasks, servers, actions)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")  # fmt: skip
    p.add_argument("--user", help="HTTP Basic user name (needs a password flag)")
    pw = p.add_mutually_exclusive_group()
    pw.add_argument("--password-env", metavar="VAR",
                    help="environment variable holding the password")  # fmt: skip
    pw.add_argument("--password-file", metavar="FILE",
                    help="file whose first line is the password")  # fmt: skip
    p.add_argument("--read-only", action="store_true", help="hide and refuse every action")
    p.add_argument("--insecure-open-dashboard", action="store_true",
                   help="serve without authentication (loopback --host only)")  # fmt: skip
    p.add_argument("--refresh", type=int, default=5, metavar="SECONDS",
                   help="default page refresh interval, 0 for off (default 5)")  # fmt: skip
    p.add_argument("--title", default="pyasynq", help="title shown in the pages")
    p.add_argument("--log-level", default="warning",
                   choices=("debug", "info", "warning", "error"),
                   help="uvicorn's log level; info logs requests (default warning)")  # fmt: skip
    p.set_defaults(func=run)


def _require_extra() -> None:
    missing = [m for m in ("starlette", "jinja2", "uvicorn") if not find_spec(m)]
    if not (find_spec("python_multipart") or find_spec("multipart")):
        missing.append("python-multipart")
    if missing:
        raise UsageError(f"{WEB_EXTRA_HINT} (missing: {', '.join(missing)})")


def _password(args: argparse.Namespace) -> str | None:
    if args.password_env:
        value = os.environ.get(args.password_env, "")
        if not value:
            raise UsageError(
                f"--password-env {args.password_env}: that variable is not set or empty"
            )
        return value
    if args.password_file:
        try:
            with open(args.password_file, encoding="utf-8") as f:
                value = f.readline().rstrip("\r\n")
        except OSError as exc:
            raise UsageError(f"cannot read --password-file {args.password_file}: "
                             f"{exc.strerror or exc}") from None  # fmt: skip
        if not value:
            raise UsageError(f"--password-file {args.password_file}: the first line is empty")
        return value
    return None


def auth_from_args(args: argparse.Namespace) -> BasicAuth | None:
    """The dashboard's credentials, or None for an open one; UsageError for anything
    unsafe or incomplete."""
    from pyasynq.web.security import BasicAuth, is_loopback

    password = _password(args)
    if args.user is None and password is None:
        if not args.insecure_open_dashboard:
            raise UsageError(
                "refusing to serve the dashboard without authentication: give --user U with "
                "--password-env VAR or --password-file F (or --insecure-open-dashboard on a "
                "loopback --host)"
            )
        if not is_loopback(args.host):
            raise UsageError(
                f"--insecure-open-dashboard serves on loopback only, not on --host {args.host}: "
                "add --user and a password to listen there"
            )
        return None
    if args.insecure_open_dashboard:
        raise UsageError("give --user and a password, or --insecure-open-dashboard, not both")
    if args.user is None:
        raise UsageError("a password flag needs --user")
    if password is None:
        raise UsageError("--user needs --password-env VAR or --password-file F")
    try:
        return BasicAuth(args.user, password)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _listen(host: str, port: int) -> socket.socket:
    """Bind the socket ourselves: a busy port is then one clear line, not a traceback."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def run(args: argparse.Namespace) -> int:
    _require_extra()
    auth = auth_from_args(args)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0 to 65535, got {args.port}")
    if not 0 <= args.refresh <= 3600:
        raise UsageError(f"--refresh must be 0 (off) to 3600 seconds, got {args.refresh}")
    import uvicorn

    from pyasynq._sync.inspector import Inspector
    from pyasynq.errors import PyAsynqError
    from pyasynq.web import create_app
    from pyasynq.web.security import is_loopback

    with out.redis(args) as url:
        with out.usage():
            probe = Inspector(url)
        try:
            probe.ping()
        except PyAsynqError as exc:
            print(f"pyasynq: {exc}", file=sys.stderr)
            return 1
        finally:
            probe.close()
        app = create_app(
            url,
            auth=auth,
            read_only=args.read_only,
            title=args.title,
            refresh_seconds=args.refresh,
            open_on_loopback=auth is None,
        )
        sock = _listen(args.host, args.port)
        port = sock.getsockname()[1]
        shown = f"[{args.host}]" if ":" in args.host else args.host
        who = "no authentication (loopback only)" if auth is None else f"user {auth.username}"
        mode = ", read-only" if args.read_only else ""
        print(f"pyasynq: dashboard at http://{shown}:{port}/ ({who}{mode}; Ctrl-C to stop)",
              file=sys.stderr, flush=True)  # fmt: skip
        if auth is not None and not is_loopback(args.host):
            print("pyasynq: warning: plain HTTP off loopback sends the password in clear; "
                  "serve it behind HTTPS (a reverse proxy)", file=sys.stderr)  # fmt: skip
        config = uvicorn.Config(
            app, log_level=args.log_level, access_log=args.log_level in ("debug", "info")
        )
        # uvicorn re-raises the SIGTERM it handled once it has shut down; end with a
        # normal exit then, so the embedded Redis (if any) is stopped on the way out.
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            signal.signal(signal.SIGTERM, previous)
            sock.close()
    return 0


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)
