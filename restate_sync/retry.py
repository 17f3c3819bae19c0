"""Retry policies: how Restate retries a failing invocation, and how a ``run`` step retries.

Both use one vocabulary: ``initial_interval`` (the first delay), ``exponentiation_factor`` (each
delay is the previous one times this), ``max_interval`` (the delay's cap), ``max_attempts``
(counting the first attempt). Durations are seconds or ``timedelta`` (:mod:`.durations`). Both are
frozen dataclasses that validate at construction, so a bad value fails where it is written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from .durations import Duration, optional_millis
from .protocol.vm import RetryPolicy

__all__ = ["InvocationRetryPolicy", "RunRetryPolicy"]


def _check_attempts(value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"max_attempts must be a positive int, got {value!r}")


def _check_factor(value: float | None) -> None:
    if value is not None and (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"exponentiation_factor must be a positive number, got {value!r}")


@dataclass(frozen=True)
class InvocationRetryPolicy:
    """How Restate retries a failing invocation (a service or handler option).

    ``None`` fields keep restate-server's defaults. ``on_max_attempts`` is ``"pause"`` (keep the
    invocation, resumable from the CLI/UI) or ``"kill"``. Needs restate-server ≥ 1.5 (discovery
    manifest v4).
    """

    initial_interval: Duration | None = None
    max_interval: Duration | None = None
    max_attempts: int | None = None
    exponentiation_factor: float | None = None
    on_max_attempts: str | None = None  # "pause" | "kill"

    def __post_init__(self) -> None:
        optional_millis(self.initial_interval, "initial_interval")
        optional_millis(self.max_interval, "max_interval")
        _check_attempts(self.max_attempts)
        _check_factor(self.exponentiation_factor)
        if self.on_max_attempts is not None:
            value = getattr(self.on_max_attempts, "value", self.on_max_attempts)  # accept enum members
            if not isinstance(value, str) or value.lower() not in ("pause", "kill"):
                raise ValueError(f"on_max_attempts must be 'pause' or 'kill', got {self.on_max_attempts!r}")
            object.__setattr__(self, "on_max_attempts", value.lower())

    @classmethod
    def coerce(cls, value: InvocationRetryPolicy | Mapping[str, Any] | None) -> InvocationRetryPolicy | None:
        """An ``InvocationRetryPolicy`` from itself or from a dict of its fields."""
        if value is None or isinstance(value, InvocationRetryPolicy):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - {f.name for f in fields(cls)}
            if unknown:
                raise TypeError(f"invocation_retry_policy got unknown key(s): {', '.join(sorted(unknown))}")
            return cls(**value)
        raise TypeError(f"invocation_retry_policy must be an InvocationRetryPolicy or a dict, not {value!r}")


@dataclass(frozen=True)
class RunRetryPolicy:
    """Retry policy of one ``run`` step.

    Unset intervals default to 50 ms initially, a factor of 2 and a 10 s cap once any field is
    set; a policy with no field set (like ``retry_policy=None``) leaves the failing step to
    restate-server's invocation retry policy. When ``max_attempts`` or ``max_duration`` is
    exhausted, ``on_max_attempts`` decides: ``"fail"`` (the default) fails the step with a
    ``TerminalError`` carrying the last error's message; ``"pause"`` pauses the invocation (it
    can be resumed from the CLI/UI) — that needs service protocol V7 (restate-server with
    ``RESTATE_EXPERIMENTAL_ENABLE_PROTOCOL_V7=true``); on older protocol versions the attempt
    fails with error 573.
    """

    initial_interval: Duration | None = None
    max_interval: Duration | None = None
    max_attempts: int | None = None
    exponentiation_factor: float | None = None
    max_duration: Duration | None = None
    on_max_attempts: str | None = None  # "fail" | "pause"

    def __post_init__(self) -> None:
        _check_attempts(self.max_attempts)
        _check_factor(self.exponentiation_factor)
        if self.on_max_attempts is not None:
            value = getattr(self.on_max_attempts, "value", self.on_max_attempts)  # accept enum members
            if not isinstance(value, str) or value.lower() not in ("fail", "pause"):
                raise ValueError(f"on_max_attempts must be 'fail' or 'pause', got {self.on_max_attempts!r}")
            object.__setattr__(self, "on_max_attempts", value.lower())
        self.to_vm()  # validates every duration now

    def to_vm(self) -> RetryPolicy:
        """The policy in the state machine's terms (milliseconds)."""
        return RetryPolicy(
            initial_interval_ms=optional_millis(self.initial_interval, "initial_interval"),
            exponentiation_factor=None
            if self.exponentiation_factor is None
            else float(self.exponentiation_factor),
            max_interval_ms=optional_millis(self.max_interval, "max_interval"),
            max_attempts=self.max_attempts,
            max_duration_ms=optional_millis(self.max_duration, "max_duration"),
            on_max_attempts=self.on_max_attempts or "fail",
        )
