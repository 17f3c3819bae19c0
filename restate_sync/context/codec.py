"""Encoding and decoding the values context operations carry (``type=`` / ``serde=``).

Shared by every context module; the serdes themselves come from :mod:`restate_sync.values`.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from ..errors import MisuseError, TerminalError
from ..protocol.vm import VOID
from ..serde import Serde
from ..values import ANY, describe_type, serde_of


def value_serde(serde: Serde[Any] | None, tp: Any, what: str) -> Serde[Any]:
    if serde is None:
        return ANY if tp is None else serde_of(tp, what)
    if tp is not None:
        raise MisuseError(f"{what}: pass type= or serde=, not both")
    return serde


def encode(serde: Serde[Any], value: Any, what: str) -> bytes:
    try:
        return serde.serialize(value)
    except Exception as exc:
        raise encode_error(what, value, exc) from exc


def encode_error(what: str, value: Any, exc: Exception) -> MisuseError:
    return MisuseError(f"{what}: cannot encode a value of type {builtins.type(value).__qualname__}: {exc}")


def decoder(serde: Serde[Any], what: str, name: str) -> Callable[[Any], Any]:
    """Decode a delivered value with ``serde``; VOID (absent) is ``None``; a value that cannot be
    decoded fails the future terminally, naming ``what`` and ``name`` and the expected type."""
    deserialize = serde.deserialize

    def decode(raw: Any) -> Any:
        if raw is VOID:
            return None
        try:
            return deserialize(raw)
        except Exception as exc:
            expected = getattr(serde, "type", None)
            as_type = f" as {describe_type(expected)}" if expected is not None else ""
            raise TerminalError(f"cannot decode {what} {name!r}{as_type}: {exc}") from exc

    return decode
