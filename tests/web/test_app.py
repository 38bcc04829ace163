"""The dashboard over HTTP (httpx against the ASGI app, real Redis): authentication, the
cross-site and CSRF checks, headers, escaping, actions and their confirmations."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount

import pyasynq
from pyasynq import AsyncInspector
from pyasynq._rdb import keys
from pyasynq.web import BasicAuth, create_app
from pyasynq.web.security import CSP

from .support import PASSWORD, USER, XSS, XSS_QUEUE, XSS_TYPE, in_list, in_zset, paused

HOST = "dash.example"
BASE = f"http://{HOST}"
SAME_ORIGIN = {"origin": BASE, "sec-fetch-site": "same-origin"}
HTMX = {"hx-request": "true", **SAME_ORIGIN}
PAGES = ["/", "/groups", "/servers", "/schedulers", "/redis"]


@pytest.fixture
async def insp(redis_url: str, r: redis.Redis) -> AsyncIterator[AsyncInspector]:
    i = AsyncInspector(redis_url)
    yield i
    await i.aclose()


@pytest.fixture
async def enqueue(redis_url: str, r: redis.Redis) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    client = pyasynq.AsyncClient(redis_url)

    async def add(task_type: str = "t", payload: bytes = b"p", **options: Any) -> str:
        headers = options.pop("headers", None)
        info = await client.enqueue(pyasynq.Task(task_type, payload, headers=headers), **options)
        return info.id

    yield add
    await client.aclose()


def http(app: Any, *, auth: Any = (USER, PASSWORD), client: tuple[str, int] = ("10.1.2.3", 5555),
         base: str = BASE) -> httpx.AsyncClient:  # fmt: skip
    transport = httpx.ASGITransport(app=app, client=client)
    return httpx.AsyncClient(transport=transport, base_url=base, auth=auth)


@pytest.fixture
async def dash(insp: AsyncInspector) -> AsyncIterator[httpx.AsyncClient]:
    async with http(create_app(insp, auth=BasicAuth(USER, PASSWORD))) as c:
        yield c


async def token(c: httpx.AsyncClient, path: str = "/") -> str:
    """The CSRF token the page renders for this client's session cookie."""
    page = await c.get(path)
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


# --- configuration --------------------------------------------------------------------------


async def test_create_app_refuses_to_run_without_authentication(insp: AsyncInspector) -> None:
    with pytest.raises(ValueError, match="requires authentication"):
        create_app(insp)
    with pytest.raises(ValueError, match="not both"):
        create_app(insp, auth=("u", "p"), open_on_loopback=True)
    with pytest.raises(ValueError, match="password must not be empty"):
        create_app(insp, auth=("u", ""))
    with pytest.raises(ValueError, match="refresh_seconds"):
        create_app(insp, auth=("u", "p"), refresh_seconds=-1)
    with pytest.raises(ValueError, match="secret_key"):
        create_app(insp, auth=("u", "p"), secret_key="short")
    with pytest.raises(TypeError, match="AsyncInspector or a Redis URL"):
        create_app(42, auth=("u", "p"))  # type: ignore[arg-type]
    assert "p4ss" not in repr(BasicAuth("u", "p4ss"))


# --- authentication -------------------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {raw}"}


async def test_basic_auth_is_required(insp: AsyncInspector) -> None:
    async with http(create_app(insp, auth=BasicAuth(USER, PASSWORD)), auth=None) as c:
        for path in ["/", "/static/htmx.min.js", "/task/raw?q=a&id=b", "/nope"]:
            res = await c.get(path)
            assert res.status_code == 401, path
            assert res.headers["www-authenticate"] == 'Basic realm="pyasynq", charset="UTF-8"'
        for headers in [
            basic(USER, "wrong"),
            basic("root", PASSWORD),
            basic(USER, PASSWORD + "x"),
            basic(USER, ""),
            {"authorization": "Basic !!!notbase64"},
            {"authorization": "Bearer token"},
            {"authorization": "Basic " + base64.b64encode(USER.encode()).decode()},  # no colon
        ]:
            assert (await c.get("/", headers=headers)).status_code == 401, headers
        res = await c.get("/", headers=basic(USER, PASSWORD))  # non-ASCII password, as UTF-8
        assert res.status_code == 200
        assert "set-cookie" in res.headers and "HttpOnly" in res.headers["set-cookie"]


async def test_an_auth_callback_decides(insp: AsyncInspector) -> None:
    seen: list[str] = []

    def sync_check(request: Request) -> bool:
        seen.append(request.url.path)
        return request.headers.get("x-user") == "ops"

    async def async_check(request: Request) -> bool:
        return request.headers.get("x-user") == "ops"

    for check in (sync_check, async_check):
        async with http(create_app(insp, auth=check), auth=None) as c:
            assert (await c.get("/", headers={"x-user": "ops"})).status_code == 200
            refused = await c.get("/", headers={"x-user": "guest"})
            assert refused.status_code == 403
            assert refused.headers["content-security-policy"] == CSP
    assert seen == ["/", "/"]


async def test_an_open_dashboard_answers_loopback_only(insp: AsyncInspector) -> None:
    app = create_app(insp, open_on_loopback=True)
    async with http(app, auth=None, client=("127.0.0.1", 4000), base="http://localhost:8080") as c:
        assert (await c.get("/")).status_code == 200
        # A DNS-rebinding page reaches loopback under its own host name: refused.
        assert (await c.get("/", headers={"host": "evil.example"})).status_code == 403
    async with http(app, auth=None, client=("::1", 4000), base="http://[::1]:8080") as c:
        assert (await c.get("/")).status_code == 200
    async with http(app, auth=None, client=("192.168.1.9", 4000), base="http://localhost") as c:
        assert (await c.get("/")).status_code == 403


# --- headers and escaping -------------------------------------------------------------------


async def test_security_headers_on_every_response(dash: httpx.AsyncClient) -> None:
    responses = [await dash.get(p) for p in [*PAGES, "/static/htmx.min.js", "/queue?q=none"]]
    responses.append(await dash.get("/", auth=None))  # 401
    responses.append(await dash.post("/actions/queue", headers={"origin": "http://x.example"}))
    for res in responses:
        assert res.headers["content-security-policy"] == CSP, res.url
        assert res.headers["x-content-type-options"] == "nosniff"
        assert res.headers["referrer-policy"] == "same-origin"
        assert res.headers["x-frame-options"] == "DENY"
    assert "script-src 'self';" in CSP and "unsafe-inline" not in CSP
    page = await dash.get("/")
    assert page.headers["cache-control"] == "no-store"


class Markup(HTMLParser):
    """Every element and attribute of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.script_text.append(data)


async def test_pages_carry_no_inline_script_and_escape_redis_data(
    dash: httpx.AsyncClient, enqueue: Callable[..., Awaitable[str]]
) -> None:
    ids = [await enqueue(XSS_TYPE, x.encode(), queue="xss", headers={"x": x}) for x in XSS]
    await enqueue("e", b"x", queue=XSS_QUEUE)
    await enqueue("agg", XSS[0].encode(), queue="xss", group=XSS[1])
    paths = [
        *PAGES,
        "/queue?q=xss",
        "/queue?" + httpx.QueryParams({"q": XSS_QUEUE}).__str__(),
        "/queue?q=xss&state=aggregating",
        *(f"/task?q=xss&id={i}&view={v}" for i in ids for v in ("text", "hex")),
    ]
    for path in paths:
        res = await dash.get(path)
        assert res.status_code == 200, path
        markup = Markup()
        markup.feed(res.text)
        assert markup.script_text == [], path
        for tag, attrs in markup.tags:
            assert not [a for a in attrs if a.startswith("on")], (path, tag, attrs)
            assert "style" not in attrs, (path, tag)
            if tag == "script":
                assert attrs.get("src") == "/static/htmx.min.js", path
            for name in ("href", "src", "action", "hx-get", "hx-post"):
                value = (attrs.get(name) or "").strip().lower()
                assert not value.startswith(("javascript:", "js:", "data:")), (path, tag, attrs)
        assert [t for t, _ in markup.tags].count("script") == 1
        assert "<script>window" not in res.text and "<img src=x" not in res.text
    detail = (await dash.get(f"/task?q=xss&id={ids[0]}&view=text")).text
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in detail


async def test_task_raw_is_a_download_never_a_page(
    dash: httpx.AsyncClient, enqueue: Callable[..., Awaitable[str]]
) -> None:
    payload = b"<html><script>alert(1)</script></html>"
    task_id = await enqueue("t", payload, queue="q", task_id='a"b/../c')
    res = await dash.get("/task/raw", params={"q": "q", "id": task_id})
    assert res.status_code == 200 and res.content == payload
    assert res.headers["content-type"] == "application/octet-stream"
    assert res.headers["content-disposition"] == 'attachment; filename="a_b_.._c.payload.bin"'
    assert (await dash.get("/task/raw", params={"q": "q", "id": "nope"})).status_code == 404


# --- cross-site requests and CSRF -----------------------------------------------------------


async def test_cross_site_post_is_refused(
    dash: httpx.AsyncClient, enqueue: Callable[..., Awaitable[str]], r: redis.Redis
) -> None:
    await enqueue(queue="q1")
    form = {"queue": "q1", "op": "pause", "csrf_token": await token(dash), "confirmed": "yes"}
    for headers in [
        {"origin": "http://evil.example", "sec-fetch-site": "cross-site"},  # a browser's own
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},  # a sibling subdomain
        {"origin": "http://evil.example"},  # an old browser without Sec-Fetch-*
        {"origin": "null"},
        {"origin": f"http://{HOST}:9999", "sec-fetch-site": "same-origin"},
    ]:
        res = await dash.post("/actions/queue", data=form, headers=headers)
        assert res.status_code == 403, headers
        assert "cross-site request refused" in res.text
        assert not paused(r, "q1")
    res = await dash.post("/actions/queue", data=form, headers=SAME_ORIGIN)
    assert res.status_code == 200 and paused(r, "q1")
    # "none": typed or bookmarked by the user; no Origin from old clients: both pass.
    form["op"] = "resume"
    res = await dash.post("/actions/queue", data=form, headers={"sec-fetch-site": "none"})
    assert res.status_code == 200 and not paused(r, "q1")


async def test_actions_need_the_session_csrf_token(
    insp: AsyncInspector, enqueue: Callable[..., Awaitable[str]], r: redis.Redis
) -> None:
    await enqueue(queue="q1")
    app = create_app(insp, auth=BasicAuth(USER, PASSWORD))
    form = {"queue": "q1", "op": "pause", "confirmed": "yes"}
    async with http(app) as alice, http(app) as mallory:
        alice_token = await token(alice)
        mallory_token = await token(mallory)
        assert alice_token != mallory_token
        bad = ["0" * 64, mallory_token, "é" * 64, ""]
        for data in [form, *({**form, "csrf_token": t} for t in bad)]:
            res = await alice.post("/actions/queue", data=data, headers=SAME_ORIGIN)
            assert res.status_code == 403 and "CSRF token" in res.text
            assert not paused(r, "q1")
        # The token works as a form field or as htmx's header.
        res = await alice.post(
            "/actions/queue", data=form, headers={**HTMX, "x-csrf-token": alice_token}
        )
        assert res.status_code == 200 and paused(r, "q1")
    async with http(create_app(insp, auth=BasicAuth(USER, PASSWORD))) as other_app:
        # A token from another app (another secret) is worthless.
        other_app.cookies.update(alice.cookies)
        res = await other_app.post(
            "/actions/queue", data={**form, "op": "resume", "csrf_token": alice_token},
            headers=SAME_ORIGIN,
        )  # fmt: skip
        assert res.status_code == 403 and paused(r, "q1")


# --- actions --------------------------------------------------------------------------------


async def test_without_javascript_an_action_asks_first(
    dash: httpx.AsyncClient, enqueue: Callable[..., Awaitable[str]], r: redis.Redis
) -> None:
    task_id = await enqueue(queue="q", process_in=600)
    form = {"queue": "q", "id": task_id, "op": "archive", "csrf_token": await token(dash),
            "next": f"/task?q=q&id={task_id}"}  # fmt: skip
    asked = await dash.post("/actions/task", data=form, headers=SAME_ORIGIN)
    assert asked.status_code == 200
    assert f"Archive task {task_id} in queue q?" in asked.text
    assert 'name="confirmed" value="yes"' in asked.text
    assert in_zset(r, keys.scheduled_key("q"), task_id)  # nothing happened yet
    done = await dash.post("/actions/task", data={**form, "confirmed": "yes"}, headers=SAME_ORIGIN)
    assert done.status_code == 200 and f"Task {task_id} archived." in done.text
    assert f'href="/task?q=q&amp;id={task_id}"' in done.text  # back to where it was
    assert in_zset(r, keys.archived_key("q"), task_id)


async def test_htmx_actions_reply_with_a_flash_and_a_refresh(
    dash: httpx.AsyncClient, enqueue: Callable[..., Awaitable[str]], r: redis.Redis
) -> None:
    pending = await enqueue(queue="q")
    archived = await enqueue(queue="q", process_in=600)
    csrf = await token(dash)

    async def act(**fields: str) -> httpx.Response:
        return await dash.post("/actions/task", data={"csrf_token": csrf, **fields}, headers=HTMX)

    res = await act(queue="q", id=archived, op="archive")
    assert res.status_code == 200
    flash = f'<div class="flash ok" role="status">Task {archived} archived.</div>'
    assert res.text.strip() == flash
    assert res.headers["hx-trigger"] == "pyasynq-refresh"
    res = await act(queue="q", id=archived, op="run")
    assert res.status_code == 200 and in_list(r, keys.pending_key("q"), archived)
    res = await act(queue="q", id=pending, op="run")  # already pending
    assert res.status_code == 409 and 'class="flash error"' in res.text
    assert "hx-trigger" not in res.headers
    res = await act(queue="q", id=pending, op="delete")
    assert res.status_code == 200 and not r.exists(keys.task_key("q", pending))
    assert (await act(queue="q", id="missing", op="delete")).status_code == 404
    assert (await act(queue="nope", id=pending, op="delete")).status_code == 404
    assert (await act(queue="q", id=pending, op="explode")).status_code == 400
    assert (await act(queue="q", op="delete")).status_code == 400
    res = await act(queue="q", id="not-running", op="cancel")
    assert res.status_code == 200 and "No server received" in res.text


async def test_bulk_actions(
    dash: httpx.AsyncClient, enqueue: Callable[..., Awaitable[str]], r: redis.Redis
) -> None:
    for n in range(4):
        await enqueue(queue="q", process_in=600 + n)
    for n in range(2):
        await enqueue(queue="q", group="g1", payload=str(n).encode())
    csrf = await token(dash)

    async def bulk(**fields: str) -> httpx.Response:
        data = {"csrf_token": csrf, "group": "", **fields}
        return await dash.post("/actions/bulk", data=data, headers=HTMX)

    res = await bulk(queue="q", state="scheduled", op="archive")
    assert res.status_code == 200 and "4 scheduled tasks archived." in res.text
    assert r.zcard(keys.archived_key("q")) == 4 and r.zcard(keys.scheduled_key("q")) == 0
    res = await bulk(queue="q", state="archived", op="run")
    assert "4 archived tasks moved to pending." in res.text
    assert r.llen(keys.pending_key("q")) == 4
    assert (await bulk(queue="q", state="pending", op="run")).status_code == 400
    assert (await bulk(queue="q", state="aggregating", op="delete")).status_code == 400
    res = await bulk(queue="q", state="aggregating", group="g1", op="delete")
    assert "2 aggregating tasks deleted." in res.text and r.zcard(keys.group_key("q", "g1")) == 0
    res = await bulk(queue="q", state="pending", op="delete")
    assert "4 pending tasks deleted." in res.text and r.llen(keys.pending_key("q")) == 0
    res = await bulk(queue="q", state="active", op="cancel")
    assert res.status_code == 200 and "No active task to cancel." in res.text


async def test_read_only_hides_and_refuses_every_action(
    insp: AsyncInspector, enqueue: Callable[..., Awaitable[str]], r: redis.Redis
) -> None:
    task_id = await enqueue(queue="q", process_in=600)
    app = create_app(insp, auth=BasicAuth(USER, PASSWORD), read_only=True)
    async with http(app) as c:
        for path in [*PAGES, "/queue?q=q&state=scheduled", f"/task?q=q&id={task_id}"]:
            page = await c.get(path)
            assert page.status_code == 200
            assert "/actions/" not in page.text and "hx-confirm" not in page.text, path
        assert "read-only" in (await c.get("/")).text
        csrf = await token(c)
        for path, data in [
            ("/actions/task", {"queue": "q", "id": task_id, "op": "delete"}),
            ("/actions/bulk", {"queue": "q", "state": "scheduled", "op": "delete"}),
            ("/actions/queue", {"queue": "q", "op": "pause"}),
        ]:
            res = await c.post(path, data={**data, "csrf_token": csrf, "confirmed": "yes"},
                               headers=SAME_ORIGIN)  # fmt: skip
            assert res.status_code == 403 and "read-only" in res.text, path
        assert in_zset(r, keys.scheduled_key("q"), task_id) and not paused(r, "q")
        # The refresh preference is not an action on Redis: it still works.
        res = await c.post("/prefs", data={"refresh": "10", "csrf_token": csrf}, headers=HTMX)
        assert res.status_code == 204


# --- pages ----------------------------------------------------------------------------------


async def test_pages_and_their_errors(
    dash: httpx.AsyncClient, enqueue: Callable[..., Awaitable[str]]
) -> None:
    task_id = await enqueue("email:send", b'{"to": "a@b.c"}', queue="default")
    res = await dash.get("/queue?q=default")
    assert res.status_code == 200 and "email:send" in res.text and task_id in res.text
    res = await dash.get(f"/task?q=default&id={task_id}")
    assert res.status_code == 200 and "&#34;to&#34;: &#34;a@b.c&#34;" in res.text
    res = await dash.get("/queue?q=nope")
    assert res.status_code == 404 and "does not exist" in res.text
    assert 'id="live"' in res.text  # keeps refreshing: it heals when the queue appears
    assert (await dash.get("/task?q=default&id=nope")).status_code == 404
    assert (await dash.get("/queue")).status_code == 400
    assert (await dash.get("/queue?q=default&state=bogus")).status_code == 400
    assert (await dash.get("/queue?q=default&page=0&size=7")).status_code == 200


async def test_the_live_region_alone_for_htmx_polls(dash: httpx.AsyncClient) -> None:
    res = await dash.get("/", headers={"hx-request": "true", "hx-target": "div#live"})
    assert res.status_code == 200
    assert res.text.lstrip().startswith('<div id="live" hx-get="/"')
    assert "<html" not in res.text and "every 5s" in res.text


async def test_redis_down_is_a_page_not_a_crash(redis_url: str) -> None:
    insp = AsyncInspector("redis://127.0.0.1:1/0")
    try:
        async with http(create_app(insp, auth=BasicAuth(USER, PASSWORD))) as c:
            res = await c.get("/")
            assert res.status_code == 503 and "Redis is not answering" in res.text
            assert 'id="live"' in res.text
    finally:
        await insp.aclose()


async def test_refresh_interval_preference(dash: httpx.AsyncClient) -> None:
    csrf = await token(dash)
    res = await dash.post(
        "/prefs", data={"refresh": "10", "csrf_token": csrf, "next": "/groups"}, headers=HTMX
    )
    assert res.status_code == 204 and res.headers["hx-refresh"] == "true"
    assert "pyasynq_refresh=10" in res.headers["set-cookie"]
    assert 'hx-trigger="every 10s, pyasynq-refresh from:body"' in (await dash.get("/")).text
    res = await dash.post(
        "/prefs", data={"refresh": "0", "csrf_token": csrf, "next": "/groups"}, headers=SAME_ORIGIN
    )
    assert res.status_code == 303 and res.headers["location"] == "/groups"
    assert 'hx-trigger="pyasynq-refresh from:body"' in (await dash.get("/")).text
    for evil in ("//evil.example/", "/\t/evil.example", "/\\evil.example", "https://evil.example/"):
        res = await dash.post(
            "/prefs", data={"refresh": "0", "csrf_token": csrf, "next": evil}, headers=SAME_ORIGIN
        )
        assert res.headers["location"] == "/", evil
    res = await dash.post("/prefs", data={"refresh": "7", "csrf_token": csrf}, headers=HTMX)
    assert res.status_code == 400


async def test_mounted_in_a_host_app(
    insp: AsyncInspector, enqueue: Callable[..., Awaitable[str]], r: redis.Redis
) -> None:
    await enqueue(queue="q1")
    host = Starlette(routes=[Mount("/ops/tasks", app=create_app(insp, auth=(USER, PASSWORD)))])
    async with http(host) as c:
        page = await c.get("/ops/tasks/")
        assert page.status_code == 200
        assert 'href="/ops/tasks/queue?q=q1"' in page.text
        assert 'src="/ops/tasks/static/htmx.min.js"' in page.text
        assert "Path=/ops/tasks" in page.headers["set-cookie"]
        assert (await c.get("/ops/tasks/static/dashboard.css")).status_code == 200
        csrf = await token(c, "/ops/tasks/")
        res = await c.post(
            "/ops/tasks/actions/queue",
            data={"queue": "q1", "op": "pause", "csrf_token": csrf, "confirmed": "yes",
                  "next": "/ops/tasks/queue?q=q1"},
            headers=SAME_ORIGIN,
        )  # fmt: skip
        assert res.status_code == 200 and paused(r, "q1")
        assert 'href="/ops/tasks/queue?q=q1"' in res.text


# --- odd input, failures and broken data ----------------------------------------------------


def _has_security_headers(res: httpx.Response) -> bool:
    return (
        res.headers.get("content-security-policy") == CSP
        and res.headers.get("x-content-type-options") == "nosniff"
        and res.headers.get("x-frame-options") == "DENY"
    )


async def test_numbers_in_the_query_are_parsed_strictly(
    dash: httpx.AsyncClient, enqueue: Callable[..., Awaitable[str]]
) -> None:
    await enqueue(queue="q")
    # '²'.isdigit() is true but int('²') fails; '٣' is a digit int() takes; 5000 nines
    # pass isdigit() and exceed int()'s digit limit.
    for odd in ("²", "٣", "9" * 5000, "-7", " 7", "7 ", "0x7", ""):
        for path, name in (("/", "days"), ("/queue", "size"), ("/queue", "page")):
            res = await dash.get(path, params={name: odd, "q": "q"})
            assert res.status_code == 200, (path, name, odd)
            assert _has_security_headers(res)
    res = await dash.get("/", params={"days": "14"})
    assert 'class="current">14 days' in res.text
    res = await dash.get("/", params={"days": "²"})
    assert 'class="current">7 days' in res.text


async def test_a_failing_page_keeps_the_security_headers(
    redis_url: str, r: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    class Failing(AsyncInspector):
        async def servers(self) -> Any:
            raise RuntimeError("boom")

    insp = Failing(redis_url)
    try:
        async with http(create_app(insp, auth=(USER, PASSWORD))) as c:
            res = await c.get("/servers")
    finally:
        await insp.aclose()
    assert res.status_code == 500
    assert _has_security_headers(res)
    assert "Internal error" in res.text and "boom" not in res.text
    assert 'href="/servers"' in res.text  # the styled page, with the navigation
    failures = [rec for rec in caplog.records if "GET /servers failed" in rec.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None


async def test_unknown_routes_get_the_styled_404(dash: httpx.AsyncClient) -> None:
    for path in ("/nope", "/queue/extra", "/static/missing.css"):
        res = await dash.get(path)
        assert res.status_code == 404, path
        assert _has_security_headers(res)
        assert "<h1>Not found</h1>" in res.text and 'href="/servers"' in res.text
    assert "no page at /nope" in (await dash.get("/nope")).text


async def test_one_broken_queue_does_not_hide_the_others(
    dash: httpx.AsyncClient, enqueue: Callable[..., Awaitable[str]], r: redis.Redis
) -> None:
    await enqueue(queue="fine")
    r.sadd(keys.ALL_QUEUES, "broken")
    r.set(keys.pending_key("broken"), "not a list")  # a key of the wrong type
    res = await dash.get("/")
    assert res.status_code == 200, res.text[:500]
    assert 'href="/queue?q=fine"' in res.text
    assert "Redis is not answering" not in res.text
    row = res.text[res.text.index('<tr class="broken">') :]
    row = row[: row.index("</tr>")]
    assert 'href="/queue?q=broken"' in row and "WRONGTYPE" in row


async def test_progress_on_the_active_tab_and_the_task_page(
    dash: httpx.AsyncClient, r: redis.Redis
) -> None:
    from rdb.helpers import make_msg, seed_active

    seed_active(r, make_msg("run1"), lease_expiry=2e9)
    progress = '{"fraction":0.4,"message":"resized 4/10","at":1700000000}'
    r.hset(keys.task_key("default", "run1"), "pyasynq:progress", progress)
    res = await dash.get("/queue?q=default&state=active")
    assert res.status_code == 200
    assert '<progress max="1" value="0.4">' in res.text and "40%" in res.text
    assert "resized 4/10" in res.text
    res = await dash.get("/task?q=default&id=run1")
    assert res.status_code == 200 and 'id="task-progress"' in res.text
    assert "40%: resized 4/10" in res.text
