"""Rate-limited logging for what a peer can trigger at will (protocol errors, odd requests).

A few KiB sent by a peer must never become MiBs of log: :class:`RateLimitedLog` lets through at
most ``burst`` records per ``interval`` seconds per key (e.g. per kind of error), then counts what
it drops and says how many in the next record it lets through. Every transport can use it::

    _protocol_errors = RateLimitedLog(logger, burst=10, interval=60.0)
    _protocol_errors.warning("h2-protocol", "HTTP/2 protocol error from %s: %s", peer, exc)

Messages are also truncated (``max_chars``), so a huge path or header quoted in one is bounded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

__all__ = ["RateLimitedLog", "truncate"]


def truncate(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


class RateLimitedLog:
    """At most ``burst`` records per key per ``interval`` seconds; the rest are counted, not logged."""

    def __init__(
        self,
        logger: logging.Logger,
        burst: int = 10,
        interval: float = 60.0,
        max_chars: int = 500,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 256,
    ) -> None:
        self.logger = logger
        self.burst = burst
        self.interval = interval
        self.max_chars = max_chars
        self._clock = clock
        self._max_keys = max_keys
        # key -> [window start, records logged in the window, records dropped]
        self._windows: dict[str, list[float]] = {}

    def log(self, level: int, key: str, message: str, *args: Any) -> bool:
        """Log ``message % args`` unless ``key`` used up its budget; returns whether it was logged."""
        if not self.logger.isEnabledFor(level):
            return False
        now = self._clock()
        window = self._windows.get(key)
        if window is None or now - window[0] >= self.interval:
            dropped = int(window[2]) if window is not None else 0
            if window is None and len(self._windows) >= self._max_keys:
                self._windows.clear()
            window = self._windows[key] = [now, 0, 0]
        else:
            dropped = 0
        if window[1] >= self.burst:
            window[2] += 1
            return False
        window[1] += 1
        text = truncate(message % args if args else message, self.max_chars)
        if dropped:
            text += f" ({dropped} similar messages suppressed in the last {self.interval:.0f}s)"
        elif window[1] == self.burst:
            text += f" (further similar messages suppressed for {self.interval:.0f}s)"
        self.logger.log(level, "%s", text)
        return True

    def warning(self, key: str, message: str, *args: Any) -> bool:
        return self.log(logging.WARNING, key, message, *args)

    def info(self, key: str, message: str, *args: Any) -> bool:
        return self.log(logging.INFO, key, message, *args)
