"""Markdown for the benchmark results: the table, pyasynq's ratios, the issue's targets."""

# ruff: noqa: RUF001 - the report prints multiplication and micro signs on purpose

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.systems import SYSTEMS

OURS = ("pyasynq", "pyasynq-asyncio")  # the second is pyasynq without uvloop, not a peer
PYTHON_PEERS = [n for n in SYSTEMS if n not in (*OURS, "asynq-go")]


def _get(results: dict[str, Any], system: str, *path: str) -> Any:
    node: Any = results.get(system, {})
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _na_reason(results: dict[str, Any], system: str, step: str) -> str | None:
    sysres = results.get(system, {})
    if "na" in sysres:
        return str(sysres["na"])
    node = sysres.get(step)
    if node is None:
        return "not run"
    if isinstance(node, dict) and "na" in node:
        return str(node["na"])
    return None


# Each metric: (column, getter, higher_is_better, formatter, step for n/a reasons)
def _sum_redis(key: str) -> Callable[[dict[str, Any], str], float | None]:
    def get(results: dict[str, Any], system: str) -> float | None:
        enq = _get(results, system, "enqueue_single", "redis", key)
        drain = _get(results, system, "drain_noop", "redis", key)
        return None if enq is None or drain is None else enq + drain

    return get


def _path(*path: str) -> Callable[[dict[str, Any], str], Any]:
    return lambda results, system: _get(results, system, *path)


def _int(v: float) -> str:
    return f"{v:,.0f}"


def _f1(v: float) -> str:
    return f"{v:,.1f}"


def _f2(v: float) -> str:
    return f"{v:,.2f}"


METRICS: list[
    tuple[str, Callable[[dict[str, Any], str], Any], bool, Callable[[float], str], str]
] = [
    ("enqueue/s single", _path("enqueue_single", "rate"), True, _int, "enqueue_single"),
    ("enqueue/s batch", _path("enqueue_batch", "rate"), True, _int, "enqueue_batch"),
    ("drain/s no-op", _path("drain_noop", "rate"), True, _int, "drain_noop"),
    ("drain/s 1 ms sleep", _path("drain_sleep", "rate"), True, _int, "drain_sleep"),
    ("drain/s Redis I/O", _path("drain_io", "rate"), True, _int, "drain_io"),
    (
        "drain/s Redis I/O (lent client)",
        _path("drain_io_lent", "rate"),
        True,
        _int,
        "drain_io_lent",
    ),
    ("latency p50 ms", _path("latency", "p50_ms"), False, _f2, "latency"),
    ("latency p99 ms", _path("latency", "p99_ms"), False, _f2, "latency"),
    ("worker RSS MiB", _path("rss", "max_proc_mib"), False, _f1, "rss"),
    ("worker CPU µs/task", _path("drain_noop", "worker_cpu_us_per_task"), False, _f1, "drain_noop"),
    ("worker CPU µs/task I/O", _path("drain_io", "worker_cpu_us_per_task"), False, _f1, "drain_io"),
    (
        "worker CPU µs/task I/O (lent)",
        _path("drain_io_lent", "worker_cpu_us_per_task"),
        False,
        _f1,
        "drain_io_lent",
    ),
    ("Redis cmds/task", _sum_redis("cmds_per_task"), False, _f1, "drain_noop"),
    ("Redis CPU µs/task", _sum_redis("cpu_us_per_task"), False, _f1, "drain_noop"),
]


def brief(node: Any) -> str:
    """One line for the progress log."""
    if not isinstance(node, dict):
        return str(node)
    if "na" in node:
        return f"n/a ({node['na']})"
    if "rate" in node:
        extra = f", {node['partial']}" if "partial" in node else ""
        return f"{node['rate']:,.0f}/s{extra}"
    if "p50_ms" in node:
        return (
            f"p50 {node['p50_ms']:.2f} ms, p99 {node['p99_ms']:.2f} ms ({node['samples']} samples)"
        )
    return ""


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def _systems(results: dict[str, Any]) -> list[str]:
    return [n for n in SYSTEMS if n in results]


def main_table(results: dict[str, Any]) -> tuple[str, list[str]]:
    rows: list[list[str]] = []
    notes: list[str] = []
    reasons: dict[tuple[str, str], list[str]] = {}
    for system in _systems(results):
        row = [f"**{system}**" if system == "pyasynq" else system]
        for col, get, _hib, fmt, step in METRICS:
            v = get(results, system)
            if v is None:
                reason = _na_reason(results, system, step) or _na_reason(
                    results, system, "enqueue_single"
                )
                row.append("n/a")
                reasons.setdefault((system, reason or "?"), []).append(col)
                continue
            cell = fmt(v)
            if col.startswith("drain") and _get(results, system, step, "partial"):
                cell += " (partial)"
                notes.append(f"{system} {col}: {_get(results, system, step, 'partial')}")
            if col == "worker RSS MiB" and (_get(results, system, "rss", "procs") or 1) > 1:
                procs = _get(results, system, "rss", "procs")
                cell += f" ({procs} procs, {_f1(_get(results, system, 'rss', 'total_mib'))} total)"
            row.append(cell)
        rows.append(row)
    for system in _systems(results):
        if _get(results, system, "drain_noop", "window"):
            notes.append(
                f"{system} (worker CPU, Redis cost): the drain was too quick to read "
                "between warm-up and end; measured over the whole run, worker "
                "start-up included"
            )
    for (system, reason), cols in reasons.items():
        what = "all" if len(cols) == len(METRICS) else ", ".join(cols)
        notes.append(f"{system} ({what}): {reason}")
    return _table(["system", *(m[0] for m in METRICS)], rows), notes


def _ratio(r: float) -> str:
    if r >= 10:
        return f"{r:,.0f}×"
    if r >= 0.1:
        return f"{r:.2f}×"
    return f"1/{1 / r:,.0f}×" if r > 0 else "0×"


def ratio_table(results: dict[str, Any]) -> str:
    rows = []
    for system in _systems(results):
        if system in OURS or "na" in results[system]:
            continue
        row = [system]
        for _col, get, hib, _fmt, _step in METRICS:
            ours, theirs = get(results, "pyasynq"), get(results, system)
            if ours is None or theirs is None or (ours if hib else theirs) == 0:
                row.append("n/a")
                continue
            if hib:
                r = ours / theirs if theirs else float("inf")
            else:
                r = theirs / ours if ours else float("inf")
            row.append(_ratio(r))
        rows.append(row)
    return _table(["peer", *(m[0] for m in METRICS)], rows)


def _best_python(
    results: dict[str, Any], get: Callable[[dict[str, Any], str], Any]
) -> tuple[str, float] | None:
    vals = [(p, get(results, p)) for p in PYTHON_PEERS if get(results, p) is not None]
    return max(vals, key=lambda kv: kv[1]) if vals else None


def targets(results: dict[str, Any]) -> str:
    rows: list[list[str]] = []

    def at_least(
        name: str, ours: float | None, want: float | None, what: str, why: str = ""
    ) -> None:
        if ours is None or want is None:
            rows.append(
                [name, what, _int(ours) if ours else "n/a", "n/a" + (f" ({why})" if why else "")]
            )
        elif ours >= want:
            rows.append([name, what, _int(ours), f"PASS ({ours / want:.2f}× the bar)"])
        else:
            rows.append([name, what, _int(ours), f"FAIL: needs {want / ours:.2f}× more"])

    def at_most(name: str, ours: float | None, limit: float, fmt: Callable[[float], str]) -> None:
        if ours is None:
            rows.append([name, fmt(limit), "n/a", "n/a"])
        elif ours <= limit:
            rows.append([name, fmt(limit), fmt(ours), "PASS"])
        else:
            rows.append([name, fmt(limit), fmt(ours), f"FAIL: {ours / limit:.2f}× over"])

    drain = _path("drain_noop", "rate")
    single = _path("enqueue_single", "rate")
    ours_drain = drain(results, "pyasynq")
    go_drain = drain(results, "asynq-go")
    go_why = _na_reason(results, "asynq-go", "drain_noop") or ""
    at_least(
        "drain no-op ≥ 2× Go asynq",
        ours_drain,
        2 * go_drain if go_drain else None,
        f"≥ {_int(2 * go_drain)}" if go_drain else "≥ 2× Go asynq",
        go_why,
    )
    best = _best_python(results, drain)
    at_least(
        "drain no-op ≥ 4× the best Python peer",
        ours_drain,
        4 * best[1] if best else None,
        f"≥ {_int(4 * best[1])} (4× {best[0]})" if best else "≥ 4× best peer",
    )
    go_single = single(results, "asynq-go")
    at_least(
        "single-call enqueue ≥ Go asynq",
        single(results, "pyasynq"),
        go_single,
        f"≥ {_int(go_single)}" if go_single else "≥ Go asynq",
        go_why,
    )
    io = _path("drain_io", "rate")
    go_io = io(results, "asynq-go")
    at_least(
        "drain with Redis I/O handler ≥ 1.5× Go asynq (issue 20)",
        io(results, "pyasynq"),
        1.5 * go_io if go_io else None,
        f"≥ {_int(1.5 * go_io)}" if go_io else "≥ 1.5× Go asynq",
        _na_reason(results, "asynq-go", "drain_io") or go_why,
    )
    at_least(
        "drain with the I/O handler on the lent client ≥ 1.5× Go asynq's I/O drain",
        _path("drain_io_lent", "rate")(results, "pyasynq"),
        1.5 * go_io if go_io else None,
        f"≥ {_int(1.5 * go_io)}" if go_io else "≥ 1.5× Go asynq",
        _na_reason(results, "asynq-go", "drain_io") or go_why,
    )
    at_least(
        "batch enqueue ≥ 50,000/s",
        _get(results, "pyasynq", "enqueue_batch", "rate"),
        50000,
        "≥ 50,000",
    )
    at_most("idle latency p50 ≤ 2 ms", _get(results, "pyasynq", "latency", "p50_ms"), 2, _f2)
    at_most("idle latency p99 ≤ 5 ms", _get(results, "pyasynq", "latency", "p99_ms"), 5, _f2)
    at_most(
        "worker RSS ≤ 60 MiB per process", _get(results, "pyasynq", "rss", "max_proc_mib"), 60, _f1
    )
    at_most(
        "Redis CPU ≤ 60 µs per task", _sum_redis("cpu_us_per_task")(results, "pyasynq"), 60, _f1
    )
    return _table(["target (issue 8)", "bar", "pyasynq", "result"], rows)


def redis_detail(results: dict[str, Any]) -> str:
    rows = []
    for system in (x for x in _systems(results) if "na" not in results[x]):

        def g(step: str, key: str, fmt: Callable[[float], str] = _f1, system: str = system) -> str:
            v = _get(results, system, step, "redis", key)
            return "n/a" if v is None else fmt(v)

        top = _get(results, system, "drain_noop", "redis", "top") or []
        rows.append(
            [
                system,
                g("enqueue_single", "cmds_per_task"),
                g("enqueue_single", "cpu_us_per_task"),
                g("enqueue_batch", "cmds_per_task"),
                g("enqueue_batch", "cpu_us_per_task"),
                g("drain_noop", "cmds_per_task"),
                g("drain_noop", "cpu_us_per_task"),
                g("drain_sleep", "cmds_per_task"),
                g("drain_sleep", "cpu_us_per_task"),
                ", ".join(f"{k} {v:.2f}" for k, v in top[:6]) or "n/a",
            ]
        )
    return _table(
        [
            "system",
            "enqueue cmds",
            "enqueue µs",
            "batch cmds",
            "batch µs",
            "drain cmds",
            "drain µs",
            "sleep-drain cmds",
            "sleep-drain µs",
            "drain commands per task (top)",
        ],
        rows,
    )


def methods(results: dict[str, Any], machine: dict[str, Any]) -> str:
    versions = machine.get("versions", {})
    rows = []
    for system in _systems(results):
        info = SYSTEMS[system]
        lat = results.get(system, {}).get("latency", {})
        samples = f"{lat['samples']} ({lat.get('lost', 0)} lost)" if "samples" in lat else "n/a"
        load = results.get(system, {}).get("load")
        dists = [d for d in info.dist.split(",") if d]
        rows.append(
            [
                system,
                " + ".join(
                    versions.get(d, "n/a") if len(dists) == 1 else f"{d} {versions.get(d, 'n/a')}"
                    for d in dists
                )
                or "n/a",
                info.batch,
                info.sleep,
                info.concurrency,
                samples,
                f"{load[0]:.1f} → {load[1]:.1f}" if load else "n/a",
                info.notes,
            ]
        )
    return _table(
        [
            "system",
            "version",
            "batch column",
            "1 ms task",
            "concurrency C",
            "latency samples",
            "load avg",
            "notes",
        ],
        rows,
    )


def render(
    results: dict[str, Any], s: Any, machine: dict[str, Any], stamp: str, elapsed: float
) -> str:
    table, notes = main_table(results)
    versions = ", ".join(f"{k} {v}" for k, v in sorted(machine.get("versions", {}).items()))
    parts = [
        f"# pyasynq benchmark {stamp}{' (quick)' if s.quick else ''}",
        "",
        f"N = {s.n:,} tasks per throughput step (after {s.warmup:,} warm-up tasks), "
        f"concurrency C = {s.concurrency} per worker process, {s.processes} worker "
        f"process(es) per system, batches of {s.batch:,}, latency: up to {s.lat_samples:,} "
        f"samples or {s.lat_max_seconds:.0f} s per system. One private Redis (AOF, "
        f"appendfsync everysec), flushed between steps. Run took {elapsed / 60:.1f} min.",
        "",
        f"Machine: {machine.get('nproc')} CPUs ({machine.get('cpu')}), "
        f"{machine.get('mem_gib')} GiB, Linux {machine.get('kernel')}; Redis "
        f"{machine.get('redis')}; Python {machine.get('python')}.",
        f"Packages: {versions}.",
        "",
        "## Results",
        "",
        table,
        "",
    ]
    if notes:
        parts += ["n/a and partial cells:", "", *(f"- {n}" for n in notes), ""]
    parts += [
        "Redis cmds/task and Redis CPU µs/task are a task's whole life: one single-call "
        "enqueue plus its share of the no-op drain. Worker CPU is user+sys time of the "
        "worker processes per no-op task during the drain. Worker RSS is the peak of the "
        'largest worker process. "load avg" below is the machine\'s 1-minute load when '
        "a system's steps began and ended: the harness itself adds about 2; more means "
        "other work competed for the 2 CPUs.",
        "",
        "## pyasynq's ratio to each peer (> 1 means pyasynq is better)",
        "",
        ratio_table(results),
        "",
        "## Targets",
        "",
        targets(results),
        "",
        "## Redis cost per task, by step",
        "",
        redis_detail(results),
        "",
        "## How each system was run",
        "",
        methods(results, machine),
        "",
    ]
    return "\n".join(parts)
