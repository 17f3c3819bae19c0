"""Nodes built from other nodes or from values: unions, literals, enums, lists / sets / tuples, dicts.

No type-hint walking happens here: the compiler resolves the member / item / value types into
nodes and passes them in. Each builder returns a :class:`~.nodes.Node` whose loader checks and
converts without looking at types again, and whose dumper (if any) only converts the values it
knows.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from types import NoneType
from typing import Any

import ujson

from .errors import Invalid, describe
from .nodes import Dumper, Loader, Node, Schema

# JSON scalar lookup keys: 1 == 1.0 share a key (numbers), bools don't collide with ints
_KIND = {bool: "b", int: "n", float: "n", str: "s", NoneType: "z"}
_NOPE: Any = object()


def union_node(members: list[Node], args: tuple[Any, ...]) -> Node:
    """``A | B | ...`` (``members``: the nodes of ``args``); ``T | None`` gets a fast path."""
    schema = {"anyOf": [member.schema for member in members]}
    desc = " | ".join(member.desc for member in members)
    dump = _chain([member.dump for member in members if member.dump is not None])
    if any(member.load is None for member in members):
        return Node(None, schema, desc, dump=dump)
    identity = all(member.identity for member in members)
    others = [m for m, a in zip(members, args, strict=True) if a is not None and a is not NoneType]
    if len(others) == 1 and len(members) == 2:
        inner = others[0].load
        assert inner is not None

        def load_optional(v: Any) -> Any:
            return None if v is None else inner(v)

        return Node(load_optional, schema, desc, identity, dump)

    loads = [member.load for member in members if member.load is not None]

    def load_union(v: Any) -> Any:
        errors = []
        for load in loads:
            try:
                return load(v)
            except Invalid as exc:
                errors.append(exc)
        deep = [exc for exc in errors if exc.path or exc.tail]
        if len(deep) == 1:
            raise deep[0]
        raise Invalid(f"expected {desc}, got {describe(v)}")

    return Node(load_union, schema, desc, identity, dump)


def literal_node(args: tuple[Any, ...]) -> Node:
    """``Literal[...]`` of JSON scalars and enum members."""
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
    return Node(_table_loader(table, desc, None), schema, desc, dump=_dump_enum if has_enum else None)


def enum_node(cls: type[enum.Enum]) -> Node:
    """An enum, read from its members' values (``Flag`` s and non-scalar values through the class)."""
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
    return Node(_table_loader(table, desc, fallback), schema, desc, dump=_dump_enum)


def list_node(item: Node, kind: type, desc: str) -> Node:
    """A JSON array of ``item`` read into a ``kind`` (list, set, frozenset or tuple)."""
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
                raise Invalid(need + describe(v))
            if inner is not None:
                i = 0
                try:
                    for i, x in enumerate(v):  # noqa: B007
                        inner(x)
                except Invalid as exc:
                    exc.path.append(i)
                    raise
            return v

        return Node(load_checked, schema, desc, identity=True, dump=dump)

    def load_items(v: Any) -> Any:
        if type(v) is not list:
            raise Invalid(need + describe(v))
        if inner is None:
            out = v
        else:
            out = []
            i = 0
            try:
                for i, x in enumerate(v):  # noqa: B007
                    out.append(inner(x))
            except Invalid as exc:
                exc.path.append(i)
                raise
        if kind is list:
            return out
        try:
            return kind(out)
        except TypeError as exc:
            raise Invalid(f"cannot build a {desc}: {exc}") from None

    return Node(load_items, schema, desc, dump=dump)


def tuple_node(items: list[Node]) -> Node:
    """A fixed-length tuple: a JSON array of exactly ``len(items)`` items."""
    count = len(items)
    schema: Schema = {"type": "array", "minItems": count, "maxItems": count}
    if items:
        schema["prefixItems"] = [item.schema for item in items]
    loads = [item.load for item in items]
    desc = f"array of {count} items"

    def load(v: Any) -> Any:
        if type(v) is not list or len(v) != count:
            got = f"array of {len(v)} items" if type(v) is list else describe(v)
            raise Invalid(f"expected {desc}, got {got}")
        out = []
        i = 0
        try:
            for i, (item_load, x) in enumerate(zip(loads, v, strict=True)):  # noqa: B007
                out.append(x if item_load is None else item_load(x))
        except Invalid as exc:
            exc.path.append(i)
            raise
        return tuple(out)

    dumps = [item.dump for item in items]
    dump: Dumper | None = None
    if any(d is not None for d in dumps):

        def dump_tuple(v: Any) -> Any:
            if type(v) is not tuple and type(v) is not list:
                return v
            return [x if d is None else d(x) for d, x in zip(dumps, v, strict=False)]

        dump = dump_tuple

    return Node(load, schema, "tuple", dump=dump)


def dict_node(key_load: Loader | None, key_schema: Schema | None, value: Node) -> Node:
    """A JSON object read into a dict (``key_load`` converts keys, ``None``: str keys as they are)."""
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
                raise Invalid(f"expected dict, got {describe(v)}")
            if inner is not None:
                k = None
                try:
                    for k, x in v.items():  # noqa: B007
                        inner(x)
                except Invalid as exc:
                    exc.path.append(k)
                    raise
            return v

        return Node(load_checked, schema, "dict", identity=True, dump=dump)

    def load_items(v: Any) -> Any:
        if type(v) is not dict:
            raise Invalid(f"expected dict, got {describe(v)}")
        out = {}
        k = None
        try:
            for k, x in v.items():
                if key_load is None:
                    key = k
                else:
                    try:
                        key = key_load(k)
                    except Invalid as exc:
                        exc.message = f"invalid key: {exc.message}"
                        raise
                out[key] = x if inner is None else inner(x)
        except Invalid as exc:
            exc.path.append(k)
            raise
        return out

    return Node(load_items, schema, "dict", dump=dump)


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
        raise Invalid(f"expected {desc}, got {describe(v)}")

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


def _dump_enum(v: Any) -> Any:
    return v.value if isinstance(v, enum.Enum) else v


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
