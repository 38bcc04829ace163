"""FastAPI/Starlette: the lifespan's AsyncClient reaches endpoints and enqueues into a real
Redis; the dashboard mounts under a path behind the host app's authentication."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="needs the fastapi extra")
pytest.importorskip("jinja2", reason="needs the web extra")

import redis
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

import pyasynq
from pyasynq._rdb import keys
from pyasynq.integrations.fastapi import ClientDep, Pyasynq, get_client

PENDING = keys.pending_key("default")


def test_fastapi_endpoint_enqueues_with_the_lifespan_client(
    pyasynq_redis_url: str, r: redis.Redis
) -> None:
    pq = Pyasynq(pyasynq_redis_url)
    app = FastAPI(lifespan=pq.lifespan)

    @app.post("/signup/{name}")
    async def signup(name: str, client: ClientDep) -> dict[str, str]:
        info = await client.enqueue(pyasynq.Task.from_json("email:welcome", {"name": name}))
        return {"task": info.id}

    with TestClient(app) as http:
        assert isinstance(pq.client, pyasynq.AsyncClient)
        task_id = http.post("/signup/ada").json()["task"]
        assert r.lrange(PENDING, 0, -1) == [task_id.encode()]
    assert pq.client is None  # closed with the app


def test_starlette_endpoint_and_an_own_lifespan(pyasynq_redis_url: str, r: redis.Redis) -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def own(app: Any) -> AsyncIterator[dict[str, Any]]:
        events.append("start")
        yield {"db": "connected"}
        events.append("stop")

    async def enqueue(request: Request) -> Response:
        info = await get_client(request).enqueue(pyasynq.Task("t"))
        return JSONResponse({"task": info.id, "db": request.state.db})

    pq = Pyasynq(pyasynq_redis_url)
    app = Starlette(routes=[Route("/", enqueue, methods=["POST"])], lifespan=pq.wrap(own))
    with TestClient(app) as http:
        body = http.post("/").json()
    assert body["db"] == "connected"
    assert r.lrange(PENDING, 0, -1) == [body["task"].encode()]
    assert events == ["start", "stop"]


def test_get_client_without_the_lifespan_says_what_to_do() -> None:
    app = FastAPI()

    @app.get("/")
    async def endpoint(client: ClientDep) -> None: ...

    with TestClient(app) as http, pytest.raises(RuntimeError, match=r"lifespan=Pyasynq\(url\)"):
        http.get("/")


def _host_app(pq: Pyasynq, dashboard: Any, protect: bool) -> FastAPI:
    """A host app whose own auth is an X-User header; ``protect``: a middleware refuses
    /admin to anyone but the admin (the host protects the mount itself)."""
    app = FastAPI(lifespan=pq.lifespan)

    async def host_auth(request: Request, call_next: RequestResponseEndpoint) -> Response:
        admin = request.headers.get("x-user") == "admin"
        if protect and request.url.path.startswith("/admin") and not admin:
            return PlainTextResponse("host says no", 401)
        return await call_next(request)

    app.add_middleware(BaseHTTPMiddleware, dispatch=host_auth)
    app.mount("/admin/tasks", dashboard)
    return app


def test_dashboard_mounted_behind_the_hosts_auth_callback(
    pyasynq_redis_url: str, pyasynq_client: pyasynq.Client
) -> None:
    pyasynq_client.enqueue(pyasynq.Task("t"), queue="billing")
    pq = Pyasynq(pyasynq_redis_url)
    dash = pq.dashboard(auth=lambda request: request.headers.get("x-user") == "admin")
    with TestClient(_host_app(pq, dash, protect=False)) as http:
        assert http.get("/admin/tasks/").status_code == 403  # the dashboard's own refusal
        page = http.get("/admin/tasks/", headers={"x-user": "admin"})
        assert page.status_code == 200
        assert "billing" in page.text
        assert 'href="/admin/tasks/queue?q=billing"' in page.text  # links under the mount


def test_dashboard_trusting_the_hosts_middleware(
    pyasynq_redis_url: str, pyasynq_client: pyasynq.Client
) -> None:
    pyasynq_client.enqueue(pyasynq.Task("t"), queue="billing")
    pq = Pyasynq(pyasynq_redis_url)
    with TestClient(_host_app(pq, pq.dashboard(trust_host_auth=True), protect=True)) as http:
        refused = http.get("/admin/tasks/")
        assert (refused.status_code, refused.text) == (401, "host says no")
        page = http.get("/admin/tasks/", headers={"x-user": "admin"})
        assert page.status_code == 200 and "billing" in page.text


def test_dashboard_needs_auth_or_an_explicit_trust(pyasynq_redis_url: str) -> None:
    pq = Pyasynq(pyasynq_redis_url)
    with pytest.raises(ValueError, match="trust_host_auth=True when the app already protects"):
        pq.dashboard()
    with pytest.raises(ValueError, match="not both"):
        pq.dashboard(auth=lambda request: True, trust_host_auth=True)
