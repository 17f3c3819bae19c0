"""Invocation middleware: code an endpoint runs around every attempt, run block and outgoing call.

::

    class Tenancy(restate.Middleware):
        def inbound(self, invocation, proceed):
            token = TENANT.set(invocation.headers.get("x-tenant", ""))
            try:
                return proceed()
            finally:
                TENANT.reset(token)

        def outbound(self, call):
            call.headers.setdefault("x-tenant", call.invocation.headers.get("x-tenant", ""))

    endpoint = restate.endpoint(Orders, Payments).use(Tenancy())

A middleware overrides any of three hooks of :class:`Middleware`:

``inbound(invocation, proceed)``
    Around the handler of every attempt, on the handler's greenlet, with its context current.
    ``invocation`` (:class:`Invocation`) carries the invocation's headers (those of the ingress
    request or the calling handler), the HTTP headers of this attempt's request (restate-server's:
    ``x-restate-invocation-id``, and ``traceparent`` when the server traces), the context and a
    scratch ``state`` dict. ``proceed()`` decodes the input, runs the handler and returns its
    result. Suspension and other internal control flow pass through as ``BaseException``\\ s: use
    ``try/finally`` (not ``except BaseException``) to clean up.
``around_run(step, proceed)``
    Around every ``run`` block that actually executes (a run replayed from the journal does not),
    on the greenlet that runs it — or in the worker thread for ``background=True``.
``outbound(call)``
    When the handler makes a call or a send (:class:`OutboundCall`): add or change
    ``call.headers``, which start as the handler's ``headers=``. Hooks run only when the call is
    first recorded; when the attempt replays a journaled call, its journaled headers are used
    again (as long as they contain the handler's own ``headers=``), so a hook's output may change
    between deployments without making in-flight invocations non-deterministic.

Order, for ``endpoint.use(A, B)`` (the first registered is the outermost layer)::

    inbound:     A before → B before → handler → B after → A after
    around_run:  A before → B before → run block → B after → A after
    outbound:    handler's headers= → B.outbound → A.outbound → command recorded

so the outermost middleware sees everything the inner ones did, both on the way in and on the
way out. An endpoint with no middleware builds none of this: the driver then pays nothing.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .exchange import Exchange
from .invocation import Attempt
from .protocol.vm import VM, InvocationInput, RetryPolicy

if TYPE_CHECKING:
    from .context import Context
    from .service import HandlerDefinition, ServiceDefinition

__all__ = ["Invocation", "Middleware", "MiddlewareChain", "OutboundCall", "RunStep"]


class Invocation:
    """One attempt of an invocation, as inbound, run and outbound hooks see it."""

    __slots__ = (
        "_attempt",
        "context",
        "handler",
        "headers",
        "invocation_id",
        "key",
        "request_headers",
        "service",
        "state",
    )

    def __init__(
        self,
        attempt: Attempt,
        context: Context,
        invocation: InvocationInput,
        request_headers: Mapping[str, str],
    ) -> None:
        self._attempt = attempt
        self.context = context
        #: service and handler name (wire names)
        self.service: str = attempt.service.name
        self.handler: str = attempt.handler.name
        self.invocation_id: str = invocation.invocation_id
        #: the key of a virtual object or workflow ("" for a service)
        self.key: str = invocation.key
        #: the invocation's headers: the ingress request's, or the ``headers=`` of the calling handler
        self.headers: dict[str, str] = dict(invocation.headers)
        #: the HTTP request headers of this attempt, as restate-server sent them (lower-case names)
        self.request_headers: Mapping[str, str] = request_headers
        #: scratch space the hooks share for this attempt (keyed by whatever the hook chooses)
        self.state: dict[Any, Any] = {}

    @property
    def replaying(self) -> bool:
        """Whether the handler is replaying journaled steps right now (see ``restate_sync.logs``)."""
        return self._attempt.vm.is_replaying

    def __repr__(self) -> str:
        return f"<Invocation {self.service}/{self.handler} {self.invocation_id}>"


class RunStep:
    """A ``run`` block about to execute."""

    __slots__ = ("background", "invocation", "name")

    def __init__(self, name: str, invocation: Invocation, background: bool) -> None:
        self.name = name
        self.invocation = invocation
        self.background = background

    def __repr__(self) -> str:
        return f"<RunStep {self.name!r} of {self.invocation.invocation_id}>"


class OutboundCall:
    """A call (``kind == "call"``) or send (``"send"``) the handler is making."""

    __slots__ = ("handler", "headers", "idempotency_key", "invocation", "key", "kind", "service")

    def __init__(
        self,
        kind: str,
        service: str,
        handler: str,
        key: str,
        idempotency_key: str | None,
        headers: dict[str, str],
        invocation: Invocation,
    ) -> None:
        self.kind = kind
        self.service = service
        self.handler = handler
        #: the target's key ("" for a service)
        self.key = key
        self.idempotency_key = idempotency_key
        #: headers the callee will see as its invocation headers; hooks may change them
        self.headers = headers
        #: the calling attempt
        self.invocation = invocation

    def __repr__(self) -> str:
        return f"<OutboundCall {self.kind} {self.service}/{self.handler}>"


class Middleware:
    """Base class of invocation middleware; override the hooks you need (see the module docs)."""

    def inbound(self, invocation: Invocation, proceed: Callable[[], Any]) -> Any:
        """Around the handler of every attempt; must call ``proceed()`` and return its result."""
        return proceed()

    def around_run(self, step: RunStep, proceed: Callable[[], Any]) -> Any:
        """Around every executed ``run`` block; must call ``proceed()`` and return its result."""
        return proceed()

    def outbound(self, call: OutboundCall) -> None:
        """Before a call or send is recorded; may change ``call.headers``."""


def _overrides(middleware: Middleware, name: str) -> bool:
    return getattr(type(middleware), name) is not getattr(Middleware, name)


class MiddlewareChain:
    """The middleware of one endpoint, sorted by hook; builds the attempts that run them."""

    __slots__ = ("inbound", "middleware", "outbound", "run")

    def __init__(self, middleware: Sequence[Middleware]) -> None:
        for item in middleware:
            if not isinstance(item, Middleware):
                raise TypeError(
                    f"endpoint.use() takes restate_sync.Middleware instances, not {item!r}; subclass "
                    "Middleware and override inbound / around_run / outbound"
                )
        self.middleware = tuple(middleware)
        self.inbound = tuple(m for m in self.middleware if _overrides(m, "inbound"))
        self.run = tuple(m for m in self.middleware if _overrides(m, "around_run"))
        # innermost first: the first-registered middleware has the last word
        self.outbound = tuple(m for m in reversed(self.middleware) if _overrides(m, "outbound"))

    def attempt(
        self,
        service: ServiceDefinition,
        handler: HandlerDefinition,
        version: int,
        exchange: Exchange,
        *,
        context_factory: Callable[[Attempt], Any],
        attempt_class: type[Attempt] = Attempt,
    ) -> Attempt:
        """The driver of one attempt, with this chain's hooks in place.

        ``attempt_class`` (a subclass of :class:`Attempt`) gets the hooks mixed in; the offline
        replay kit uses it.
        """
        vm = _HookedVM(version) if self.outbound else VM(version)
        attempt = _hooked_class(attempt_class)(
            service, handler, vm, exchange.inbox, exchange, context_factory=context_factory
        )
        attempt.chain = self
        attempt.request_headers = exchange.headers
        if isinstance(vm, _HookedVM):
            vm.attempt = attempt
        return attempt


def _nest(hooks: Sequence[Any], method: str, subject: Any, innermost: Callable[[], Any]) -> Any:
    """Call ``hooks[0].<method>(subject, proceed)`` where proceed calls the next hook, ..., then ``innermost``."""

    def step(index: int) -> Any:
        if index == len(hooks):
            return innermost()
        return getattr(hooks[index], method)(subject, lambda: step(index + 1))

    return step(0)


class _HookedAttempt(Attempt):
    """An attempt whose handler call and run blocks go through the chain's hooks."""

    chain: MiddlewareChain
    request_headers: Mapping[str, str]
    invocation_view: Invocation | None = None

    def call_handler(self, ctx: Any, invocation: InvocationInput) -> Any:
        view = Invocation(self, ctx, invocation, self.request_headers)
        self.invocation_view = view
        hooks = self.chain.inbound
        if not hooks:
            return super().call_handler(ctx, invocation)
        return _nest(
            hooks, "inbound", view, lambda: super(_HookedAttempt, self).call_handler(ctx, invocation)
        )

    def register_run(
        self,
        handle: int,
        fn: Callable[[], Any],
        retry_policy: RetryPolicy | None,
        background: bool,
        serialize: Callable[[Any], bytes],
    ) -> None:
        hooks = self.chain.run
        view = self.invocation_view
        if hooks and view is not None:
            step = RunStep(self.vm.run_name(handle), view, background)
            block = fn

            def hooked() -> Any:
                return _nest(hooks, "around_run", step, block)

            fn = hooked
        super().register_run(handle, fn, retry_policy, background, serialize)


_hooked_classes: dict[type[Attempt], type[_HookedAttempt]] = {}


def _hooked_class(base: type[Attempt]) -> type[_HookedAttempt]:
    if base is Attempt:
        return _HookedAttempt
    cls = _hooked_classes.get(base)
    if cls is None:
        # a proper subclass of Attempt first, then the hooks: a consistent method order
        bases: tuple[type, ...] = (base, _HookedAttempt)
        made: type[_HookedAttempt] = types.new_class(f"Hooked{base.__name__}", bases)
        cls = _hooked_classes.setdefault(base, made)
    return cls


class _HookedVM(VM):
    """A state machine whose calls and sends pass through the chain's outbound hooks first."""

    attempt: _HookedAttempt | None = None

    def _outbound_headers(
        self,
        kind: str,
        service: str,
        handler: str,
        key: str,
        idempotency_key: str | None,
        headers: Sequence[tuple[str, str]],
    ) -> Sequence[tuple[str, str]]:
        if self.is_replaying:
            journaled = self.next_replayed_command()
            recorded = getattr(journaled, "headers", None)
            if recorded is not None:
                pairs = [(h.key, h.value) for h in recorded]
                if all(pair in pairs for pair in headers):
                    return pairs
            return headers
        attempt = self.attempt
        if attempt is None or attempt.invocation_view is None:  # pragma: no cover - only in handlers
            return headers
        call = OutboundCall(
            kind, service, handler, key, idempotency_key, dict(headers), attempt.invocation_view
        )
        for middleware in attempt.chain.outbound:
            middleware.outbound(call)
        return list(call.headers.items())

    def sys_call(
        self,
        service: str,
        handler: str,
        parameter: bytes,
        *,
        key: str = "",
        idempotency_key: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        **options: Any,
    ) -> tuple[int, int]:
        headers = self._outbound_headers("call", service, handler, key, idempotency_key, headers)
        return super().sys_call(
            service, handler, parameter, key=key, idempotency_key=idempotency_key, headers=headers, **options
        )

    def sys_send(
        self,
        service: str,
        handler: str,
        parameter: bytes,
        *,
        key: str = "",
        idempotency_key: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        **options: Any,
    ) -> int:
        headers = self._outbound_headers("send", service, handler, key, idempotency_key, headers)
        return super().sys_send(
            service, handler, parameter, key=key, idempotency_key=idempotency_key, headers=headers, **options
        )
