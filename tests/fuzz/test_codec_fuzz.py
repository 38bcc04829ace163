"""The message decoder under fuzz-like input in the default run: random bytes and
mutations of real encodings (hypothesis), and a short atheris run when atheris is
installed (``make fuzz`` runs it for 60 s; see fuzz_codec.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from .checks import check_message_bytes, seeds

HERE = Path(__file__).resolve().parent


def _examples(n: int) -> int:
    return n * (20 if os.environ.get("PYASYNQ_HYPOTHESIS_PROFILE") == "long" else 1)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real encoding with bytes flipped, cut, inserted or repeated."""
    data = bytearray(draw(st.sampled_from(seeds())))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "repeat"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[i] ^= draw(st.integers(1, 255))
        elif op == "cut":
            data = data[:i]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            data[i:i] = data[i : i + draw(st.integers(1, 8))] * draw(st.integers(2, 50))
    return bytes(data)


@settings(max_examples=_examples(300), deadline=None)
@given(data=st.one_of(st.binary(max_size=256), mutated()))
@example(data=b"")
@example(data=b"\x0a\xff\xff\xff\xff\x0f")  # a length beyond the buffer
@example(data=b"\x0a\x02\xc3\x28")  # a string field that is not UTF-8
@example(data=b"\x7a\x04\x0a\x02\xff\xfe")  # a header map entry with a bad key
@example(data=b"\x08" + b"\xff" * 11)  # a varint longer than 10 bytes
@example(data=b"\x0b" * 100)  # start-group tags (a deprecated wire type)
def test_any_bytes_decode_or_become_a_quarantine_reason(data: bytes) -> None:
    check_message_bytes(data)


def test_a_short_atheris_run_finds_nothing(tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris is in the fuzz dependency group")
    proc = subprocess.run(
        [sys.executable, str(HERE / "fuzz_codec.py"), "-runs=3000", "-seed=1", str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done 3000 runs" in proc.stderr
