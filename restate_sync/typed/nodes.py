"""Compiled nodes — how to load, dump and describe one type — and the primitive ones.

A serde is compiled once into a tree of :class:`Node` s, one per type occurrence; per call only
the nodes' ``load`` / ``dump`` functions run. This module defines the node and the shared nodes
for ``Any``, ``str``, ``int``, ``float``, ``bool``, ``None``, dates and times, ``UUID`` and
``Decimal``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable
from types import NoneType
from typing import Any

from .errors import Invalid, describe

Loader = Callable[[Any], Any]  # JSON data -> typed value, raising Invalid
Dumper = Callable[[Any], Any]  # typed value -> JSON data (other values returned unchanged)
Schema = dict[str, Any]


class Node:
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
) -> Node:
    if convert is None:

        def load(v: Any) -> Any:
            if type(v) is accept:
                return v
            raise Invalid(f"expected {desc}, got {describe(v)}")

        node = Node(load, {"type": json_type}, desc, identity=True)
        node.exact = accept
        return node

    def load_converting(v: Any) -> Any:
        if type(v) is accept:
            return v
        result = convert(v)
        if result is _NOPE:
            raise Invalid(f"expected {desc}, got {describe(v)}")
        return result

    node = Node(load_converting, {"type": json_type}, desc)
    node.exact = accept
    return node


_NOPE: Any = object()


def _int_from(v: Any) -> Any:
    return int(v) if type(v) is float and v.is_integer() else _NOPE


def _float_from(v: Any) -> Any:
    return float(v) if type(v) is int else _NOPE


def _string_node(desc: str, fmt: str, parse: Callable[[str], Any], dump: Dumper) -> Node:
    def load(v: Any) -> Any:
        if type(v) is str:
            try:
                return parse(v)
            except ValueError:
                pass
        raise Invalid(f"expected {desc}, got {describe(v)}")

    return Node(load, {"type": "string", "format": fmt}, desc, dump=dump)


def _dump_iso(v: Any) -> Any:
    return v.isoformat() if isinstance(v, (dt.date, dt.time)) else v


def _dump_uuid(v: Any) -> Any:
    return str(v) if isinstance(v, uuid.UUID) else v


def _load_decimal(v: Any) -> Any:
    if type(v) in (int, float, str):
        try:
            result = decimal.Decimal(str(v))
        except decimal.InvalidOperation:
            pass
        else:
            if result.is_finite():
                return result
    raise Invalid(f"expected decimal number, got {describe(v)}")


def _dump_decimal(v: Any) -> Any:
    return str(v) if isinstance(v, decimal.Decimal) else v  # exact, unlike a JSON number


def _load_null(v: Any) -> Any:
    if v is None:
        return None
    raise Invalid(f"expected null, got {describe(v)}")


ANY = Node(None, {}, "any")
PRIMITIVES: dict[Any, Node] = {
    str: _scalar_node("string", "str", str),
    int: _scalar_node("integer", "int", int, _int_from),
    float: _scalar_node("number", "float", float, _float_from),
    bool: _scalar_node("boolean", "bool", bool),
    NoneType: Node(_load_null, {"type": "null"}, "null", identity=True),
    dt.datetime: _string_node("ISO 8601 date-time string", "date-time", dt.datetime.fromisoformat, _dump_iso),
    dt.date: _string_node("ISO 8601 date string", "date", dt.date.fromisoformat, _dump_iso),
    dt.time: _string_node("ISO 8601 time string", "time", dt.time.fromisoformat, _dump_iso),
    uuid.UUID: _string_node("UUID string", "uuid", uuid.UUID, _dump_uuid),
    decimal.Decimal: Node(
        _load_decimal, {"anyOf": [{"type": "number"}, {"type": "string"}]}, "decimal", dump=_dump_decimal
    ),
}


def load_int_key(k: Any) -> int:
    """A JSON object key (a string) read as a ``dict[int, ...]`` key."""
    try:
        return int(k)
    except ValueError:
        raise Invalid(f"expected int, got {describe(k)}") from None
