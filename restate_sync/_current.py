"""What runs on the current greenlet: the handler's context, and the attempt (greenlet-local via contextvars).

Greenlets spawned by a handler, and threads, start with an empty context, so they do not see
either. Inside a ``run`` block the context is unset but the attempt stays known, for logging.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

current: ContextVar[Any] = ContextVar("restate_sync_context", default=None)
attempt: ContextVar[Any] = ContextVar("restate_sync_attempt", default=None)
