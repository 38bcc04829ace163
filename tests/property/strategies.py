"""Strategies for names, ids, headers and payloads, and the example counts.

The default run keeps the suite fast (50 examples a test, fewer for tests that start a
worker per example); ``PYASYNQ_HYPOTHESIS_PROFILE=long`` runs 20x as many, e.g.
``PYASYNQ_HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest -q tests/property tests/fuzz``."""

from __future__ import annotations

import os

from hypothesis import strategies as st

SCALE = 20 if os.environ.get("PYASYNQ_HYPOTHESIS_PROFILE") == "long" else 1


def examples(n: int) -> int:
    """``n`` examples in the default run, ``20 * n`` under the long profile."""
    return n * SCALE


# Characters that mean something in a key or a protocol: the key separator, the hash-tag
# braces, blanks, a glob, a quote, Lua's pattern escape, non-ASCII letters, an emoji.
_TRICKY = st.sampled_from(list(":{}  *?[]\\'\"%.-_/éß漢字😀\u200b\u00a0"))
_ANY = st.characters(codec="utf-8", exclude_categories=["Cs"])
name_text = st.text(st.one_of(_TRICKY, _ANY), min_size=1, max_size=24)

# Valid names: what pyasynq accepts (no control character, not blank; queues: no brace).
valid_name = name_text.filter(
    lambda s: s.strip() != "" and not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in s)
)
valid_queue = valid_name.filter(lambda s: "{" not in s and "}" not in s)
payloads = st.binary(max_size=512)
headers = st.dictionaries(st.text(max_size=12), st.text(max_size=24), max_size=4)
