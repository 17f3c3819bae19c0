"""Service and handler definitions: types from annotations, options, definition-time errors."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Optional, TypedDict

import pytest

import restate_sync as restate
from restate_sync.durations import optional_millis as duration_ms
from restate_sync.retry import InvocationRetryPolicy
from restate_sync.serde import DEFAULT_SERDE, BytesSerde, JsonSerde, SerdeError
from restate_sync.service import HandlerKind, Options, ServiceKind
from restate_sync.typed import EmptySerde, MsgspecSerde, PydanticSerde, RawBytesSerde, TypedJsonSerde

pydantic = pytest.importorskip("pydantic")
msgspec = pytest.importorskip("msgspec")


@dataclass
class Request:
    name: str
    count: int = 1


@dataclass
class Response:
    text: str


class PydRequest(pydantic.BaseModel):
    name: str


class MsgRequest(msgspec.Struct):
    name: str


class Movie(TypedDict):
    title: str
    year: int


class Opaque:
    """A plain class: JSON cannot be decoded into it."""


class WithSchema:
    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        return {"type": "object", "properties": {"x": {"type": "integer"}}}


class UpperSerde:
    content_type = "text/plain"

    def serialize(self, obj: Any) -> bytes:
        return str(obj).upper().encode()

    def deserialize(self, data: bytes) -> str:
        return data.decode().upper()

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string"}


def definition(service: type, name: str):
    return service.__restate_service__.handlers[name]


# --------------------------------------------------------------------------------------------
# types from annotations
# --------------------------------------------------------------------------------------------


class Typed(restate.Service):
    @restate.handler
    def dataclass_io(ctx: restate.Context, req: Request) -> Response:
        return Response(req.name * req.count)

    @restate.handler
    def pydantic_in(ctx: restate.Context, req: PydRequest) -> str:
        return req.name

    @restate.handler
    def msgspec_in(ctx: restate.Context, req: MsgRequest) -> MsgRequest:
        return req

    @restate.handler
    def typeddict_in(ctx: restate.Context, movie: Movie) -> int:
        return movie["year"]

    @restate.handler
    def optional_in(ctx: restate.Context, req: Optional[Request]) -> str | None:  # noqa: UP045
        return None

    @restate.handler
    def list_in(ctx: restate.Context, items: list[Request]) -> dict[str, Response]:
        return {}

    @restate.handler
    def primitive(ctx: restate.Context, n: int) -> float:
        return n / 2

    @restate.handler
    def raw(ctx: restate.Context, data: bytes) -> bytes:
        return data

    @restate.handler
    def nothing(ctx: restate.Context) -> None:
        return None

    @restate.handler
    def none_input(ctx: restate.Context, value: None) -> str:
        return "x"

    @restate.handler
    def untyped(ctx, value):  # type: ignore[no-untyped-def]
        return value

    @restate.handler
    def any_input(ctx: restate.Context, value: Any) -> Any:
        return value

    @restate.handler
    def with_schema(ctx: restate.Context, value: WithSchema) -> WithSchema:
        return value

    @restate.handler(input=Request, output=Response)
    def explicit_types(ctx: restate.Context, req):  # type: ignore[no-untyped-def]
        return Response(req.name)

    @restate.handler(input=UpperSerde(), output=BytesSerde())
    def explicit_serdes(ctx: restate.Context, req: int) -> int:  # explicit wins over annotations
        return req

    @restate.handler
    def annotated_serde(ctx: restate.Context, req: Annotated[str, UpperSerde()]) -> str:
        return req


def test_dataclass_annotations_become_typed_serdes():
    h = definition(Typed, "dataclass_io")
    assert h.input_type is Request and h.output_type is Response
    assert isinstance(h.input_serde, TypedJsonSerde)
    assert h.input_serde.deserialize(b'{"name":"a","count":2}') == Request("a", 2)
    assert h.output_serde.serialize(Response("x")) == b'{"text":"x"}'
    assert h.input_required
    assert h.input_serde.json_schema()["title"] == "Request"
    with pytest.raises(SerdeError, match=r"count: expected int"):
        h.input_serde.deserialize(b'{"name":"a","count":"2"}')


@pytest.mark.parametrize(
    ("handler", "serde_class", "required"),
    [
        ("pydantic_in", PydanticSerde, True),
        ("msgspec_in", MsgspecSerde, True),
        ("typeddict_in", TypedJsonSerde, True),
        ("optional_in", TypedJsonSerde, False),
        ("list_in", TypedJsonSerde, True),
        ("primitive", TypedJsonSerde, True),
        ("raw", RawBytesSerde, False),
        ("any_input", TypedJsonSerde, False),
        ("with_schema", TypedJsonSerde, False),
    ],
)
def test_each_type_family_resolves(handler, serde_class, required):
    h = definition(Typed, handler)
    assert type(h.input_serde) is serde_class
    assert h.takes_input and h.has_input
    assert h.input_required is required


def test_round_trips_through_the_resolved_serdes():
    assert definition(Typed, "pydantic_in").input_serde.deserialize(b'{"name":"p"}') == PydRequest(name="p")
    assert definition(Typed, "msgspec_in").input_serde.deserialize(b'{"name":"m"}') == MsgRequest("m")
    assert definition(Typed, "optional_in").input_serde.deserialize(b"") is None
    assert definition(Typed, "list_in").input_serde.deserialize(b'[{"name":"a"}]') == [Request("a")]
    assert definition(Typed, "list_in").output_serde.serialize({"k": Response("v")}) == b'{"k":{"text":"v"}}'
    assert definition(Typed, "primitive").output_serde.serialize(1.5) == b"1.5"
    assert definition(Typed, "raw").input_serde.deserialize(b"\x00\xff") == b"\x00\xff"
    assert definition(Typed, "with_schema").input_serde.json_schema() == WithSchema.json_schema()


def test_no_input_parameter_and_none_mean_no_input():
    nothing = definition(Typed, "nothing")
    assert not nothing.takes_input and not nothing.has_input
    assert isinstance(nothing.input_serde, EmptySerde)
    assert not nothing.has_output and isinstance(nothing.output_serde, EmptySerde)
    none_input = definition(Typed, "none_input")
    assert none_input.takes_input and not none_input.has_input


def test_unannotated_is_plain_json_without_schema():
    h = definition(Typed, "untyped")
    assert h.input_serde is DEFAULT_SERDE and h.output_serde is DEFAULT_SERDE
    assert h.input_type is Any and not h.input_required
    assert not hasattr(h.input_serde, "json_schema")


def test_explicit_input_and_output_win():
    types_ = definition(Typed, "explicit_types")
    assert types_.input_serde.deserialize(b'{"name":"n"}') == Request("n")
    serdes = definition(Typed, "explicit_serdes")
    assert isinstance(serdes.input_serde, UpperSerde) and isinstance(serdes.output_serde, BytesSerde)
    assert not serdes.input_required  # a custom serde is never probed
    assert isinstance(definition(Typed, "annotated_serde").input_serde, UpperSerde)


def test_ctx_annotation_may_be_anything():
    class AnyCtx(restate.Service):
        @restate.handler
        def h(ctx: NotDefinedAnywhere, n: int) -> int:  # type: ignore[name-defined]  # noqa: F821
            return n

    assert definition(AnyCtx, "h").input_type is int


def test_types_defined_in_the_enclosing_function_resolve():
    @dataclass
    class Local:
        value: int

    class UsesLocal(restate.Service):
        @restate.handler
        def h(ctx: restate.Context, x: Local) -> Local:
            return x

    assert definition(UsesLocal, "h").input_serde.deserialize(b'{"value":3}') == Local(3)


def test_plain_json_types_in_containers():
    class Containers(restate.Service):
        @restate.handler
        def h(ctx: restate.Context, x: dict[str, list[int]]) -> list[str]:
            return []

    h = definition(Containers, "h")
    assert h.input_serde.json_schema() == {
        "type": "object",
        "additionalProperties": {"type": "array", "items": {"type": "integer"}},
    }
    with pytest.raises(SerdeError, match=r"a\[1\]: expected int"):
        h.input_serde.deserialize(b'{"a":[1,"x"]}')


def test_inherited_handlers_and_overrides():
    class Base(restate.Service):
        @restate.handler
        def a(ctx: restate.Context) -> str:
            return "base a"

        @restate.handler
        def b(ctx: restate.Context) -> str:
            return "base b"

    class Child(Base):
        @restate.handler
        def b(ctx: restate.Context) -> str:
            return "child b"

        @restate.handler
        def c(ctx: restate.Context) -> str:
            return "child c"

    handlers = Child.__restate_service__.handlers
    assert list(handlers) == ["a", "b", "c"]
    assert handlers["b"].fn(None) == "child b"
    assert Base.__restate_service__.handlers["b"].fn(None) == "base b"


def test_attribute_name_is_the_default_handler_name():
    def _impl(ctx: restate.Context) -> str:
        return "ok"

    class Aliased(restate.Service):
        greet = restate.handler(_impl)

    assert list(Aliased.__restate_service__.handlers) == ["greet"]


def test_handler_kinds_by_service_kind():
    class Obj(restate.VirtualObject):
        @restate.handler
        def ex(ctx: restate.ObjectContext) -> None: ...

        @restate.shared
        def sh(ctx: restate.ObjectSharedContext) -> None: ...

    class Flow(restate.Workflow):
        @restate.main
        def run(ctx: restate.WorkflowContext) -> None: ...

        @restate.handler
        def signal(ctx: restate.WorkflowSharedContext) -> None: ...

    assert Obj.__restate_service__.kind is ServiceKind.VIRTUAL_OBJECT
    assert definition(Obj, "ex").kind is HandlerKind.EXCLUSIVE
    assert definition(Obj, "sh").kind is HandlerKind.SHARED
    assert definition(Flow, "run").kind is HandlerKind.WORKFLOW
    assert definition(Flow, "signal").kind is HandlerKind.SHARED
    assert definition(Typed, "nothing").kind is None


# --------------------------------------------------------------------------------------------
# options
# --------------------------------------------------------------------------------------------


POLICY = InvocationRetryPolicy(
    initial_interval=0.1, max_interval=30, max_attempts=10, exponentiation_factor=2.0, on_max_attempts="KILL"
)


class Configured(
    restate.VirtualObject,
    name="Renamed",
    description="explicit wins over the docstring",
    metadata={"team": "x"},
    inactivity_timeout=0,
    abort_timeout=timedelta(minutes=1),
    journal_retention=1.5,
    idempotency_retention=3600,
    ingress_private=False,
    enable_lazy_state=True,
    invocation_retry_policy=POLICY,
):
    """The docstring."""

    @restate.handler(
        name="renamed",
        accept="application/*",
        content_type="text/plain",
        metadata={"k": "v"},
        inactivity_timeout=timedelta(seconds=2),
        invocation_retry_policy={"max_attempts": 2, "on_max_attempts": "pause"},
    )
    def original(ctx: restate.ObjectContext, value: str) -> str:
        """Handler docstring."""
        return value


def test_service_and_handler_options():
    service = Configured.__restate_service__
    assert service.name == "Renamed"
    assert service.options.description == "explicit wins over the docstring"
    assert dict(service.options.metadata) == {"team": "x"}
    assert service.options.inactivity_timeout == 0
    assert service.options.invocation_retry_policy == POLICY
    assert POLICY.on_max_attempts == "kill"
    h = service.handlers["renamed"]
    assert h.fn.__name__ == "original"
    assert h.options.description == "Handler docstring."
    assert h.accept == "application/*" and h.content_type == "text/plain"
    assert h.options.invocation_retry_policy == InvocationRetryPolicy(max_attempts=2, on_max_attempts="pause")


def test_docstrings_are_descriptions():
    class Documented(restate.Service):
        """Service docs.

        More lines.
        """

        @restate.handler
        def h(ctx: restate.Context) -> None:
            """Handler docs."""

    assert Documented.__restate_service__.options.description == "Service docs.\n\nMore lines."
    assert definition(Documented, "h").options.description == "Handler docs."


@pytest.mark.parametrize(
    ("value", "ms"),
    [(0, 0), (0.0, 0), (1.5, 1500), (timedelta(0), 0), (timedelta(days=1), 86_400_000), (None, None)],
)
def test_durations(value, ms):
    assert duration_ms(value, "x") == ms


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"inactivity_timeout": -1}, ValueError, "must not be negative"),
        ({"abort_timeout": "10s"}, TypeError, "seconds"),
        ({"journal_retention": True}, TypeError, "seconds"),
        ({"idempotency_retention": float("inf")}, ValueError, "finite"),
        ({"metadata": {"a": 1}}, TypeError, "str to str"),
        ({"metadata": ["a"]}, TypeError, "dict of str"),
        ({"ingress_private": "yes"}, TypeError, "True or False"),
        ({"enable_lazy_state": 1}, TypeError, "True or False"),
        ({"description": 5}, TypeError, "description"),
        ({"invocation_retry_policy": {"max_attempts": 0}}, ValueError, "max_attempts"),
        ({"invocation_retry_policy": {"max_attempts": True}}, ValueError, "max_attempts"),
        ({"invocation_retry_policy": {"on_max_attempts": "retry"}}, ValueError, "pause' or 'kill"),
        ({"invocation_retry_policy": {"exponentiation_factor": 0}}, ValueError, "exponentiation_factor"),
        ({"invocation_retry_policy": {"interval": 1}}, TypeError, "unknown key"),
        ({"invocation_retry_policy": 5}, TypeError, "InvocationRetryPolicy or a dict"),
    ],
)
def test_invalid_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        Options(**kwargs)
    with pytest.raises(error, match=match):
        restate.handler(**kwargs)


def test_merged_over():
    merged = Options(inactivity_timeout=0).merged_over(Options(inactivity_timeout=5, abort_timeout=7))
    assert merged.inactivity_timeout == 0 and merged.abort_timeout == 7


# --------------------------------------------------------------------------------------------
# definition-time errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("def h(): pass", r"must take \(ctx\) or \(ctx, input\)"),
        ("def h(ctx, a, b): pass", r"3 required positional parameters"),
        ("def h(*args): pass", r"not \*args"),
        ("def h(ctx, *, option): pass", r"keyword-only parameter 'option'"),
        ("def h(self, ctx): pass", r"handlers are static functions"),
    ],
)
def test_wrong_arity(source, match):
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    with pytest.raises(TypeError, match=match):
        restate.handler(namespace["h"])


def test_a_default_on_the_second_parameter_still_takes_input():
    class Defaults(restate.Service):
        @restate.handler
        def h(ctx: restate.Context, value: int | None = None, extra: int = 0) -> int:
            return 1

    assert definition(Defaults, "h").takes_input


def test_duplicate_handler_names():
    with pytest.raises(TypeError, match=r"two handlers named 'x': .*Dup.a and .*Dup.b"):

        class Dup(restate.Service):
            @restate.handler(name="x")
            def a(ctx: restate.Context) -> None: ...

            @restate.handler(name="x")
            def b(ctx: restate.Context) -> None: ...


def test_same_function_name_twice_in_a_class_body():
    with pytest.raises(TypeError, match=r"Twice defines handler 'greet' twice"):

        class Twice(restate.Service):
            @restate.handler
            def greet(ctx: restate.Context) -> str:
                return "1"

            @restate.handler  # type: ignore[no-redef]
            def greet(ctx: restate.Context) -> str:  # noqa: F811
                return "2"


def test_two_decorators_on_one_function():
    with pytest.raises(TypeError, match="two handler decorators"):

        class Stacked(restate.VirtualObject):
            @restate.handler
            @restate.shared
            def h(ctx: restate.ObjectContext) -> None: ...


def test_duplicate_service_names_when_bound():
    class One(restate.Service, name="Same"):
        @restate.handler
        def h(ctx: restate.Context) -> None: ...

    class Two(restate.Service, name="Same"):
        @restate.handler
        def h(ctx: restate.Context) -> None: ...

    with pytest.raises(ValueError, match="two services are named 'Same'"):
        restate.endpoint(One, Two)


def test_shared_on_a_service():
    with pytest.raises(TypeError, match=r"@restate.shared is not allowed in Service Plain"):

        class Plain(restate.Service):
            @restate.shared
            def h(ctx: restate.Context) -> None: ...


def test_main_outside_a_workflow():
    with pytest.raises(TypeError, match=r"@restate.main is only allowed in a Workflow"):

        class Obj(restate.VirtualObject):
            @restate.main
            def h(ctx: restate.ObjectContext) -> None: ...


def test_main_twice():
    with pytest.raises(TypeError, match=r"more than one @restate.main handler: run, again"):

        class Flow(restate.Workflow):
            @restate.main
            def run(ctx: restate.WorkflowContext) -> None: ...

            @restate.main
            def again(ctx: restate.WorkflowContext) -> None: ...


@pytest.mark.parametrize("annotation", [Opaque, list[Opaque], Optional[Opaque], socket.socket])  # noqa: UP045
def test_input_annotation_that_cannot_be_deserialized(annotation):
    def h(ctx: restate.Context, value: annotation) -> None: ...  # type: ignore[valid-type]

    with pytest.raises(TypeError, match=r"its input type .* cannot be deserialized: JSON cannot be decoded"):

        class Bad(restate.Service):
            handle = restate.handler(h)


def test_opaque_field_of_a_dataclass_input():
    @dataclass
    class Holder:
        conn: socket.socket

    with pytest.raises(TypeError, match=r"JSON cannot be decoded into socket"):

        class Bad(restate.Service):
            @restate.handler
            def h(ctx: restate.Context, value: Holder) -> None: ...


def test_opaque_output_is_allowed():
    class Out(restate.Service):
        @restate.handler
        def h(ctx: restate.Context) -> Opaque:  # a subclass returned at runtime may still encode
            return Opaque()

    assert definition(Out, "h").output_type is Opaque


def test_pydantic_input_with_an_unsupported_field():
    with pytest.raises(TypeError, match=r"cannot serialize its input type"):

        class Bad(restate.Service):
            @restate.handler
            def h(ctx: restate.Context, value: dict[Opaque, int]) -> None: ...


DEFINED_TOO_LATE = """
from __future__ import annotations
import restate_sync as restate

class Early(restate.Service):
    @restate.handler
    def h(ctx: restate.Context, value: DefinedLater) -> None: ...

class DefinedLater:
    pass
"""


def test_annotation_defined_after_the_service_class():
    with pytest.raises(
        TypeError, match=r"cannot resolve the input parameter 'value' annotation 'DefinedLater'"
    ):
        exec(compile(DEFINED_TOO_LATE, "<module>", "exec"), {"__name__": "too_late"})


def test_unresolvable_return_annotation():
    with pytest.raises(TypeError, match=r"cannot resolve the return annotation 'NeverDefined'"):

        class Early(restate.Service):
            @restate.handler
            def h(ctx: restate.Context) -> NeverDefined: ...  # type: ignore[name-defined]  # noqa: F821


def test_serde_class_instead_of_instance():
    with pytest.raises(TypeError, match=r"pass an instance: UpperSerde\(\)"):

        class Bad(restate.Service):
            @restate.handler(input=UpperSerde)
            def h(ctx: restate.Context, value: str) -> None: ...


def test_input_option_without_an_input_parameter():
    with pytest.raises(TypeError, match="no input parameter"):

        @restate.handler(input=Request)
        def h(ctx: restate.Context) -> None: ...


def test_workflow_option_checks():
    with pytest.raises(TypeError, match=r"only allowed on @restate\.main"):
        restate.handler(workflow_completion_retention=10)
    with pytest.raises(TypeError, match=r"workflow_completion_retention goes on the @restate\.main"):

        class Flow(restate.Workflow, workflow_completion_retention=10):
            pass

    with pytest.raises(
        TypeError, match=r"idempotency_retention is not allowed on a workflow's @restate\.main"
    ):

        class Flow2(restate.Workflow):
            @restate.main(idempotency_retention=10)
            def run(ctx: restate.WorkflowContext) -> None: ...


def test_private_service_with_public_handler():
    with pytest.raises(TypeError, match="ingress_private, so its handler cannot be ingress_private=False"):

        class Private(restate.Service, ingress_private=True):
            @restate.handler(ingress_private=False)
            def h(ctx: restate.Context) -> None: ...


def test_unknown_options_and_bad_names():
    with pytest.raises(TypeError, match="unknown option"):
        restate.handler(timeout=5)
    with pytest.raises(TypeError, match="unknown option"):

        class S(restate.Service, retries=3):
            pass

    with pytest.raises(ValueError, match="must not contain '/'"):
        restate.handler(name="a/b")
    with pytest.raises(TypeError, match="non-empty str"):

        class T(restate.Service, name=""):
            pass

    with pytest.raises(ValueError, match="type/subtype"):
        restate.handler(accept="json")
    with pytest.raises(ValueError, match="concrete media type"):
        restate.handler(content_type="application/*")


def test_json_serde_is_public_and_plain():
    assert isinstance(restate.JsonSerde(), JsonSerde)
    assert restate.serde_for(Request).deserialize(b'{"name":"x"}') == Request("x")
    assert restate.schema_for(int) == {"type": "integer"}


# ---------------------------------------------------------------- plain def handlers, context kinds


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("async def h(ctx):\n    return 1", "an async def function"),
        ("def h(ctx):\n    yield 1", "a generator function"),
        ("async def h(ctx):\n    yield 1", "an async generator function"),
    ],
)
def test_async_and_generator_handlers_are_refused_at_definition(source, what):
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    with pytest.raises(TypeError) as info:
        restate.handler(namespace["h"])
    message = str(info.value)
    assert what in message and "'h'" in message and "plain def functions" in message


def test_an_async_handler_in_a_class_names_the_handler():
    with pytest.raises(TypeError, match=r"Broken.greet' \(@restate.handler\) is an async def function"):

        class Broken(restate.Service):
            @restate.handler
            async def greet(ctx: restate.Context, name: str) -> str:
                return name


@pytest.mark.parametrize(
    ("base", "decorator", "annotation", "expected"),
    [
        (restate.VirtualObject, restate.handler, restate.ObjectSharedContext, "ObjectContext"),
        (restate.VirtualObject, restate.shared, restate.ObjectContext, "ObjectSharedContext"),
        (restate.VirtualObject, restate.handler, restate.WorkflowContext, "ObjectContext"),
        (restate.Workflow, restate.main, restate.WorkflowSharedContext, "WorkflowContext"),
        (restate.Workflow, restate.handler, restate.WorkflowContext, "WorkflowSharedContext"),
        (restate.Service, restate.handler, restate.ObjectContext, "Context"),
    ],
)
def test_a_context_annotation_contradicting_the_handler_kind_is_refused(
    base, decorator, annotation, expected
):
    def h(ctx: Any) -> None:
        return None

    h.__annotations__["ctx"] = annotation
    with pytest.raises(TypeError) as info:
        type("Contradicting", (base,), {"h": decorator(h)})
    assert f"its context is restate.{expected}, not restate.{annotation.__name__}" in str(info.value)


def test_the_base_context_and_the_exact_context_are_accepted():
    class Fine(restate.VirtualObject):
        @restate.handler
        def exclusive(ctx: restate.ObjectContext) -> None:
            return None

        @restate.shared
        def any_kind(ctx: restate.Context) -> None:
            return None

    assert set(Fine.__restate_service__.handlers) == {"exclusive", "any_kind"}


def test_handler_references_name_their_service():
    from restate_sync.service import handler_target

    class Target(restate.VirtualObject, name="TargetObject"):
        @restate.handler(name="addIt")
        def add(ctx: restate.ObjectContext, n: int) -> int:
            return n

    class Derived(Target, name="Derived"):
        pass

    kind, service, definition = handler_target(Target.add) or (None, None, None)
    assert (kind, service, definition.name if definition else None) == (
        ServiceKind.VIRTUAL_OBJECT,
        "TargetObject",
        "addIt",
    )
    assert handler_target(Derived.add)[1] == "TargetObject"  # a subclass's copy keeps its first owner
    assert handler_target(lambda ctx: None) is None
    assert Target.add(None, 3) == 3  # type: ignore[arg-type]  # the decorator keeps the function


# ---------------------------------------------------------------- one vocabulary: durations, retry policies


@pytest.mark.parametrize("value", [-1, float("inf"), float("nan"), True, "5", timedelta(seconds=-1)])
def test_every_duration_is_validated_the_same_way(value):
    from restate_sync.durations import to_millis

    with pytest.raises((TypeError, ValueError)):
        to_millis(value, "d")
    with pytest.raises((TypeError, ValueError)):
        restate.RunRetryPolicy(initial_interval=value)
    with pytest.raises((TypeError, ValueError)):
        InvocationRetryPolicy(max_interval=value)
    with pytest.raises((TypeError, ValueError)):
        restate.RetryableError("x", retry_after=value)


def test_run_and_invocation_retry_policies_share_field_names_and_validate_at_construction():
    import dataclasses

    run_fields = {f.name for f in dataclasses.fields(restate.RunRetryPolicy)}
    invocation_fields = {f.name for f in dataclasses.fields(InvocationRetryPolicy)}
    assert {"initial_interval", "max_interval", "max_attempts", "exponentiation_factor"} <= (
        run_fields & invocation_fields
    )
    policy = restate.RunRetryPolicy(
        initial_interval=timedelta(milliseconds=250), max_interval=2, max_attempts=3
    )
    assert policy.to_vm().initial_interval_ms == 250 and policy.to_vm().max_interval_ms == 2000
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max_attempts = 4  # type: ignore[misc]
    for bad in ({"max_attempts": 0}, {"exponentiation_factor": 0}, {"exponentiation_factor": float("inf")}):
        with pytest.raises(ValueError):
            restate.RunRetryPolicy(**bad)
        with pytest.raises(ValueError):
            InvocationRetryPolicy(**bad)
    assert restate.RetryableError("busy", retry_after=timedelta(seconds=1.5)).retry_after_ms == 1500


# ---------------------------------------------------------------- the serdes of values (type=, return annotations)


def test_value_serdes_from_types_and_return_annotations():
    from restate_sync import values

    assert values.serde_of(Request, "w") is values.serde_of(Request, "w")  # compiled once
    assert values.serde_of(Request, "w").deserialize(b'{"name": "x"}') == Request("x")
    assert values.ANY.serialize(Request("x", 2)) == b'{"name":"x","count":2}'

    def annotated() -> Request:
        return Request("a")

    def stringly() -> Response:  # postponed: a string annotation, resolved in the module
        return Response("b")

    assert values.return_serde(annotated, "w").deserialize(b'{"name": "a"}') == Request("a")
    assert values.return_serde(stringly, "w").deserialize(b'{"text": "b"}') == Response("b")
    assert values.return_serde(lambda: 1, "w") is values.STRICT
    with pytest.raises(SerdeError):
        values.STRICT.serialize(Request("a"))  # no declared type: a struct is not silently a dict

    def unresolvable() -> Missing:  # type: ignore[name-defined]  # noqa: F821
        raise AssertionError

    with pytest.raises(restate.MisuseError, match=r"cannot resolve the return annotation .*Missing"):
        values.return_serde(unresolvable, "ctx.run('x')")


def test_misuse_errors_are_terminal_and_keep_their_builtin_kinds():
    from restate_sync.errors import ContextUsageError, UnavailableOperationError

    assert issubclass(ContextUsageError, restate.TerminalError) and issubclass(
        ContextUsageError, RuntimeError
    )
    assert issubclass(UnavailableOperationError, restate.TerminalError)
    assert issubclass(UnavailableOperationError, AttributeError)
    assert not issubclass(restate.RetryableError, restate.TerminalError)
