"""Typed tasks: one decorator binds a task type, a payload class and a handler.

::

    @dataclass
    class VerifyEmail:
        username: str

    @pyasynq.typed_task("email:verify", mux=mux, queue="critical")
    async def send_verify_email(payload: VerifyEmail) -> None: ...

    send_verify_email.enqueue(client, username="alice")                 # fields as keywords
    send_verify_email.enqueue(client, VerifyEmail("alice"), max_retry=3)  # or an object

The payload class is a dataclass, or a pydantic model when pydantic is installed. The
payload is validated before anything is stored (missing, unknown and wrongly typed fields
raise ``TypeError``/``ValueError`` naming the field) and travels as a JSON object, so Go
producers and consumers see an ordinary JSON payload. The handler receives the decoded
object (and the :class:`~pyasynq.Task` when it takes a second argument).

Keywords of ``enqueue`` are the payload's fields and the enqueue options (``queue``,
``max_retry``, ...): a payload class with a field named like an option must be passed as
an object, which is never ambiguous. Dataclass fields are checked against their
annotations where these are simple: ``str``, ``int``, ``float``, ``bool``, ``list[...]``,
``dict[str, ...]``, ``Optional``/unions, ``Literal``, ``Any`` and nested dataclasses;
other annotations are not checked (the value must still be JSON-serializable).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
import types
from collections.abc import Awaitable, Callable, Mapping
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    Literal,
    TypeVar,
    Union,
    cast,
    get_args,
    get_origin,
    get_type_hints,
)

from .errors import SkipRetry
from .mux import is_async
from .options import Duration, When
from .task import Task, TaskInfo

if TYPE_CHECKING:
    from ._async.client import AsyncClient
    from ._sync.client import Client
    from .mux import ServeMux

__all__ = ["TypedTask", "typed_task"]

P = TypeVar("P")
R = TypeVar("R")

# The keywords of Client.enqueue: never payload fields in the keyword form of enqueue.
OPTION_NAMES = frozenset({
    "queue", "max_retry", "task_id", "timeout", "deadline", "unique", "process_at",
    "process_in", "retention", "group", "headers", "wait_replicas",
})  # fmt: skip


class TypedTask(Generic[P, R]):
    """A task type bound to a payload class and a handler; made by :func:`typed_task`.

    Calling it calls the handler itself (``await send_verify_email(VerifyEmail("a"))``),
    which keeps handlers easy to test.

    Attributes:
        type: The task type.
        payload_type: The payload class (a dataclass or a pydantic model).
        fn: The decorated handler.
        handler: The ``ServeMux`` handler: decodes the payload and calls ``fn``.
    """

    def __init__(
        self,
        task_type: str,
        payload_type: type[P],
        fn: Callable[..., R],
        defaults: Mapping[str, Any],
    ) -> None:
        Task(task_type, None, **defaults)  # validates the type and the default options
        self.type = task_type
        self.payload_type = payload_type
        self.fn = fn
        self._codec = _codec_for(payload_type)
        self._defaults = dict(defaults)
        self._with_task = _takes_task(fn)
        self.handler = self._make_handler()
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", task_type)
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<TypedTask {self.type!r} ({self.payload_type.__name__})>"

    def __call__(self, payload: P, task: Task | None = None) -> R:
        """Call the handler itself with ``payload`` (and ``task``, if it takes one)."""
        if self._with_task:
            return self.fn(payload, task)
        return self.fn(payload)

    # --- producing ---------------------------------------------------------------------

    def payload(self, payload: P | None = None, /, **fields: Any) -> P:
        """The payload object from an object (checked) or from its fields (validated).

        Raises:
            TypeError: A field is missing, unknown or of the wrong type, or both an object
                and fields were given.
            ValueError: A field's value is invalid (a Literal, a pydantic validator).
        """
        if payload is not None:
            if fields:
                raise TypeError(
                    f"{self.type!r}: give the payload as a {self.payload_type.__name__} object "
                    f"or as fields, not both (got the object and {sorted(fields)})"
                )
            self._codec.check(payload)
            return payload
        return cast("P", self._codec.build(fields))

    def task(self, payload: P | None = None, /, **fields: Any) -> Task:
        """A :class:`~pyasynq.Task` of this type with the payload as JSON and the
        decorator's default options, for ``Client.enqueue_many`` or a Scheduler.

        Raises:
            TypeError: See :meth:`payload`.
            ValueError: See :meth:`payload`.
        """
        obj = self.payload(payload, **fields)
        return Task(self.type, self._codec.encode(obj), **self._defaults)

    def decode(self, data: bytes | None) -> P:
        """The payload object in a task's payload bytes (unknown JSON keys are ignored,
        as Go's ``json.Unmarshal`` ignores them).

        Raises:
            ValueError: The bytes are not a JSON object of this payload class.
        """
        try:
            return cast("P", self._codec.decode(data))
        except TypeError as exc:  # a missing or wrongly typed field: the data is wrong
            raise ValueError(str(exc)) from exc

    def enqueue(
        self,
        client: Client,
        payload: P | None = None,
        /,
        *,
        queue: str | None = None,
        max_retry: int | None = None,
        task_id: str | None = None,
        timeout: Duration | None = None,
        deadline: When | None = None,
        unique: Duration | None = None,
        process_at: When | None = None,
        process_in: Duration | None = None,
        retention: Duration | None = None,
        group: str | None = None,
        headers: Mapping[str, str] | None = None,
        wait_replicas: int | None = None,
        **fields: Any,
    ) -> TaskInfo:
        """Validate the payload, then enqueue it with ``client`` (a sync Client).

        Args:
            client: The :class:`~pyasynq.Client` to enqueue with.
            payload: The payload object; or leave it out and give its fields as keywords.
            queue: Like ``Client.enqueue``'s options of the same names, which override the
                decorator's defaults: so do ``max_retry``, ``task_id``, ``timeout``,
                ``deadline``, ``unique``, ``process_at``, ``process_in``, ``retention``,
                ``group``, ``headers`` and ``wait_replicas``.
            **fields: The payload's fields, when no object is given.

        Returns:
            TaskInfo: The stored task.

        Raises:
            TypeError: The payload is invalid (a field missing, unknown or of the wrong
                type), or ``client`` is an AsyncClient (use :meth:`aenqueue`).
            ValueError: A field's value or an option is invalid.
        """
        from ._sync.client import Client

        if not isinstance(client, Client):
            raise TypeError(
                f"{self.__name__}.enqueue takes a pyasynq.Client, got {type(client).__name__}"
                + ("; with an AsyncClient use await .aenqueue(...)" if _is_async(client) else "")
            )
        task = self._task(payload, fields)
        return client.enqueue(
            task, queue=queue, max_retry=max_retry, task_id=task_id, timeout=timeout,
            deadline=deadline, unique=unique, process_at=process_at, process_in=process_in,
            retention=retention, group=group, headers=headers, wait_replicas=wait_replicas,
        )  # fmt: skip

    async def aenqueue(
        self,
        client: AsyncClient,
        payload: P | None = None,
        /,
        *,
        queue: str | None = None,
        max_retry: int | None = None,
        task_id: str | None = None,
        timeout: Duration | None = None,
        deadline: When | None = None,
        unique: Duration | None = None,
        process_at: When | None = None,
        process_in: Duration | None = None,
        retention: Duration | None = None,
        group: str | None = None,
        headers: Mapping[str, str] | None = None,
        wait_replicas: int | None = None,
        **fields: Any,
    ) -> TaskInfo:
        """:meth:`enqueue` with an :class:`~pyasynq.AsyncClient`.

        Args:
            client: The AsyncClient to enqueue with.
            payload: The payload object; or leave it out and give its fields as keywords.
            queue: The enqueue options, as in :meth:`enqueue`; so do ``max_retry``,
                ``task_id``, ``timeout``, ``deadline``, ``unique``, ``process_at``,
                ``process_in``, ``retention``, ``group``, ``headers``, ``wait_replicas``.
            **fields: The payload's fields, when no object is given.

        Returns:
            TaskInfo: The stored task.

        Raises:
            TypeError: The payload is invalid, or ``client`` is not an AsyncClient.
            ValueError: A field's value or an option is invalid.
        """
        from ._async.client import AsyncClient

        if not isinstance(client, AsyncClient):
            raise TypeError(
                f"{self.__name__}.aenqueue takes a pyasynq.AsyncClient, got "
                f"{type(client).__name__}; with a Client use .enqueue(...)"
            )
        task = self._task(payload, fields)
        return await client.enqueue(
            task, queue=queue, max_retry=max_retry, task_id=task_id, timeout=timeout,
            deadline=deadline, unique=unique, process_at=process_at, process_in=process_in,
            retention=retention, group=group, headers=headers, wait_replicas=wait_replicas,
        )  # fmt: skip

    def _task(self, payload: P | None, fields: dict[str, Any]) -> Task:
        if payload is None or fields:
            clash = OPTION_NAMES & self._codec.names()
            if clash:
                name = self.payload_type.__name__
                raise TypeError(
                    f"{name} has field(s) {sorted(clash)} named like enqueue options, so "
                    f"keywords cannot set them: pass a {name} object, e.g. "
                    f"{self.__name__}.enqueue(client, {name}(...), queue=...)"
                )
        return self.task(payload, **fields)

    # --- consuming ---------------------------------------------------------------------

    def register(self, mux: ServeMux) -> None:
        """Register :attr:`handler` for this task type on ``mux``.

        Raises:
            ValueError: ``mux`` already has a handler for the type.
        """
        mux.handle(self.type, self.handler)

    def _make_handler(self) -> Callable[[Task], Awaitable[None] | None]:
        fn, decode, with_task = self.fn, self._decode_for_handler, self._with_task
        if is_async(fn):

            async def handle_async(task: Task) -> None:
                payload = decode(task)
                await (fn(payload, task) if with_task else fn(payload))  # type: ignore[misc]

            return handle_async

        def handle(task: Task) -> Any:  # a def: the server runs it in its thread pool
            payload = decode(task)
            return fn(payload, task) if with_task else fn(payload)

        return handle

    def _decode_for_handler(self, task: Task) -> P:
        try:
            return self.decode(task.payload)
        except ValueError as exc:
            # Retrying cannot fix a payload: archive the task at once, saying why.
            raise SkipRetry(f"payload is not a valid {self.payload_type.__name__}: {exc}") from exc


def typed_task(
    task_type: str,
    payload_type: type[Any] | None = None,
    *,
    mux: ServeMux | None = None,
    queue: str | None = None,
    max_retry: int | None = None,
    timeout: Duration | None = None,
    deadline: When | None = None,
    unique: Duration | None = None,
    retention: Duration | None = None,
    group: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Callable[[Callable[Concatenate[P, ...], R]], TypedTask[P, R]]:
    """Decorate a handler taking a payload object: binds ``task_type`` to the payload's
    class and to the handler, and returns a :class:`TypedTask` with ``enqueue`` and
    ``aenqueue``.

    The handler is ``async def`` or ``def`` and takes ``(payload)`` or
    ``(payload, task)``. A task whose payload cannot be decoded is archived at once
    (SkipRetry) with the reason as its error.

    Args:
        task_type: The task type (e.g. ``"email:verify"``).
        payload_type: The payload class; by default the annotation of the handler's first
            parameter. A dataclass, or a pydantic model (``pip install
            'pyasynq[pydantic]'``).
        mux: Register the handler on this ServeMux now (else call ``.register(mux)``).
        queue: Default enqueue options of the type, overridden by those given to
            ``enqueue``; so are ``max_retry``, ``timeout``, ``deadline``, ``unique``,
            ``retention``, ``group`` and ``headers``.

    Returns:
        A decorator that turns the handler into a :class:`TypedTask`.

    Raises:
        TypeError: The payload class is not a dataclass or pydantic model, or cannot be
            found from the handler's annotation.
        ValueError: ``task_type`` or a default option is invalid, or ``mux`` already has a
            handler for ``task_type``.
    """
    defaults: dict[str, Any] = {
        k: v
        for k, v in {
            "queue": queue, "max_retry": max_retry, "timeout": timeout, "deadline": deadline,
            "unique": unique, "retention": retention, "group": group, "headers": headers,
        }.items()
        if v is not None
    }  # fmt: skip
    Task(task_type, None, **defaults)  # fail at the decorator, not at the first enqueue

    def bind(fn: Callable[Concatenate[P, ...], R]) -> TypedTask[P, R]:
        cls = payload_type
        if cls is None:  # the caller's names too: a payload class local to a function
            cls = _annotated_payload(fn, task_type, sys._getframe(1).f_locals)
        typed = TypedTask(task_type, cls, fn, defaults)
        if mux is not None:
            typed.register(mux)
        return typed

    return bind


# --- helpers -------------------------------------------------------------------------------


def _is_async(client: object) -> bool:
    from ._async.client import AsyncClient

    return isinstance(client, AsyncClient)


def _takes_task(fn: Callable[..., Any]) -> bool:
    """Whether the handler takes a second positional argument (the Task)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return True
    n = sum(1 for p in params if p.kind in positional)
    if n == 0:
        raise TypeError(f"handler {fn!r} must take the payload as its first argument")
    return n >= 2


def _annotated_payload(
    fn: Callable[..., Any], task_type: str, localns: Mapping[str, Any]
) -> type[Any]:
    try:
        params = list(inspect.signature(fn).parameters.values())
        hints = get_type_hints(fn, localns=dict(localns))
    except (NameError, TypeError, ValueError) as exc:
        raise TypeError(
            f"typed_task({task_type!r}): cannot read the payload annotation of {fn!r} ({exc}); "
            "pass the class: typed_task(type, PayloadClass)"
        ) from exc
    ann = hints.get(params[0].name) if params else None
    if not isinstance(ann, type):
        raise TypeError(
            f"typed_task({task_type!r}): annotate the handler's first parameter with the "
            "payload class (a dataclass or pydantic model), or pass it: "
            "typed_task(type, PayloadClass)"
        )
    return ann


def _codec_for(cls: object) -> _Codec:
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        return _DataclassCodec(cls)
    pydantic = sys.modules.get("pydantic")  # a model's class means pydantic is imported
    if pydantic is not None and isinstance(cls, type) and issubclass(cls, pydantic.BaseModel):
        return _PydanticCodec(cls)
    raise TypeError(f"the payload class must be a dataclass or a pydantic model, got {cls!r}")


def _loads(data: bytes | None, cls: type[Any]) -> dict[str, Any]:
    try:
        obj = json.loads(data or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"a JSON object was expected for {cls.__name__}, got {obj!r:.80}")
    return obj


class _Codec:
    def names(self) -> set[str]:
        raise NotImplementedError

    def check(self, obj: Any) -> None:
        raise NotImplementedError

    def build(self, fields: dict[str, Any]) -> Any:
        raise NotImplementedError

    def encode(self, obj: Any) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes | None) -> Any:
        raise NotImplementedError


class _DataclassCodec(_Codec):
    def __init__(self, cls: type[Any]) -> None:
        self.cls = cls

    def names(self) -> set[str]:
        return {f.name for f in dataclasses.fields(self.cls) if f.init}

    def check(self, obj: Any) -> None:
        if not isinstance(obj, self.cls):
            raise TypeError(
                f"payload must be of type {self.cls.__name__} (or its fields as keywords), "
                f"got {type(obj).__name__}"
            )
        _check_instance(obj, "")

    def build(self, fields: dict[str, Any]) -> Any:
        return _build(self.cls, fields, "", strict=True)

    def encode(self, obj: Any) -> bytes:
        data = dataclasses.asdict(obj)
        try:
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{self.cls.__name__} payload is not JSON-serializable: {exc}") from exc
        return text.encode()

    def decode(self, data: bytes | None) -> Any:
        return _build(self.cls, _loads(data, self.cls), "", strict=False)


class _PydanticCodec(_Codec):
    def __init__(self, cls: type[Any]) -> None:
        self.cls = cls

    def names(self) -> set[str]:
        out = set()
        for name, info in self.cls.model_fields.items():
            out.add(name)
            if info.alias:
                out.add(info.alias)
        return out

    def check(self, obj: Any) -> None:
        if not isinstance(obj, self.cls):
            raise TypeError(
                f"payload must be of type {self.cls.__name__} (or its fields as keywords), "
                f"got {type(obj).__name__}"
            )

    def build(self, fields: dict[str, Any]) -> Any:
        if self.cls.model_config.get("extra") != "allow":
            unknown = sorted(set(fields) - self.names())
            if unknown:
                raise TypeError(
                    f"{self.cls.__name__} has no field {unknown[0]!r}"
                    f" (fields: {', '.join(sorted(self.cls.model_fields))})"
                )
        return self._validate(lambda: self.cls.model_validate(fields))

    def encode(self, obj: Any) -> bytes:
        return obj.model_dump_json(by_alias=True).encode()  # type: ignore[no-any-return]

    def decode(self, data: bytes | None) -> Any:
        return self._validate(lambda: self.cls.model_validate_json(data or b"null"))

    def _validate(self, run: Callable[[], Any]) -> Any:
        import pydantic

        try:
            return run()
        except pydantic.ValidationError as exc:
            raise ValueError(f"invalid {self.cls.__name__} payload: {exc}") from exc


# --- dataclass validation ------------------------------------------------------------------

_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        try:
            hints = get_type_hints(cls)
        except NameError as exc:
            raise TypeError(
                f"cannot resolve the annotations of {cls.__name__} ({exc}): define the "
                "payload classes at module level"
            ) from exc
        _HINTS[cls] = hints
    return hints


def _where(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _build(cls: type[Any], data: Mapping[str, Any], path: str, *, strict: bool) -> Any:
    hints = _hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = {f.name for f in fields}
    if strict:
        unknown = [k for k in data if k not in names]
        if unknown:
            raise TypeError(
                f"{cls.__name__} has no field {_where(path, unknown[0])!r} "
                f"(fields: {', '.join(f.name for f in fields)})"
            )
    values = {}
    for f in fields:
        where = _where(path, f.name)
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise TypeError(f"{cls.__name__} payload is missing field {where!r}")
            continue
        values[f.name] = _load(data[f.name], hints.get(f.name, Any), where, strict=strict)
    return cls(**values)


def _check_instance(obj: Any, path: str) -> None:
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        _load(getattr(obj, f.name), hints.get(f.name, Any), _where(path, f.name), strict=True)


def _name(ann: Any) -> str:
    if isinstance(ann, type) and get_origin(ann) is None:
        return ann.__name__
    return str(ann).replace("typing.", "")


def _load(value: Any, ann: Any, path: str, *, strict: bool) -> Any:
    """``value`` as an ``ann`` (nested dataclasses built from dicts, ints as floats where a
    float is expected); raises TypeError/ValueError naming ``path``."""
    if ann is Any or ann is object:
        return value
    if ann is None or ann is type(None):
        if value is None:
            return None
        raise _wrong(path, ann, value)
    origin, args = get_origin(ann), get_args(ann)
    if origin is Union or origin is types.UnionType:
        for arm in args:
            try:
                return _load(value, arm, path, strict=strict)
            except (TypeError, ValueError):
                continue
        raise _wrong(path, ann, value)
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):  # 1 is not True
            return value
        raise ValueError(f"field {path!r}: expected one of {list(args)!r}, got {value!r}")
    if ann is bool:
        if isinstance(value, bool):
            return value
        raise _wrong(path, ann, value)
    if ann is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _wrong(path, ann, value)
    if ann is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise _wrong(path, ann, value)
    if ann is str:
        if isinstance(value, str):
            return value
        raise _wrong(path, ann, value)
    if ann is list or origin is list:
        if not isinstance(value, list):
            raise _wrong(path, ann, value)
        if not args:
            return value
        return [_load(v, args[0], f"{path}[{i}]", strict=strict) for i, v in enumerate(value)]
    if ann is dict or origin is dict:
        if not isinstance(value, dict):
            raise _wrong(path, ann, value)
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"field {path!r}: keys must be str (JSON), got {k!r}")
            out[k] = _load(v, args[1], f"{path}[{k!r}]", strict=strict) if args else v
        return out
    if isinstance(ann, type) and dataclasses.is_dataclass(ann):
        if isinstance(value, ann):
            _check_instance(value, path)
            return value
        if isinstance(value, dict):
            return _build(ann, value, path, strict=strict)
        raise _wrong(path, ann, value)
    return value  # an annotation we do not check


def _wrong(path: str, ann: Any, value: Any) -> TypeError:
    return TypeError(
        f"field {path!r}: expected {_name(ann)}, got {type(value).__name__} ({value!r:.60})"
    )
