"""Fixtures for the dashboard tests. The browser ones share one seeded world per module
(a real Server processes the ``default`` queue meanwhile) and one headless Chromium."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyasynq.web import BasicAuth, create_app

from .support import CHROMIUM_ARGS, PASSWORD, USER, World, build_world, chromium_path, serve, settle

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"


@pytest.fixture(scope="module")
def world(redis_url: str) -> Iterator[World]:
    w = build_world(redis_url)
    try:
        settle(w)
        yield w
    finally:
        w.close()


@pytest.fixture(scope="module")
def site(world: World) -> Iterator[str]:
    app = create_app(world.redis_url, auth=BasicAuth(USER, PASSWORD), refresh_seconds=2)
    with serve(app) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        msg = "playwright is not installed: pip install playwright (make install does)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Page:
    """A Playwright page that records console errors and answers every dialog (our
    confirmations) with OK, keeping what each said."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("dialog", self._dialog)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.accept()

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def page(browser: Any, site: str) -> Iterator[Page]:
    ctx = browser.new_context(
        base_url=site,
        http_credentials={"username": USER, "password": PASSWORD},
        viewport={"width": 1440, "height": 900},
    )
    try:
        yield Page(ctx.new_page())
    finally:
        ctx.close()
