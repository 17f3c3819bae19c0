"""ujson's ``default`` hook: whatever the type does not describe, converted by one cached function per class.

Values in positions a serde's type does not describe (``Any``, subclasses, a dict returned for a
struct) reach ujson as they are; when ujson cannot encode one it calls :func:`default`, which
converts dataclasses, enums, pydantic models, msgspec structs, sets, datetimes and UUIDs. The
converter for a class is chosen once and cached.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import sys
import uuid
from collections import abc
from collections.abc import Callable
from typing import Any

import ujson

_ENCODERS: dict[type, Callable[[Any], Any]] = {}


def default(obj: Any) -> Any:
    """ujson's ``default`` hook: ``obj`` as something ujson can encode (or ``TypeError``)."""
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
        to_builtins: Callable[[Any], Any] = msgspec.to_builtins
        return to_builtins
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


def to_json_value(value: Any) -> Any:
    """``value`` as plain JSON data (for schema defaults / enum values), or raise ``TypeError``."""
    return ujson.loads(ujson.dumps(value, default=default))
