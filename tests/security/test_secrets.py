"""A password planted in the Redis URL never shows: not in logs, reprs, metrics, the
dashboard's pages, the CLI's output or any error message, on the way to success and on
every way to failure (wrong password, nothing listening, a sentinel that knows nothing,
a certificate refused)."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from topology import SingleServer, free_port

from pyasynq import AsyncClient, AsyncInspector, Client, Inspector, Server, Task
from pyasynq.metrics import QueueMetricsCollector
from pyasynq.web import BasicAuth, create_app

from .tlsserver import Pki, TlsServer

pytestmark = pytest.mark.single_node("runs its own servers")

SECRET = "pl4nted-S3cret-h19b"


@pytest.fixture(scope="module")
def locked() -> Iterator[SingleServer]:
    with SingleServer() as server:
        c = server.nodes[0].client()
        c.config_set("requirepass", SECRET)
        c.close()
        yield server


@pytest.fixture(scope="module")
def other() -> Iterator[SingleServer]:
    """A server whose password is not the secret (so the secret is the wrong one)."""
    with SingleServer() as server:
        c = server.nodes[0].client()
        c.config_set("requirepass", "not-the-secret")
        c.close()
        yield server


def urls(locked: SingleServer, other: SingleServer, tls: TlsServer, pki: Pki) -> dict[str, str]:
    dead = free_port()
    return {
        "right": locked.url(auth=f":{SECRET}"),
        "right-acl-user": locked.url(auth=f"default:{SECRET}"),
        "wrong-password": other.url(auth=f"bob:{SECRET}"),
        "no-server": f"redis://:{SECRET}@127.0.0.1:{dead}/0?connect_timeout=1",
        "sentinel": f"redis-sentinel://:{SECRET}@127.0.0.1:{dead}/0?master=m&password={SECRET}"
        "&connect_timeout=1",
        "cluster": f"redis-cluster://u:{SECRET}@127.0.0.1:{dead}?connect_timeout=1",
        "bad-certificate": tls.tls_url(ca=pki.other_ca, auth=f"u:{SECRET}"),
    }


class Seen:
    """Everything the tests saw: texts of reprs, errors, pages and outputs."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, where: str, text: object) -> None:
        self.texts.append((where, str(text)))

    def attempt(self, where: str, fn: object) -> None:
        try:
            result = fn()  # type: ignore[operator]
            if asyncio.iscoroutine(result):
                result = asyncio.run(result)
            self.add(where, repr(result))
        except BaseException as exc:
            self.add(where, f"{type(exc).__name__}: {exc!r} {exc}")
            cause = exc.__cause__ or exc.__context__
            while cause is not None:  # chained errors end up in tracebacks too
                self.add(where + " (cause)", f"{cause!r} {cause}")
                cause = cause.__cause__ or cause.__context__


async def _dashboard(url: str, seen: Seen, name: str) -> None:
    insp = AsyncInspector(url)
    seen.add(f"{name} AsyncInspector repr", repr(insp))
    app = create_app(insp, auth=BasicAuth("admin", "dash-pw"))
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5555))
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://dash.example", auth=("admin", "dash-pw")
        ) as http:
            for page in ("/", "/redis", "/servers", "/queue?q=default"):
                res = await http.get(page)
                seen.add(f"{name} GET {page} {res.status_code}", res.text)
    finally:
        await insp.aclose()


def _client_paths(name: str, url: str, seen: Seen) -> None:
    def sync_client() -> object:
        with Client(url) as c:
            seen.add(f"{name} Client repr", repr(c))
            return c.enqueue(Task("t", b"p"), queue="secrets")

    async def async_client() -> object:
        async with AsyncClient(url) as ac:
            seen.add(f"{name} AsyncClient repr", repr(ac))
            return await ac.enqueue(Task("t"), queue="secrets")

    def inspector() -> object:
        with Inspector(url) as ins:
            seen.add(f"{name} Inspector repr", repr(ins))
            return [ins.get_queue_info(q) for q in ins.queues()]

    def metrics() -> object:
        collector = QueueMetricsCollector(url)
        registry = CollectorRegistry()
        registry.register(collector)
        try:
            return generate_latest(registry).decode()
        finally:
            collector.close()

    def worker() -> object:
        server = Server(url, queues={"secrets": 1}, shutdown_timeout=1, task_check_interval=0.05)
        seen.add(f"{name} Server repr", repr(server))
        server.start(lambda t: None)
        server.shutdown()
        return "worker ran"

    seen.attempt(f"{name} Client", sync_client)
    seen.attempt(f"{name} AsyncClient", async_client)
    seen.attempt(f"{name} Inspector", inspector)
    seen.attempt(f"{name} metrics", metrics)
    seen.attempt(f"{name} Server", worker)
    seen.attempt(f"{name} dashboard", lambda: _dashboard(url, seen, name))


def _cli(name: str, url: str, seen: Seen) -> None:
    env = {k: v for k, v in os.environ.items() if "REDIS" not in k}
    # Each run starts Python (~1-2 s): the success path and the two commonest failures.
    if name not in ("right", "wrong-password", "no-server"):
        return
    commands = [["stats"], ["task", "ls", "-q", "secrets", "-s", "pending"]]
    for args in commands if name == "right" else commands[:1]:
        proc = subprocess.run(
            [sys.executable, "-m", "pyasynq", "--redis-url", url, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        seen.add(f"{name} CLI {args} rc={proc.returncode} stdout", proc.stdout)
        seen.add(f"{name} CLI {args} stderr", proc.stderr)


def test_the_planted_password_never_shows(  # noqa: PLR0917
    locked: SingleServer,
    other: SingleServer,
    tls_server: TlsServer,
    pki: Pki,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    seen = Seen()
    targets = urls(locked, other, tls_server, pki)
    for name, url in targets.items():
        _client_paths(name, url, seen)
        _cli(name, url, seen)
    out, err = capfd.readouterr()
    seen.add("captured stdout", out)
    seen.add("captured stderr", err)
    seen.add("logs", "\n".join(f"{r.name} {r.levelname} {r.getMessage()}" for r in caplog.records))
    for r in caplog.records:
        if r.exc_info and r.exc_info[1] is not None:
            seen.add(f"log exception {r.name}", repr(r.exc_info[1]))
    leaks = [(where, text) for where, text in seen.texts if SECRET in text]
    assert not leaks, "\n\n".join(f"{w}:\n{t[:600]}" for w, t in leaks[:5])
    # The run went down the paths it claims to: success and each failure were reached.
    all_text = "\n".join(t for _, t in seen.texts)
    assert "TaskInfo(" in all_text  # the right password enqueued
    assert "refused the password" in all_text
    assert "Connection refused" in all_text or "no connection to Redis" in all_text
    assert "no sentinel gave the address of the master" in all_text
    assert "refused the server's certificate" in all_text
    assert "Redis refused this user" in all_text or "not answering" in all_text
