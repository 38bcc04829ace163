"""The dashboard's Redis page says whether Redis itself may lose tasks (issue 14, items 6
and 8): eviction policy and persistence, with a warning when either loses tasks."""

from __future__ import annotations

from pathlib import Path

import httpx
import redis

from pyasynq import AsyncInspector
from pyasynq.embedded import EmbeddedRedis
from pyasynq.web import BasicAuth, create_app

from .support import PASSWORD, USER


def dash(url_or_insp: AsyncInspector) -> httpx.AsyncClient:
    app = create_app(url_or_insp, auth=BasicAuth(USER, PASSWORD))
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5555))
    return httpx.AsyncClient(transport=transport, base_url="http://dash.example",
                             auth=(USER, PASSWORD))  # fmt: skip


async def test_redis_page_warns_when_redis_has_no_persistence(
    redis_url: str, r: redis.Redis
) -> None:
    insp = AsyncInspector(redis_url)  # the test server: `--save ""`, appendonly no
    try:
        async with dash(insp) as c:
            res = await c.get("/redis")
    finally:
        await insp.aclose()
    assert res.status_code == 200
    assert "Task safety" in res.text
    assert "none (no RDB snapshots, AOF off): a Redis restart loses every task" in res.text
    assert 'class="notice error">Redis has no persistence' in res.text


async def test_redis_page_warns_about_an_evicting_policy(tmp_path: Path) -> None:
    args = ["--maxmemory-policy", "allkeys-lfu"]
    with EmbeddedRedis(tmp_path, persistent=True, extra_args=args) as srv:
        insp = AsyncInspector(srv.url)
        try:
            async with dash(insp) as c:
                res = await c.get("/redis")
        finally:
            await insp.aclose()
    assert res.status_code == 200
    assert "Redis maxmemory-policy is &#39;allkeys-lfu&#39;" in res.text
    assert "no persistence" not in res.text and "<td>AOF</td>" in res.text
