"""The pyasynq web dashboard: an ASGI app (Starlette, server-rendered templates, htmx
shipped as a static file) built only on the public AsyncInspector.

``create_app(...)`` returns the app to mount in your own ASGI app; ``pyasynq web`` serves
it alone. It needs the ``web`` extra: ``pip install 'pyasynq[web]'``. See docs/web.md.
"""

from .app import create_app
from .security import BasicAuth

__all__ = ["BasicAuth", "create_app"]
