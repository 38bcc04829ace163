"""The dashboard in a real browser (headless Chromium via Playwright) against a real
Redis with real tasks, a real Server processing the ``default`` queue and a running
Scheduler. A screenshot of each page goes to test-artifacts/web/."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
import redis

import pyasynq
from pyasynq._rdb import keys

from .conftest import Page
from .support import XSS, XSS_ERROR, XSS_QUEUE, XSS_TYPE, World, in_list, in_zset, paused, wait_for

pytestmark = pytest.mark.timeout(180)


def q(path: str, **params: str) -> str:
    return path + ("?" + urlencode(params) if params else "")


def ready(p: Page) -> None:
    """htmx has loaded and no script of the page's data ran."""
    p.page.wait_for_function("() => window.htmx !== undefined")
    assert p.page.evaluate("() => window.__xss") is None
    assert not [e for e in p.errors if "Content Security Policy" in e], p.errors


def visit(p: Page, path: str, status: int = 200) -> None:
    response = p.page.goto(path)
    assert response is not None and response.status == status, (path, response)
    ready(p)


def test_pages_render(page: Page, world: World) -> None:
    text = page.page.locator("body")

    visit(page, "/")
    for name in ("default", "critical", "xss", "cron", XSS_QUEUE):
        assert page.page.get_by_role("link", name=name, exact=True).count() == 1, name
    assert "Processed and failed, all queues" in text.inner_text()
    assert page.page.locator("figure.chart svg rect.ok").count() >= 6  # a week of bars
    page.shot("overview")

    tabs = {
        "pending": ("critical", "image:resize"),
        "scheduled": ("critical", "report:build"),
        "aggregating": ("critical", "batch:item"),
        "active": ("default", "slow:job"),
        "retry": ("default", "report:fail"),
        "archived": ("default", "report:fail"),
        "completed": ("default", "email:send"),
    }
    for state, (queue, task_type) in tabs.items():
        visit(page, q("/queue", q=queue, state=state))
        assert task_type in page.page.locator("table.tasks").inner_text(), state
        page.shot(f"queue-{state}")
    visit(page, q("/queue", q="default", state="retry"))
    assert XSS_ERROR in page.page.locator("td.err").first.inner_text()

    visit(page, q("/task", q="default", id=world.ids["completed0"]))
    body = text.inner_text()
    assert "email:send" in body and "completed" in body
    assert '"to": "user0@example.com"' in page.page.locator("#task-payload").inner_text()
    assert '"delivered": true' in page.page.locator("#task-result").inner_text()
    page.shot("task")

    visit(page, q("/task", q="default", id=world.ids["archived"]))
    assert "00000000  00 01 fe 20" in page.page.locator("#task-payload").inner_text()  # hex
    assert XSS_ERROR in page.page.locator("#task-error").inner_text()

    visit(page, "/groups")
    assert "batch-1" in text.inner_text()
    page.shot("groups")

    visit(page, "/servers")
    servers = text.inner_text()
    assert "slow:job" in servers and world.ids["active"] in servers and "1 of 4" in servers
    page.shot("servers")

    visit(page, "/schedulers")
    assert "@every 1s" in text.inner_text() and "cron:tick" in text.inner_text()
    page.shot("schedulers")
    page.page.get_by_role("link", name="History").click()
    page.page.wait_for_url("**/scheduler?id=*")
    ready(page)
    assert "Enqueue history" in text.inner_text()
    assert page.page.locator("table.grid tbody tr").count() >= 1
    page.shot("scheduler-entry")

    visit(page, "/redis")
    assert "redis_version" in text.inner_text() or "valkey_version" in text.inner_text()
    assert "used_memory_human" in text.inner_text()
    page.shot("redis")


def test_archive_then_run_a_task(page: Page, world: World) -> None:
    r = redis.Redis.from_url(world.redis_url)
    task_id = world.ids["scheduled0"]
    visit(page, q("/task", q="critical", id=task_id))
    assert page.page.locator(".state").inner_text() == "scheduled"

    page.page.locator("button[data-op=archive]").click()
    flash = page.page.locator("#flash .flash")
    flash.wait_for()
    assert flash.inner_text() == f"Task {task_id} archived."
    assert page.dialogs == [f"Archive task {task_id} in queue critical?"]
    assert in_zset(r, keys.archived_key("critical"), task_id)
    assert not in_zset(r, keys.scheduled_key("critical"), task_id)
    # The live region refreshes itself after the action.
    page.page.locator(".state", has_text="archived").wait_for()
    page.shot("task-archived")

    page.page.locator("button[data-op=run]").click()
    page.page.locator("#flash .flash", has_text="is pending").wait_for()
    assert page.dialogs[-1] == f"Run task {task_id} in queue critical?"
    assert in_list(r, keys.pending_key("critical"), task_id)
    assert not in_zset(r, keys.archived_key("critical"), task_id)
    page.page.locator(".state", has_text="pending").wait_for()
    r.close()


def test_pause_then_resume_a_queue(page: Page, world: World) -> None:
    r = redis.Redis.from_url(world.redis_url)
    visit(page, q("/queue", q="pausable"))
    with page.page.expect_request("**/actions/queue") as sent:
        page.page.locator("button[data-op=pause]").click()
    # htmx posts it (after the confirmation) with the session's CSRF token as a header too.
    csrf = page.page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert sent.value.headers["hx-request"] == "true"
    assert sent.value.headers["x-csrf-token"] == csrf
    page.page.locator("#flash .flash", has_text="Queue pausable paused").wait_for()
    assert paused(r, "pausable")
    page.page.locator("h1 .badge.paused").wait_for()

    page.page.locator("button[data-op=resume]").click()
    page.page.locator("#flash .flash", has_text="Queue pausable resumed").wait_for()
    assert not paused(r, "pausable")
    page.page.locator("h1 .badge.run").wait_for()
    assert page.dialogs == ["Pause queue pausable?", "Resume queue pausable?"]
    r.close()


def test_cancel_an_active_task(page: Page, world: World) -> None:

    r = redis.Redis.from_url(world.redis_url)
    with pyasynq.Client(world.redis_url) as client:
        task_id = client.enqueue(pyasynq.Task("cancel:me", b"x"), queue="default").id
    wait_for(lambda: in_list(r, keys.active_key("default"), task_id), what="task active")
    visit(page, q("/task", q="default", id=task_id))
    page.page.locator("button[data-op=cancel]").click()
    page.page.locator("#flash .flash", has_text="sent to 1 server").wait_for()
    # The server cancels the handler: the task leaves active (to retry, as in asynq).
    wait_for(lambda: in_zset(r, keys.retry_key("default"), task_id), what="cancelled -> retry")
    r.close()


def test_bulk_archive_all_pending(page: Page, world: World) -> None:
    r = redis.Redis.from_url(world.redis_url)
    with pyasynq.Client(world.redis_url) as client:
        for n in range(3):
            client.enqueue(pyasynq.Task("bulk:item", str(n).encode()), queue="bulk")
    visit(page, q("/queue", q="bulk", state="pending"))
    page.page.locator("button[data-op=archive]", has_text="Archive all").click()
    page.page.locator("#flash .flash", has_text="3 pending tasks archived").wait_for()
    assert r.llen(keys.pending_key("bulk")) == 0
    assert r.zcard(keys.archived_key("bulk")) == 3
    r.close()


def test_refresh_interval_is_a_choice(page: Page, world: World) -> None:
    visit(page, "/")
    live = page.page.locator("#live")
    assert "every 2s" in (live.get_attribute("hx-trigger") or "")
    page.page.select_option("#refresh-select", "30")
    page.page.wait_for_function(
        "() => (document.querySelector('#live').getAttribute('hx-trigger') || '')"
        ".includes('every 30s')"
    )
    ready(page)
    page.page.select_option("#refresh-select", "0")
    page.page.wait_for_function(
        "() => !(document.querySelector('#live').getAttribute('hx-trigger') || '')"
        ".includes('every')"
    )


def test_xss_corpus_is_shown_as_text_and_never_runs(page: Page, world: World) -> None:
    visit(page, "/")
    assert page.page.get_by_text(XSS_QUEUE, exact=True).count() == 1
    visit(page, q("/queue", q=XSS_QUEUE))
    assert page.page.locator("h1 .qname").inner_text() == XSS_QUEUE
    visit(page, q("/queue", q="xss", size="50"))
    cells = page.page.locator("table.tasks td.ttype").all_inner_texts()
    assert cells == [XSS_TYPE] * len(XSS)
    page.shot("xss-queue")
    for task_id, text in zip(world.xss_ids, XSS, strict=True):
        visit(page, q("/task", q="xss", id=task_id, view="text"))
        assert page.page.locator("#task-payload").inner_text() == text
        assert page.page.locator("#task-headers td").inner_text() == text
        assert page.page.locator("h1 .tid").inner_text() == task_id
        assert page.page.locator("dd.ttype").inner_text() == XSS_TYPE
        # Nothing the payload describes exists as an element.
        assert page.page.locator("#xss-link, iframe, main svg[onload], img[src=x]").count() == 0
        visit(page, q("/task", q="xss", id=task_id, view="hex"))
        assert text.encode()[:8].hex(" ") in page.page.locator("#task-payload").inner_text()
    page.shot("xss-task")
    # Polls and htmx swaps ran meanwhile; still nothing executed, no dialog opened.
    page.page.wait_for_function("() => document.querySelector('#live') !== null")
    assert page.page.evaluate("() => window.__xss") is None
    assert page.dialogs == []


def test_unauthenticated_request_gets_401(page: Page, browser: object, site: str) -> None:
    # A browser with no credentials at all: the dashboard's answer is a 401 challenge
    # (Chromium headless turns the challenge into a navigation error, so ask via the
    # context's request API, which shares the browser's cookies and headers).
    ctx = browser.new_context(base_url=site)  # type: ignore[attr-defined]
    try:
        response = ctx.request.get("/")
        assert response.status == 401
        assert response.headers["www-authenticate"].startswith('Basic realm="pyasynq"')
        assert response.text() == "Authentication required."
        assert ctx.request.get("/static/htmx.min.js").status == 401
    finally:
        ctx.close()
    # From inside a logged-in page: a request without (or with wrong) credentials.
    visit(page, "/")
    statuses = page.page.evaluate(
        """async () => [
            (await fetch("/queue?q=default", {credentials: "omit"})).status,
            (await fetch("/", {credentials: "omit",
                               headers: {Authorization: "Basic " + btoa("admin:wrong")}})).status,
            (await fetch("/", {credentials: "omit",
                               headers: {Authorization: "Basic " + btoa("admin:")}})).status,
        ]"""
    )
    assert statuses == [401, 401, 401]


def test_cross_site_post_is_refused(page: Page, world: World, site: str) -> None:
    """A page on another site posts a form to the dashboard (the browser even has the
    credentials): the dashboard refuses it and the queue stays running."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    from .support import serve

    target = f"{site}/actions/queue"

    async def evil_page(request: object) -> HTMLResponse:
        return HTMLResponse(
            f'<form method="post" action="{target}">'
            '<input name="queue" value="pausable"><input name="op" value="pause">'
            '<input name="confirmed" value="yes"><input name="csrf_token" value="guess">'
            '<button id="go">go</button></form>'
        )

    r = redis.Redis.from_url(world.redis_url)
    visit(page, "/")  # the user is logged in to the dashboard
    with serve(Starlette(routes=[Route("/", evil_page)])) as evil:
        port = evil.rsplit(":", 1)[1]
        page.page.goto(f"http://evil.example:{port}/")
        with page.page.expect_response(target) as answer:
            page.page.click("#go")
        assert answer.value.status == 403
        assert "cross-site request refused" in page.page.locator("body").inner_text()
    assert not paused(r, "pausable")
    r.close()
