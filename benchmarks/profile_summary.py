"""Top costs in a py-spy ``raw`` (collapsed stacks) profile, as markdown.

    python -m benchmarks.profile_summary benchmarks/profiles/<file>.txt [--top 20]

Only the main thread counts (stacks rooted at ``--root``; other threads such as a
heartbeat or the harness' recorder mostly sleep). Samples whose innermost frame is a wait
(epoll, a condition, sleep) are reported as "waiting" and left out of the percentages:
"self" is the share of the busy samples whose innermost frame is the function, "total" the
share whose stack holds it anywhere. Frames are grouped by function and file.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")
WAITS = ("EpollSelector.select", "select (selectors.py)", "Condition.wait", "sleep (")


def _frame(raw: str) -> str:
    return _LINE.sub(")", raw.strip())


def summarize(path: Path, top: int = 20, root: str = "_run_module_as_main") -> str:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    busy = waiting = other = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";")]
        if not frames[0].startswith(root):
            other += n
            continue
        if frames[-1].startswith(WAITS):
            waiting += n
            continue
        busy += n
        own[frames[-1]] += n
        for f in set(frames):
            total[f] += n
    if not busy:
        return f"{path.name}: no busy samples of the main thread"
    main = busy + waiting
    out = [
        f"{path.name}: main thread {main} samples, {100 * waiting / main:.0f}% waiting "
        f"(event loop idle: waiting on Redis), {100 * busy / main:.0f}% busy; "
        f"{other} samples of other threads left out",
        "",
        "| self % of busy | function |",
        "|---|---|",
    ]
    out += [f"| {100 * n / busy:.1f} | `{f}` |" for f, n in own.most_common(top)]
    out += ["", "| total % of busy | function (inclusive) |", "|---|---|"]
    out += [f"| {100 * n / busy:.1f} | `{f}` |" for f, n in total.most_common(top)]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile_summary")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--root", default="_run_module_as_main", help="the main thread's root frame")
    a = p.parse_args()
    print("\n\n".join(summarize(f, a.top, a.root) for f in a.files))


if __name__ == "__main__":
    main()
