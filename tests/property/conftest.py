"""Hypothesis profile for the property tests: see ``strategies.py`` for the counts."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

from .strategies import SCALE

# Redis round trips make examples slow enough to trip the default 200 ms deadline, and
# the tests take the session's Redis URL (a session fixture), flushing it themselves.
settings.register_profile(
    "pyasynq",
    max_examples=50 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    print_blob=True,
)
settings.load_profile("pyasynq")
