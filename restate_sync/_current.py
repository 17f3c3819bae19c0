"""The context of the handler running on the current greenlet (greenlet-local via contextvars).

Greenlets spawned by a handler, and threads, start with an empty context, so they do not see it.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

current: ContextVar[Any] = ContextVar("restate_sync_context", default=None)
