"""What keeps the dashboard safe by default: authentication, the cross-site checks on
POSTs, the per-session CSRF token, and the security headers on every response.

It is one ASGI middleware (:class:`Guard`) in front of the routes, so no route can be
reached without passing it; the CSRF token itself is checked by the action handlers,
which are the only ones reading a form.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import inspect
import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

AuthCallback = Callable[[Request], "bool | Awaitable[bool]"]
ErrorPage = Callable[[Request], Awaitable[Response]]

log = logging.getLogger(__name__)

SESSION_COOKIE = "pyasynq_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# No inline script or style anywhere: htmx and the CSS are static files; charts are
# inline SVG that uses classes and presentation attributes only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """HTTP Basic credentials the dashboard asks for (send it over HTTPS off loopback)."""

    username: str
    password: str
    realm: str = "pyasynq"

    def __post_init__(self) -> None:
        if not self.username or ":" in self.username:
            raise ValueError("the dashboard user name must be non-empty and hold no ':'")
        if not self.password:
            raise ValueError("the dashboard password must not be empty")
        if '"' in self.realm or "\\" in self.realm:
            raise ValueError("the realm must not hold quotes or backslashes")

    def __repr__(self) -> str:  # never print the password
        return f"BasicAuth(username={self.username!r}, password='***')"

    def check(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries these credentials. Both parts are
        compared in constant time, and both always are, so timing tells nothing."""
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        user_ok = hmac.compare_digest(user, self.username.encode())
        password_ok = hmac.compare_digest(password, self.password.encode())
        return bool(sep) and user_ok & password_ok

    def challenge(self) -> Response:
        """The 401 response that makes a browser ask for the credentials."""
        return PlainTextResponse(
            "Authentication required.",
            status_code=401,
            headers={"WWW-Authenticate": f'Basic realm="{self.realm}", charset="UTF-8"'},
        )


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (a name or an address, IPv6 optionally in brackets) is loopback."""
    if not host:
        return False
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_without_port(host_header: str) -> str:
    if host_header.startswith("["):  # [::1]:8080
        return host_header.split("]", 1)[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def csrf_token(secret: bytes, session: str) -> str:
    """The form token of a session: an HMAC of its id, so a cookie planted by a sibling
    domain is useless without the token the server renders into our own pages."""
    return hmac.new(secret, session.encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: bytes, session: str | None, token: str | None) -> bool:
    if not session or not token:
        return False
    return hmac.compare_digest(csrf_token(secret, session).encode(), token.encode())


def cross_site_reason(headers: dict[str, str], host: str) -> str | None:
    """Why an unsafe request looks cross-site, or None. Browsers send Sec-Fetch-Site
    (all current ones) and Origin on POSTs; either disagreeing is enough to refuse."""
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {site!r}"
    origin = headers.get("origin")
    if origin is not None:
        if origin == "null":
            return "Origin is null"
        netloc = origin.split("://", 1)[-1].rstrip("/")
        # Scheme is not compared: behind a TLS-terminating proxy the app sees http.
        if netloc.lower() != host.lower():
            return f"Origin {origin!r} does not match the host {host!r}"
    return None


class Guard:
    """ASGI middleware: authenticate, refuse cross-site unsafe requests, give each
    browser a session id (for the CSRF token), and add the security headers.

    It also answers a request the app failed on (logged here, once) with ``on_error``'s
    page: Starlette's own error middleware sits outside every user middleware, so its
    plain 500 would go out without the security headers."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        basic: BasicAuth | None,
        callback: AuthCallback | None,
        open_on_loopback: bool,
        on_error: ErrorPage | None = None,
    ) -> None:
        self.app = app
        self.basic = basic
        self.callback = callback
        self.open_on_loopback = open_on_loopback
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = await self._refuse(request)
        if refusal is None:
            refusal = self._cross_site(request)
        session = request.cookies.get(SESSION_COOKIE)
        new_session = None
        if not session or len(session) != 43:
            new_session = session = secrets.token_urlsafe(32)
        state = scope.setdefault("state", {})
        state["pyasynq_session"] = session
        # Where the dashboard is mounted; a route inside a Mount (static files) sees
        # a longer root_path, which must not leak into the links of an error page.
        state["pyasynq_root"] = str(scope.get("root_path", ""))

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
                if new_session is not None and refusal is None:
                    headers.append((b"set-cookie", _session_cookie(request, new_session)))
                message = {**message, "headers": headers}
            await send(message)

        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if started:  # too late for another response: the server closes the stream
                raise
            log.exception("dashboard: %s %s failed", request.method, request.url.path)
            await (await self._error_page(request))(scope, receive, send_with_headers)

    async def _error_page(self, request: Request) -> Response:
        if self.on_error is not None:
            try:
                return await self.on_error(request)
            except Exception:
                log.exception("dashboard: the error page failed too")
        return PlainTextResponse("Internal error: the dashboard's log has the details.", 500)

    async def _refuse(self, request: Request) -> Response | None:
        """The response refusing an unauthenticated request, or None to let it in."""
        if self.basic is not None:
            ok = self.basic.check(request.headers.get("authorization"))
            return None if ok else self.basic.challenge()
        if self.callback is not None:
            verdict: Any = self.callback(request)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            if verdict is True:
                return None
            return PlainTextResponse("Forbidden: not authorized for the dashboard.", 403)
        # Open dashboard: loopback clients only, and only under a loopback host name, so
        # a DNS-rebinding page cannot drive it from the user's own browser.
        client = request.client.host if request.client else None
        host = host_without_port(request.headers.get("host", ""))
        if is_loopback(client) and is_loopback(host):
            return None
        return PlainTextResponse(
            "Forbidden: this open dashboard answers loopback requests for a loopback host "
            "name only.",
            403,
        )

    @staticmethod
    def _cross_site(request: Request) -> Response | None:
        if request.method in SAFE_METHODS:
            return None
        headers = {k: v for k, v in request.headers.items()}
        reason = cross_site_reason(headers, request.headers.get("host", ""))
        if reason is None:
            return None
        return PlainTextResponse(f"Forbidden: cross-site request refused ({reason}).", 403)


def _session_cookie(request: Request, value: str) -> bytes:
    path = request.scope.get("root_path", "") or "/"
    secure = "; Secure" if request.url.scheme == "https" else ""
    return f"{SESSION_COOKIE}={value}; Path={path}; HttpOnly; SameSite=Strict{secure}".encode()
