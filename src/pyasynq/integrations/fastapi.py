"""FastAPI and Starlette (``pip install 'pyasynq[fastapi,web]'``): an AsyncClient for the
app's lifetime, a dependency that hands it to endpoints, and the dashboard mounted under
a path behind the app's own authentication.

::

    from pyasynq.integrations.fastapi import ClientDep, Pyasynq

    pq = Pyasynq("redis://127.0.0.1:6379/0")
    app = FastAPI(lifespan=pq.lifespan)
    app.mount("/admin/tasks", pq.dashboard(auth=lambda request: is_admin(request)))

    @app.post("/signup")
    async def signup(user: User, client: ClientDep) -> dict[str, str]:
        info = await client.enqueue(pyasynq.Task.from_json("email:welcome", user.dict()))
        return {"task": info.id}

The lifespan opens one :class:`pyasynq.AsyncClient` at startup and closes it (and the
dashboards' inspectors) at shutdown; the client travels in the lifespan state, so
``get_client(request)`` finds it in FastAPI endpoints (``ClientDep``) and Starlette ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

try:
    from fastapi import Depends
    from starlette.applications import Starlette
    from starlette.requests import HTTPConnection, Request
    from starlette.types import ASGIApp
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "pyasynq.integrations.fastapi needs FastAPI: pip install 'pyasynq[fastapi,web]'"
    ) from exc

from pyasynq import AsyncClient, AsyncInspector

__all__ = ["STATE_KEY", "ClientDep", "Pyasynq", "get_client"]

STATE_KEY = "pyasynq_client"
AuthCallback = Callable[[Request], "bool | Awaitable[bool]"]
Lifespan = Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]


def get_client(request: HTTPConnection) -> AsyncClient:
    """The AsyncClient the app's :meth:`Pyasynq.lifespan` opened (a FastAPI dependency:
    ``Depends(get_client)``, or call it from a Starlette endpoint)."""
    client = getattr(request.state, STATE_KEY, None)
    if not isinstance(client, AsyncClient):
        raise RuntimeError(
            "no pyasynq client in the request state: create the app with "
            "lifespan=Pyasynq(url).lifespan (or wrap your own lifespan with Pyasynq.wrap)"
        )
    return client


ClientDep = Annotated[AsyncClient, Depends(get_client)]


class Pyasynq:
    """pyasynq for one ASGI app: ``redis_url`` and the keyword options of
    :class:`pyasynq.AsyncClient` (``enqueue_hooks=...`` for tracing, ...)."""

    def __init__(self, redis_url: str, **client_options: Any) -> None:
        self.redis_url = redis_url
        self.client_options = client_options
        self.client: AsyncClient | None = None  # while the lifespan runs
        self._inspectors: list[AsyncInspector] = []

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[dict[str, Any]]:
        """Open the AsyncClient for the app's lifetime; ``FastAPI(lifespan=pq.lifespan)``."""
        async with self.wrap(None)(app) as state:
            yield state

    def wrap(self, inner: Lifespan | None) -> Lifespan:
        """A lifespan that runs ``inner`` (the app's own, may yield a state dict) inside
        the client's: ``FastAPI(lifespan=pq.wrap(my_lifespan))``."""

        @contextlib.asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
            client = AsyncClient(self.redis_url, **self.client_options)
            self.client = client
            try:
                state: dict[str, Any] = {STATE_KEY: client}
                if inner is None:
                    yield state
                else:
                    async with inner(app) as own:
                        yield {**(own or {}), **state}
            finally:
                self.client = None
                await client.aclose()
                for inspector in self._inspectors:
                    await inspector.aclose()

        return lifespan

    def dashboard(
        self,
        *,
        auth: AuthCallback | Any = None,
        trust_host_auth: bool = False,
        **options: Any,
    ) -> ASGIApp:
        """The web dashboard (:func:`pyasynq.web.create_app`) to mount under a path.

        ``auth`` is the host's own check, ``auth(request) -> bool`` (or awaitable; the
        request has passed the host's middleware, so ``request.session`` or
        ``request.user`` work), or ``BasicAuth``. ``trust_host_auth=True`` turns the
        dashboard's check off, for a mount the host already protects (a middleware that
        refuses the path to anyone but admins): say so explicitly, as nothing else then
        guards the actions. ``options`` are create_app's (``read_only=True``, ``title``).
        Its inspector is closed when the lifespan ends.
        """
        from pyasynq.web import create_app

        if trust_host_auth:
            if auth is not None:
                raise ValueError("give auth or trust_host_auth=True, not both")
            auth = _trusted
        elif auth is None:
            raise ValueError(
                "the dashboard needs the host app's authentication: pass "
                "auth=<callable(request) -> bool> (e.g. checking request.session), or "
                "trust_host_auth=True when the app already protects the mount path"
            )
        inspector = AsyncInspector(self.redis_url)
        self._inspectors.append(inspector)
        app: Starlette = create_app(inspector, auth=auth, **options)
        return app


def _trusted(request: Request) -> bool:
    return True
