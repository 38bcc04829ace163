"""The network namespace of the partition scenario (chaos/netns.py): made and removed with
nothing left behind, its packet rules measurable from inside, and the scenario reported as
skipped (a failure under CI) where it cannot run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaos import netns, run
from chaos.checker import Skipped
from chaos.netns import NetNS, missing
from pyasynq.embedded import find_server_binary

needs_root = pytest.mark.skipif(missing() is not None, reason=str(missing()))

# Median of 15 PINGs on one connection, from a client inside the namespace ("timeout" when
# no reply came in 1 s).
RTT = """
import statistics, time, redis
from redis.backoff import NoBackoff
from redis.retry import Retry
c = redis.Redis(port=6379, socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
try:
    c.ping()
except redis.RedisError:
    print("timeout"); raise SystemExit
rtts = []
for _ in range(15):
    t = time.perf_counter(); c.ping(); rtts.append(time.perf_counter() - t)
print(statistics.median(rtts))
"""


def _namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def _rtt(ns: NetNS) -> float | None:
    out = ns.sh(sys.executable, "-c", RTT).stdout.strip()
    return None if out == "timeout" else float(out)


def _iptables_host() -> str:
    return subprocess.run(["iptables", "-S"], capture_output=True, text=True, check=True).stdout


@needs_root
def test_the_namespace_and_what_ran_in_it_are_gone_after_use() -> None:
    host_rules = _iptables_host()
    with NetNS() as ns:
        assert ns.name in _namespaces()
        ns.partition(6379)  # rules live in the namespace, not on the host
        assert "DROP" in ns.sh("iptables", "-S").stdout
        assert _iptables_host() == host_rules
        sleeper = subprocess.Popen([*(ns.cgroup_prefix("s") or ns.prefix), "sleep", "300"])
        ns.delay(6379, 5, 0)
        delayer = ns.delayer
        assert delayer is not None and delayer.poll() is None
        # "ip netns exec" execs: the pid the harness holds is the process in the namespace.
        assert (
            str(sleeper.pid)
            in subprocess.run(
                ["ip", "netns", "pids", ns.name], capture_output=True, text=True, check=True
            ).stdout.split()
        )
    assert ns.name not in _namespaces()
    root = netns._cgroup_root()
    assert root is None or not list(root.glob(f"{ns.name}-*"))
    assert sleeper.wait(5) == -9  # killed with the namespace
    assert delayer.poll() is not None
    assert _iptables_host() == host_rules


@needs_root
def test_a_leftover_of_a_killed_run_is_removed_at_the_next_start() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"{netns.PREFIX}{dead.pid}"  # a harness pid that no longer runs
    subprocess.run(["ip", "netns", "add", stale], check=True)
    try:
        assert stale in netns.leftovers()
        with NetNS() as ns:
            assert stale not in _namespaces()
            assert ns.name in _namespaces()
    finally:
        subprocess.run(["ip", "netns", "del", stale], capture_output=True, check=False)


@needs_root
def test_delay_loss_and_partition_are_measurable_with_ping_inside(tmp_path: Path) -> None:
    with NetNS() as ns:
        server = subprocess.Popen(
            [*ns.prefix, find_server_binary(), "--bind", "127.0.0.1", "--port", "6379",
             "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            base = _rtt(ns)
            while base is None and time.monotonic() < deadline:
                base = _rtt(ns)
            assert base is not None
            ns.delay(6379, 20, 0)
            delayed = _rtt(ns)
            # 20 ms each way: a round trip takes 40 ms more (a busy machine adds its own).
            assert delayed is not None and 0.035 < delayed - base < 0.2
            ns.heal()
            ns.partition(6379)
            assert _rtt(ns) is None
            ns.heal()
            healed = _rtt(ns)
            assert healed is not None and healed < base + 0.02
            # One process cut off alone: its packets dropped, the others' not.
            alone = ns.cgroup_prefix("t")
            if alone is not None:
                ns.isolate(6379, "t")
                cut = subprocess.run([*alone, sys.executable, "-c", RTT], capture_output=True,
                                     text=True, check=True)  # fmt: skip
                assert cut.stdout.strip() == "timeout"
                assert _rtt(ns) is not None
        finally:
            server.kill()
            server.wait()


def test_without_root_the_reason_says_what_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert missing() == "needs root for network namespaces (CAP_NET_ADMIN)"


def _skipper(base: Path) -> None:
    raise Skipped("needs root for network namespaces (CAP_NET_ADMIN)")


@pytest.mark.parametrize(("ci", "code"), [("", 0), ("true", 1)])
def test_a_skipped_scenario_is_a_row_and_a_failure_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str, code: int
) -> None:
    monkeypatch.setattr(run, "SHORT", {"partition-netns": _skipper})
    monkeypatch.setenv("CI", ci)
    assert run.main(["--only", "partition-netns", "--results", str(tmp_path)]) == code
    table = (tmp_path / "short.md").read_text()
    assert "| partition-netns |" in table
    assert "skipped: needs root for network namespaces (CAP_NET_ADMIN) |" in table
