"""What kind of type is this: serde objects, wrappers, pydantic / msgspec / TypedDict classes, hints.

Only inspects types (never values), so it runs while a serde is built, not per call. pydantic and
msgspec are never imported here: a class can only be one of theirs if its library is already in
``sys.modules``.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from collections.abc import Callable
from typing import Any, TypeVar, get_args, get_origin, get_type_hints


def type_name(tp: Any) -> str:
    """``Item`` / ``list[int]``: a type as error messages and reprs spell it."""
    if isinstance(tp, type) and not get_args(tp):
        return tp.__qualname__
    return repr(tp).replace("typing.", "")


def is_serde_object(obj: Any) -> bool:
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


def strip_top(tp: Any) -> tuple[Any, Any]:
    """Unwrap ``Annotated`` / ``NewType`` / type aliases at the top; a serde in ``Annotated`` metadata wins."""
    while True:
        if get_origin(tp) is typing.Annotated:
            for meta in tp.__metadata__:
                if is_serde_object(meta):
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


def is_pydantic(tp: Any) -> bool:
    """A pydantic v2 ``BaseModel`` subclass or pydantic dataclass (pydantic already imported)."""
    if not isinstance(tp, type):
        return False
    pydantic = sys.modules.get("pydantic")
    if pydantic is None:
        return False
    if "pydantic" in _mro_modules(tp) and issubclass(tp, pydantic.BaseModel):
        return True
    return dataclasses.is_dataclass(tp) and "__pydantic_validator__" in tp.__dict__


def is_msgspec_struct(tp: Any) -> bool:
    """A msgspec ``Struct`` subclass (msgspec already imported)."""
    if not isinstance(tp, type):
        return False
    msgspec = sys.modules.get("msgspec")
    return msgspec is not None and issubclass(tp, msgspec.Struct)


def is_typeddict(tp: Any) -> bool:
    """A ``TypedDict`` class."""
    return (
        isinstance(tp, type)
        and issubclass(tp, dict)
        and hasattr(tp, "__required_keys__")
        and hasattr(tp, "__total__")
    )


def json_schema_classmethod(tp: Any) -> Callable[[], Any] | None:
    """``tp.json_schema`` if ``tp`` is a class defining it as a class / static method."""
    if not isinstance(tp, type):
        return None
    for klass in tp.__mro__:
        member = klass.__dict__.get("json_schema")
        if member is not None:
            return (
                typing.cast(Any, tp).json_schema if isinstance(member, (classmethod, staticmethod)) else None
            )
    return None


def generic_label(cls: type, mapping: dict[Any, Any]) -> str:
    """``Box`` / ``Box[int]``: a (generic) struct's name in schemas and messages."""
    if not mapping:
        return cls.__name__
    return f"{cls.__name__}[{', '.join(type_name(arg) for arg in mapping.values())}]"


def resolve_hints(cls: type, mapping: dict[Any, Any]) -> dict[str, Any]:
    """The resolved field hints of ``cls``, its type parameters replaced per ``mapping``."""
    try:
        hints = get_type_hints(cls, include_extras=True)
    except Exception as exc:
        raise TypeError(f"cannot resolve the type hints of {type_name(cls)}: {exc}") from exc
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
