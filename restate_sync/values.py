"""The serdes of the values handlers pass through the context: state, run results, promises, ...

* With ``type=T`` (a type, or a serde object) a value is encoded and decoded by
  :func:`~restate_sync.typed.serde_for` ``(T)``: a dataclass, TypedDict, pydantic model, msgspec
  Struct, enum, primitive or generic alias comes back as that type.
* Without one, :data:`ANY` is used: JSON that also encodes dataclasses, pydantic models, msgspec
  Structs, enums, sets, datetimes and UUIDs, and decodes to plain JSON data (``Any``).
* A ``run`` block without ``type=`` takes its type from the function's return annotation; with
  none, its result must be plain JSON (:data:`STRICT`), so a struct never silently comes back as a
  ``dict``: encoding it fails the step with a message asking for the type.

Serdes are compiled once per type (at most :data:`CACHE_LIMIT` types are kept; beyond that they
are compiled per use).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import ujson

from .errors import MisuseError
from .serde import DEFAULT_SERDE, JsonSerde, Serde, SerdeError
from .typed import serde_for
from .typed.encode import default

__all__ = ["ANY", "CACHE_LIMIT", "STRICT", "AnyJsonSerde", "describe_type", "return_serde", "serde_of"]


class AnyJsonSerde(JsonSerde[Any]):
    """JSON for values of any type: plain JSON data as is, and whatever ujson cannot encode
    (dataclasses, pydantic models, msgspec Structs, enums, sets, datetimes, UUIDs) converted by
    the typed package's ``default`` hook. Decodes to plain JSON data."""

    def serialize(self, obj: Any) -> bytes:
        try:  # plain JSON first: the hook costs even when it is never called
            text = ujson.dumps(obj, ensure_ascii=False, escape_forward_slashes=False)
        except TypeError:
            try:
                text = ujson.dumps(obj, ensure_ascii=False, escape_forward_slashes=False, default=default)
            except (TypeError, OverflowError, ValueError) as exc:
                raise SerdeError(f"cannot encode {type(obj).__name__} as JSON: {exc}") from exc
        except (OverflowError, ValueError) as exc:
            raise SerdeError(f"cannot encode {type(obj).__name__} as JSON: {exc}") from exc
        return text.encode("utf-8")

    def __repr__(self) -> str:
        return "AnyJsonSerde()"


ANY: Serde[Any] = AnyJsonSerde()
"""JSON for values of any type (the default of state, promises, awakeables, signals, calls by name)."""

STRICT: Serde[Any] = DEFAULT_SERDE
"""Plain JSON only: the default of a ``run`` block whose function declares no return type."""

CACHE_LIMIT = 4096

_by_type: dict[Any, Serde[Any]] = {}
_by_annotation: dict[tuple[Any, str], Serde[Any]] = {}


def serde_of(tp: Any, what: str) -> Serde[Any]:
    """The serde for ``type=tp`` (compiled once per type); ``MisuseError`` naming ``what`` if none."""
    try:
        return _by_type[tp]
    except KeyError:
        pass
    except TypeError:  # unhashable (e.g. Annotated with unhashable metadata): no caching
        return _compile(tp, what)
    serde = _compile(tp, what)
    if len(_by_type) < CACHE_LIMIT:
        _by_type[tp] = serde
    return serde


def _compile(tp: Any, what: str) -> Serde[Any]:
    try:
        return serde_for(tp)
    except Exception as exc:
        raise MisuseError(f"{what}: no serde for type {describe_type(tp)}: {exc}") from exc


def return_serde(fn: Callable[..., Any], step: str) -> Serde[Any]:
    """The serde for the results of ``fn`` (the function of run ``step``): from its return
    annotation, else :data:`STRICT`."""
    annotations = getattr(fn, "__annotations__", None)
    if not annotations:
        return STRICT
    annotation = annotations.get("return", annotations)
    if annotation is annotations:
        return STRICT
    what = f"ctx.run({step!r})"
    if not isinstance(annotation, str):
        return serde_of(annotation, what)
    # a string annotation (``from __future__ import annotations``): resolved once per function code
    key = (getattr(fn, "__code__", fn), annotation)
    try:
        return _by_annotation[key]
    except KeyError:
        pass
    except TypeError:
        key = None  # type: ignore[assignment]
    namespace = getattr(fn, "__globals__", None) or vars(sys.modules.get(getattr(fn, "__module__", ""), sys))
    try:
        resolved: Any = annotation
        for _ in range(3):  # "'User'": a quoted annotation under postponed evaluation
            if not isinstance(resolved, str):
                break
            resolved = eval(resolved, namespace)  # the resolution typing.get_type_hints does
    except Exception as exc:
        raise MisuseError(
            f"{what}: cannot resolve the return annotation {annotation!r} of "
            f"{getattr(fn, '__qualname__', fn)!r}: {exc}; pass type= explicitly"
        ) from exc
    serde = serde_of(resolved, what)
    if key is not None and len(_by_annotation) < CACHE_LIMIT:
        _by_annotation[key] = serde
    return serde


def describe_type(tp: Any) -> str:
    """A short name for a type in messages (``User``, ``list[int]``)."""
    if isinstance(tp, type):
        return tp.__qualname__
    return repr(tp).replace("typing.", "")
