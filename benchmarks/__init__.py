"""pyasynq's benchmark suite: pyasynq and its peers on one private Redis.

See docs/benchmarks.md.
"""
