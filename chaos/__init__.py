"""The fault suite (``make chaos``, ``make chaos-short``): real worker processes and real
redis-server processes, faults injected by the harness, and a checker that counts, from
records kept outside Redis, every task done once, lost, run twice (and why) or unexpected.
See docs/reliability.md."""
