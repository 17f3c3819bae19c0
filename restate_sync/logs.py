"""Logging from handlers: records that do not repeat on replay, and the invocation on every record.

A handler runs again from the top on every attempt, replaying the steps its journal already
holds, so a plain ``logger.info`` before a suspension is printed once per attempt. The loggers
here drop the records a handler emits while it replays, and every record logged inside a handler
(also in its ``run`` blocks) can carry which invocation it belongs to::

    import restate_sync as restate

    logger = restate.getLogger(__name__)          # a logging.Logger with a ReplayFilter

    class Orders(restate.Service):
        @restate.handler
        def place(ctx: restate.Context, order: dict) -> str:
            ctx.logger.info("placing %s", order)    # once per invocation, not once per attempt
            logger.info("also once")
            ...

Record attributes, set by both filters below: ``restate_invocation_id``, ``restate_service``,
``restate_handler``, ``restate_attempt`` (a number identifying the attempt within this process,
in the order attempts first log) and ``restate_replaying``; outside a handler they are ``"-"``,
``0`` and ``False``. To print them, add an :class:`InvocationContextFilter` to your logging
*handler*, so records of every logger get them::

    handler = logging.StreamHandler()
    handler.addFilter(restate_sync.logs.InvocationContextFilter())
    handler.setFormatter(logging.Formatter(
        "%(levelname)s %(restate_service)s/%(restate_handler)s %(restate_invocation_id)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])

or in ``logging.config.dictConfig``: ``"filters": {"restate": {"()":
"restate_sync.logs.InvocationContextFilter"}}`` and ``"filters": ["restate"]`` on the handler.
A :class:`ReplayFilter` on a handler suppresses replayed records of *every* logger (libraries
included).

The replay state comes from the state machine: a handler replays from the start of an attempt
until it reaches the first step its journal does not hold yet. ``run`` blocks only execute live,
so what they log is never dropped. Filtering costs nothing outside logging calls.
"""

from __future__ import annotations

import itertools
import logging
import threading
import weakref
from collections.abc import Mapping, MutableMapping
from typing import Any

from greenlet import getcurrent

from ._current import attempt as _current_attempt

__all__ = [
    "InvocationContextFilter",
    "ReplayAwareLogger",
    "ReplayFilter",
    "context_logger",
    "current_attempt_info",
    "getLogger",
    "is_replaying",
]

_numbers: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_counter = itertools.count(1)
_lock = threading.Lock()


def _attempt_here() -> tuple[Any, bool]:
    """The attempt whose code runs on this greenlet, and whether it is the handler itself.

    Besides the handler's greenlet, this finds the attempt from a greenlet the handler spawned
    (``run`` blocks): gevent remembers who spawned a greenlet, and that greenlet's context knows.
    """
    attempt = _current_attempt.get()
    if attempt is not None:
        return attempt, not attempt.in_run
    spawner = getattr(getcurrent(), "spawning_greenlet", None)
    parent = spawner() if spawner is not None else None
    context = getattr(parent, "gr_context", None) if parent is not None else None
    if context is None:
        return None, False
    return context.get(_current_attempt), False


def is_replaying() -> bool:
    """Whether the handler running on this greenlet is replaying journaled steps right now."""
    attempt, in_handler = _attempt_here()
    return attempt is not None and in_handler and attempt.vm.is_replaying


def _number(attempt: Any) -> int:
    number = _numbers.get(attempt)
    if number is None:
        with _lock:
            number = _numbers.setdefault(attempt, next(_counter))
    return number


def current_attempt_info() -> dict[str, Any]:
    """The ``restate_*`` record attributes for code running now (the "outside a handler" values
    when no handler runs on this greenlet)."""
    attempt, in_handler = _attempt_here()
    return _info(attempt, in_handler)


def _info(attempt: Any, in_handler: bool) -> dict[str, Any]:
    if attempt is None:
        return {
            "restate_invocation_id": "-",
            "restate_service": "-",
            "restate_handler": "-",
            "restate_attempt": 0,
            "restate_replaying": False,
        }
    return {
        "restate_invocation_id": attempt.invocation_id or "-",
        "restate_service": attempt.service.name,
        "restate_handler": attempt.handler.name,
        "restate_attempt": _number(attempt),
        "restate_replaying": in_handler and attempt.vm.is_replaying,
    }


class InvocationContextFilter(logging.Filter):
    """Adds the ``restate_*`` attributes to every record (see the module docs); drops nothing.

    Attributes a record already has (from ``extra=``) are kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        attempt, in_handler = _attempt_here()
        for name, value in _info(attempt, in_handler).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class ReplayFilter(InvocationContextFilter):
    """Drops records logged by a handler while it replays; adds the ``restate_*`` attributes."""

    def filter(self, record: logging.LogRecord) -> bool:
        super().filter(record)
        return not getattr(record, "restate_replaying", False)


_REPLAY_FILTER = ReplayFilter()


def getLogger(name: str | None = None) -> logging.Logger:
    """``logging.getLogger(name)`` with a :class:`ReplayFilter` attached (once).

    Records it emits while a handler replays are dropped; everything else passes, with the
    ``restate_*`` attributes set.
    """
    logger = logging.getLogger(name)
    if not any(isinstance(f, ReplayFilter) for f in logger.filters):
        logger.addFilter(_REPLAY_FILTER)
    return logger


class ReplayAwareLogger(logging.LoggerAdapter[logging.Logger]):
    """What ``ctx.logger`` is: an adapter over a plain logger that skips records while the
    handler replays and adds the ``restate_*`` attributes. The logger itself is not changed."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})

    def isEnabledFor(self, level: int) -> bool:
        return not is_replaying() and self.logger.isEnabledFor(level)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        given: Mapping[str, Any] = kwargs.get("extra") or {}
        kwargs["extra"] = {**current_attempt_info(), **given}
        return msg, kwargs


_adapters: dict[str, ReplayAwareLogger] = {}


def handler_logger(module: str) -> ReplayAwareLogger:
    """The ``ctx.logger`` of handlers defined in ``module`` (one shared adapter per module)."""
    adapter = _adapters.get(module)
    if adapter is None:
        adapter = _adapters.setdefault(module, ReplayAwareLogger(logging.getLogger(module)))
    return adapter


def context_logger(driver: Any) -> ReplayAwareLogger:
    """``ctx.logger``: the :class:`ReplayAwareLogger` of the module that defines the handler."""
    fn = getattr(getattr(driver, "handler", None), "fn", None)
    return handler_logger(getattr(fn, "__module__", None) or "restate_sync.handlers")
