"""``@typed_task`` is typed for mypy: the payload class comes from the handler's annotation,
so ``enqueue`` checks the payload object and the options (issue 17, item 5)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api", reason="needs mypy (the dev group)")

SNIPPET = """
from dataclasses import dataclass

import pyasynq


@dataclass
class VerifyEmail:
    username: str


@pyasynq.typed_task("email:verify", queue="critical")
async def send(payload: VerifyEmail) -> None: ...


@pyasynq.typed_task("email:count")
def count(payload: VerifyEmail, task: pyasynq.Task) -> int:
    return 1


def use(client: pyasynq.Client) -> None:
    reveal_type(send)
    reveal_type(count)
    reveal_type(send.enqueue(client, VerifyEmail("a"), queue="q"))
    reveal_type(send.payload(username="x"))
    send.enqueue(client, username="alice", max_retry=3)
    send.enqueue(client, "alice")  # E: not a VerifyEmail
    send.enqueue(client, VerifyEmail("a"), max_retry="3")  # E: not an int
"""


def test_enqueue_is_typed(tmp_path: Path) -> None:
    src = tmp_path / "typed_check.py"
    src.write_text(textwrap.dedent(SNIPPET))
    # The project's mypy cache (in the working directory): a fresh one takes 30 s.
    out, err, _ = api.run(["--strict", "--no-error-summary", str(src)])
    lines = [ln.split(": ", 1)[1] for ln in out.splitlines() if ": " in ln]
    assert lines == [
        'note: Revealed type is "pyasynq.typed.TypedTask[typed_check.VerifyEmail, '
        'typing.Coroutine[Any, Any, None]]"',
        'note: Revealed type is "pyasynq.typed.TypedTask[typed_check.VerifyEmail, int]"',
        'note: Revealed type is "pyasynq.task.TaskInfo"',
        'note: Revealed type is "typed_check.VerifyEmail"',
        'error: Argument 2 to "enqueue" of "TypedTask" has incompatible type "str"; expected '
        '"VerifyEmail | None"  [arg-type]',
        'error: Argument "max_retry" to "enqueue" of "TypedTask" has incompatible type "str"; '
        'expected "int | None"  [arg-type]',
    ], out + err
