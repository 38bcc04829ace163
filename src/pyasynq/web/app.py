"""``create_app``: the dashboard as a Starlette app, and what every page shares (settings,
rendering, URLs). Pages are in :mod:`.pages`, actions in :mod:`.actions`."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pyasynq._async.inspector import AsyncInspector

from . import present
from .security import AuthCallback, BasicAuth, Guard, csrf_token

HERE = Path(__file__).parent
HTMX_VERSION = "4.0.1"  # static/htmx.min.js, from the htmx.org npm package (0BSD licence)
REFRESH_COOKIE = "pyasynq_refresh"
REFRESH_CHOICES = (0, 2, 5, 10, 30, 60)
LIVE_TARGET = "div#live"  # htmx 4's HX-Target for the self-refreshing region


@dataclass(frozen=True, slots=True)
class Dashboard:
    """The settings one app serves with (``request.app.state.dashboard``)."""

    inspector: AsyncInspector
    read_only: bool
    title: str
    refresh_seconds: int
    secret: bytes
    env: jinja2.Environment


def create_app(
    inspector_or_url: AsyncInspector | str,
    *,
    auth: BasicAuth | tuple[str, str] | AuthCallback | None = None,
    read_only: bool = False,
    title: str = "pyasynq",
    refresh_seconds: int = 5,
    open_on_loopback: bool = False,
    secret_key: bytes | str | None = None,
) -> Starlette:
    """The dashboard as an ASGI app, to serve alone or mount in your own app
    (``Mount("/tasks", app=create_app(...))``).

    ``auth`` is required: ``BasicAuth(user, password)`` (or a ``(user, password)``
    tuple) for HTTP Basic, or a callable ``auth(request) -> bool`` (or awaitable) of the
    host app that must return True to let a request in. Without it, ``open_on_loopback``
    must be True: the dashboard then answers loopback clients only. ``read_only`` hides
    and refuses every action. ``refresh_seconds`` is the default interval of the pages'
    self-refresh (0: off; each browser can change it). ``secret_key`` signs the CSRF
    tokens; a random one is made per app when not given.

    A URL makes the app own its inspector, closed when the app's lifespan ends (a
    mounted app's lifespan does not run: hand in an AsyncInspector you close yourself);
    an AsyncInspector handed in is left open.
    """
    basic, callback = _auth(auth, open_on_loopback)
    if isinstance(refresh_seconds, bool) or not isinstance(refresh_seconds, int):
        raise TypeError(f"refresh_seconds must be an int, got {refresh_seconds!r}")
    if not 0 <= refresh_seconds <= 3600:
        raise ValueError(f"refresh_seconds must be 0 (off) to 3600, got {refresh_seconds}")
    if isinstance(inspector_or_url, AsyncInspector):
        inspector, owned = inspector_or_url, False
    elif isinstance(inspector_or_url, str):
        inspector, owned = AsyncInspector(inspector_or_url), True
    else:
        raise TypeError(
            "create_app takes an AsyncInspector or a Redis URL, got "
            f"{type(inspector_or_url).__name__}"
        )
    if secret_key is None:
        secret = secrets.token_bytes(32)
    else:
        secret = secret_key.encode() if isinstance(secret_key, str) else bytes(secret_key)
        if len(secret) < 16:
            raise ValueError("secret_key must be at least 16 bytes")
    dashboard = Dashboard(
        inspector=inspector,
        read_only=read_only,
        title=title,
        refresh_seconds=refresh_seconds,
        secret=secret,
        env=_environment(),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if owned:
                await inspector.aclose()

    from . import actions, pages

    routes = [
        Route("/", pages.overview, name="overview"),
        Route("/queue", pages.queue, name="queue"),
        Route("/task", pages.task, name="task"),
        Route("/task/raw", pages.task_raw, name="task_raw"),
        Route("/groups", pages.groups, name="groups"),
        Route("/servers", pages.servers, name="servers"),
        Route("/schedulers", pages.schedulers, name="schedulers"),
        Route("/scheduler", pages.scheduler_entry, name="scheduler"),
        Route("/redis", pages.redis, name="redis"),
        Route("/actions/task", actions.task_action, methods=["POST"]),
        Route("/actions/bulk", actions.bulk_action, methods=["POST"]),
        Route("/actions/queue", actions.queue_action, methods=["POST"]),
        Route("/prefs", actions.prefs, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    open_ = basic is None and callback is None
    guard = Middleware(
        Guard, basic=basic, callback=callback, open_on_loopback=open_, on_error=server_error
    )
    app = Starlette(
        routes=routes,
        middleware=[guard],
        lifespan=lifespan,
        exception_handlers={404: not_found},
    )
    app.state.dashboard = dashboard
    return app


def _auth(
    auth: BasicAuth | tuple[str, str] | AuthCallback | None, open_on_loopback: bool
) -> tuple[BasicAuth | None, AuthCallback | None]:
    if auth is None:
        if not open_on_loopback:
            raise ValueError(
                "the pyasynq dashboard requires authentication: pass "
                "auth=BasicAuth(user, password) or auth=<callable(request) -> bool>, or "
                "open_on_loopback=True for an open dashboard that answers loopback only"
            )
        return None, None
    if open_on_loopback:
        raise ValueError("give auth or open_on_loopback=True, not both")
    if isinstance(auth, BasicAuth):
        return auth, None
    if isinstance(auth, tuple):
        user, password = auth
        return BasicAuth(user, password), None
    if callable(auth):
        return None, auth
    raise TypeError(f"auth must be BasicAuth, (user, password) or a callable, got {auth!r}")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template, every value: Redis data is untrusted text
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        fmt_time=present.fmt_time,
        fmt_rel=present.fmt_rel,
        fmt_delta=present.fmt_delta,
        fmt_span=present.fmt_span,
        fmt_bytes=present.fmt_bytes,
        error_rate=present.error_rate,
        preview=present.preview,
    )
    return env


# --- what every page shares -----------------------------------------------------------------


def dashboard_of(request: Request) -> Dashboard:
    d: Dashboard = request.app.state.dashboard
    return d


def session_of(request: Request) -> str:
    s: str = request.scope["state"]["pyasynq_session"]
    return s


def url(request: Request, path: str, **params: Any) -> str:
    """A path inside the dashboard, wherever it is mounted, with a query string."""
    state = request.scope.get("state") or {}
    base = str(state.get("pyasynq_root", request.scope.get("root_path", "")))
    query = {k: v for k, v in params.items() if v is not None and v != ""}
    return base + path + ("?" + urlencode(query) if query else "")


def here(request: Request) -> str:
    qs = request.scope.get("query_string", b"").decode("latin-1")
    return str(request.scope["path"]) + ("?" + qs if qs else "")


_SMALL_INT = re.compile(r"[0-9]{1,9}")


def small_int(raw: str | None) -> int | None:
    """``raw`` as a number when it is 1 to 9 ASCII digits, else None. (``str.isdigit``
    also takes '²' and other digits ``int`` refuses, and ``int`` refuses very long ones.)"""
    if raw is None or not _SMALL_INT.fullmatch(raw):
        return None
    return int(raw)


def refresh_of(request: Request) -> int:
    value = small_int(request.cookies.get(REFRESH_COOKIE))
    if value is not None and value in refresh_choices(request):
        return value
    return dashboard_of(request).refresh_seconds


def refresh_choices(request: Request) -> tuple[int, ...]:
    default = dashboard_of(request).refresh_seconds
    return tuple(sorted({*REFRESH_CHOICES, default}))


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A full page, or only its live region when htmx polls for it."""
    d = dashboard_of(request)
    csrf = csrf_token(d.secret, session_of(request))
    ctx: dict[str, Any] = {
        "title": d.title,
        "read_only": d.read_only,
        "csrf": csrf,
        "hx_headers": json.dumps({"X-CSRF-Token": csrf}),
        "here": here(request),
        "refresh": refresh_of(request),
        "refresh_choices": refresh_choices(request),
        "now": datetime.now(UTC),
        "htmx_version": HTMX_VERSION,
        "u": lambda path, **params: url(request, path, **params),
        **context,
    }
    tmpl = d.env.get_template(template)
    if is_htmx(request) and request.headers.get("hx-target") == LIVE_TARGET:
        # What {% extends %} does at render time: the page's blocks, then base's.
        page = tmpl.new_context(ctx)
        for name, block in d.env.get_template("base.html").blocks.items():
            page.blocks.setdefault(name, []).append(block)
        body = "".join(page.blocks["livewrap"][0](page))
    else:
        body = tmpl.render(ctx)
    out = HTMLResponse(body, status_code=status, headers=dict(headers or {}))
    out.headers["cache-control"] = "no-store"
    return out


async def not_found(request: Request, exc: Exception) -> Response:
    """The styled page for a path the dashboard does not have (and a missing static
    file); an HTTPException with a message of its own keeps it."""
    detail = exc.detail if isinstance(exc, HTTPException) and exc.detail != "Not Found" else None
    message = detail or f"The dashboard has no page at {request.url.path}."
    return render(request, "error.html", {"nav": "", "heading": "Not found", "message": message},
                  status=404)  # fmt: skip


async def server_error(request: Request) -> Response:
    """The page for a request that failed inside the dashboard (logged by the Guard)."""
    message = "The dashboard failed to show this page; its log has the details."
    return render(request, "error.html", {"nav": "", "heading": "Internal error",
                                          "message": message}, status=500)  # fmt: skip
