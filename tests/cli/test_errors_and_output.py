"""User mistakes end as one line and a non-zero status, never a traceback (checked on the
real ``python -m pyasynq`` too), and the shared formatting helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import redis

from pyasynq.cli import main
from pyasynq.cli import output as out
from pyasynq.inspection import DailyStats

from .support import Cli


def run_cli(*argv: str, env: dict[str, str] | None = None, cwd: Path | None = None
            ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    base = {k: v for k, v in os.environ.items() if k not in ("PYASYNQ_REDIS_URL", "REDIS_URL")}
    return subprocess.run(
        [sys.executable, "-m", "pyasynq", *argv],
        capture_output=True, text=True, timeout=60, env={**base, **(env or {})}, cwd=cwd,
        check=False,
    )  # fmt: skip


def one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_unreachable_redis_names_the_url_without_the_password() -> None:
    done = run_cli("--redis-url", "redis://:s3cr3t@127.0.0.1:1/0", "stats")
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert line.startswith("pyasynq: cannot reach Redis at 127.0.0.1:1/0")
    assert "s3cr3t" not in done.stderr + done.stdout


def test_user_mistakes_in_a_real_process(redis_url: str, r: redis.Redis) -> None:
    r.sadd("asynq:queues", "default")
    cases = [
        (["queue", "inspect", "nope"], 1, "pyasynq: queue 'nope' does not exist"),
        (["task", "ls", "-q", "default", "-s", "bogus"], 2,
         "pyasynq: unknown state 'bogus'; use one of active, pending, scheduled, retry, "
         "archived, completed, aggregating"),
        (["task", "inspect", "-q", "default", "-i", "t1"], 1,
         "pyasynq: task 't1' does not exist in queue 'default'"),
        (["task", "runall", "-q", "default", "-s", "pending"], 2, None),
    ]  # fmt: skip
    for argv, code, message in cases:
        done = run_cli(*argv, env={"PYASYNQ_REDIS_URL": redis_url})
        assert done.returncode == code, (argv, done.stderr)
        line = one_line(done.stderr)
        if message:
            assert line == message
        assert done.stdout == ""


def test_bad_url_is_one_line() -> None:
    done = run_cli("--redis-url", "http://localhost:6379", "queue", "ls")
    assert done.returncode == 2
    assert "unsupported Redis URL scheme 'http'" in one_line(done.stderr)


def test_reads_the_url_from_the_environment(redis_url: str, r: redis.Redis) -> None:
    r.sadd("asynq:queues", "from-env")
    done = run_cli("queue", "ls", env={"REDIS_URL": redis_url})
    assert (done.returncode, done.stdout) == (0, "from-env\n")
    # PYASYNQ_REDIS_URL wins over REDIS_URL.
    done = run_cli("queue", "ls", env={"PYASYNQ_REDIS_URL": redis_url,
                                       "REDIS_URL": "redis://127.0.0.1:1/0"})  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "from-env\n")


def test_embedded_redis_when_nothing_is_configured(tmp_path: Path) -> None:
    done = run_cli("stats", "--json", cwd=tmp_path)
    if "no Redis server found" in done.stderr:
        pytest.skip("no redis-server binary for the embedded default")
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        "pyasynq: using the embedded Redis in ./.pyasynq/redis; set PYASYNQ_REDIS_URL to use "
        "your own\n"
    )
    assert (tmp_path / ".pyasynq" / "redis" / "appendonlydir").is_dir()
    assert '"queues": []' in done.stdout


def test_without_rich_the_cli_says_what_to_install(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)  # import rich -> ImportError
    res = cli("stats")
    assert res.code == 2
    assert res.err == "pyasynq: the pyasynq command line needs rich: pip install 'pyasynq[cli]'\n"


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    help_text = capsys.readouterr().out
    for noun in ("stats", "queue", "task", "group", "server", "cron", "dash", "metrics"):
        assert noun in help_text


def test_show_bytes() -> None:
    assert out.show_bytes(b'{"a":1}') == ('{"a":1}', "text")
    assert out.show_bytes(b"line1\nline2\ttab") == ("line1\nline2\ttab", "text")
    assert out.show_bytes(b"\xff\x00") == ("ff00", "hex")
    assert out.show_bytes(b"\x1b[31m") == ("1b5b33316d", "hex")  # escape codes are not text
    assert out.show_bytes(b"") == ("", "text")
    assert out.short_bytes(b"a" * 100, 10) == "aaaaaaaaa…"
    assert out.short_bytes(b"a\nb") == "a\\nb"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.25, "250ms"), (1.5, "1.5s"), (2, "2s"), (45, "45s"), (90, "1m30s"),
     (120, "2m"), (3600, "1h"), (7500, "2h5m"), (90000, "1d1h"), (-30, "-30s")],
)  # fmt: skip
def test_fmt_duration(seconds: float, text: str) -> None:
    assert out.fmt_duration(seconds) == text


def test_fmt_time_and_bytes() -> None:
    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert out.fmt_time(None) == "-"
    assert out.fmt_time(now + timedelta(minutes=5), now) == "2024-01-01 12:05:00 (in 5m)"
    assert out.fmt_time(now - timedelta(hours=2), now) == "2024-01-01 10:00:00 (2h ago)"
    assert out.fmt_bytes(512) == "512 B"
    assert out.fmt_bytes(2048) == "2.0 KiB"
    assert out.fmt_bytes(3 * 1024**3) == "3.0 GiB"
    assert out.error_rate(0, 0) == "0.00%"
    assert out.error_rate(8, 2) == "25.00%"


def test_jsonable() -> None:
    assert out.jsonable(DailyStats("q", date(2024, 1, 2), 3, 1)) == {
        "queue": "q", "date": "2024-01-02", "processed": 3, "failed": 1,
    }  # fmt: skip
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert out.jsonable({"at": when, "span": timedelta(seconds=1.5), "raw": b"\x00"}) == {
        "at": "2024-01-02T03:04:05+00:00", "span": 1.5, "raw": "00",
    }  # fmt: skip


def test_a_blank_name_is_a_usage_error(cli: Cli) -> None:
    res = cli("queue", "inspect", " ")
    assert res.code == 2
    assert res.err == "pyasynq: queue must not be blank\n"
    assert cli("task", "inspect", "-q", "default", "-i", "").code == 2
