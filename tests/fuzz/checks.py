"""What the fuzzers check, shared by the atheris target (``make fuzz``) and the short
hypothesis run in the default tests: bytes read from Redis, whatever they are, decode to a
message or raise BrokerError (which the worker turns into a quarantine reason); nothing
else escapes, and a message that decodes encodes back to one that decodes the same."""

from __future__ import annotations

from collections.abc import Callable

from pyasynq._rdb import codec
from pyasynq._rdb.ops import processing
from pyasynq.errors import BrokerError

DECODERS: list[tuple[Callable[[bytes], object], Callable[[object], bytes]]] = [
    (codec.decode_task, codec.encode_task),  # type: ignore[list-item]
    (codec.decode_server_info, codec.encode_server_info),  # type: ignore[list-item]
    (codec.decode_worker_info, codec.encode_worker_info),  # type: ignore[list-item]
    (codec.decode_scheduler_entry, codec.encode_scheduler_entry),  # type: ignore[list-item]
    (codec.decode_scheduler_event, codec.encode_scheduler_event),  # type: ignore[list-item]
]


def check_message_bytes(data: bytes) -> None:
    """Raise AssertionError (or whatever escaped) when ``data`` breaks a decoder."""
    for decode, encode in DECODERS:
        try:
            msg = decode(data)
        except BrokerError:
            continue
        again = decode(encode(msg))
        assert again == msg, (decode.__name__, msg, again)
    # The worker's path: a dequeued record becomes a task or a quarantine reason.
    leased = processing.dequeue_result("q", [b"id", data, b"", 0])
    assert leased is not None
    assert (leased.msg is None) == bool(leased.problem)
    if leased.msg is None:
        assert leased.problem  # the reason quarantine records


def seeds() -> list[bytes]:
    """Real encodings of every message kind, for the fuzzers to start from."""
    return [
        codec.encode_task(
            codec.TaskMessage(
                type="email:welcome",
                payload=b'{"id":1}',
                id="0b1c",
                queue="q",
                retry=25,
                timeout=1800,
                deadline=1,
                unique_key="u",
                group_key="g",
                error_msg="boom",
                headers={"k": "v", "trace": "x"},
            )
        ),
        codec.encode_server_info(
            codec.ServerInfo(
                host="h", pid=1, server_id="s", queues={"q": 1}, start_time_ns=codec.GO_ZERO_TIME_NS
            )
        ),
        codec.encode_worker_info(codec.WorkerInfo(task_id="t", deadline_ns=10**18)),
        codec.encode_scheduler_entry(codec.SchedulerEntry(id="e", enqueue_options=["Queue(q)"])),
        codec.encode_scheduler_event(codec.SchedulerEnqueueEvent(task_id="t", enqueue_time_ns=0)),
    ]
