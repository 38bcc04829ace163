"""pyasynq's protobuf codec against the Go-produced golden vectors."""

from __future__ import annotations

from typing import Any

import conformance as cf
import pytest

from pyasynq._rdb import codec
from pyasynq.errors import BrokerError

if not (cf.fixtures_dir() / "golden-messages.json").is_file():
    pytest.skip(f"no golden messages in {cf.fixtures_dir()}", allow_module_level=True)

GOLDEN = cf.load_golden()
IDS = [m["name"] for m in GOLDEN]
DECODERS = {
    "asynq.TaskMessage": codec.decode_task,
    "asynq.ServerInfo": codec.decode_server_info,
    "asynq.WorkerInfo": codec.decode_worker_info,
    "asynq.SchedulerEntry": codec.decode_scheduler_entry,
    "asynq.SchedulerEnqueueEvent": codec.decode_scheduler_event,
}


def test_the_golden_set_covers_every_message() -> None:
    assert {m["message"] for m in GOLDEN} == set(DECODERS) == set(cf.PROTO_NAMES)
    assert len(GOLDEN) >= 19


@pytest.mark.parametrize("vector", GOLDEN, ids=IDS)
def test_encode_is_byte_exact(vector: dict[str, Any]) -> None:
    got = cf.fields_to_bytes(vector["message"], vector["fields"]).hex()
    allowed = [vector["hex"], *vector.get("alternate_hex", [])]
    assert got in allowed


@pytest.mark.parametrize("vector", GOLDEN, ids=IDS)
def test_decode_every_encoding_gives_the_fields(vector: dict[str, Any]) -> None:
    for hexdata in [vector["hex"], *vector.get("alternate_hex", [])]:
        assert cf.decoded_fields(vector["message"], bytes.fromhex(hexdata)) == vector["fields"]


@pytest.mark.parametrize("vector", GOLDEN, ids=IDS)
def test_round_trip_is_stable(vector: dict[str, Any]) -> None:
    proto = vector["message"]
    data = bytes.fromhex(vector["hex"])
    again = cf.fields_to_bytes(proto, cf.decoded_fields(proto, data))
    assert again == data


def test_alternate_map_orders_are_really_different_bytes() -> None:
    # Else the alternate_hex checks above would prove nothing about map order.
    with_alternates = [m for m in GOLDEN if m.get("alternate_hex")]
    assert with_alternates
    for m in with_alternates:
        assert all(alt != m["hex"] for alt in m["alternate_hex"])


# Unknown fields of every wire type: varint (99), 64-bit (100), length-delimited (101),
# 32-bit (102). A newer Go asynq may add fields; older readers must skip them.
UNKNOWN_TAIL = bytes.fromhex(
    "98062a"  # field 99, varint 42
    "a1060102030405060708"  # field 100, fixed64
    "aa0603616263"  # field 101, bytes "abc"
    "b50601020304"  # field 102, fixed32
)


@pytest.mark.parametrize("vector", GOLDEN, ids=IDS)
def test_decode_skips_unknown_fields(vector: dict[str, Any]) -> None:
    proto = vector["message"]
    data = bytes.fromhex(vector["hex"])
    assert cf.decoded_fields(proto, data + UNKNOWN_TAIL) == vector["fields"]
    assert cf.decoded_fields(proto, UNKNOWN_TAIL + data) == vector["fields"]


GARBAGE = [
    pytest.param(b"\xff", id="truncated-tag"),
    pytest.param(b"\x80", id="unterminated-varint"),
    pytest.param(b"\x0a\x05ab", id="length-past-end"),
    pytest.param(b"\x12\x80", id="truncated-length"),
    pytest.param(b"\x0a\x02\xff\xfe", id="bad-utf8-in-string-field-1"),
    pytest.param(b"\x07", id="invalid-wire-type"),
    pytest.param(b"\x00", id="field-number-zero"),
    pytest.param(b"\x0b", id="unterminated-group"),
    pytest.param(b"hello world, not protobuf", id="text"),
]


@pytest.mark.parametrize("proto", sorted(DECODERS))
@pytest.mark.parametrize("data", GARBAGE)
def test_decode_rejects_garbage_with_broker_error(proto: str, data: bytes) -> None:
    with pytest.raises(BrokerError, match=proto.split(".")[1]):
        DECODERS[proto](data)


def test_go_zero_time_round_trips() -> None:
    info = codec.ServerInfo(host="h", start_time_ns=codec.GO_ZERO_TIME_NS)
    data = codec.encode_server_info(info)
    # field 8, length 11, seconds = -62135596800 as a 10-byte varint
    assert data.endswith(bytes.fromhex("420b088092b8c398feffffff01"))
    assert codec.decode_server_info(data).start_time_ns == codec.GO_ZERO_TIME_NS
    assert codec.GO_ZERO_TIME_SECONDS == -62135596800

    entry = codec.SchedulerEntry(id="e", prev_enqueue_time_ns=codec.GO_ZERO_TIME_NS)
    back = codec.decode_scheduler_entry(codec.encode_scheduler_entry(entry))
    assert back.prev_enqueue_time_ns == codec.GO_ZERO_TIME_NS
    assert back.next_enqueue_time_ns is None


def test_epoch_timestamp_is_present_but_empty() -> None:
    present = codec.encode_server_info(codec.ServerInfo(status="new", start_time_ns=0))
    absent = codec.encode_server_info(codec.ServerInfo(status="new"))
    assert present == absent + b"\x42\x00"
    assert codec.decode_server_info(present).start_time_ns == 0
    assert codec.decode_server_info(absent).start_time_ns is None

    event = codec.encode_scheduler_event(codec.SchedulerEnqueueEvent(enqueue_time_ns=0))
    assert event == b"\x12\x00"
    assert codec.decode_scheduler_event(event).enqueue_time_ns == 0
    assert codec.decode_scheduler_event(b"").enqueue_time_ns is None


def test_negative_and_sub_second_timestamps_round_trip() -> None:
    for ns in (-1, 1, 1_700_000_000_123_456_789, -62135596800_000_000_000 + 5):
        w = codec.WorkerInfo(start_time_ns=ns, deadline_ns=ns)
        back = codec.decode_worker_info(codec.encode_worker_info(w))
        assert (back.start_time_ns, back.deadline_ns) == (ns, ns)


def test_nil_and_empty_payload_encode_identically() -> None:
    a = codec.encode_task(codec.TaskMessage(type="t", payload=b""))
    assert a == bytes.fromhex("0a0174")
    assert codec.decode_task(a).payload == b""
