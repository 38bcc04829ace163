"""The code blocks of the docs (docs/**/*.md and README.md), and how each is treated.

A fenced block is one of:

* ``python title="name.py"``: a file of the example, written to the page's working
  directory so later blocks can import or run it; never run by itself.
* ``python`` (no title): run to completion with ``python`` in the page's directory; it
  must exit 0 within the time limit.
* ``sh`` / ``console``: shown only, unless the line before the fence says
  ``<!-- run -->`` (each line run with ``bash``, must exit 0) or ``<!-- run: background -->``
  (started and left running for the rest of the page, then stopped with SIGTERM; it must
  exit 0, i.e. shut down gracefully).
* any block after ``<!-- fragment -->``: shown only (a piece of a larger program); a python
  fragment must still parse.

Examples talk to ``redis://localhost:6379/0``; the test substitutes its own Redis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_URL = "redis://localhost:6379/0"

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+)(?P<info>[^`\n]*)$")
_DIRECTIVE = re.compile(r"^<!--\s*(?P<what>[a-z]+(?::\s*[a-z]+)?)\s*-->$")
_TITLE = re.compile(r'title="(?P<title>[^"]+)"')


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    title: str | None
    directive: str | None  # "fragment", "run", "run: background" or None
    code: str

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def kind(self) -> str:
        """file, run, background, shown or fragment."""
        if self.directive == "fragment":
            return "fragment"
        if self.lang == "python":
            return "file" if self.title else "run"
        if self.lang in ("sh", "console", "bash", "shell"):
            if self.directive == "run":
                return "run"
            if self.directive == "run: background":
                return "background"
        return "shown"


def pages() -> list[Path]:
    """Every page whose blocks are checked: README.md and docs/**/*.md."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of one markdown page, in order."""
    rel = str(path.relative_to(ROOT))
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, indent, fence = i, len(m["indent"]), m["fence"]
        info = m["info"].strip()
        lang = info.split()[0] if info else ""
        title = _TITLE.search(info)
        directive = None
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        if j >= 0 and (d := _DIRECTIVE.match(lines[j].strip())):
            directive = re.sub(r":\s*", ": ", d["what"])
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != fence:
            body.append(lines[i][indent:])
            i += 1
        i += 1  # the closing fence
        out.append(
            Block(rel, start + 1, lang, title["title"] if title else None, directive,
                  "\n".join(body) + "\n")
        )  # fmt: skip
    return out
