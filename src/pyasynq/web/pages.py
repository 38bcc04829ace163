"""The dashboard's pages (GET). Each loads what it shows through the public
AsyncInspector and renders a template; htmx polls the same URL for the live region."""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pyasynq._async.broker import is_transient
from pyasynq._async.connection import refused
from pyasynq._async.inspector import AsyncInspector
from pyasynq.errors import BrokerError, QueueNotFoundError, TaskNotFoundError
from pyasynq.inspection import QueueInfo
from pyasynq.task import TaskInfo, TaskState

from . import present
from .actions import BULK_ACTIONS, TASK_ACTIONS
from .app import dashboard_of, render, small_int
from .redisinfo import redis_info, redis_settings

TAB_STATES = ("pending", "active", "scheduled", "retry", "archived", "completed", "aggregating")
PAGE_SIZES = (20, 50, 100)
HISTORY_DAYS = (7, 14, 30, 90)
VIEWS = ("json", "text", "hex")

Context = dict[str, Any]

log = logging.getLogger(__name__)


class BadRequest(ValueError):
    """A missing or malformed query parameter."""


def _param(request: Request, name: str) -> str:
    value = request.query_params.get(name, "")
    if not value.strip():
        raise BadRequest(f"the query parameter {name!r} is required")
    return value


def _choice(request: Request, name: str, choices: tuple[int, ...], default: int) -> int:
    value = small_int(request.query_params.get(name))
    return value if value in choices else default


def _page_number(request: Request) -> int:
    value = small_int(request.query_params.get("page"))
    return min(value, 1_000_000) if value is not None and value >= 1 else 1


async def _page(
    request: Request, template: str, nav: str, load: Callable[[AsyncInspector], Awaitable[Context]]
) -> Response:
    """Load and render; what went wrong (no such queue or task, Redis down, a bad
    parameter) becomes an error page that keeps refreshing, so it heals by itself."""
    status, ctx = 200, {}
    try:
        ctx = await load(dashboard_of(request).inspector)
    except (QueueNotFoundError, TaskNotFoundError) as exc:
        status, template = 404, "error.html"
        ctx = {"heading": "Not found", "message": str(exc)}
    except BrokerError as exc:
        status, template = 503, "error.html"
        # Refused credentials or rights: Redis answered, the configuration must change.
        heading = "Redis refused this user" if refused(exc) else "Redis is not answering"
        ctx = {"heading": heading, "message": str(exc)}
    except (BadRequest, ValueError, TypeError) as exc:
        status, template = 400, "error.html"
        ctx = {"heading": "Bad request", "message": str(exc)}
    return render(request, template, {"nav": nav, **ctx}, status=status)


@dataclass(frozen=True, slots=True)
class BrokenQueue:
    """A queue whose data Redis refuses to read (a key of the wrong type, say)."""

    queue: str
    message: str


async def _queue_infos(insp: AsyncInspector) -> tuple[list[QueueInfo], list[BrokenQueue]]:
    """Every queue's info, and the queues that could not be read. Redis down (a
    connection failure) still fails the whole page; one bad queue does not."""

    async def one(q: str) -> QueueInfo | BrokenQueue | None:
        try:
            return await insp.get_queue_info(q)
        except QueueNotFoundError:  # deleted between the two reads
            return None
        except BrokerError as exc:
            if is_transient(exc):
                raise
            log.warning("dashboard: queue %r cannot be read: %s", q, exc)
            return BrokenQueue(q, str(exc))

    found = await asyncio.gather(*(one(q) for q in await insp.queues()))
    infos = [i for i in found if isinstance(i, QueueInfo)]
    return infos, [b for b in found if isinstance(b, BrokenQueue)]


async def _history_rows(insp: AsyncInspector, queue: str, days: int) -> list[tuple[date, int, int]]:
    try:
        return [(d.date, d.processed, d.failed) for d in await insp.history(queue, days)]
    except QueueNotFoundError:
        return []


# --- overview -------------------------------------------------------------------------------


async def overview(request: Request) -> Response:
    days = _choice(request, "days", HISTORY_DAYS, 7)

    async def load(insp: AsyncInspector) -> Context:
        infos, broken = await _queue_infos(insp)
        histories = await asyncio.gather(*(_history_rows(insp, i.queue, days) for i in infos))
        keys = ("size", *TAB_STATES, "processed", "failed")
        totals = {k: sum(getattr(i, k) for i in infos) for k in keys}
        return {
            "queues": infos,
            "broken": broken,
            "totals": totals,
            "chart": present.history_chart(present.sum_by_day(histories)),
            "days": days,
            "day_choices": HISTORY_DAYS,
            "states": TAB_STATES,
        }

    return await _page(request, "overview.html", "overview", load)


# --- one queue ------------------------------------------------------------------------------


async def queue(request: Request) -> Response:
    async def load(insp: AsyncInspector) -> Context:
        q = _param(request, "q")
        state = request.query_params.get("state", "pending")
        if state not in TAB_STATES:
            raise BadRequest(f"unknown task state {state!r}")
        size = _choice(request, "size", PAGE_SIZES, PAGE_SIZES[0])
        page = _page_number(request)
        group = request.query_params.get("group") or None
        info, history, limits = await asyncio.gather(
            insp.get_queue_info(q), _history_rows(insp, q, 7), insp.get_limits(q)
        )
        tasks: list[TaskInfo] = []
        groups = []
        if state == TaskState.AGGREGATING:
            groups = await insp.groups(q)
            if group is None and groups:
                group = groups[0].group
            total = next((g.size for g in groups if g.group == group), 0)
            if group is not None:
                tasks = await insp.list_tasks(q, state, group=group, page_size=size, page=page)
        else:
            total = getattr(info, state)
            tasks = await insp.list_tasks(q, state, page_size=size, page=page)
        return {
            "info": info,
            "limits": limits,
            "state": state,
            "states": TAB_STATES,
            "tasks": tasks,
            "page": page,
            "pages": max(1, math.ceil(total / size)),
            "total": total,
            "size": size,
            "sizes": PAGE_SIZES,
            "group": group,
            "groups": groups,
            "chart": present.history_chart(history),
            "row_actions": TASK_ACTIONS[state],
            "bulk_actions": BULK_ACTIONS[state] if total else (),
        }

    return await _page(request, "queue.html", "overview", load)


# --- one task -------------------------------------------------------------------------------


async def task(request: Request) -> Response:
    async def load(insp: AsyncInspector) -> Context:
        q, task_id = _param(request, "q"), _param(request, "id")
        info = await insp.get_task_info(q, task_id)
        payload = present.bytes_view(info.payload)
        result = present.bytes_view(info.result)
        view = request.query_params.get("view", "")
        if view not in VIEWS or (view == "json" and payload.json is None):
            view = payload.best
        return {
            "task": info,
            "payload": payload,
            "result": result,
            "view": view,
            "row_actions": TASK_ACTIONS[info.state.value],
        }

    return await _page(request, "task.html", "overview", load)


async def task_raw(request: Request) -> Response:
    """A task's payload or result as a download, never rendered by the browser."""
    try:
        q, task_id = _param(request, "q"), _param(request, "id")
        part = request.query_params.get("part", "payload")
        if part not in ("payload", "result"):
            raise BadRequest("part must be payload or result")
        info = await dashboard_of(request).inspector.get_task_info(q, task_id)
    except (QueueNotFoundError, TaskNotFoundError) as exc:
        return Response(str(exc), status_code=404, media_type="text/plain")
    except BrokerError as exc:
        return Response(str(exc), status_code=503, media_type="text/plain")
    except ValueError as exc:
        return Response(str(exc), status_code=400, media_type="text/plain")
    name = re.sub(r"[^A-Za-z0-9._-]", "_", task_id)[:80] or "task"
    data = info.payload if part == "payload" else info.result
    return Response(
        data,
        media_type="application/octet-stream",
        headers={
            "content-disposition": f'attachment; filename="{name}.{part}.bin"',
            "cache-control": "no-store",
        },
    )


# --- groups, servers, schedulers, Redis -----------------------------------------------------


async def groups(request: Request) -> Response:
    async def load(insp: AsyncInspector) -> Context:
        names = await insp.queues()

        async def of(q: str) -> list[tuple[str, str, int]]:
            try:
                return [(q, g.group, g.size) for g in await insp.groups(q)]
            except QueueNotFoundError:
                return []

        rows = [row for found in await asyncio.gather(*(of(q) for q in names)) for row in found]
        return {"rows": rows, "queue_count": len(names)}

    return await _page(request, "groups.html", "groups", load)


async def servers(request: Request) -> Response:
    async def load(insp: AsyncInspector) -> Context:
        return {"servers": await insp.servers()}

    return await _page(request, "servers.html", "servers", load)


async def schedulers(request: Request) -> Response:
    async def load(insp: AsyncInspector) -> Context:
        return {"entries": await insp.scheduler_entries()}

    return await _page(request, "schedulers.html", "schedulers", load)


async def scheduler_entry(request: Request) -> Response:
    async def load(insp: AsyncInspector) -> Context:
        entry_id = _param(request, "id")
        size = _choice(request, "size", PAGE_SIZES, PAGE_SIZES[0])
        page = _page_number(request)
        entries, events = await asyncio.gather(
            insp.scheduler_entries(),
            insp.list_scheduler_enqueue_events(entry_id, page_size=size, page=page),
        )
        entry = next((e for e in entries if e.id == entry_id), None)
        queue = (entry.options.queue if entry else None) or "default"
        return {
            "entry_id": entry_id,
            "entry": entry,
            "events": events,
            "queue": queue,
            "page": page,
            "size": size,
            "has_next": len(events) == size,
        }

    return await _page(request, "scheduler.html", "schedulers", load)


async def redis(request: Request) -> Response:
    async def load(insp: AsyncInspector) -> Context:
        where, nodes = await redis_info(insp)
        return {"where": where, "nodes": nodes, "settings": await redis_settings(insp)}

    return await _page(request, "redis.html", "redis", load)
