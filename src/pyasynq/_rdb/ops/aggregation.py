"""Aggregation: the aggregator's and recoverer's work on groups (wire spec 3.15).

A group ``asynq:{q}:g:<group>`` collects aggregating tasks. When it is ready,
:func:`check_group` moves its oldest members into a new aggregation set
``asynq:{q}:g:<group>:<set id>`` registered in ``aggregation_sets`` with a deadline; the
aggregator reads the set (:func:`read_aggregation_set`), enqueues the aggregated task and
deletes the set (:func:`delete_aggregation_set`). Sets whose deadline passed are given back
to their group by the recoverer (:func:`reclaim_stale_aggregation_sets`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyasynq.errors import BrokerError

from .. import keys
from ..codec import TaskMessage, decode_task
from .base import Arg, Call, Command
from .processing import count_result

AGGREGATION_SET_TIMEOUT = 120  # seconds a set may take before the recoverer reclaims it


def list_groups(queue: str) -> Command:
    """The names of the groups that have aggregating tasks; see :func:`list_groups_result`."""
    return Command(("SMEMBERS", keys.groups_key(queue)))


def list_groups_result(reply: object) -> list[str]:
    """Group names, sorted."""
    if isinstance(reply, BrokerError):
        raise reply
    if not isinstance(reply, set | list):
        raise BrokerError(f"unexpected SMEMBERS reply {reply!r}")
    return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in reply)


def check_group(
    queue: str,
    group: str,
    set_id: str,
    now: float,
    *,
    grace_period: int,
    max_size: int = 0,
    max_delay: int = 0,
) -> Call:
    """Create aggregation set ``set_id`` from ``group`` if the group is ready: its size
    reached ``max_size`` (0 = no limit), its oldest task waited ``max_delay`` seconds
    (0 = no limit), or its newest task waited ``grace_period`` seconds. The set takes the
    oldest ``max_size`` tasks (all when 0) and must be done within 2 minutes.
    Reply 1 when the set was created, else 0; see :func:`check_group_result`."""
    if grace_period < 1:
        raise ValueError(f"grace_period must be at least 1 second, got {grace_period}")
    if max_size < 0 or max_delay < 0:
        raise ValueError("max_size and max_delay must not be negative")
    ks = [
        keys.group_key(queue, group),
        keys.aggregation_set_key(queue, group, set_id),
        keys.all_aggregation_sets_key(queue),
        keys.groups_key(queue),
    ]
    args: list[Arg] = [
        max_size,
        max_delay,
        grace_period,
        int(now) + AGGREGATION_SET_TIMEOUT,
        int(now),
        group,
    ]
    return Call("aggregation_check", ks, args)


def check_group_result(reply: object) -> bool:
    """True when the aggregation set was created."""
    return count_result(reply) == 1


@dataclass(frozen=True, slots=True)
class AggregationSet:
    """The tasks of an aggregation set, in group order, and the set's deadline (Unix s).
    ``undecodable`` counts members whose ``msg`` could not be decoded (left out)."""

    deadline: int
    messages: list[TaskMessage]
    undecodable: int = 0


def read_aggregation_set(queue: str, group: str, set_id: str) -> Call:
    """Read an aggregation set. Reply ``[deadline or nil, [msg, ...]]``; see
    :func:`read_aggregation_set_result`."""
    ks = [keys.aggregation_set_key(queue, group, set_id), keys.all_aggregation_sets_key(queue)]
    return Call("read_aggregation_set", ks, [keys.task_key_prefix(queue)])


def read_aggregation_set_result(reply: object) -> AggregationSet | None:
    """The set, or None when it is no longer registered (reclaimed or deleted)."""
    if isinstance(reply, BrokerError):
        raise reply
    if not isinstance(reply, list) or len(reply) != 2 or not isinstance(reply[1], list):
        raise BrokerError(f"unexpected read_aggregation_set reply {reply!r}")
    deadline, raw = reply
    if deadline is None:
        return None
    messages = []
    bad = 0
    for data in raw:
        try:
            messages.append(decode_task(data))
        except BrokerError:
            bad += 1
    return AggregationSet(int(deadline), messages, bad)


def delete_aggregation_set(queue: str, group: str, set_id: str) -> Call:
    """After the aggregated task was enqueued: delete the members' hashes and the set.
    Reply: how many member hashes were deleted."""
    ks = [keys.aggregation_set_key(queue, group, set_id), keys.all_aggregation_sets_key(queue)]
    return Call("delete_aggregation_set", ks, [keys.task_key_prefix(queue)])


delete_aggregation_set_result = count_result


def reclaim_stale_aggregation_sets(queue: str, now: float) -> Call:
    """Give the members of every set whose deadline is at or before ``now`` back to their
    group (original scores) and drop the set; the group name is added back to ``groups``
    (a pyasynq fix: Go leaves it out, so the group would not be checked again).
    Reply: how many sets were reclaimed."""
    ks = [keys.all_aggregation_sets_key(queue), keys.groups_key(queue)]
    return Call("reclaim_stale_aggregation_sets", ks, [int(now), keys.group_key_prefix(queue)])


reclaim_stale_aggregation_sets_result = count_result
