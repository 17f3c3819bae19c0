"""Durations: every duration in the API is seconds (``int``/``float``) or a ``timedelta``.

One conversion and one validation for all of them — sleeps, ``or_timeout``, send delays, retry
intervals, service and handler options, ingress delays: a duration must be a real number of
seconds or a ``timedelta`` (not ``bool``), finite, and not negative. Zero is a valid duration.
"""

from __future__ import annotations

import math
from datetime import timedelta

__all__ = ["Duration", "optional_millis", "to_millis", "to_seconds"]

Duration = float | int | timedelta
"""Seconds (``int``/``float``) or a ``timedelta``."""


def to_seconds(value: Duration, what: str) -> float:
    """``value`` in seconds; ``TypeError``/``ValueError`` naming ``what`` when it is not a duration."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(f"{what} must be seconds (int/float) or a timedelta, not {type(value).__name__}")
    if not math.isfinite(seconds):
        raise ValueError(f"{what} must be a finite duration, got {value!r}")
    if seconds < 0:
        raise ValueError(f"{what} must not be negative, got {value!r}")
    return seconds


def to_millis(value: Duration, what: str) -> int:
    """``value`` in whole milliseconds (rounded), validated as :func:`to_seconds` does."""
    return round(to_seconds(value, what) * 1000)


def optional_millis(value: Duration | None, what: str) -> int | None:
    """:func:`to_millis`, with ``None`` (unset) passed through."""
    return None if value is None else to_millis(value, what)
