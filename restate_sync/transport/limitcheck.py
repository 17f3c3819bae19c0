"""The one check every limits object runs on itself: each field positive, seconds as numbers."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

__all__ = ["check_positive_fields"]


def check_positive_fields(limits: Any) -> None:
    """Raise ValueError naming the first field of the dataclass ``limits`` that is not positive.

    Fields annotated ``float`` are seconds (any positive int or float); the others are counts or
    sizes (positive ints). ``bool`` is refused for both, although it is an int.
    """
    owner = type(limits).__name__
    for field in fields(limits):
        value = getattr(limits, field.name)
        if field.type == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{owner}.{field.name} must be a positive number of seconds, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{owner}.{field.name} must be a positive int, got {value!r}")
