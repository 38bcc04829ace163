"""Typed tasks (issue 17): ``@typed_task`` binds a type, a payload class and a handler.
Validation happens before anything is stored, the wire carries plain JSON, and the
handler gets the decoded object. The Go side (a Go worker reads the JSON) is in
tests/interop/test_snooze_typed_go.py."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
import redis
from server.support import FAST, wait_for

import pyasynq
from pyasynq import AsyncClient, Client, ServeMux, Server, Task, TypedTask, typed_task
from pyasynq._rdb import keys
from pyasynq._rdb.codec import decode_task


@dataclass
class VerifyEmail:
    username: str
    attempts: int = 0


@dataclass
class Address:
    city: str
    zip: str | None = None


@dataclass
class Order:
    id: int
    total: float
    paid: bool
    items: list[str]
    address: Address
    extra: dict[str, int] = field(default_factory=dict)
    kind: Literal["web", "shop"] = "web"
    history: list[Address] = field(default_factory=list)


@dataclass
class Routed:  # a field named like an enqueue option
    queue: str


@pytest.fixture
def client(redis_url: str, r: redis.Redis) -> Iterator[Client]:
    c = Client(redis_url)
    yield c
    c.close()


def stored(r: redis.Redis, queue: str, task_id: str) -> Any:
    data = r.hget(keys.task_key(queue, task_id), "msg")
    assert data is not None, f"task {task_id} not stored in {queue}"
    return decode_task(data)


def no_keys(r: redis.Redis) -> bool:
    return not list(r.scan_iter(match="asynq:*"))


# --------------------------------------------------------------------------- the decorator


def test_the_payload_class_comes_from_the_annotation() -> None:
    @typed_task("email:verify")
    async def send(payload: VerifyEmail) -> None: ...

    assert isinstance(send, TypedTask)
    assert send.type == "email:verify" and send.payload_type is VerifyEmail
    assert send.__name__ == "send"


def test_bad_declarations_fail_at_the_decorator() -> None:
    with pytest.raises(TypeError, match="annotate the handler's first parameter"):

        @typed_task("t")
        def untyped(payload):  # type: ignore[no-untyped-def]
            ...

    with pytest.raises(TypeError, match="dataclass or a pydantic model"):

        @typed_task("t")
        def plain(payload: dict) -> None:  # type: ignore[type-arg]
            ...

    with pytest.raises(ValueError, match="max_retry"):
        typed_task("t", max_retry=-1)
    with pytest.raises(ValueError, match="task type"):
        typed_task(" ")
    mux = ServeMux()
    typed_task("t", VerifyEmail, mux=mux)(lambda p: None)
    with pytest.raises(ValueError, match="already registered"):
        typed_task("t", VerifyEmail, mux=mux)(lambda p: None)


def test_an_explicit_payload_class_and_a_later_registration() -> None:
    def handle(payload, task):  # type: ignore[no-untyped-def]
        return payload

    send = typed_task("email:verify", VerifyEmail)(handle)
    assert send.payload_type is VerifyEmail
    mux = ServeMux()
    send.register(mux)
    assert mux.match("email:verify") is send.handler


def test_calling_it_calls_the_handler() -> None:
    @typed_task("t")
    def one(payload: VerifyEmail) -> str:
        return payload.username

    @typed_task("t")
    def two(payload: VerifyEmail, task: Task | None) -> str:
        return f"{payload.username} {task}"

    assert one(VerifyEmail("a")) == "a"
    assert two(VerifyEmail("a")) == "a None"


# --------------------------------------------------------------------------- validation


def send_order() -> TypedTask[Order, None]:
    @typed_task("order:ship")
    def ship(payload: Order) -> None: ...

    return ship


ORDER: dict[str, Any] = {
    "id": 7, "total": 10, "paid": False, "items": ["a"], "address": {"city": "Oslo"},
}  # fmt: skip


def test_fields_build_the_payload_and_nested_dicts_become_dataclasses() -> None:
    order = send_order().payload(**ORDER)
    assert order == Order(7, 10.0, False, ["a"], Address("Oslo"))
    assert isinstance(order.total, float)
    task = send_order().task(**ORDER)
    assert json.loads(task.payload or b"") == {
        "id": 7, "total": 10.0, "paid": False, "items": ["a"],
        "address": {"city": "Oslo", "zip": None}, "extra": {}, "kind": "web", "history": [],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("change", "error", "text"),
    [
        ({"id": None}, TypeError, "missing field 'id'"),
        ({"idd": 1}, TypeError, "has no field 'idd'"),
        ({"id": "7"}, TypeError, "field 'id': expected int, got str"),
        ({"id": True}, TypeError, "field 'id': expected int, got bool"),
        ({"paid": 1}, TypeError, "field 'paid': expected bool, got int"),
        ({"total": "9.5"}, TypeError, "field 'total': expected float"),
        ({"items": ["a", 2]}, TypeError, r"field 'items\[1\]': expected str"),
        ({"items": "abc"}, TypeError, "field 'items': expected list"),
        ({"address": {"zip": "0150"}}, TypeError, "missing field 'address.city'"),
        ({"address": {"city": 3}}, TypeError, "field 'address.city': expected str"),
        ({"address": {"city": "x", "zip": 150}}, TypeError, "field 'address.zip'"),
        ({"address": {"city": "x", "street": "y"}}, TypeError, "no field 'address.street'"),
        ({"extra": {"n": "1"}}, TypeError, r"field \"extra\['n'\]\": expected int"),
        ({"kind": "mail"}, ValueError, "field 'kind': expected one of"),
        ({"history": [{"city": 1}]}, TypeError, r"field 'history\[0\].city'"),
    ],
)
def test_invalid_fields_are_refused_naming_the_field(
    change: dict[str, Any], error: type[Exception], text: str
) -> None:
    fields = {**ORDER, **change}
    fields = {k: v for k, v in fields.items() if v is not None}
    with pytest.raises(error, match=text):
        send_order().task(**fields)


def test_an_object_is_checked_too() -> None:
    with pytest.raises(TypeError, match=r"field 'address\.city': expected str"):
        send_order().task(Order(1, 1.0, True, [], Address(5)))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="payload must be of type Order"):
        send_order().task({"id": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not both"):
        send_order().task(Order(1, 1.0, True, [], Address("x")), id=2)


def test_decode_ignores_unknown_keys_and_reports_bad_data_as_valueerror() -> None:
    ship = send_order()
    data = json.dumps({**ORDER, "new_field": 1, "address": {"city": "x", "floor": 2}})
    assert ship.decode(data.encode()).address == Address("x")
    with pytest.raises(ValueError, match="missing field 'id'"):
        ship.decode(b'{"total": 1}')
    with pytest.raises(ValueError, match="not JSON"):
        ship.decode(b"\xff")
    with pytest.raises(ValueError, match="a JSON object was expected"):
        ship.decode(b"[1]")


# --------------------------------------------------------------------------- enqueue


def test_enqueue_with_fields_and_options(client: Client, r: redis.Redis) -> None:
    @typed_task("email:verify", queue="critical", max_retry=3, retention=60)
    async def send(payload: VerifyEmail) -> None: ...

    info = send.enqueue(client, username="alice", task_id="e1")
    assert (info.queue, info.type, info.max_retry) == ("critical", "email:verify", 3)
    msg = stored(r, "critical", "e1")
    assert json.loads(msg.payload) == {"username": "alice", "attempts": 0}
    assert msg.retention == 60
    # Options given to enqueue win over the decorator's.
    info = send.enqueue(client, VerifyEmail("bob", 2), queue="low", max_retry=0, task_id="e2")
    assert (info.queue, info.max_retry) == ("low", 0)
    assert json.loads(stored(r, "low", "e2").payload) == {"username": "bob", "attempts": 2}


def test_nothing_is_stored_when_the_payload_is_invalid(client: Client, r: redis.Redis) -> None:
    @typed_task("email:verify")
    async def send(payload: VerifyEmail) -> None: ...

    with pytest.raises(TypeError, match="missing field 'username'"):
        send.enqueue(client, queue="critical")
    with pytest.raises(TypeError, match="has no field 'usrname'"):
        send.enqueue(client, usrname="alice")
    with pytest.raises(TypeError, match="field 'attempts': expected int"):
        send.enqueue(client, username="alice", attempts="3")
    assert no_keys(r)


def test_the_reserved_names_are_the_options_of_client_enqueue() -> None:
    from pyasynq.typed import OPTION_NAMES

    for method in (Client.enqueue, AsyncClient.enqueue):
        params = set(inspect.signature(method).parameters) - {"self", "task"}
        assert params == OPTION_NAMES


def test_a_field_named_like_an_option_needs_an_object(client: Client, r: redis.Redis) -> None:
    @typed_task("route")
    def route(payload: Routed) -> None: ...

    with pytest.raises(TypeError, match=r"\['queue'\] named like enqueue options"):
        route.enqueue(client, queue="billing")
    assert no_keys(r)
    info = route.enqueue(client, Routed(queue="billing"), queue="low")
    assert info.queue == "low"
    assert json.loads(stored(r, "low", info.id).payload) == {"queue": "billing"}


def test_the_wrong_client_kind_is_named(client: Client, redis_url: str) -> None:
    @typed_task("email:verify")
    async def send(payload: VerifyEmail) -> None: ...

    aclient = AsyncClient(redis_url)
    with pytest.raises(TypeError, match="aenqueue"):
        send.enqueue(aclient, username="a")  # type: ignore[arg-type]
    asyncio.run(aclient.aclose())


async def test_aenqueue(redis_url: str, r: redis.Redis) -> None:
    @typed_task("email:verify", max_retry=4)
    async def send(payload: VerifyEmail) -> None: ...

    async with AsyncClient(redis_url) as ac:
        info = await send.aenqueue(ac, username="carol", task_id="a1")
        with Client(redis_url) as sync, pytest.raises(TypeError, match=r"use \.enqueue"):
            await send.aenqueue(sync, username="x")  # type: ignore[arg-type]
    assert info.max_retry == 4
    assert json.loads(stored(r, "default", "a1").payload)["username"] == "carol"


def test_enqueue_many_takes_typed_tasks(client: Client, r: redis.Redis) -> None:
    @typed_task("email:verify")
    async def send(payload: VerifyEmail) -> None: ...

    results = client.enqueue_many([send.task(username=n) for n in ("a", "b")])
    assert all(res.info is not None for res in results)


# --------------------------------------------------------------------------- handlers


def test_handlers_get_the_decoded_payload(redis_url: str, client: Client, r: redis.Redis) -> None:
    mux = ServeMux()
    got: list[Any] = []
    done = threading.Event()

    @typed_task("order:ship", mux=mux)
    async def ship(payload: Order, task: Task) -> None:
        got.append((payload, task.type))
        done.set() if len(got) == 2 else None

    @typed_task("email:verify", mux=mux)
    def verify(payload: VerifyEmail) -> None:  # a def handler, in the thread pool
        got.append(payload)
        done.set() if len(got) == 2 else None

    ship.enqueue(client, **ORDER)
    verify.enqueue(client, username="dave")
    srv = Server(redis_url, **FAST)
    srv.start(mux)
    try:
        assert done.wait(10), f"handlers did not run: {got}"
    finally:
        srv.shutdown()
    assert (Order(7, 10.0, False, ["a"], Address("Oslo")), "order:ship") in got
    assert VerifyEmail("dave") in got


def test_a_payload_that_does_not_decode_is_archived_at_once(
    redis_url: str, client: Client, r: redis.Redis
) -> None:
    mux = ServeMux()

    @typed_task("email:verify", mux=mux)
    async def send(payload: VerifyEmail) -> None:
        raise AssertionError("must not run")

    # As a Go producer (or an older version) might have written it.
    client.enqueue(Task("email:verify", b'{"user": "x"}'), task_id="bad", max_retry=5)
    srv = Server(redis_url, **FAST)
    srv.start(mux)
    try:
        wait_for(lambda: r.zscore(keys.archived_key("default"), "bad"), what="bad archived")
    finally:
        srv.shutdown()
    msg = stored(r, "default", "bad")
    assert msg.retried == 0
    assert msg.error_msg == (
        "payload is not a valid VerifyEmail: VerifyEmail payload is missing field 'username'"
    )


# --------------------------------------------------------------------------- pydantic


def test_pydantic_models(client: Client, r: redis.Redis, redis_url: str) -> None:
    pydantic = pytest.importorskip("pydantic", reason="needs the pydantic extra")

    class Signup(pydantic.BaseModel):  # type: ignore[name-defined,misc]
        email: str
        age: int = pydantic.Field(ge=13)

    mux = ServeMux()
    got: list[Any] = []

    @typed_task("user:signup", mux=mux)
    async def signup(payload: Signup) -> None:
        got.append(payload)

    with pytest.raises(ValueError, match="age"):
        signup.enqueue(client, email="a@b.c", age=7)
    with pytest.raises(TypeError, match="has no field 'name'"):
        signup.enqueue(client, email="a@b.c", age=20, name="x")
    assert no_keys(r)
    info = signup.enqueue(client, email="a@b.c", age="20")  # pydantic's own coercion
    assert json.loads(stored(r, "default", info.id).payload) == {"email": "a@b.c", "age": 20}
    signup.enqueue(client, Signup(email="z@b.c", age=30))
    srv = Server(redis_url, **FAST)
    srv.start(mux)
    try:
        wait_for(lambda: len(got) == 2, what="both signups handled")
    finally:
        srv.shutdown()
    assert sorted(s.email for s in got) == ["a@b.c", "z@b.c"]
    assert all(isinstance(s, Signup) for s in got)


def test_public_names() -> None:
    assert pyasynq.typed_task is typed_task and pyasynq.TypedTask is TypedTask


def test_dataclass_payloads_do_not_need_pydantic() -> None:
    import subprocess
    import sys

    code = (
        "import sys, dataclasses, pyasynq\n"
        "@dataclasses.dataclass\n"
        "class A:\n    x: int\n"
        "t = pyasynq.typed_task('a', A)(lambda p: None)\n"
        "assert t.decode(t.task(x=1).payload) == A(1)\n"
        "assert 'pydantic' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
