"""The serde classes :func:`~restate_sync.typed.serde_for` returns.

:class:`TypedJsonSerde` runs a compiled loader / dumper around ujson; :class:`PydanticSerde` and
:class:`MsgspecSerde` hand the work to their library's prebuilt adapter / decoder;
:class:`EmptySerde` (no input / empty output) and :class:`RawBytesSerde` (raw bytes) publish no
schema. Every one has ``content_type`` and ``json_schema() -> dict | None`` and raises
:class:`~restate_sync.serde.SerdeError` naming the offending field path.
"""

from __future__ import annotations

import copy
import sys
import warnings
from typing import Any

import ujson

from ..serde import BytesSerde, JsonSerde, SerdeError
from .classify import type_name
from .encode import default
from .errors import Invalid, msgspec_split, pydantic_message
from .nodes import Dumper, Loader, Schema


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
            text = ujson.dumps(data, ensure_ascii=False, escape_forward_slashes=False, default=default)
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
        except Invalid as exc:
            raise SerdeError(exc.render()) from None
        except RecursionError:
            raise SerdeError("input is nested too deeply") from None

    def json_schema(self) -> Schema | None:
        return copy.deepcopy(self._schema)

    def __repr__(self) -> str:
        return f"TypedJsonSerde({type_name(self.type)})"


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
            warnings.warn(f"no JSON Schema for {type_name(tp)}: {exc}", stacklevel=3)
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
            raise SerdeError(pydantic_message(exc)) from None

    def json_schema(self) -> Schema | None:
        return copy.deepcopy(self._schema)

    def __repr__(self) -> str:
        return f"PydanticSerde({type_name(self.type)})"


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
            message, tail = msgspec_split(str(exc))
            raise SerdeError(Invalid(message, tail=tail).render()) from None
        except self._decode_error as exc:
            raise SerdeError(f"invalid JSON: {exc}") from None

    def json_schema(self) -> Schema | None:
        return copy.deepcopy(self._schema)

    def __repr__(self) -> str:
        return f"MsgspecSerde({type_name(self.type)})"


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
