"""MkDocs hooks (mkdocs.yml ``hooks:``): the docstrings use Sphinx roles
(:class:`~pyasynq.config.ServerConfig`, :meth:`shutdown`), which Markdown renders as
":class:" before a code span. Drop the role and the ``~module.`` prefix, as Sphinx shows them.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:class|meth|func|data|attr|mod|exc|obj):<code>~?([^<]*)</code>")


def _short(match: re.Match[str]) -> str:
    name = match.group(1)
    tilde = match.group(0).split("<code>", 1)[1].startswith("~")
    return f"<code>{name.rsplit('.', 1)[-1] if tilde else name}</code>"


def on_page_content(html: str, **_: Any) -> str:
    return _ROLE.sub(_short, html)
