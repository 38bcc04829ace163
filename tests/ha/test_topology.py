"""The topology helpers start even when another process takes a port between the moment
it is picked and the moment the server binds it (what broke a fresh run of
tests/ha/test_cluster.py), and a server that cannot start says why, from its log."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest
import topology
from topology import ClusterTopology, SentinelTopology

from .conftest import _need_binaries


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port held by someone else (a listener that never answers)."""
    _need_binaries()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def _picker(taken: int, bad_calls: set[int]) -> Callable[[], int]:
    """A free_port that answers the taken port on the given calls (1-based): the race,
    made certain."""
    real = topology.free_port
    calls = 0

    def pick() -> int:
        nonlocal calls
        calls += 1
        return taken if calls in bad_calls else real()

    return pick


def test_sentinel_topology_survives_taken_ports(
    taken: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Call 1: the master's port; 2: its second try; 3: the sentinel's port.
    monkeypatch.setattr(topology, "free_port", _picker(taken, {1, 3}))
    with SentinelTopology(replicas=0, sentinels=1) as topo:
        assert taken not in {topo.nodes[0].port, topo.sentinel_nodes[0].port}
        assert topo.nodes[0].client().ping()
        assert topo.current_master() is topo.nodes[0]


def test_cluster_topology_survives_a_taken_port_and_bus_port(
    taken: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Calls 1 and 2: the first node's port and cluster bus port.
    monkeypatch.setattr(topology, "free_port", _picker(taken, {1, 2}))
    with ClusterTopology(masters=3, replicas=0) as topo:
        assert taken not in {n.port for n in topo.nodes}
        topo.wait_healthy(10)


def test_a_node_that_cannot_restart_shows_its_log(taken: int) -> None:
    with SentinelTopology(replicas=0, sentinels=1) as topo:
        node = topo.nodes[0]
        node.kill()
        node.port, real = taken, node.port  # as if someone took its port while it was down
        try:
            cmd = [str(taken) if a == str(real) else a for a in node.cmd]
            node.process.args = cmd
            with pytest.raises(RuntimeError) as err:
                node.restart(timeout=5)
        finally:
            node.port = real
    assert "Address already in use" in str(err.value)
    assert "last lines of" in str(err.value)
