"""The node compiler: walks a type's hints once, building its loader, dumper and JSON Schema.

:class:`Compiler` turns one type into a tree of :class:`~.nodes.Node` s and collects the
``$defs`` of its schema document on the way. Structs (dataclasses, TypedDicts, pydantic models,
msgspec structs) become ``$defs`` entries referenced with ``#/$defs/<Name>``; recursive structs
are reached through trampolines until their generated loader and dumper exist. Unions, literals,
enums and containers are built by :mod:`.composites`, struct loaders and dumpers by :mod:`.codegen`.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
import sys
import types
import typing
import warnings
from collections import abc
from collections.abc import Callable
from types import NoneType
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

from .classify import (
    generic_label,
    is_msgspec_struct,
    is_pydantic,
    is_typeddict,
    json_schema_classmethod,
    resolve_hints,
    strip_top,
    type_name,
)
from .codegen import dataclass_dumper, object_loader, typeddict_dumper
from .composites import dict_node, enum_node, list_node, literal_node, tuple_node, union_node
from .encode import to_json_value
from .errors import Invalid, format_path, msgspec_split
from .nodes import ANY, PRIMITIVES, Dumper, Loader, Node, Schema, load_int_key

_LIST_ORIGINS = {list, abc.Sequence, abc.MutableSequence, abc.Collection, abc.Iterable}
_SET_ORIGINS = {set, frozenset, abc.Set, abc.MutableSet}
_DICT_ORIGINS = {dict, abc.Mapping, abc.MutableMapping}
_WRAPPER_NAMES = {"Required", "NotRequired", "ReadOnly", "Final"}


class Compiler:
    """Builds nodes for one serde; collects the ``$defs`` of its schema document."""

    def __init__(self) -> None:
        self.defs: dict[str, Schema] = {}
        self.structs: dict[Any, tuple[Node, str]] = {}
        self.in_progress: set[Any] = set()
        self.recursive: set[Any] = set()
        self.opaque: list[type] = []  # unknown classes, decoded as plain JSON data

    # -- the document -----------------------------------------------------------------------

    def document(self, tp: Any, node: Node) -> Schema | None:
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
                    f"JSON Schema of {type_name(owner)}: two different types are named {name!r}; "
                    "rename one of them"
                )
            self.defs[name] = schema

    def _struct(self, key: Any, cls: type, label: str) -> tuple[Node | None, str, Schema]:
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
    ) -> tuple[Node, Callable[[Loader, Dumper | None], None]]:
        """Record a struct being built; the returned function completes it with its loader and dumper.

        Until then ``load`` / ``dump`` are trampolines, so recursive references reach the final ones.
        """
        final: list[Any] = [None, None]

        def load_later(v: Any) -> Any:
            return final[0](v)

        def dump_later(v: Any) -> Any:
            dump = final[1]
            return v if dump is None else dump(v)

        node = Node(load_later, {"$ref": f"#/$defs/{name}"}, desc, dump=dump_later)
        self.structs[key] = (node, name)
        self.in_progress.add(key)

        def finish(load: Loader, dump: Dumper | None) -> None:
            final[0] = node.load = load
            final[1] = node.dump = dump
            self.in_progress.discard(key)

        return node, finish

    # -- dispatch -----------------------------------------------------------------------------

    def node(self, tp: Any) -> Node:
        origin = get_origin(tp)
        if origin is typing.Annotated:
            return self.node(tp.__origin__)
        if isinstance(tp, str | typing.ForwardRef):
            raise TypeError(
                f"unresolved forward reference {tp!r}: resolve annotations (typing.get_type_hints) "
                "before asking for a serde"
            )
        if tp is Any or tp is object:
            return ANY
        if tp is None:
            tp = NoneType
        primitive = PRIMITIVES.get(tp) if isinstance(tp, type) else None
        if primitive is not None:
            return primitive
        if isinstance(tp, typing.NewType):
            return self.node(tp.__supertype__)
        if isinstance(tp, TypeVar):
            if tp.__bound__ is not None:
                return self.node(tp.__bound__)
            if tp.__constraints__:
                return self.node(Union[tp.__constraints__])  # noqa: UP007
            return ANY
        if type(tp).__name__ == "TypeAliasType" and hasattr(tp, "__value__"):
            return self.node(tp.__value__)
        if origin is not None:
            return self._generic(tp, origin, get_args(tp))
        if tp in _LIST_ORIGINS:
            return list_node(ANY, list, "list")
        if tp in _SET_ORIGINS:
            return list_node(ANY, frozenset if tp is frozenset else set, tp.__name__)
        if tp is tuple:
            return list_node(ANY, tuple, "tuple")
        if tp in _DICT_ORIGINS:
            return self._dict(str, ANY)
        if not isinstance(tp, type):
            return ANY  # some other typing construct: accept any JSON
        if issubclass(tp, enum.Enum):
            return enum_node(tp)
        if is_pydantic(tp):
            return self._pydantic(tp)
        if is_msgspec_struct(tp):
            return self._msgspec(tp)
        if dataclasses.is_dataclass(tp):
            return self._dataclass(tp, tp, {})
        if is_typeddict(tp):
            return self._typeddict(tp, tp, {})
        schema_of = json_schema_classmethod(tp)
        if schema_of is not None:
            schema = schema_of()
            if not isinstance(schema, dict):
                raise TypeError(
                    f"{type_name(tp)}.json_schema() must return a dict, not {type(schema).__name__}"
                )
            return Node(None, schema, tp.__name__)
        self.opaque.append(tp)
        return Node(None, {}, tp.__name__)  # unknown class: plain JSON, no schema

    def _generic(self, tp: Any, origin: Any, args: tuple[Any, ...]) -> Node:
        if origin is Union or origin is types.UnionType:
            return union_node([self.node(arg) for arg in args], args)
        if origin is Literal:
            return literal_node(args)
        if getattr(origin, "_name", None) in _WRAPPER_NAMES or origin is ClassVar:
            return self.node(args[0]) if args else ANY
        if origin in _LIST_ORIGINS:
            return list_node(self.node(args[0]) if args else ANY, list, "list")
        if origin in _SET_ORIGINS:
            kind = frozenset if origin is frozenset else set
            return list_node(self.node(args[0]) if args else ANY, kind, kind.__name__)
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return list_node(self.node(args[0]), tuple, "tuple")
            if args == ((),):
                args = ()
            return tuple_node([self.node(arg) for arg in args])
        if origin in _DICT_ORIGINS:
            return self._dict(args[0] if args else str, self.node(args[1]) if len(args) > 1 else ANY)
        if isinstance(origin, type):
            mapping = dict(zip(getattr(origin, "__parameters__", ()), args, strict=False))
            if is_pydantic(tp) or is_pydantic(origin):
                return self._pydantic(tp)
            if is_msgspec_struct(origin):
                return self._msgspec(tp)
            if dataclasses.is_dataclass(origin):
                return self._dataclass(tp, origin, mapping)
            if is_typeddict(origin):
                return self._typeddict(tp, origin, mapping)
            return self.node(origin)
        return ANY

    # -- dicts ------------------------------------------------------------------------------------

    def _dict(self, key_tp: Any, value: Node) -> Node:
        key_load, key_schema = self._dict_key(key_tp)
        return dict_node(key_load, key_schema, value)

    def _dict_key(self, key_tp: Any) -> tuple[Loader | None, Schema | None]:
        key_tp, _ = strip_top(key_tp)
        if key_tp is str or key_tp is Any or key_tp is object:
            return None, None
        if key_tp is int:
            return load_int_key, {"pattern": "^-?[0-9]+$"}
        node = self.node(key_tp)
        is_str_enum = isinstance(key_tp, type) and issubclass(key_tp, str) and issubclass(key_tp, enum.Enum)
        is_str_literal = get_origin(key_tp) is Literal and all(type(a) is str for a in get_args(key_tp))
        if is_str_enum or is_str_literal:
            return node.load, node.schema
        raise TypeError(
            f"dict keys must be str, int, a str-valued Enum (StrEnum) or a Literal of str, not {type_name(key_tp)}"
        )

    # -- structs --------------------------------------------------------------------------------

    def _dataclass(self, tp: Any, cls: type, mapping: dict[Any, Any]) -> Node:
        label = generic_label(cls, mapping)
        known, name, definition = self._struct(tp, cls, label)
        if known is not None:
            return known
        node, finish = self._struct_node(tp, name, f"{label} object")
        hints = resolve_hints(cls, mapping)
        properties: dict[str, Schema] = {}
        required_names = []
        loads: list[tuple[str, Node, bool]] = []
        dumps: list[tuple[str, Dumper | None]] = []
        for f in dataclasses.fields(cls):
            field_node = self.node(hints.get(f.name, Any))
            dumps.append((f.name, field_node.dump))
            prop = field_node.schema
            extra: Schema = {}
            if f.default is not dataclasses.MISSING:
                try:
                    extra["default"] = to_json_value(f.default)
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
        finish(object_loader(node.desc, loads, cls, label), dataclass_dumper(cls, dumps))
        return node

    def _typeddict(self, tp: Any, cls: type, mapping: dict[Any, Any]) -> Node:
        label = generic_label(cls, mapping)
        known, name, definition = self._struct(tp, cls, label)
        if known is not None:
            return known
        node, finish = self._struct_node(tp, name, f"{label} object")
        hints = resolve_hints(cls, mapping)
        required_keys: frozenset[str] = getattr(cls, "__required_keys__", frozenset())
        properties: dict[str, Schema] = {}
        required_names = []
        loads: list[tuple[str, Node, bool]] = []
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
        finish(object_loader(node.desc, loads, None, label), typeddict_dumper(dumps))
        return node

    def _pydantic(self, tp: Any) -> Node:
        known = self.structs.get(tp)
        if known is not None:
            return known[0]
        pydantic = sys.modules["pydantic"]
        adapter = pydantic.TypeAdapter(tp)
        validation_error = pydantic.ValidationError
        cls = get_origin(tp) or tp
        label = getattr(tp, "__name__", None) or generic_label(cls, {})

        def load(v: Any) -> Any:
            try:
                return adapter.validate_python(v)
            except validation_error as exc:
                errors = exc.errors(include_url=False)
                first: dict[str, Any] = errors[0] if errors else {"msg": str(exc), "loc": ()}
                message = first.get("msg", "invalid")
                if len(errors) > 1:
                    message += f" (and {len(errors) - 1} more errors)"
                raise Invalid(message, tail=format_path(first.get("loc", ()))) from None

        try:
            schema = adapter.json_schema(ref_template="#/$defs/{model}")
        except Exception as exc:
            warnings.warn(f"no JSON Schema for {type_name(tp)}: {exc}", stacklevel=4)
            schema = {}

        def dump(v: Any) -> Any:
            return adapter.dump_python(v, mode="json") if isinstance(v, cls) else v

        return self._foreign(tp, cls, label, load, dump, schema, schema.pop("$defs", {}))

    def _msgspec(self, tp: Any) -> Node:
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
                message, tail = msgspec_split(str(exc))
                raise Invalid(message, tail=tail) from None

        to_builtins = msgspec.to_builtins

        def dump(v: Any) -> Any:
            return to_builtins(v) if isinstance(v, cls) else v

        (schema,), components = msgspec.json.schema_components((tp,), ref_template="#/$defs/{name}")
        return self._foreign(tp, cls, generic_label(cls, {}), load, dump, dict(schema), components)

    def _foreign(
        self,
        tp: Any,
        cls: type,
        label: str,
        load: Loader,
        dump: Dumper,
        schema: Schema,
        defs: dict[str, Schema],
    ) -> Node:
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
        node = Node(load, {"$ref": f"#/$defs/{name}"}, label, dump=dump)
        self.structs[tp] = (node, name)
        return node


def _object_schema(label: str, cls: type, properties: dict[str, Schema], required: list[str]) -> Schema:
    schema: Schema = {"title": label, "type": "object", "properties": properties}
    if required:
        schema["required"] = required
    doc = cls.__dict__.get("__doc__")
    # dataclasses without a docstring get "Name(field: type, ...)"; that is no description
    if isinstance(doc, str) and doc.strip() and not doc.startswith(f"{cls.__name__}("):
        schema["description"] = inspect.cleandoc(doc)
    return schema
