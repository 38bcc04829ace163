"""The dashboard's actions (POST): run, archive, delete or cancel one task or all in a
state, pause or resume a queue, and the refresh preference.

Each action is confirmed: htmx asks with ``hx-confirm`` before posting; a browser without
JavaScript gets a confirmation page first. Each reports what happened: a flash fragment
for htmx (which also tells the live region to refresh), a result page otherwise. A
read-only dashboard refuses them all (403), and every one needs the session's CSRF token
(besides the cross-site checks of the Guard).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from pyasynq._async.inspector import AsyncInspector
from pyasynq.errors import (
    BrokerError,
    QueueNotFoundError,
    QueueStateError,
    TaskNotFoundError,
    TaskStateError,
)
from pyasynq.task import TaskState

from .app import (
    REFRESH_COOKIE,
    dashboard_of,
    is_htmx,
    refresh_choices,
    render,
    session_of,
    small_int,
    url,
)
from .security import CSRF_FIELD, CSRF_HEADER, csrf_ok

# What applies to one task in each state, and to all of them (as the Inspector allows).
TASK_ACTIONS: dict[str, tuple[str, ...]] = {
    "pending": ("archive", "delete"),
    "active": ("cancel",),
    "scheduled": ("run", "archive", "delete"),
    "retry": ("run", "archive", "delete"),
    "archived": ("run", "delete"),
    "completed": ("run", "delete"),
    "aggregating": ("run", "archive", "delete"),
}
BULK_ACTIONS: dict[str, tuple[str, ...]] = {
    "pending": ("archive", "delete"),
    "active": ("cancel",),
    "scheduled": ("run", "archive", "delete"),
    "retry": ("run", "archive", "delete"),
    "archived": ("run", "delete"),
    "completed": ("delete",),
    "aggregating": ("run", "archive", "delete"),
}
CANCEL_ALL_LIMIT = 10_000  # active tasks asked to cancel by one "cancel all"
REFRESH_EVENT = "pyasynq-refresh"  # the live region listens for it


class Outcome(Exception):
    """Ends an action with a message for the user and an HTTP status."""

    def __init__(self, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _field(form: FormData, name: str, *, required: bool = True) -> str:
    value = form.get(name)
    if not isinstance(value, str) or (required and not value.strip()):
        if required:
            raise Outcome(f"The form field {name!r} is missing.", 400)
        return ""
    return value


async def _checked_form(request: Request, *, changes_redis: bool = True) -> FormData:
    d = dashboard_of(request)
    if changes_redis and d.read_only:
        raise Outcome("This dashboard is read-only: actions are disabled.", 403)
    form = await request.form()
    token = form.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = request.headers.get(CSRF_HEADER)
    if not csrf_ok(d.secret, session_of(request), token):
        raise Outcome("Missing or stale CSRF token: reload the page and try again.", 403)
    return form


def _safe_next(request: Request, value: str) -> str:
    """Where to go back to: a path of this dashboard, never another site."""
    root = request.scope.get("root_path", "")
    # Visible ASCII only: browsers drop tabs and newlines, which could turn "/\t/x" into
    # "//x", another site.
    plain = re.fullmatch(r"/[!-~]*", value) is not None
    if plain and value.startswith(root + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return url(request, "/")


def _reply(request: Request, message: str, status: int, back: str) -> Response:
    ok = status < 400
    if is_htmx(request):
        headers = {"HX-Trigger": REFRESH_EVENT} if ok else {}
        return render(
            request, "flash.html", {"ok": ok, "message": message}, status=status, headers=headers
        )
    return render(
        request,
        "result.html",
        {"ok": ok, "message": message, "back": back, "nav": ""},
        status=status,
    )


async def _act(
    request: Request,
    fields: tuple[str, ...],
    describe: Callable[[dict[str, str]], str],
    run: Callable[[AsyncInspector, dict[str, str]], Awaitable[str]],
) -> Response:
    """The shared shape of an action: check, confirm, run, report."""
    back = url(request, "/")
    try:
        form = await _checked_form(request)
        back = _safe_next(request, _field(form, "next", required=False))
        values = {f: _field(form, f, required=f != "group") for f in fields}
        what = describe(values)
        if not is_htmx(request) and form.get("confirmed") != "yes":
            hidden = {**values, "next": back, "confirmed": "yes"}
            return render(
                request,
                "confirm.html",
                {"question": what, "action": request.scope["path"], "hidden": hidden, "back": back,
                 "nav": ""},
            )  # fmt: skip
        message = await run(dashboard_of(request).inspector, values)
        return _reply(request, message, 200, back)
    except Outcome as exc:
        return _reply(request, exc.message, exc.status, back)
    except (QueueNotFoundError, TaskNotFoundError) as exc:
        return _reply(request, str(exc), 404, back)
    except (TaskStateError, QueueStateError) as exc:
        return _reply(request, str(exc), 409, back)
    except BrokerError as exc:
        return _reply(request, f"Redis failed: {exc}", 503, back)
    except (ValueError, TypeError) as exc:
        return _reply(request, str(exc), 400, back)


def _op(values: dict[str, str], allowed: tuple[str, ...]) -> str:
    op = values["op"]
    if op not in allowed:
        raise Outcome(f"Unknown action {op!r}.", 400)
    return op


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --- one task -------------------------------------------------------------------------------


async def task_action(request: Request) -> Response:
    ops = ("run", "archive", "delete", "cancel")

    def describe(v: dict[str, str]) -> str:
        return f"{_op(v, ops).capitalize()} task {v['id']} in queue {v['queue']}?"

    async def run(insp: AsyncInspector, v: dict[str, str]) -> str:
        op, queue, task_id = _op(v, ops), v["queue"], v["id"]
        if op == "run":
            await insp.run_task(queue, task_id)
            return f"Task {task_id} is pending: it runs as soon as a worker is free."
        if op == "archive":
            await insp.archive_task(queue, task_id)
            return f"Task {task_id} archived."
        if op == "delete":
            await insp.delete_task(queue, task_id)
            return f"Task {task_id} deleted."
        reached = await insp.cancel_processing(task_id)
        if not reached:
            return f"No server received the cancel request for task {task_id}."
        return f"Cancel request for task {task_id} sent to {_plural(reached, 'server')}."

    return await _act(request, ("queue", "id", "op"), describe, run)


# --- all tasks in a state -------------------------------------------------------------------


async def bulk_action(request: Request) -> Response:
    def describe(v: dict[str, str]) -> str:
        op = _op(v, BULK_ACTIONS.get(v["state"], ()))
        where = f"group {v['group']} of queue {v['queue']}" if v["group"] else f"queue {v['queue']}"
        return f"{op.capitalize()} all {v['state']} tasks in {where}?"

    async def run(insp: AsyncInspector, v: dict[str, str]) -> str:
        state, queue = v["state"], v["queue"]
        op = _op(v, BULK_ACTIONS.get(state, ()))
        group = v["group"] or None
        if state == TaskState.AGGREGATING and group is None:
            raise Outcome("Choose a group: aggregating tasks are handled one group at a time.", 400)
        if op == "cancel":
            return await _cancel_all(insp, queue)
        if op == "run":
            n = await insp.run_all_tasks(queue, state, group=group)
            return f"{_plural(n, f'{state} task')} moved to pending."
        if op == "archive":
            n = await insp.archive_all_tasks(queue, state, group=group)
            return f"{_plural(n, f'{state} task')} archived."
        n = await insp.delete_all_tasks(queue, state, group=group)
        return f"{_plural(n, f'{state} task')} deleted."

    return await _act(request, ("queue", "state", "group", "op"), describe, run)


async def _cancel_all(insp: AsyncInspector, queue: str) -> str:
    ids: list[str] = []
    page = 1
    while len(ids) < CANCEL_ALL_LIMIT:
        found = await insp.list_active_tasks(queue, page_size=100, page=page)
        ids.extend(t.id for t in found)
        if len(found) < 100:
            break
        page += 1
    reached = 0
    for task_id in ids[:CANCEL_ALL_LIMIT]:
        reached = max(reached, await insp.cancel_processing(task_id))
    if not ids:
        return "No active task to cancel."
    return (
        f"Cancel requested for {_plural(len(ids), 'active task')} "
        f"({_plural(reached, 'server')} listening)."
    )


# --- queues and preferences -----------------------------------------------------------------


async def queue_action(request: Request) -> Response:
    ops = ("pause", "resume")

    def describe(v: dict[str, str]) -> str:
        return f"{_op(v, ops).capitalize()} queue {v['queue']}?"

    async def run(insp: AsyncInspector, v: dict[str, str]) -> str:
        if _op(v, ops) == "pause":
            await insp.pause_queue(v["queue"])
            return f"Queue {v['queue']} paused: servers take no new task from it."
        await insp.unpause_queue(v["queue"])
        return f"Queue {v['queue']} resumed."

    return await _act(request, ("queue", "op"), describe, run)


async def prefs(request: Request) -> Response:
    """Set this browser's refresh interval (a cookie), then reload the page."""
    try:
        form = await _checked_form(request, changes_redis=False)
        raw = _field(form, "refresh")
        if small_int(raw) not in refresh_choices(request):
            raise Outcome(f"Unknown refresh interval {raw!r}.", 400)
    except Outcome as exc:
        return _reply(request, exc.message, exc.status, url(request, "/"))
    back = _safe_next(request, _field(form, "next", required=False))
    response: Response
    if is_htmx(request):
        response = Response(status_code=204, headers={"HX-Refresh": "true"})
    else:
        response = RedirectResponse(back, status_code=303)
    response.set_cookie(
        REFRESH_COOKIE,
        raw,
        max_age=365 * 86400,
        path=request.scope.get("root_path", "") or "/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response
