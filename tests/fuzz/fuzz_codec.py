"""Coverage-guided fuzzing of the message decoder with atheris (``make fuzz``).

    .venv/bin/python tests/fuzz/fuzz_codec.py -max_total_time=60 [corpus dir]

The bytes go through every protobuf decoder and the worker's dequeue path (a record that
does not decode must become a quarantine reason). protobuf's parser is C (upb), which
atheris cannot see into; coverage comes from pyasynq's own functions, instrumented here.
A finding is saved as ``crash-<sha>`` in the working directory; once fixed, add its bytes
to the examples of ``tests/fuzz/test_codec_fuzz.py``."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzz import checks
from pyasynq._rdb import codec
from pyasynq._rdb.ops import processing


def _instrument() -> None:
    # Only these modules: instrumenting every import (pyasynq pulls in redis-py and more)
    # takes longer than a short run.
    for module in (codec, processing, checks):
        for _, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == module.__name__:
                atheris.instrument_func(fn)


def _seed(corpus: Path) -> None:
    """Start from real encodings of each message kind (the fuzzer mutates from there)."""
    corpus.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(checks.seeds()):
        (corpus / f"seed-{i}").write_bytes(data)


def main() -> None:
    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):  # no corpus dir given
        corpus = Path("build/fuzz/codec")
        _seed(corpus)
        argv.append(str(corpus))
    _instrument()
    atheris.Setup(argv, checks.check_message_bytes)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
