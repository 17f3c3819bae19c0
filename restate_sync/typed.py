"""Serdes and JSON Schemas derived from Python types.

:func:`serde_for` turns a handler's input/output annotation (or an explicit ``input=`` /
``output=`` value) into a serde, resolving in this order:

1. an object with ``serialize`` and ``deserialize`` (a serde) → returned unchanged; also a serde
   found in ``Annotated[T, serde]`` metadata;
2. struct types → JSON decoded into an instance of the type: pydantic v2 models and pydantic
   dataclasses (:class:`PydanticSerde`), msgspec ``Struct`` s (:class:`MsgspecSerde`), dataclasses and
   ``TypedDict`` s (:class:`TypedJsonSerde`, validated by code compiled once from the type hints);
3. primitives and generic aliases (``str``, ``int``, ``float``, ``bool``, ``T | None``, unions,
   ``list[T]``, ``tuple[...]``, ``set[T]``, ``dict[str, T]``, ``Literal[...]``, enums, ``datetime``,
   ``date``, ``time``, ``UUID``, ``Decimal``) → validated JSON; ``Any`` / ``object`` → JSON, unchecked;
4. ``None`` / ``type(None)`` → :class:`EmptySerde` (no input / empty output, see :func:`is_empty_type`);
5. ``bytes`` → :class:`RawBytesSerde` (``application/octet-stream``);
6. a class with a ``json_schema()`` classmethod → plain JSON, publishing that schema;
7. anything else → plain JSON without a schema (such classes are listed in the serde's ``opaque``,
   so callers can refuse them where a typed value is promised, e.g. a handler's input).

Every serde built here has ``content_type`` and ``json_schema() -> dict | None``. Decode failures
raise :class:`~restate_sync.serde.SerdeError` naming the offending field path, e.g.
``items[2].name: expected str, got int 5``.

Schemas are single self-contained documents: nested structs (dataclasses, TypedDicts, pydantic
models, msgspec structs) live under the document's ``$defs`` and are referenced with
``#/$defs/<Name>``; the top-level struct itself is inlined unless it is recursive. Enums, literals
and containers are always inline.

pydantic and msgspec stay optional: this module never imports them. A class can only be a
pydantic model / msgspec struct if its library is already in ``sys.modules``.

Nothing type-introspective runs per call: ``serde_for`` compiles loaders (JSON data → typed
values, with checks) and dumpers (typed values → JSON data) once; dataclass / TypedDict loaders and
dataclass dumpers are generated Python functions. Positions the type does not describe (``Any``,
subclasses, dicts returned for structs) are encoded by ujson's ``default`` hook, which converts
dataclasses, enums, pydantic models, msgspec structs, sets, datetimes and UUIDs with one cached
converter per class. Outputs are converted, not validated (pydantic validates a dict returned
for a model).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import decimal
import enum
import inspect
import re
import sys
import types
import typing
import uuid
import warnings
from collections import abc
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import ujson

from .serde import BytesSerde, JsonSerde, Serde, SerdeError

__all__ = [
    "EmptySerde",
    "MsgspecSerde",
    "PydanticSerde",
    "RawBytesSerde",
    "TypedJsonSerde",
    "is_empty_type",
    "schema_for",
    "serde_for",
]

_NoneType = type(None)
Loader = Callable[[Any], Any]
Dumper = Callable[[Any], Any]
Schema = dict[str, Any]


# --------------------------------------------------------------------------------------------
# Public serde classes
# --------------------------------------------------------------------------------------------


class TypedJsonSerde(JsonSerde[Any]):
    """JSON (ujson) validated and converted by code compiled once from a type.

    ``deserialize`` parses JSON (an empty body is ``null``) and runs the loader (``None``: the
    parsed JSON as is). ``serialize`` runs the dumper (dataclass → dict, enum → value, … for the
    positions the type declares), then ujson, whose ``default`` hook converts whatever else it
    cannot encode (dataclasses, enums, pydantic models, msgspec structs, sets, datetimes, UUIDs).
    """

    content_type = "application/json"

    def __init__(
        self, tp: Any, load: Loader | None, schema: Schema | None, dump: Dumper | None = None
    ) -> None:
        self.type = tp
        self._load = load
        self._dump = dump
        self._schema = schema
        # plain classes found in ``tp`` that JSON can't be decoded into (passed through as JSON data)
        self.opaque: tuple[type, ...] = ()

    def serialize(self, obj: Any) -> bytes:
        try:
            data = obj if self._dump is None else self._dump(obj)
            text = ujson.dumps(data, ensure_ascii=False, escape_forward_slashes=False, default=_default)
        except (TypeError, OverflowError, ValueError) as exc:
            raise SerdeError(f"cannot encode {type(obj).__name__} as JSON: {exc}") from exc
        return text.encode("utf-8")

    def deserialize(self, data: bytes) -> Any:
        if data:
            try:
                value = ujson.loads(data)
            except (ValueError, UnicodeDecodeError) as exc:
                raise SerdeError(f"invalid JSON: {exc}") from None
        else:
            value = None
        load = self._load
        if load is None:
            return value
        try:
            return load(value)
        except _Invalid as exc:
            raise SerdeError(exc.render()) from None
        except RecursionError:
            raise SerdeError("input is nested too deeply") from None

    def json_schema(self) -> Schema | None:
        return copy.deepcopy(self._schema)

    def __repr__(self) -> str:
        return f"TypedJsonSerde({_type_name(self.type)})"


class PydanticSerde:
    """A pydantic v2 model or pydantic dataclass, through ``pydantic.TypeAdapter``."""

    content_type = "application/json"

    def __init__(self, tp: Any) -> None:
        pydantic = sys.modules["pydantic"]
        self.type = tp
        self._adapter = pydantic.TypeAdapter(tp)
        self._validation_error: type[Exception] = pydantic.ValidationError
        # a dict returned for a model-typed output is validated into the model first
        self._cls: type | None = tp if isinstance(tp, type) else None
        self._schema: Schema | None
        try:
            self._schema = self._adapter.json_schema()
        except Exception as exc:  # e.g. PydanticInvalidForJsonSchema (arbitrary types)
            warnings.warn(f"no JSON Schema for {_type_name(tp)}: {exc}", stacklevel=3)
            self._schema = None

    def serialize(self, obj: Any) -> bytes:
        try:
            if self._cls is not None and not isinstance(obj, self._cls):
                obj = self._adapter.validate_python(obj)
            return bytes(self._adapter.dump_json(obj))
        except Exception as exc:
            raise SerdeError(f"cannot encode {type(obj).__name__} as JSON: {exc}") from exc

    def deserialize(self, data: bytes) -> Any:
        try:
            return self._adapter.validate_json(data)
        except self._validation_error as exc:
            raise SerdeError(_pydantic_message(exc)) from None

    def json_schema(self) -> Schema | None:
        return copy.deepcopy(self._schema)

    def __repr__(self) -> str:
        return f"PydanticSerde({_type_name(self.type)})"


class MsgspecSerde:
    """A msgspec ``Struct`` through a prebuilt ``msgspec.json.Decoder`` / ``Encoder``."""

    content_type = "application/json"

    def __init__(self, tp: Any) -> None:
        msgspec = sys.modules["msgspec"]
        self.type = tp
        self._decoder = msgspec.json.Decoder(tp)
        self._encoder = msgspec.json.Encoder()
        self._validation_error: type[Exception] = msgspec.ValidationError
        self._decode_error: type[Exception] = msgspec.DecodeError
        self._schema: Schema = msgspec.json.schema(tp)

    def serialize(self, obj: Any) -> bytes:
        try:
            return bytes(self._encoder.encode(obj))
        except Exception as exc:
            raise SerdeError(f"cannot encode {type(obj).__name__} as JSON: {exc}") from exc

    def deserialize(self, data: bytes) -> Any:
        try:
            return self._decoder.decode(data)
        except self._validation_error as exc:
            message, tail = _msgspec_split(str(exc))
            raise SerdeError(_Invalid(message, tail=tail).render()) from None
        except self._decode_error as exc:
            raise SerdeError(f"invalid JSON: {exc}") from None

    def json_schema(self) -> Schema | None:
        return copy.deepcopy(self._schema)

    def __repr__(self) -> str:
        return f"MsgspecSerde({_type_name(self.type)})"


class EmptySerde:
    """No input / empty output: serializes anything to ``b""``, ignores the body when reading."""

    content_type = "application/json"
    empty = True

    def serialize(self, obj: Any) -> bytes:
        return b""

    def deserialize(self, data: bytes) -> None:
        return None

    def json_schema(self) -> Schema | None:
        return None

    def __repr__(self) -> str:
        return "EmptySerde()"


class RawBytesSerde(BytesSerde):
    """:class:`BytesSerde` (raw, ``application/octet-stream``) that publishes no schema."""

    def json_schema(self) -> Schema | None:
        return None

    def __repr__(self) -> str:
        return "RawBytesSerde()"


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


def is_empty_type(tp: Any) -> bool:
    """Whether ``tp`` means "no input" / "empty output": ``None``, ``type(None)`` or an :class:`EmptySerde`."""
    return tp is None or tp is _NoneType or isinstance(tp, EmptySerde)


def serde_for(tp: Any) -> Serde[Any]:
    """The serde for a handler input/output annotation or explicit ``input=`` / ``output=`` value.

    Raises ``TypeError`` for things that can never work (an unresolved string annotation, a
    serde class instead of an instance, unsupported ``dict`` key types, conflicting schema names).
    """
    if _is_serde_object(tp):
        return tp
    tp, serde = _strip_top(tp)
    if serde is not None:
        return serde
    if is_empty_type(tp):
        return EmptySerde()
    if tp is bytes or tp is bytearray:
        return RawBytesSerde()
    if _is_pydantic(tp):
        return PydanticSerde(tp)
    if _is_msgspec_struct(tp):
        return MsgspecSerde(tp)
    if tp is Any or tp is object:
        return TypedJsonSerde(tp, None, None)
    if isinstance(tp, type) and not _is_struct_class(tp):
        serialize = getattr(tp, "serialize", None)
        deserialize = getattr(tp, "deserialize", None)
        if callable(serialize) and callable(deserialize):
            raise TypeError(f"{tp.__name__} looks like a serde class; pass an instance: {tp.__name__}()")
    compiler = _Compiler()
    node = compiler.node(tp)
    serde = TypedJsonSerde(tp, node.load, compiler.document(tp, node), node.dump)
    serde.opaque = tuple(dict.fromkeys(compiler.opaque))
    return serde


def schema_for(tp: Any) -> Schema | None:
    """The JSON Schema :func:`serde_for` would publish for ``tp`` (``None``: no schema)."""
    schema_of = getattr(serde_for(tp), "json_schema", None)
    return schema_of() if callable(schema_of) else None


# --------------------------------------------------------------------------------------------
# Validation errors with lazily built paths
# --------------------------------------------------------------------------------------------


class _Invalid(Exception):
    """A decode failure; containers append their segment (innermost first) while unwinding."""

    def __init__(self, message: str, path: list[Any] | None = None, tail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path: list[Any] = path if path is not None else []
        self.tail = tail  # preformatted path below ``path`` (from pydantic / msgspec)

    def render(self) -> str:
        where = _format_path(reversed(self.path)) + self.tail
        where = where.removeprefix(".")
        return f"{where}: {self.message}" if where else self.message


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _format_path(segments: Iterable[Any]) -> str:
    out = []
    for segment in segments:
        if isinstance(segment, int):
            out.append(f"[{segment}]")
        elif isinstance(segment, str) and _IDENTIFIER.match(segment):
            out.append(f".{segment}")
        else:
            out.append(f"[{ujson.dumps(str(segment), ensure_ascii=False)}]")
    return "".join(out)


_SCALARS = (str, int, float, bool)


def _got(value: Any) -> str:
    """``null`` / ``list`` / ``str "abc"``: what a JSON value is, for error messages."""
    if value is None:
        return "null"
    name = type(value).__name__
    if type(value) in _SCALARS:
        text = ujson.dumps(value, ensure_ascii=False)
        if len(text) > 40:
            text = text[:37] + "..."
        return f"{name} {text}"
    return name


def _pydantic_message(exc: Any) -> str:
    errors = exc.errors(include_url=False)
    if not errors:
        return str(exc)
    parts = []
    for error in errors[:3]:
        parts.append(_Invalid(error.get("msg", "invalid"), tail=_format_path(error.get("loc", ()))).render())
    if len(errors) > 3:
        parts.append(f"and {len(errors) - 3} more errors")
    return "; ".join(parts)


_MSGSPEC_AT = re.compile(r"^(.*) - at `\$(.*)`$", re.DOTALL)


def _msgspec_split(text: str) -> tuple[str, str]:
    match = _MSGSPEC_AT.match(text)
    return (match.group(1), match.group(2)) if match else (text, "")


# --------------------------------------------------------------------------------------------
# Type classification
# --------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and not get_args(tp):
        return tp.__qualname__
    return repr(tp).replace("typing.", "")


def _is_serde_object(obj: Any) -> bool:
    """A serde instance (or module / class with static ``serialize`` and ``deserialize``)."""
    if isinstance(obj, type):
        # classes: only when both are static/class methods (a "serde module" style class)
        def static(name: str) -> bool:
            for klass in obj.__mro__:
                if name in klass.__dict__:
                    return isinstance(klass.__dict__[name], (staticmethod, classmethod))
            return False

        return static("serialize") and static("deserialize")
    return callable(getattr(obj, "serialize", None)) and callable(getattr(obj, "deserialize", None))


def _strip_top(tp: Any) -> tuple[Any, Any]:
    """Unwrap ``Annotated`` / ``NewType`` / type aliases at the top; a serde in ``Annotated`` metadata wins."""
    while True:
        if get_origin(tp) is typing.Annotated:
            for meta in tp.__metadata__:
                if _is_serde_object(meta):
                    return tp, meta
            tp = tp.__origin__
        elif isinstance(tp, typing.NewType):
            tp = tp.__supertype__
        elif type(tp).__name__ == "TypeAliasType" and hasattr(tp, "__value__"):
            tp = tp.__value__
        else:
            return tp, None


def _mro_modules(tp: type) -> set[str]:
    return {klass.__module__.partition(".")[0] for klass in tp.__mro__}


def _is_pydantic(tp: Any) -> bool:
    """A pydantic v2 ``BaseModel`` subclass or pydantic dataclass (pydantic already imported)."""
    if not isinstance(tp, type):
        return False
    pydantic = sys.modules.get("pydantic")
    if pydantic is None:
        return False
    if "pydantic" in _mro_modules(tp) and issubclass(tp, pydantic.BaseModel):
        return True
    return dataclasses.is_dataclass(tp) and "__pydantic_validator__" in tp.__dict__


def _is_msgspec_struct(tp: Any) -> bool:
    if not isinstance(tp, type):
        return False
    msgspec = sys.modules.get("msgspec")
    return msgspec is not None and issubclass(tp, msgspec.Struct)


def _is_typeddict(tp: Any) -> bool:
    return (
        isinstance(tp, type)
        and issubclass(tp, dict)
        and hasattr(tp, "__required_keys__")
        and hasattr(tp, "__total__")
    )


def _is_struct_class(tp: Any) -> bool:
    return (
        dataclasses.is_dataclass(tp)
        or _is_typeddict(tp)
        or _is_pydantic(tp)
        or _is_msgspec_struct(tp)
        or (isinstance(tp, type) and issubclass(tp, enum.Enum))
    )


def _json_schema_classmethod(tp: Any) -> Callable[[], Any] | None:
    if not isinstance(tp, type):
        return None
    for klass in tp.__mro__:
        member = klass.__dict__.get("json_schema")
        if member is not None:
            return (
                typing.cast(Any, tp).json_schema if isinstance(member, (classmethod, staticmethod)) else None
            )
    return None


def _json_type(values: Iterable[Any]) -> str | None:
    """The single JSON Schema ``type`` of some JSON scalars, if they share one."""
    kinds = set()
    for value in values:
        if isinstance(value, bool):
            kinds.add("boolean")
        elif isinstance(value, int):
            kinds.add("integer")
        elif isinstance(value, float):
            kinds.add("number")
        elif isinstance(value, str):
            kinds.add("string")
        elif value is None:
            kinds.add("null")
        else:
            return None
    if kinds == {"integer", "number"}:
        return "number"
    return kinds.pop() if len(kinds) == 1 else None


def _to_json_value(value: Any) -> Any:
    """``value`` as plain JSON data (for schema defaults / enum values), or raise ``TypeError``."""
    return ujson.loads(ujson.dumps(value, default=_default))


# JSON scalar lookup keys: 1 == 1.0 share a key (numbers), bools don't collide with ints
_KIND = {bool: "b", int: "n", float: "n", str: "s", _NoneType: "z"}

_LIST_ORIGINS = {list, abc.Sequence, abc.MutableSequence, abc.Collection, abc.Iterable}
_SET_ORIGINS = {set, frozenset, abc.Set, abc.MutableSet}
_DICT_ORIGINS = {dict, abc.Mapping, abc.MutableMapping}
_WRAPPER_NAMES = {"Required", "NotRequired", "ReadOnly", "Final"}


# --------------------------------------------------------------------------------------------
# Compiled nodes: one per type occurrence, built once in serde_for
# --------------------------------------------------------------------------------------------


class _Node:
    """How to load one type from JSON data, how to dump it to JSON data, and its schema.

    ``load is None``: anything goes, unchanged. ``identity``: ``load`` only checks, returning its
    argument (so containers of it can skip rebuilding). ``dump is None``: ujson (with its
    ``default`` hook) encodes values as they are; a ``dump`` returns values that are not of its
    type unchanged, so unions can chain them.
    """

    __slots__ = ("desc", "dump", "exact", "identity", "load", "schema")

    def __init__(
        self,
        load: Loader | None,
        schema: Schema,
        desc: str,
        identity: bool = False,
        dump: Dumper | None = None,
    ) -> None:
        self.load = load
        self.schema = schema
        self.desc = desc
        self.identity = identity or load is None
        self.dump = dump
        self.exact: type | None = None  # values of exactly this class pass ``load`` unchanged


def _scalar_node(
    json_type: str, desc: str, accept: type, convert: Callable[[Any], Any] | None = None
) -> _Node:
    if convert is None:

        def load(v: Any) -> Any:
            if type(v) is accept:
                return v
            raise _Invalid(f"expected {desc}, got {_got(v)}")

        node = _Node(load, {"type": json_type}, desc, identity=True)
        node.exact = accept
        return node

    def load_converting(v: Any) -> Any:
        if type(v) is accept:
            return v
        result = convert(v)
        if result is _NOPE:
            raise _Invalid(f"expected {desc}, got {_got(v)}")
        return result

    node = _Node(load_converting, {"type": json_type}, desc)
    node.exact = accept
    return node


_NOPE: Any = object()


def _int_from(v: Any) -> Any:
    return int(v) if type(v) is float and v.is_integer() else _NOPE


def _float_from(v: Any) -> Any:
    return float(v) if type(v) is int else _NOPE


def _string_node(desc: str, fmt: str, parse: Callable[[str], Any], dump: Dumper) -> _Node:
    def load(v: Any) -> Any:
        if type(v) is str:
            try:
                return parse(v)
            except ValueError:
                pass
        raise _Invalid(f"expected {desc}, got {_got(v)}")

    return _Node(load, {"type": "string", "format": fmt}, desc, dump=dump)


def _dump_iso(v: Any) -> Any:
    return v.isoformat() if isinstance(v, (dt.date, dt.time)) else v


def _dump_uuid(v: Any) -> Any:
    return str(v) if isinstance(v, uuid.UUID) else v


def _dump_enum(v: Any) -> Any:
    return v.value if isinstance(v, enum.Enum) else v


def _load_decimal(v: Any) -> Any:
    if type(v) in (int, float, str):
        try:
            result = decimal.Decimal(str(v))
        except decimal.InvalidOperation:
            pass
        else:
            if result.is_finite():
                return result
    raise _Invalid(f"expected decimal number, got {_got(v)}")


def _dump_decimal(v: Any) -> Any:
    return str(v) if isinstance(v, decimal.Decimal) else v  # exact, unlike a JSON number


def _load_null(v: Any) -> Any:
    if v is None:
        return None
    raise _Invalid(f"expected null, got {_got(v)}")


_ANY = _Node(None, {}, "any")
_PRIMITIVES: dict[Any, _Node] = {
    str: _scalar_node("string", "str", str),
    int: _scalar_node("integer", "int", int, _int_from),
    float: _scalar_node("number", "float", float, _float_from),
    bool: _scalar_node("boolean", "bool", bool),
    _NoneType: _Node(_load_null, {"type": "null"}, "null", identity=True),
    dt.datetime: _string_node("ISO 8601 date-time string", "date-time", dt.datetime.fromisoformat, _dump_iso),
    dt.date: _string_node("ISO 8601 date string", "date", dt.date.fromisoformat, _dump_iso),
    dt.time: _string_node("ISO 8601 time string", "time", dt.time.fromisoformat, _dump_iso),
    uuid.UUID: _string_node("UUID string", "uuid", uuid.UUID, _dump_uuid),
    decimal.Decimal: _Node(
        _load_decimal, {"anyOf": [{"type": "number"}, {"type": "string"}]}, "decimal", dump=_dump_decimal
    ),
}


class _Compiler:
    """Builds nodes for one serde; collects the ``$defs`` of its schema document."""

    def __init__(self) -> None:
        self.defs: dict[str, Schema] = {}
        self.structs: dict[Any, tuple[_Node, str]] = {}
        self.in_progress: set[Any] = set()
        self.recursive: set[Any] = set()
        self.opaque: list[type] = []  # unknown classes, decoded as plain JSON data

    # -- the document -----------------------------------------------------------------------

    def document(self, tp: Any, node: _Node) -> Schema | None:
        schema = node.schema
        if not schema and not self.defs:
            return None  # Any / unknown class: nothing worth publishing
        struct = self.structs.get(tp)
        if struct is not None and tp not in self.recursive:
            schema = self.defs.pop(struct[1])
        else:
            schema = dict(schema)
        if self.defs:
            schema["$defs"] = self.defs
        return schema

    def _reserve(self, key: Any, cls: type, label: str) -> str:
        name = re.sub(r"[^A-Za-z0-9_.\-]", "_", label)
        if name in self.defs:
            name = re.sub(
                r"[^A-Za-z0-9_.\-]", "_", f"{cls.__module__}.{cls.__qualname__}{label[len(cls.__name__) :]}"
            )
            base, n = name, 2
            while name in self.defs:
                name, n = f"{base}_{n}", n + 1
        self.defs[name] = {}  # placeholder, filled when the struct's fields are compiled
        return name

    def _merge_defs(self, defs: dict[str, Schema], owner: Any) -> None:
        for name, schema in defs.items():
            existing = self.defs.get(name)
            if existing is not None and existing != schema:
                raise TypeError(
                    f"JSON Schema of {_type_name(owner)}: two different types are named {name!r}; "
                    "rename one of them"
                )
            self.defs[name] = schema

    def _struct(self, key: Any, cls: type, label: str) -> tuple[_Node | None, str, Schema]:
        """Existing node for ``key`` (None: caller must build it), its defs name and def dict."""
        known = self.structs.get(key)
        if known is not None:
            if key in self.in_progress:
                self.recursive.add(key)
            return known[0], known[1], self.defs[known[1]]
        name = self._reserve(key, cls, label)
        return None, name, self.defs[name]

    def _struct_node(
        self, key: Any, name: str, desc: str
    ) -> tuple[_Node, Callable[[Loader, Dumper | None], None]]:
        """Record a struct being built; the returned function completes it with its loader and dumper.

        Until then ``load`` / ``dump`` are trampolines, so recursive references reach the final ones.
        """
        final: list[Any] = [None, None]

        def load_later(v: Any) -> Any:
            return final[0](v)

        def dump_later(v: Any) -> Any:
            dump = final[1]
            return v if dump is None else dump(v)

        node = _Node(load_later, {"$ref": f"#/$defs/{name}"}, desc, dump=dump_later)
        self.structs[key] = (node, name)
        self.in_progress.add(key)

        def finish(load: Loader, dump: Dumper | None) -> None:
            final[0] = node.load = load
            final[1] = node.dump = dump
            self.in_progress.discard(key)

        return node, finish

    # -- dispatch -----------------------------------------------------------------------------

    def node(self, tp: Any) -> _Node:
        origin = get_origin(tp)
        if origin is typing.Annotated:
            return self.node(tp.__origin__)
        if isinstance(tp, str | typing.ForwardRef):
            raise TypeError(
                f"unresolved forward reference {tp!r}: resolve annotations (typing.get_type_hints) "
                "before asking for a serde"
            )
        if tp is Any or tp is object:
            return _ANY
        if tp is None:
            tp = _NoneType
        primitive = _PRIMITIVES.get(tp) if isinstance(tp, type) else None
        if primitive is not None:
            return primitive
        if isinstance(tp, typing.NewType):
            return self.node(tp.__supertype__)
        if isinstance(tp, TypeVar):
            if tp.__bound__ is not None:
                return self.node(tp.__bound__)
            if tp.__constraints__:
                return self.node(Union[tp.__constraints__])  # noqa: UP007
            return _ANY
        if type(tp).__name__ == "TypeAliasType" and hasattr(tp, "__value__"):
            return self.node(tp.__value__)
        if origin is not None:
            return self._generic(tp, origin, get_args(tp))
        if tp in _LIST_ORIGINS:
            return self._list(_ANY, list, "list")
        if tp in _SET_ORIGINS:
            return self._list(_ANY, frozenset if tp is frozenset else set, tp.__name__)
        if tp is tuple:
            return self._list(_ANY, tuple, "tuple")
        if tp in _DICT_ORIGINS:
            return self._dict(str, _ANY)
        if not isinstance(tp, type):
            return _ANY  # some other typing construct: accept any JSON
        if issubclass(tp, enum.Enum):
            return self._enum(tp)
        if _is_pydantic(tp):
            return self._pydantic(tp)
        if _is_msgspec_struct(tp):
            return self._msgspec(tp)
        if dataclasses.is_dataclass(tp):
            return self._dataclass(tp, tp, {})
        if _is_typeddict(tp):
            return self._typeddict(tp, tp, {})
        schema_of = _json_schema_classmethod(tp)
        if schema_of is not None:
            schema = schema_of()
            if not isinstance(schema, dict):
                raise TypeError(
                    f"{_type_name(tp)}.json_schema() must return a dict, not {type(schema).__name__}"
                )
            return _Node(None, schema, tp.__name__)
        self.opaque.append(tp)
        return _Node(None, {}, tp.__name__)  # unknown class: plain JSON, no schema

    def _generic(self, tp: Any, origin: Any, args: tuple[Any, ...]) -> _Node:
        if origin is Union or origin is types.UnionType:
            return self._union(args)
        if origin is Literal:
            return self._literal(args)
        if getattr(origin, "_name", None) in _WRAPPER_NAMES or origin is ClassVar:
            return self.node(args[0]) if args else _ANY
        if origin in _LIST_ORIGINS:
            return self._list(self.node(args[0]) if args else _ANY, list, "list")
        if origin in _SET_ORIGINS:
            kind = frozenset if origin is frozenset else set
            return self._list(self.node(args[0]) if args else _ANY, kind, kind.__name__)
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return self._list(self.node(args[0]), tuple, "tuple")
            if args == ((),):
                args = ()
            return self._tuple([self.node(arg) for arg in args])
        if origin in _DICT_ORIGINS:
            return self._dict(args[0] if args else str, self.node(args[1]) if len(args) > 1 else _ANY)
        if isinstance(origin, type):
            mapping = dict(zip(getattr(origin, "__parameters__", ()), args, strict=False))
            if _is_pydantic(tp) or _is_pydantic(origin):
                return self._pydantic(tp)
            if _is_msgspec_struct(origin):
                return self._msgspec(tp)
            if dataclasses.is_dataclass(origin):
                return self._dataclass(tp, origin, mapping)
            if _is_typeddict(origin):
                return self._typeddict(tp, origin, mapping)
            return self.node(origin)
        return _ANY

    # -- unions and literals ------------------------------------------------------------------

    def _union(self, args: tuple[Any, ...]) -> _Node:
        members = [self.node(arg) for arg in args]
        schema = {"anyOf": [member.schema for member in members]}
        desc = " | ".join(member.desc for member in members)
        dump = _chain([member.dump for member in members if member.dump is not None])
        if any(member.load is None for member in members):
            return _Node(None, schema, desc, dump=dump)
        identity = all(member.identity for member in members)
        others = [m for m, a in zip(members, args, strict=True) if a is not None and a is not _NoneType]
        if len(others) == 1 and len(members) == 2:
            inner = others[0].load
            assert inner is not None

            def load_optional(v: Any) -> Any:
                return None if v is None else inner(v)

            return _Node(load_optional, schema, desc, identity, dump)

        loads = [member.load for member in members]

        def load_union(v: Any) -> Any:
            errors = []
            for load in loads:
                try:
                    return load(v)  # type: ignore[misc]
                except _Invalid as exc:
                    errors.append(exc)
            deep = [exc for exc in errors if exc.path or exc.tail]
            if len(deep) == 1:
                raise deep[0]
            raise _Invalid(f"expected {desc}, got {_got(v)}")

        return _Node(load_union, schema, desc, identity, dump)

    def _literal(self, args: tuple[Any, ...]) -> _Node:
        table: dict[tuple[str, Any], Any] = {}
        wire_values = []
        for value in args:
            wire = value.value if isinstance(value, enum.Enum) else value
            kind = _KIND.get(type(wire))
            if kind is None:
                raise TypeError(
                    f"Literal values must be str, int, float, bool, None or enum members, not {value!r}"
                )
            table[(kind, wire)] = value
            wire_values.append(wire)
        schema: Schema = {"enum": wire_values}
        json_type = _json_type(wire_values)
        if json_type is not None:
            schema["type"] = json_type
        choices = ", ".join(ujson.dumps(w, ensure_ascii=False) for w in wire_values)
        desc = f"one of {choices}"
        has_enum = any(isinstance(value, enum.Enum) for value in args)
        return _Node(_table_loader(table, desc, None), schema, desc, dump=_dump_enum if has_enum else None)

    def _enum(self, cls: type[enum.Enum]) -> _Node:
        table: dict[tuple[str, Any], Any] = {}
        values = []
        plain = True
        for member in cls:
            kind = _KIND.get(type(member.value))
            if kind is None:
                plain = False
                continue
            table[(kind, member.value)] = member
            values.append(member.value)
        schema: Schema = {"title": cls.__name__}
        if plain:
            schema["enum"] = values
            json_type = _json_type(values)
            if json_type is not None:
                schema["type"] = json_type
        choices = ", ".join(ujson.dumps(v, ensure_ascii=False) for v in values)
        desc = f"{cls.__name__} (one of {choices})" if plain else cls.__name__
        fallback = cls if (not plain or issubclass(cls, enum.Flag)) else None
        return _Node(_table_loader(table, desc, fallback), schema, desc, dump=_dump_enum)

    # -- containers -----------------------------------------------------------------------------

    def _list(self, item: _Node, kind: type, desc: str) -> _Node:
        schema: Schema = {"type": "array"}
        if item.schema:
            schema["items"] = item.schema
        if kind in (set, frozenset):
            schema["uniqueItems"] = True
        inner = item.load
        need = f"expected {desc}, got "
        dump = _dump_sequence(item.dump)

        if kind is list and item.identity:

            def load_checked(v: Any) -> Any:
                if type(v) is not list:
                    raise _Invalid(need + _got(v))
                if inner is not None:
                    i = 0
                    try:
                        for i, x in enumerate(v):  # noqa: B007
                            inner(x)
                    except _Invalid as exc:
                        exc.path.append(i)
                        raise
                return v

            return _Node(load_checked, schema, desc, identity=True, dump=dump)

        def load_items(v: Any) -> Any:
            if type(v) is not list:
                raise _Invalid(need + _got(v))
            if inner is None:
                out = v
            else:
                out = []
                i = 0
                try:
                    for i, x in enumerate(v):  # noqa: B007
                        out.append(inner(x))
                except _Invalid as exc:
                    exc.path.append(i)
                    raise
            if kind is list:
                return out
            try:
                return kind(out)
            except TypeError as exc:
                raise _Invalid(f"cannot build a {desc}: {exc}") from None

        return _Node(load_items, schema, desc, dump=dump)

    def _tuple(self, items: list[_Node]) -> _Node:
        count = len(items)
        schema: Schema = {"type": "array", "minItems": count, "maxItems": count}
        if items:
            schema["prefixItems"] = [item.schema for item in items]
        loads = [item.load for item in items]
        desc = f"array of {count} items"

        def load(v: Any) -> Any:
            if type(v) is not list or len(v) != count:
                got = f"array of {len(v)} items" if type(v) is list else _got(v)
                raise _Invalid(f"expected {desc}, got {got}")
            out = []
            i = 0
            try:
                for i, (item_load, x) in enumerate(zip(loads, v, strict=True)):  # noqa: B007
                    out.append(x if item_load is None else item_load(x))
            except _Invalid as exc:
                exc.path.append(i)
                raise
            return tuple(out)

        dumps = [item.dump for item in items]
        dump: Dumper | None = None
        if any(d is not None for d in dumps):

            def dump(v: Any) -> Any:
                if type(v) is not tuple and type(v) is not list:
                    return v
                return [x if d is None else d(x) for d, x in zip(dumps, v, strict=False)]

        return _Node(load, schema, "tuple", dump=dump)

    def _dict(self, key_tp: Any, value: _Node) -> _Node:
        key_load, key_schema = self._dict_key(key_tp)
        schema: Schema = {"type": "object"}
        if value.schema:
            schema["additionalProperties"] = value.schema
        if key_schema is not None:
            schema["propertyNames"] = key_schema
        inner = value.load
        dump = _dump_mapping(value.dump)

        if key_load is None and value.identity:

            def load_checked(v: Any) -> Any:
                if type(v) is not dict:
                    raise _Invalid(f"expected dict, got {_got(v)}")
                if inner is not None:
                    k = None
                    try:
                        for k, x in v.items():  # noqa: B007
                            inner(x)
                    except _Invalid as exc:
                        exc.path.append(k)
                        raise
                return v

            return _Node(load_checked, schema, "dict", identity=True, dump=dump)

        def load_items(v: Any) -> Any:
            if type(v) is not dict:
                raise _Invalid(f"expected dict, got {_got(v)}")
            out = {}
            k = None
            try:
                for k, x in v.items():
                    if key_load is None:
                        key = k
                    else:
                        try:
                            key = key_load(k)
                        except _Invalid as exc:
                            exc.message = f"invalid key: {exc.message}"
                            raise
                    out[key] = x if inner is None else inner(x)
            except _Invalid as exc:
                exc.path.append(k)
                raise
            return out

        return _Node(load_items, schema, "dict", dump=dump)

    def _dict_key(self, key_tp: Any) -> tuple[Loader | None, Schema | None]:
        key_tp, _ = _strip_top(key_tp)
        if key_tp is str or key_tp is Any or key_tp is object:
            return None, None
        if key_tp is int:
            return _load_int_key, {"pattern": "^-?[0-9]+$"}
        node = self.node(key_tp)
        is_str_enum = isinstance(key_tp, type) and issubclass(key_tp, str) and issubclass(key_tp, enum.Enum)
        is_str_literal = get_origin(key_tp) is Literal and all(type(a) is str for a in get_args(key_tp))
        if is_str_enum or is_str_literal:
            return node.load, node.schema
        raise TypeError(
            f"dict keys must be str, int, a str-valued Enum (StrEnum) or a Literal of str, not {_type_name(key_tp)}"
        )

    # -- structs --------------------------------------------------------------------------------

    def _dataclass(self, tp: Any, cls: type, mapping: dict[Any, Any]) -> _Node:
        label = _generic_label(cls, mapping)
        known, name, definition = self._struct(tp, cls, label)
        if known is not None:
            return known
        node, finish = self._struct_node(tp, name, f"{label} object")
        hints = _hints(cls, mapping)
        properties: dict[str, Schema] = {}
        required_names = []
        loads: list[tuple[str, _Node, bool]] = []
        dumps: list[tuple[str, Dumper | None]] = []
        for f in dataclasses.fields(cls):
            field_node = self.node(hints.get(f.name, Any))
            dumps.append((f.name, field_node.dump))
            prop = field_node.schema
            extra: Schema = {}
            if f.default is not dataclasses.MISSING:
                try:
                    extra["default"] = _to_json_value(f.default)
                except (TypeError, ValueError, OverflowError):
                    pass
            description = f.metadata.get("description") if f.metadata else None
            if isinstance(description, str):
                extra["description"] = description
            properties[f.name] = {**prop, **extra} if extra else prop
            if not f.init:
                continue  # computed in __post_init__: encoded, but not read back
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required:
                required_names.append(f.name)
            loads.append((f.name, field_node, required))
        definition.update(_object_schema(label, cls, properties, required_names))
        finish(_object_loader(node.desc, loads, cls, label), _dataclass_dumper(cls, dumps))
        return node

    def _typeddict(self, tp: Any, cls: type, mapping: dict[Any, Any]) -> _Node:
        label = _generic_label(cls, mapping)
        known, name, definition = self._struct(tp, cls, label)
        if known is not None:
            return known
        node, finish = self._struct_node(tp, name, f"{label} object")
        hints = _hints(cls, mapping)
        required_keys: frozenset[str] = getattr(cls, "__required_keys__", frozenset())
        properties: dict[str, Schema] = {}
        required_names = []
        loads: list[tuple[str, _Node, bool]] = []
        dumps: list[tuple[str, Dumper]] = []
        for key, hint in hints.items():
            key_node = self.node(hint)
            properties[key] = key_node.schema
            required = key in required_keys
            if required:
                required_names.append(key)
            loads.append((key, key_node, required))
            if key_node.dump is not None:
                dumps.append((key, key_node.dump))
        definition.update(_object_schema(label, cls, properties, required_names))
        finish(_object_loader(node.desc, loads, None, label), _typeddict_dumper(dumps))
        return node

    def _pydantic(self, tp: Any) -> _Node:
        known = self.structs.get(tp)
        if known is not None:
            return known[0]
        pydantic = sys.modules["pydantic"]
        adapter = pydantic.TypeAdapter(tp)
        validation_error = pydantic.ValidationError
        cls = get_origin(tp) or tp
        label = getattr(tp, "__name__", None) or _generic_label(cls, {})

        def load(v: Any) -> Any:
            try:
                return adapter.validate_python(v)
            except validation_error as exc:
                errors = exc.errors(include_url=False)
                first: dict[str, Any] = errors[0] if errors else {"msg": str(exc), "loc": ()}
                message = first.get("msg", "invalid")
                if len(errors) > 1:
                    message += f" (and {len(errors) - 1} more errors)"
                raise _Invalid(message, tail=_format_path(first.get("loc", ()))) from None

        try:
            schema = adapter.json_schema(ref_template="#/$defs/{model}")
        except Exception as exc:
            warnings.warn(f"no JSON Schema for {_type_name(tp)}: {exc}", stacklevel=4)
            schema = {}

        def dump(v: Any) -> Any:
            return adapter.dump_python(v, mode="json") if isinstance(v, cls) else v

        return self._foreign(tp, cls, label, load, dump, schema, schema.pop("$defs", {}))

    def _msgspec(self, tp: Any) -> _Node:
        known = self.structs.get(tp)
        if known is not None:
            return known[0]
        msgspec = sys.modules["msgspec"]
        validation_error = msgspec.ValidationError
        cls = get_origin(tp) or tp

        def load(v: Any) -> Any:
            try:
                return msgspec.convert(v, type=tp)
            except validation_error as exc:
                message, tail = _msgspec_split(str(exc))
                raise _Invalid(message, tail=tail) from None

        to_builtins = msgspec.to_builtins

        def dump(v: Any) -> Any:
            return to_builtins(v) if isinstance(v, cls) else v

        (schema,), components = msgspec.json.schema_components((tp,), ref_template="#/$defs/{name}")
        return self._foreign(tp, cls, _generic_label(cls, {}), load, dump, dict(schema), components)

    def _foreign(
        self,
        tp: Any,
        cls: type,
        label: str,
        load: Loader,
        dump: Dumper,
        schema: Schema,
        defs: dict[str, Schema],
    ) -> _Node:
        """A pydantic / msgspec type: its schema and ``$defs`` merged into this document."""
        self._merge_defs(defs, tp)
        ref = schema.get("$ref")
        if isinstance(ref, str) and len(schema) == 1 and ref.startswith("#/$defs/"):
            name = ref[len("#/$defs/") :]
            self.recursive.add(tp)  # keep as a $ref even at the top level
        elif self.defs.get(label) == schema:
            name = label  # already merged, e.g. as a nested model of another pydantic model
        else:
            name = self._reserve(tp, cls, label)
            self.defs[name] = schema
        node = _Node(load, {"$ref": f"#/$defs/{name}"}, label, dump=dump)
        self.structs[tp] = (node, name)
        return node


def _table_loader(
    table: dict[tuple[str, Any], Any], desc: str, fallback: Callable[[Any], Any] | None
) -> Loader:
    kinds = _KIND

    def load(v: Any) -> Any:
        kind = kinds.get(type(v))
        if kind is not None:
            found = table.get((kind, v), _NOPE)
            if found is not _NOPE:
                return found
        if fallback is not None:
            try:
                return fallback(v)
            except (ValueError, TypeError):
                pass
        raise _Invalid(f"expected {desc}, got {_got(v)}")

    return load


def _chain(dumps: list[Dumper]) -> Dumper | None:
    """One dumper trying several (each returns foreign values unchanged)."""
    if len(dumps) <= 1:
        return dumps[0] if dumps else None

    def dump(v: Any) -> Any:
        for d in dumps:
            out = d(v)
            if out is not v:
                return out
        return v

    return dump


_SEQUENCES = (list, tuple, set, frozenset)


def _dump_sequence(item: Dumper | None) -> Dumper | None:
    if item is None:
        return None

    def dump(v: Any) -> Any:
        return [item(x) for x in v] if type(v) in _SEQUENCES else v

    return dump


def _dump_mapping(value: Dumper | None) -> Dumper | None:
    if value is None:
        return None

    def dump(v: Any) -> Any:
        return {k: value(x) for k, x in v.items()} if type(v) is dict else v

    return dump


_MISSING_KEY: Any = object()


def _object_loader(desc: str, fields: list[tuple[str, _Node, bool]], cls: type | None, label: str) -> Loader:
    """A loader compiled for a JSON object with known keys, building ``cls(**fields)`` or a dict.

    Per key: ``x = v.get(key)``, missing required → error, ``x = L(x)`` unless ``x`` is already of
    the field's exact scalar class; failures get the key appended to their path.
    """
    namespace: dict[str, Any] = {
        "_Invalid": _Invalid,
        "_got": _got,
        "M": _MISSING_KEY,
        "cls": cls,
        "EXPECTED": f"expected {desc}, got ",
        "INVALID": f"invalid {label}: ",
    }
    body = []
    for i, (key, node, required) in enumerate(fields):
        body.append(f"        f = {key!r}")
        body.append(f"        x = v.get({key!r}, M)")
        indent = "        "
        if required:
            body.append("        if x is M:")
            body.append("            raise _Invalid('missing required ' + WHAT)")
        else:
            body.append("        if x is not M:")
            indent = "            "
        if node.load is not None:
            namespace[f"L{i}"] = node.load
            if node.exact is not None:
                namespace[f"E{i}"] = node.exact
                body.append(f"{indent}if x.__class__ is not E{i}:")
                body.append(f"{indent}    x = L{i}(x)")
            else:
                body.append(f"{indent}x = L{i}(x)")
        body.append(f"{indent}out[{key!r}] = x")
    namespace["WHAT"] = "field" if cls is not None else "key"
    if cls is not None:
        result = [
            "    try:",
            "        return cls(**out)",
            "    except Exception as exc:",
            "        raise _Invalid(INVALID + str(exc)) from None",
        ]
    else:
        result = ["    return out"]
    source = "\n".join(
        [
            "def load(v):",
            "    if v.__class__ is not dict:",
            "        raise _Invalid(EXPECTED + _got(v))",
            "    out = {}",
            "    f = None",
            "    try:",
            *(body or ["        pass"]),
            "    except _Invalid as exc:",
            "        exc.path.append(f)",
            "        raise",
            *result,
            "",
        ]
    )
    exec(source, namespace)
    loader: Loader = namespace["load"]
    return loader


def _dataclass_dumper(cls: type, fields: list[tuple[str, Dumper | None]]) -> Dumper:
    """``{"a": obj.a, "b": D1(obj.b)}`` compiled for ``cls`` (other values are left to ujson's hook)."""
    namespace: dict[str, Any] = {"cls": cls}
    items = []
    for i, (name, dump) in enumerate(fields):
        access = f"o.{name}" if name.isidentifier() else f"getattr(o, {name!r})"
        if dump is None:
            items.append(f"{name!r}: {access}")
        else:
            namespace[f"D{i}"] = dump
            items.append(f"{name!r}: D{i}({access})")
    source = (
        f"def dump(o):\n    if o.__class__ is not cls:\n        return o\n    return {{{', '.join(items)}}}\n"
    )
    exec(source, namespace)
    dumper: Dumper = namespace["dump"]
    return dumper


def _typeddict_dumper(keys: list[tuple[str, Dumper]]) -> Dumper | None:
    if not keys:
        return None

    def dump(v: Any) -> Any:
        if type(v) is not dict:
            return v
        out = dict(v)
        for key, d in keys:
            if key in out:
                out[key] = d(out[key])
        return out

    return dump


def _load_int_key(k: Any) -> int:
    try:
        return int(k)
    except ValueError:
        raise _Invalid(f"expected int, got {_got(k)}") from None


def _generic_label(cls: type, mapping: dict[Any, Any]) -> str:
    if not mapping:
        return cls.__name__
    return f"{cls.__name__}[{', '.join(_type_name(arg) for arg in mapping.values())}]"


def _object_schema(label: str, cls: type, properties: dict[str, Schema], required: list[str]) -> Schema:
    schema: Schema = {"title": label, "type": "object", "properties": properties}
    if required:
        schema["required"] = required
    doc = cls.__dict__.get("__doc__")
    # dataclasses without a docstring get "Name(field: type, ...)"; that is no description
    if isinstance(doc, str) and doc.strip() and not doc.startswith(f"{cls.__name__}("):
        schema["description"] = inspect.cleandoc(doc)
    return schema


def _hints(cls: type, mapping: dict[Any, Any]) -> dict[str, Any]:
    try:
        hints = get_type_hints(cls, include_extras=True)
    except Exception as exc:
        raise TypeError(f"cannot resolve the type hints of {_type_name(cls)}: {exc}") from exc
    if mapping:
        hints = {name: _substitute(hint, mapping) for name, hint in hints.items()}
    return hints


def _substitute(tp: Any, mapping: dict[Any, Any]) -> Any:
    if isinstance(tp, TypeVar):
        return mapping.get(tp, tp)
    parameters = getattr(tp, "__parameters__", ())
    if parameters and not isinstance(tp, type):
        try:
            return tp[tuple(mapping.get(p, p) for p in parameters)]
        except TypeError:
            return tp
    return tp


# --------------------------------------------------------------------------------------------
# Encoding: ujson's default hook, one converter per class
# --------------------------------------------------------------------------------------------


_ENCODERS: dict[type, Callable[[Any], Any]] = {}


def _default(obj: Any) -> Any:
    cls = type(obj)
    encode = _ENCODERS.get(cls)
    if encode is None:
        encode = _ENCODERS[cls] = _class_encoder(cls)
    return encode(obj)


def _class_encoder(cls: type) -> Callable[[Any], Any]:
    if issubclass(cls, enum.Enum):
        return _enum_value
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and issubclass(cls, pydantic.BaseModel):
        return _pydantic_dump
    msgspec = sys.modules.get("msgspec")
    if msgspec is not None and issubclass(cls, msgspec.Struct):
        return msgspec.to_builtins
    if dataclasses.is_dataclass(cls):
        names = tuple(f.name for f in dataclasses.fields(cls))

        def encode_dataclass(obj: Any) -> dict[str, Any]:
            return {name: getattr(obj, name) for name in names}

        return encode_dataclass
    if issubclass(cls, (dt.datetime, dt.date, dt.time)):
        return _isoformat
    if issubclass(cls, uuid.UUID):
        return str
    if issubclass(cls, (set, frozenset, abc.Set)):
        return list
    if issubclass(cls, abc.Mapping):
        return dict

    def unsupported(obj: Any) -> Any:
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")

    return unsupported


def _enum_value(obj: Any) -> Any:
    return obj.value


def _pydantic_dump(obj: Any) -> Any:
    return obj.model_dump(mode="json")


def _isoformat(obj: Any) -> Any:
    return obj.isoformat()
