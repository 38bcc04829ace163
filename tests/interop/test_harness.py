"""The interop harness itself: without Go the suite skips locally and fails under CI."""

from __future__ import annotations

import pytest
from _pytest.outcomes import Failed, Skipped

from . import support

pytestmark = [pytest.mark.interop, pytest.mark.single_node]


def test_without_go_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(support, "find_go", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(Skipped, match="interop tests skipped: no Go toolchain"):
        support.build_programs()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(Failed, match="cannot run under CI=true: no Go toolchain"):
        support.build_programs()
