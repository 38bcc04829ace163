"""Replay the Go-asynq enqueue fixtures with pyasynq.Client and compare the keyspace.

Every fixture whose operations are only flushall/enqueue/inspector/dump is replayed
(a held-back set with the same schema is picked up the same way through
``PYASYNQ_CONFORMANCE_DIR``). The negative tests below prove the comparison is strict.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any

import conformance as cf
import pytest
import redis
import targets

ENQUEUE_OPS = {"flushall", "enqueue", "inspector", "dump"}
KNOWN = {
    "enqueue_default",
    "enqueue_all_options",
    "enqueue_process_in",
    "enqueue_unique",
    "enqueue_group",
    "task_id_conflict",
}

if not cf.fixtures_dir().is_dir():
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"conformance fixtures not found at {cf.fixtures_dir()}")
    pytest.skip(f"no conformance fixtures at {cf.fixtures_dir()}", allow_module_level=True)

FIXTURES = cf.fixture_names(ENQUEUE_OPS)


def test_the_shared_enqueue_fixtures_are_all_selected() -> None:
    # Guards the selection: if a fixture grows an operation we cannot replay, this says so.
    if {p.stem for p in cf.fixtures_dir().glob("*.json")} >= KNOWN:
        assert set(FIXTURES) >= KNOWN


def replay(name: str, redis_url: str, r: redis.Redis) -> cf.Replayer:
    replayer = cf.Replayer(cf.load_fixture(name), redis_url, r)
    try:
        problems = replayer.run()
    except cf.Unsupported as exc:
        pytest.skip(f"{name}: {exc}")
    assert problems == [], f"{name} differs from Go asynq:\n" + "\n".join(problems)
    return replayer


@pytest.mark.parametrize("name", FIXTURES)
def test_replay_matches_go(name: str, redis_url: str, r: redis.Redis) -> None:
    replayer = replay(name, redis_url, r)
    assert replayer.dump is not None, "the fixture has no dump operation"
    assert replayer.dump, "the replay wrote nothing"


# ----------------------------------------------------------------- the comparison is strict


def _key(fixture: dict[str, Any], name: str) -> dict[str, Any]:
    return next(k for k in fixture["keys"] if k["key"] == name)


def _msg(fixture: dict[str, Any], name: str) -> dict[str, Any]:
    decoded: dict[str, Any] = _key(fixture, name)["value"]["msg"]["decoded"]
    return decoded


def _set_text(b: dict[str, Any], text: str) -> None:
    b["text"] = text
    b["b64"] = cf.blob(text.encode())["b64"]


def m_retry(f: dict[str, Any]) -> None:
    _msg(f, "asynq:{default}:t:t-default-1")["retry"] = 26


def m_headers(f: dict[str, Any]) -> None:
    _msg(f, "asynq:{critical}:t:t-all-options")["headers"]["tenant"] = "acme"


def m_absolute_deadline(f: dict[str, Any]) -> None:
    _msg(f, "asynq:{critical}:t:t-all-options")["deadline"] += 1


def m_drop_hash_field(f: dict[str, Any]) -> None:
    del _key(f, "asynq:{default}:t:t-default-1")["value"]["pending_since"]


def m_state(f: dict[str, Any]) -> None:
    _set_text(_key(f, "asynq:{default}:t:t-default-1")["value"]["state"], "scheduled")


def m_pending_since(f: dict[str, Any]) -> None:
    b = _key(f, "asynq:{default}:t:t-default-1")["value"]["pending_since"]
    _set_text(b, str(int(b["text"]) + 10_000_000_000))


def m_list_order(f: dict[str, Any]) -> None:
    _key(f, "asynq:{default}:pending")["value"].reverse()


def m_ttl(f: dict[str, Any]) -> None:
    _key(f, "asynq:{default}:unique:email:send:a4cfa73c9ce7afdbb744a8f06c7f9a02")["ttl_s"] -= 10


def m_no_ttl(f: dict[str, Any]) -> None:
    k = _key(f, "asynq:{default}:unique:email:send:a4cfa73c9ce7afdbb744a8f06c7f9a02")
    k["has_ttl"], k["ttl_s"] = False, None


def m_string_value(f: dict[str, Any]) -> None:
    k = _key(f, "asynq:{default}:unique:email:send:a4cfa73c9ce7afdbb744a8f06c7f9a02")
    _set_text(k["value"], "t-uniq-dup")


def m_zset_score(f: dict[str, Any]) -> None:
    _key(f, "asynq:{default}:scheduled")["value"][0]["score"] += 5


def m_zset_absolute_score(f: dict[str, Any]) -> None:
    _key(f, "asynq:{default}:scheduled")["value"][1]["score"] += 1


def m_set_member(f: dict[str, Any]) -> None:
    _set_text(_key(f, "asynq:queues")["value"][0], "defaults")


def m_extra_key(f: dict[str, Any]) -> None:
    f["keys"].append(copy.deepcopy(_key(f, "asynq:queues")) | {"key": "asynq:queues2"})


def m_missing_key(f: dict[str, Any]) -> None:
    f["keys"] = [k for k in f["keys"] if k["key"] != "asynq:{default}:groups"]


def m_type(f: dict[str, Any]) -> None:
    _key(f, "asynq:{default}:groups")["type"] = "list"


def m_group_field(f: dict[str, Any]) -> None:
    _set_text(_key(f, "asynq:{default}:t:t-g1-a")["value"]["group"], "g2")


MUTATIONS: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    ("enqueue_default", m_retry),
    ("enqueue_default", m_drop_hash_field),
    ("enqueue_default", m_state),
    ("enqueue_default", m_pending_since),
    ("enqueue_default", m_list_order),
    ("enqueue_default", m_set_member),
    ("enqueue_default", m_extra_key),
    ("enqueue_all_options", m_headers),
    ("enqueue_all_options", m_absolute_deadline),
    ("enqueue_unique", m_ttl),
    ("enqueue_unique", m_no_ttl),
    ("enqueue_unique", m_string_value),
    ("enqueue_process_in", m_zset_score),
    ("enqueue_process_in", m_zset_absolute_score),
    ("enqueue_group", m_missing_key),
    ("enqueue_group", m_type),
    ("enqueue_group", m_group_field),
]


@pytest.fixture(scope="module")
def replays(redis_url: str) -> dict[str, cf.Replayer]:
    """One real replay per fixture used by the mutations (on database 1, so the
    per-test flush of database 0 does not touch it; a cluster has only database 0, and
    the replays are done and dumped before any test of the module flushes it)."""
    url = redis_url if targets.CLUSTER else redis_url.rsplit("/", 1)[0] + "/1"
    r = targets.sync_client(url)
    done = {}
    try:
        for name in sorted({n for n, _ in MUTATIONS}):
            rep = cf.Replayer(cf.load_fixture(name), url, r)
            assert rep.run() == []
            done[name] = rep
    finally:
        r.flushdb()
        r.close()
    return done


@pytest.mark.parametrize(("name", "mutate"), MUTATIONS, ids=[m.__name__ for _, m in MUTATIONS])
def test_comparison_catches_a_mutation(
    name: str, mutate: Callable[[dict[str, Any]], None], replays: dict[str, cf.Replayer]
) -> None:
    rep = replays[name]
    assert rep.dump is not None
    fixture = copy.deepcopy(cf.load_fixture(name))
    assert cf.compare_keys(fixture["keys"], rep.expected_side, rep.dump, rep.actual_side) == []
    mutate(fixture)
    problems = cf.compare_keys(fixture["keys"], rep.expected_side, rep.dump, rep.actual_side)
    assert problems, f"{mutate.__name__} went unnoticed"


def test_replay_catches_a_wrong_result(redis_url: str, r: redis.Redis) -> None:
    fixture = copy.deepcopy(cf.load_fixture("enqueue_unique"))
    dup = fixture["operations"][2]
    assert dup["result"]["error_is"] == "ErrDuplicateTask"
    dup["result"]["error_is"] = "ErrTaskIDConflict"
    fixture["operations"][1]["result"]["task_info"]["max_retry"] = 3
    problems = cf.Replayer(fixture, redis_url, r).run()
    assert any("expected TaskIDConflictError" in p for p in problems), problems
    assert any("task_info/max_retry" in p for p in problems), problems


def test_replay_catches_a_time_off_by_more_than_the_tolerance(
    redis_url: str, r: redis.Redis
) -> None:
    fixture = copy.deepcopy(cf.load_fixture("enqueue_process_in"))
    fixture["operations"][1]["result"]["task_info"]["next_process_at_unix"] += 5
    problems = cf.Replayer(fixture, redis_url, r).run()
    assert any("next_process_at_unix" in p for p in problems), problems


def test_normaliser_maps_random_ids_host_pid_and_date() -> None:
    side = cf.Normaliser(now=1_700_000_000.0, date="2023-11-14", host="vm", pid=7)
    u1, u2 = "0f8fad5b-d9cb-469f-a165-70867728950e", "7c9e6679-7425-40de-944b-e07fc1f90ae7"
    assert side.text(f"asynq:servers:{{vm:7:{u1}}}") == "asynq:servers:{<host>:<pid>:<uuid1>}"
    assert side.text(f"asynq:{{q}}:t:{u2}") == "asynq:{q}:t:<uuid2>"
    assert side.text(f"asynq:{{q}}:t:{u1}") == "asynq:{q}:t:<uuid1>"
    assert side.text("asynq:{q}:processed:2023-11-14") == "asynq:{q}:processed:<today>"
    assert side.text("asynq:{q}:processed:2023-11-13") == "asynq:{q}:processed:2023-11-13"
    assert side.text("1700000003") == cf.Rel(3.0, "time")
    assert side.text("1700000003500000000") == cf.Rel(3.5, "time")
    assert side.text("42") == "42"
    assert side.seconds(4102444800) == 4102444800
