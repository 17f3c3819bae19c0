"""The decode failure raised by compiled loaders, and how its field path is spelled.

Loaders raise :class:`Invalid` with a message; each container the failure passes through appends
its segment (list index, dict key, field name) while the stack unwinds, so building the path costs
nothing unless a value is invalid. :meth:`Invalid.render` spells it ``items[2].name: expected str,
got int 5``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import ujson


class Invalid(Exception):
    """A decode failure; containers append their segment (innermost first) while unwinding."""

    def __init__(self, message: str, tail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path: list[Any] = []
        self.tail = tail  # preformatted path below ``path`` (from pydantic / msgspec)

    def render(self) -> str:
        where = format_path(reversed(self.path)) + self.tail
        where = where.removeprefix(".")
        return f"{where}: {self.message}" if where else self.message


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def format_path(segments: Iterable[Any]) -> str:
    out = []
    for segment in segments:
        if isinstance(segment, int):
            out.append(f"[{segment}]")
        elif isinstance(segment, str) and _IDENTIFIER.match(segment):
            out.append(f".{segment}")
        else:
            out.append(f"[{ujson.dumps(str(segment), ensure_ascii=False)}]")
    return "".join(out)


_SCALARS = (str, int, float, bool)


def describe(value: Any) -> str:
    """``null`` / ``list`` / ``str "abc"``: what a JSON value is, for error messages."""
    if value is None:
        return "null"
    name = type(value).__name__
    if type(value) in _SCALARS:
        text = ujson.dumps(value, ensure_ascii=False)
        if len(text) > 40:
            text = text[:37] + "..."
        return f"{name} {text}"
    return name


def pydantic_message(exc: Any) -> str:
    errors = exc.errors(include_url=False)
    if not errors:
        return str(exc)
    parts = []
    for error in errors[:3]:
        parts.append(Invalid(error.get("msg", "invalid"), tail=format_path(error.get("loc", ()))).render())
    if len(errors) > 3:
        parts.append(f"and {len(errors) - 3} more errors")
    return "; ".join(parts)


_MSGSPEC_AT = re.compile(r"^(.*) - at `\$(.*)`$", re.DOTALL)


def msgspec_split(text: str) -> tuple[str, str]:
    match = _MSGSPEC_AT.match(text)
    return (match.group(1), match.group(2)) if match else (text, "")
