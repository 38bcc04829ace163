"""``python -m chaos [--tier short|full] [--only NAME ...] [--results DIR]``: runs the
scenarios one after the other, prints the table and writes it to
``<results>/<tier>.md`` and ``<results>/<tier>.json``. Exits 1 when a scenario breaks its
guarantee (lost tasks where 0 is promised, or an unexplained duplicate)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from . import scenarios as s
from .checker import Result, Skipped
from .netpart import partition_netns
from .procs import stop_all

# name -> (short tier, full tier): each a call of the scenario with its size.
Tier = dict[str, Callable[[Path], Result | None]]

SHORT: Tier = {
    "worker-sigkill": lambda b: s.worker_kill(b, 20_000),
    "worker-sigstop": lambda b: s.worker_stall(b, 3_000, 3),
    "long-handler": lambda b: s.long_handler(b, 3, 3),
    "redis-sigkill-always": lambda b: s.redis_kill(b, 6_000, 3, "always"),
    "redis-sigkill-everysec": lambda b: s.redis_kill(b, 6_000, 3, "everysec"),
    "redis-restart-no-persistence": lambda b: s.redis_restart_no_persistence(b, 4_000),
    "redis-sigstop": lambda b: s.redis_freeze(b, 4_000, 2),
    "worker-sigterm": lambda b: s.graceful_shutdown(b, 6_000, 4),
    "maxmemory": lambda b: s.maxmemory(b, 20_000),
    "partition": lambda b: s.partition(b, 4_000, 2),
    "partition-netns": lambda b: partition_netns(b, 150.0, 5.0, 2),
    "sentinel-failover": lambda b: s.failover(b, "sentinel", 3_000, 3),
    "cluster-failover": lambda b: s.failover(b, "cluster", 3_000, 3),
    "scheduler-replicas": lambda b: s.scheduler_replicas(b, 10),
    "clock-skew": lambda b: s.clock_skew(b, 3_000),
    "cluster-reshard": lambda b: s.reshard(b, 4_000, 2),
}
FULL: Tier = {
    "worker-sigkill": lambda b: s.worker_kill(b, 1_000_000),
    "worker-sigstop": lambda b: s.worker_stall(b, 10_000, 8),
    "long-handler": lambda b: s.long_handler(b, 6, 5),
    "redis-sigkill-always": lambda b: s.redis_kill(b, 30_000, 10, "always"),
    "redis-sigkill-everysec": lambda b: s.redis_kill(b, 30_000, 10, "everysec"),
    "redis-restart-no-persistence": lambda b: s.redis_restart_no_persistence(b, 10_000),
    "redis-sigstop": lambda b: s.redis_freeze(b, 15_000, 5),
    "worker-sigterm": lambda b: s.graceful_shutdown(b, 30_000, 12),
    "maxmemory": lambda b: s.maxmemory(b, 60_000),
    "partition": lambda b: s.partition(b, 15_000, 5),
    "partition-netns": lambda b: partition_netns(b, 250.0, 20.0, 5),
    "sentinel-failover": lambda b: s.failover(b, "sentinel", 20_000, 20),
    "cluster-failover": lambda b: s.failover(b, "cluster", 20_000, 20),
    "scheduler-replicas": lambda b: s.scheduler_replicas(b, 60),
    "clock-skew": lambda b: s.clock_skew(b, 15_000),
    "cluster-reshard": lambda b: s.reshard(b, 20_000, 10),
}


def _dups(r: Result) -> str:
    if not r.duplicated:
        return "0"
    # Causes count extra runs: a task that ran three times had two.
    return (
        f"{r.duplicated} (extra runs: " + "; ".join(f"{k} {v}" for k, v in r.causes.items()) + ")"
    )


def _lost(r: Result) -> str:
    return f"{r.lost} (allowed)" if r.lost and r.lost_allowed else str(r.lost)


def table(results: list[Result], skipped: dict[str, str] | None = None) -> str:
    head = ("| scenario | tasks | faults injected | lost | duplicated (causes) | unexpected "
            "| stale outcomes refused (log lines) | time to recover | verdict |")  # fmt: skip
    rows = [head, "|" + "---|" * 9]
    for r in results:
        rec = "-" if r.recover_s is None else f"{r.recover_s:.1f} s"
        rows.append(
            f"| {r.scenario} | {r.tasks:,} | {r.faults} | {_lost(r)} | {_dups(r)} "
            f"| {r.unexpected} | {r.stale_refused} | {rec} | {'ok' if r.ok else 'FAIL'} |"
        )
    for name, why in (skipped or {}).items():
        rows.append(f"| {name} | - | - | - | - | - | - | - | skipped: {why} |")
    return "\n".join(rows)


def _write_json(
    path: Path, tier: str, total: float, results: list[Result], failed: list[str]
) -> None:
    dicts = []
    for r in results:
        d = r.as_dict()
        d["examples"].pop("all_lost", None)
        dicts.append(d)
    doc = {"tier": tier, "minutes": total / 60, "results": dicts, "errors": failed}
    path.write_text(json.dumps(doc, indent=2) + "\n")


def _skip(name: str, why: str, skipped: dict[str, str], failed: list[str]) -> None:
    print(f"   skipped: {why}", flush=True)
    skipped[name] = why
    if os.environ.get("CI") == "true":  # CI runs as root with every tool: a skip is a failure
        failed.append(name)


def _publish(out: Path, tier: str, total: float, results: list[Result], *,
             skipped: dict[str, str], failed: list[str]) -> tuple[str, str]:  # fmt: skip
    """Writes ``<out>/<tier>.md`` and ``.json``; returns the table and its notes."""
    md = table(results, skipped)
    notes = "\n".join(f"* **{r.scenario}**: " + "; ".join(r.notes) for r in results if r.notes)
    out.mkdir(parents=True, exist_ok=True)
    header = (f"Tier `{tier}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
              f"{platform.node() and 'this machine'}: {total / 60:.1f} min.")  # fmt: skip
    (out / f"{tier}.md").write_text(f"{header}\n\n{md}\n\n{notes}\n")
    _write_json(out / f"{tier}.json", tier, total, results, failed)
    return md, notes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    ap.add_argument("--tier", choices=["short", "full"], default="short")
    ap.add_argument("--only", nargs="*", help="scenario names (default: all of the tier)")
    ap.add_argument("--results", default="build/chaos", help="where the table goes")
    ap.add_argument("--keep", action="store_true", help="keep the run directories")
    args = ap.parse_args(argv)
    tier = SHORT if args.tier == "short" else FULL
    names = args.only or list(tier)
    unknown = [n for n in names if n not in tier]
    if unknown:
        ap.error(f"unknown scenarios {unknown}; known: {', '.join(tier)}")
    base = Path(tempfile.mkdtemp(prefix="pyasynq-chaos-"))
    results: list[Result] = []
    failed: list[str] = []
    skipped: dict[str, str] = {}
    started = time.monotonic()
    for name in names:
        t0 = time.monotonic()
        print(f"== {name} ...", flush=True)
        try:
            res = tier[name](base)
            if res is None:
                print(f"   skipped: {name} needs a tool that is missing (see the Makefile)")
                continue
        except Skipped as why:
            _skip(name, str(why), skipped, failed)
            continue
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        finally:
            stop_all()
        res.seconds = time.monotonic() - t0
        results.append(res)
        print(f"   {res.scenario}: {res.tasks:,} tasks, {res.faults} faults, lost {_lost(res)}, "
              f"duplicated {_dups(res)}, unexpected {res.unexpected} ({res.seconds:.0f} s)",
              flush=True)  # fmt: skip
        for note in res.notes:
            print(f"   note: {note}", flush=True)
    total = time.monotonic() - started
    out = Path(args.results)
    md, notes = _publish(out, args.tier, total, results, skipped=skipped, failed=failed)
    print("\n" + md + "\n\n" + notes)
    print(f"\n{len(results)} scenarios in {total / 60:.1f} min; table in {out}/{args.tier}.md")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    else:
        print(f"run directories kept in {base}")
    bad = [r.scenario for r in results if not r.ok] + failed
    if bad:
        print(f"FAILED: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0
