"""docs/security.md shows exactly the ACL rules the role tests run with."""

from __future__ import annotations

import re
from pathlib import Path

from . import roles

PAGE = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def test_the_page_shows_the_tested_rules() -> None:
    found = dict(
        re.findall(r"^ACL SETUSER (\w+) on >PASSWORD (.+)$", PAGE.read_text(), re.MULTILINE)
    )
    assert found == roles.RULES
