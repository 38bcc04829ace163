"""Inspector reads that neither :mod:`.inspect` nor :mod:`.state` covers: a scheduler
entry's enqueue history (wire spec 1.1, ``asynq:scheduler_history:<entryID>``) and the
Redis Cluster nodes serving a queue (spec 6)."""

from __future__ import annotations

from dataclasses import dataclass

from pyasynq.errors import BrokerError

from .. import keys
from ..codec import SchedulerEnqueueEvent, decode_scheduler_event
from .base import Command
from .inspect import DEFAULT_PAGE_SIZE


def _page(page_size: int, page: int) -> tuple[int, int]:
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    if page < 1:
        raise ValueError(f"page numbers start at 1, got {page}")
    start = page_size * (page - 1)
    return start, start + page_size - 1


def scheduler_enqueue_events(
    entry_id: str, *, page_size: int = DEFAULT_PAGE_SIZE, page: int = 1
) -> Command:
    """One page (1-based) of an entry's enqueue events, newest first (ZREVRANGE: the
    score is the enqueue time)."""
    start, stop = _page(page_size, page)
    return Command(("ZREVRANGE", keys.scheduler_history_key(entry_id), start, stop))


def scheduler_enqueue_events_result(reply: object) -> list[SchedulerEnqueueEvent]:
    """The decoded events in reply order; undecodable members are skipped (as Go)."""
    if not isinstance(reply, list):
        raise BrokerError(f"unexpected reply {reply!r} from ZREVRANGE")
    out = []
    for data in reply:
        if not isinstance(data, bytes):
            continue
        try:
            out.append(decode_scheduler_event(data))
        except BrokerError:
            continue
    return out


@dataclass(frozen=True, slots=True)
class ClusterNode:
    """A Redis Cluster node: its node ID and ``host:port`` address."""

    id: str
    addr: str


def cluster_slots() -> Command:
    return Command(("CLUSTER", "SLOTS"))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def cluster_nodes_result(reply: object, *, slot: int, host: str) -> list[ClusterNode]:
    """The nodes (master first, then replicas) of the CLUSTER SLOTS range holding
    ``slot``. A node announced without an IP (``""`` or ``"?"``: "the endpoint you
    asked") gets ``host``, the address this client connects to."""
    if not isinstance(reply, list):
        raise BrokerError(f"unexpected reply {reply!r} from CLUSTER SLOTS")
    for entry in reply:
        if not (isinstance(entry, list | tuple) and len(entry) >= 3):
            raise BrokerError(f"unexpected CLUSTER SLOTS entry {entry!r}")
        start, end = int(entry[0]), int(entry[1])
        if not start <= slot <= end:
            continue
        nodes = []
        for node in entry[2:]:
            ip = "" if node[0] is None else _text(node[0])
            node_id = _text(node[2]) if len(node) > 2 else ""
            nodes.append(ClusterNode(node_id, _addr(ip if ip not in ("", "?") else host, node[1])))
        return nodes
    raise BrokerError(f"no Redis Cluster node serves slot {slot}")
