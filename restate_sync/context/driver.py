"""What a context needs of its invocation (:class:`ContextDriver`), and the request it describes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..futures import Driver
from ..protocol.vm import InvocationInput, RetryPolicy

__all__ = ["AttemptFinishedEvent", "ContextDriver", "Request"]


class ContextDriver(Driver, Protocol):
    """What a context needs of its invocation, beyond what futures need (the invocation driver)."""

    @property
    def input(self) -> InvocationInput:
        """The invocation's input (id, headers, body, key, random seed)."""
        ...

    @property
    def finished(self) -> Any:
        """An event (``is_set()``, ``wait(timeout)``) set when the attempt ends."""
        ...

    def register_run(
        self,
        handle: int,
        fn: Callable[[], Any],
        retry_policy: RetryPolicy | None,
        background: bool,
        serialize: Callable[[Any], bytes],
    ) -> None:
        """Remember how to execute the run ``handle`` when the VM asks for it."""
        ...


class AttemptFinishedEvent:
    """Set when the current attempt ends (the handler returned, suspended, failed, or the
    runtime went away). Long-running work spawned by a handler can watch it to stop early."""

    __slots__ = ("_event",)

    def __init__(self, event: Any) -> None:
        self._event = event

    def is_set(self) -> bool:
        """Whether the attempt has finished (non-blocking)."""
        return bool(self._event.is_set())

    def wait(self, timeout: float | None = None) -> bool:
        """Block this greenlet until the attempt finishes (or ``timeout``); return ``is_set()``."""
        return bool(self._event.wait(timeout))


class Request:
    """The invocation's request: id, headers, raw body, and the attempt-finished event.

    ``idempotency_key``, ``scope`` and ``limit_key`` are this invocation's own (``None`` when it
    has none, and always with service protocol V5/V6, which do not carry them).
    """

    __slots__ = ("attempt_finished_event", "body", "headers", "id", "idempotency_key", "limit_key", "scope")

    def __init__(
        self,
        invocation_id: str,
        headers: dict[str, str],
        body: bytes,
        attempt_finished_event: AttemptFinishedEvent,
        idempotency_key: str | None = None,
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> None:
        self.id = invocation_id
        self.headers = headers
        self.body = body
        self.attempt_finished_event = attempt_finished_event
        self.idempotency_key = idempotency_key
        self.scope = scope
        self.limit_key = limit_key

    def __repr__(self) -> str:
        return f"Request(id={self.id!r})"
