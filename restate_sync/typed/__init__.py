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

pydantic and msgspec stay optional: this package never imports them. A class can only be a
pydantic model / msgspec struct if its library is already in ``sys.modules``.

Nothing type-introspective runs per call: ``serde_for`` compiles loaders (JSON data → typed
values, with checks) and dumpers (typed values → JSON data) once; dataclass / TypedDict loaders and
dataclass dumpers are generated Python functions. Positions the type does not describe (``Any``,
subclasses, dicts returned for structs) are encoded by ujson's ``default`` hook, which converts
dataclasses, enums, pydantic models, msgspec structs, sets, datetimes and UUIDs with one cached
converter per class. Outputs are converted, not validated (pydantic validates a dict returned
for a model).

The package, bottom layer first (each module imports only from the ones above it):

- ``errors``: the decode failure compiled loaders raise, and its field path;
- ``classify``: what kind of type this is (serde object, pydantic model, msgspec struct,
  TypedDict...), and the resolved hints of (generic) structs;
- ``encode``: ujson's ``default`` hook;
- ``nodes``: the compiled :class:`~.nodes.Node` and the primitive nodes;
- ``composites``: unions, literals, enums, lists / sets / tuples and dicts built from nodes;
- ``codegen``: the generated struct loaders and dumpers;
- ``compiler``: walks a type into nodes and its schema document;
- ``serdes``: the serde classes; this module: :func:`serde_for` and friends.
"""

from __future__ import annotations

import dataclasses
import enum
from types import NoneType
from typing import Any, cast

from ..serde import Serde
from .classify import is_msgspec_struct, is_pydantic, is_serde_object, is_typeddict, strip_top
from .compiler import Compiler
from .nodes import Schema
from .serdes import EmptySerde, MsgspecSerde, PydanticSerde, RawBytesSerde, TypedJsonSerde

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


def is_empty_type(tp: Any) -> bool:
    """Whether ``tp`` means "no input" / "empty output": ``None``, ``type(None)`` or an :class:`EmptySerde`."""
    return tp is None or tp is NoneType or isinstance(tp, EmptySerde)


def serde_for(tp: Any) -> Serde[Any]:
    """The serde for a handler input/output annotation or explicit ``input=`` / ``output=`` value.

    Raises ``TypeError`` for things that can never work (an unresolved string annotation, a
    serde class instead of an instance, unsupported ``dict`` key types, conflicting schema names).
    """
    if is_serde_object(tp):
        given: Serde[Any] = tp
        return given
    tp, annotated = strip_top(tp)
    if annotated is not None:
        found: Serde[Any] = annotated
        return found
    if is_empty_type(tp):
        return EmptySerde()
    if tp is bytes or tp is bytearray:
        return RawBytesSerde()
    if is_pydantic(tp):
        return PydanticSerde(tp)
    if is_msgspec_struct(tp):
        return MsgspecSerde(tp)
    if tp is Any or tp is object:
        return TypedJsonSerde(tp, None, None)
    if isinstance(tp, type) and not _is_struct_class(tp):
        serialize = getattr(tp, "serialize", None)
        deserialize = getattr(tp, "deserialize", None)
        if callable(serialize) and callable(deserialize):
            raise TypeError(f"{tp.__name__} looks like a serde class; pass an instance: {tp.__name__}()")
    compiler = Compiler()
    node = compiler.node(tp)
    serde = TypedJsonSerde(tp, node.load, compiler.document(tp, node), node.dump)
    serde.opaque = tuple(dict.fromkeys(compiler.opaque))
    return serde


def schema_for(tp: Any) -> Schema | None:
    """The JSON Schema :func:`serde_for` would publish for ``tp`` (``None``: no schema)."""
    schema_of = getattr(serde_for(tp), "json_schema", None)
    return cast("Schema | None", schema_of()) if callable(schema_of) else None


def _is_struct_class(tp: type) -> bool:
    """A class ``serde_for`` decodes into (pydantic models and msgspec structs have returned already)."""
    return dataclasses.is_dataclass(tp) or is_typeddict(tp) or issubclass(tp, enum.Enum)
