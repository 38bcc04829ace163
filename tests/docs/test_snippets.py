"""Every code block in the docs and the README that claims to run does run, against a
real Redis, so the docs cannot rot (the conventions are in snippets.py)."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .snippets import EXAMPLE_URL, ROOT, Block, blocks, pages

BLOCK_TIMEOUT = 30.0  # seconds for one block; the examples take a few
STOP_TIMEOUT = 20.0  # a background process must shut down within this after SIGTERM

PAGES = [p for p in pages() if any(b.kind != "shown" for b in blocks(p))]


def _env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    # `python` and `pyasynq` in shell blocks are this venv's.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYASYNQ_REDIS_URL"] = url
    env.pop("REDIS_URL", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("DASH_PASSWORD", "docs-example")  # docs/web.md reads it
    return env


def _code(block: Block, url: str) -> str:
    return block.code.replace(EXAMPLE_URL, url)


def _tail(path: Path) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-4000:]


def _run_page(page: Path, url: str, workdir: Path) -> None:
    env = _env(url)
    background: list[tuple[Block, subprocess.Popen[bytes], Path]] = []
    try:
        for n, block in enumerate(blocks(page)):
            if block.kind == "fragment" and block.lang == "python":
                try:
                    ast.parse(block.code)
                except SyntaxError as exc:
                    pytest.fail(f"{block.where}: the python fragment does not parse: {exc}")
            if block.kind == "file":
                (workdir / block.title).write_text(_code(block, url))  # type: ignore[operator]
            elif block.kind == "run" and block.lang == "python":
                script = workdir / f"_block{n}.py"
                script.write_text(_code(block, url))
                _run(block, [sys.executable, str(script)], workdir, env, background)
            elif block.kind == "run":
                for line in _commands(block, url):
                    _run(block, ["bash", "-c", line], workdir, env, background)
            elif block.kind == "background":
                log = workdir / f"_block{n}.log"
                with log.open("wb") as out:
                    proc = subprocess.Popen(
                        ["bash", "-c", f"exec {' && '.join(_commands(block, url))}"],
                        cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                    )  # fmt: skip
                background.append((block, proc, log))
    finally:
        problems = [_stop(block, proc, log) for block, proc, log in background]
    for problem in problems:
        if problem:
            pytest.fail(problem)


def _commands(block: Block, url: str) -> list[str]:
    lines = []
    for raw in _code(block, url).splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if line:
            lines.append(line.removeprefix("$ "))
    return lines


def _run(
    block: Block,
    argv: list[str],
    workdir: Path,
    env: dict[str, str],
    background: list[tuple[Block, subprocess.Popen[bytes], Path]],
) -> None:
    try:
        done = subprocess.run(
            argv, cwd=workdir, env=env, capture_output=True, timeout=BLOCK_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") + (exc.stderr or b"").decode(
            errors="replace"
        )
        pytest.fail(
            f"{block.where}: still running after {BLOCK_TIMEOUT}s\n{out}{_background(background)}"
        )
    if done.returncode != 0:
        pytest.fail(
            f"{block.where}: exited {done.returncode}\n"
            f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}"
            f"{_background(background)}"
        )


def _background(background: list[tuple[Block, subprocess.Popen[bytes], Path]]) -> str:
    return "".join(
        f"\n--- background block {b.where} output ---\n{_tail(log)}" for b, _, log in background
    )


def _stop(block: Block, proc: subprocess.Popen[bytes], log: Path) -> str | None:
    if proc.poll() is not None:
        code = proc.returncode
        return f"{block.where}: the background process ended early ({code})\n{_tail(log)}"
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return f"{block.where}: did not stop within {STOP_TIMEOUT}s of SIGTERM\n{_tail(log)}"
    if code != 0:
        return f"{block.where}: exited {code} after SIGTERM\n{_tail(log)}"
    return None


@pytest.mark.single_node
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_page_examples_run(page: Path, redis_url: str, r: object, tmp_path: Path) -> None:
    """Each page's runnable blocks, in order, on a flushed Redis."""
    _run_page(page, redis_url, tmp_path)


def test_blocks_are_classified() -> None:
    """Every python block either runs, is a file of the example, or says it is a fragment:
    a block cannot silently go untested."""
    unmarked = [
        b.where
        for p in pages()
        for b in blocks(p)
        if b.lang in ("python", "py") and b.kind == "shown"
    ]
    assert not unmarked, f"python blocks that are not run and not marked as fragments: {unmarked}"
    assert any(b.kind == "run" for p in pages() for b in blocks(p))
