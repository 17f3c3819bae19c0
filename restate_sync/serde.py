"""Serialization of handler inputs/outputs, state values and run results.

A serde is any object with ``serialize(obj) -> bytes`` and ``deserialize(data: bytes) -> obj``;
it may also offer ``json_schema() -> dict`` and ``content_type``. :class:`JsonSerde` (ujson) is
the default; :class:`BytesSerde` passes raw bytes through.
"""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import ujson

__all__ = ["DEFAULT_SERDE", "BytesSerde", "JsonSerde", "Serde", "SerdeError"]

T = TypeVar("T")


class SerdeError(ValueError):
    """A value could not be serialized or deserialized."""


@runtime_checkable
class Serde(Protocol[T]):
    """What the SDK needs from a serializer."""

    def serialize(self, obj: T) -> bytes: ...

    def deserialize(self, data: bytes) -> T: ...


class JsonSerde(Generic[T]):
    """JSON via ujson. An empty body deserializes to ``None``; ``None`` serializes to ``null``."""

    content_type = "application/json"

    def serialize(self, obj: T) -> bytes:
        try:
            return ujson.dumps(obj, ensure_ascii=False, escape_forward_slashes=False).encode("utf-8")
        except (TypeError, OverflowError, ValueError) as exc:
            raise SerdeError(f"cannot encode {type(obj).__name__} as JSON: {exc}") from exc

    def deserialize(self, data: bytes) -> T:
        if not data:
            return None  # type: ignore[return-value]  # pyright: ignore[reportReturnType]
        try:
            value: T = ujson.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SerdeError(f"invalid JSON: {exc}") from exc
        return value

    def __repr__(self) -> str:
        return "JsonSerde()"


class BytesSerde:
    """Raw bytes, unchanged in both directions (``application/octet-stream``)."""

    content_type = "application/octet-stream"

    def serialize(self, obj: bytes) -> bytes:
        if isinstance(obj, (bytearray, memoryview)):
            return bytes(obj)
        if not isinstance(obj, bytes):
            raise SerdeError(f"BytesSerde needs bytes, got {type(obj).__name__}")
        return obj

    def deserialize(self, data: bytes) -> bytes:
        return data

    def __repr__(self) -> str:
        return "BytesSerde()"


DEFAULT_SERDE: JsonSerde[Any] = JsonSerde()
