"""The endpoint: binds services and answers the runtime's requests.

Routes (matched on the path suffix, so deployments may sit under a prefix):

* ``GET  .../health``                     → 200 ``{"status":"ok"}``
* ``GET  .../discover``                   → the manifest (v2–v4 from ``Accept``, else 415)
* ``POST .../invoke/{service}/{handler}`` → one invocation attempt (415 for a content type that is
  not a supported protocol version, 404 for an unknown service or handler)

Every response carries ``x-restate-server``.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import ujson

from ._ratelimit import RateLimitedLog, truncate
from .context import Context, context_factory
from .discovery import MANIFEST_CONTENT_TYPE, ManifestError, build_manifest, negotiate_manifest_version
from .exchange import SERVER_HEADER, Exchange
from .invocation import Attempt
from .middleware import Middleware, MiddlewareChain
from .protocol.vm import MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION, VM
from .service import HandlerDefinition, ServiceDefinition, service_definition

if TYPE_CHECKING:  # the transports are imported when first used
    from .transport.h2limits import H2Limits
    from .transport.http1limits import Http1Limits
    from .transport.serving import EndpointServer, ThreadedEndpointServer
    from .transport.wsgi import WsgiApp

__all__ = ["Endpoint", "endpoint"]

logger = logging.getLogger("restate_sync.endpoint")
# what a client can trigger at will (unrouted paths, refused requests): truncated and rate-limited
_request_log = RateLimitedLog(logger, burst=10, interval=60.0)

_INVOCATION_PREFIX = "application/vnd.restate.invocation.v"
# ASCII digits only (str.isdigit also accepts "²"), and a handful of them
_VERSION_NUMBER = re.compile(r"[0-9]{1,4}")


def _context_class(service: ServiceDefinition, handler: HandlerDefinition) -> Callable[[Attempt], Context]:
    return context_factory(service.kind, handler.kind)


class Endpoint:
    """A set of services served together. Build it with :func:`restate_sync.endpoint`."""

    def __init__(self) -> None:
        self._services: dict[str, ServiceDefinition] = {}
        self._protocol_mode: str | None = None
        self._identity_keys: list[str] = []
        self._verifier: Any = None
        self._middleware: MiddlewareChain | None = None
        self._wsgi_app: WsgiApp | None = None
        # the context class of each known (service, handler), looked up once (enum hashing is slow)
        self._context_classes: dict[tuple[str, str], Callable[[Attempt], Context]] = {}

    # ------------------------------------------------------------------ configuration

    def bind(self, *services: Any) -> Endpoint:
        """Add services (``Service``/``VirtualObject``/``Workflow`` subclasses)."""
        for service in services:
            definition = service_definition(service)
            existing = self._services.get(definition.name)
            if existing is not None and existing is not definition:
                raise ValueError(f"two services are named {definition.name!r}")
            self._services[definition.name] = definition
        return self

    @property
    def services(self) -> dict[str, ServiceDefinition]:
        return dict(self._services)

    def identity_key(self, key: str) -> Endpoint:
        """Only accept requests signed by restate-server with this key (``publickeyv1_...``).

        May be called several times; a request signed by any configured key is accepted. Needs
        the ``identity`` extra (``cryptography``).
        """
        from .identity import IdentityVerifier

        self._identity_keys.append(key)
        self._verifier = IdentityVerifier(self._identity_keys)
        return self

    @property
    def identity_keys(self) -> list[str]:
        return list(self._identity_keys)

    def use(self, *middleware: Middleware) -> Endpoint:
        """Run ``middleware`` around every attempt, run block and outgoing call of this endpoint.

        Call order: the first registered is the outermost layer (see :mod:`restate_sync.middleware`).
        May be called several times; later middleware nests inside earlier middleware.
        """
        existing = self._middleware.middleware if self._middleware is not None else ()
        self._middleware = MiddlewareChain([*existing, *middleware])
        return self

    @property
    def middleware(self) -> tuple[Middleware, ...]:
        """The middleware registered with :meth:`use`, outermost first."""
        return self._middleware.middleware if self._middleware is not None else ()

    def streaming_protocol(self) -> Endpoint:
        """Always announce bidirectional streaming (the HTTP/2 default)."""
        self._protocol_mode = "BIDI_STREAM"
        return self

    def request_response_protocol(self) -> Endpoint:
        """Always announce request/response mode (every await that blocks suspends)."""
        self._protocol_mode = "REQUEST_RESPONSE"
        return self

    # ------------------------------------------------------------------ serving

    def serve(
        self,
        bind: str = "127.0.0.1:9080",
        *,
        grace: float = 10.0,
        limits: H2Limits | None = None,
        http1_limits: Http1Limits | None = None,
    ) -> None:
        """Serve h2c and HTTP/1.1 on ``host:port`` until SIGTERM/SIGINT, as a dedicated process.

        ``start`` + signal handlers + ``join``: SIGTERM/SIGINT stop accepting and give the
        invocations in flight ``grace`` seconds. Also tunes the process for serving (garbage
        collector thresholds, greenlet tree tracking off); ``start`` changes nothing of the kind.
        ``limits``/``http1_limits`` as for :meth:`start`.
        """
        from .transport.serving import serve

        serve(self, bind, grace=grace, **_limits(limits, http1_limits))

    def start(
        self,
        bind: str | tuple[str, int] | None = None,
        *,
        listener: Any = None,
        limits: H2Limits | None = None,
        http1_limits: Http1Limits | None = None,
    ) -> EndpointServer:
        """Serve h2c and HTTP/1.1 on the current gevent hub and return at once.

        For a process that already runs gevent (next to a pywsgi app on another port, say):
        ``bind="HOST:PORT"`` (port 0 picks a free one), or ``listener=`` a listening socket or a
        ``(host, port)``. The returned server has ``.address``, ``.stop(grace)``, ``.join()`` and
        works as a context manager; no signal handler is installed and no process setting
        changed. ``limits`` (:class:`~restate_sync.transport.h2limits.H2Limits`) and
        ``http1_limits`` (:class:`~restate_sync.transport.http1limits.Http1Limits`) override the
        defaults of ``docs/limits.md``.
        """
        from .transport.patching import warn_if_unpatched
        from .transport.serving import EndpointServer

        warn_if_unpatched("endpoint.start")
        return EndpointServer(self.handle, bind, listener=listener, **_limits(limits, http1_limits)).start()

    def start_in_thread(
        self,
        bind: str | tuple[str, int] | None = None,
        *,
        listener: Any = None,
        limits: H2Limits | None = None,
        http1_limits: Http1Limits | None = None,
    ) -> ThreadedEndpointServer:
        """Serve on a gevent hub of its own in a daemon thread, for applications without gevent.

        Returns once the server listens; the result has ``.address``, ``.stop(grace)``,
        ``.join()`` and works as a context manager. Handlers run on that thread's hub: they are
        concurrent only where they block cooperatively (``ctx`` calls, gevent-aware I/O); plain
        blocking I/O in a handler holds up every invocation of this endpoint while it lasts (see
        the README, "Inside an existing gevent app").
        """
        from .transport.serving import ThreadedEndpointServer

        server = ThreadedEndpointServer(self.handle, bind, listener=listener, **_limits(limits, http1_limits))
        return server.start()

    @property
    def app(self) -> WsgiApp:
        """This endpoint as a WSGI application (request/response mode), with the default limits.

        Serve it with ``gevent.pywsgi.WSGIServer``, ``gunicorn -k gevent``, or mount it in a
        Flask/werkzeug app (``DispatcherMiddleware(flask_app, {"/restate": endpoint.app})``); register
        the deployment with ``"use_http_11": true``. The endpoint itself is callable the same way,
        so ``gunicorn -k gevent module:endpoint`` works too.
        """
        app = self._wsgi_app
        if app is None:
            app = self._wsgi_app = self.wsgi_app()
        return app

    def wsgi_app(self, *, max_body_size: int | None = None) -> WsgiApp:
        """A WSGI application for this endpoint; ``max_body_size`` (bytes) bounds request bodies."""
        from .transport.body import DEFAULT_MAX_BODY_SIZE
        from .transport.wsgi import WsgiApp

        return WsgiApp(self.handle, DEFAULT_MAX_BODY_SIZE if max_body_size is None else max_body_size)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """WSGI: ``endpoint(environ, start_response)`` is ``endpoint.app(environ, start_response)``."""
        return self.app(environ, start_response)

    def handle(self, exchange: Exchange) -> None:
        """Answer one request; runs on its own greenlet."""
        path = exchange.path.split("?", 1)[0]
        segments = path.rstrip("/").split("/")
        is_invoke = len(segments) >= 3 and segments[-3] == "invoke"
        if self._verifier is not None and (is_invoke or segments[-1] == "discover"):
            from .identity import IdentityError

            try:
                self._verifier.verify(path, exchange.headers)
            except IdentityError as exc:
                _request_log.warning(
                    "identity",
                    "rejected %s %s: request identity check failed: %s",
                    exchange.method,
                    truncate(path),
                    exc,
                )
                self._plain(exchange, 401, f"request identity verification failed: {exc}")
                return
        if is_invoke:
            if exchange.method != "POST":
                self._plain(exchange, 405, f"{exchange.method} not allowed on {path}; invocations use POST")
                return
            self._invoke(exchange, segments[-2], segments[-1])
        elif segments[-1] == "discover":
            self._discover(exchange)
        elif segments[-1] == "health":
            exchange.respond(200, [("content-type", "application/json"), SERVER_HEADER], b'{"status":"ok"}')
        else:
            _request_log.warning("no-route", "no route for %s %s", exchange.method, truncate(path))
            self._plain(exchange, 404, f"no route for {path}")

    def _plain(self, exchange: Exchange, status: int, message: str) -> None:
        exchange.respond(
            status, [("content-type", "text/plain; charset=utf-8"), SERVER_HEADER], message.encode("utf-8")
        )

    def _discover(self, exchange: Exchange) -> None:
        version = negotiate_manifest_version(exchange.headers.get("accept"))
        if version is None:
            _request_log.warning(
                "discovery-version",
                "discovery: no supported manifest version in Accept: %r",
                truncate(exchange.headers.get("accept") or ""),
            )
            self._plain(
                exchange,
                415,
                "unsupported discovery manifest version; this SDK serves v2, v3 and v4 "
                f"(Accept was {exchange.headers.get('accept')!r})",
            )
            return
        mode = self._protocol_mode or ("BIDI_STREAM" if exchange.http2 else "REQUEST_RESPONSE")
        try:
            manifest = build_manifest(self._services.values(), version, mode)
        except ManifestError as exc:
            logger.error("discovery failed: %s", exc)
            self._plain(exchange, 500, str(exc))
            return
        exchange.respond(
            200,
            [("content-type", MANIFEST_CONTENT_TYPE.format(version)), SERVER_HEADER],
            ujson.dumps(manifest, ensure_ascii=False, escape_forward_slashes=False).encode("utf-8"),
        )

    def _invoke(self, exchange: Exchange, service_name: str, handler_name: str) -> None:
        content_type = exchange.headers.get("content-type", "")
        version = _protocol_version(content_type)
        if version is None:
            if content_type.startswith(_INVOCATION_PREFIX):
                message = (
                    f"unsupported service protocol version {content_type!r}: this SDK speaks "
                    f"v{MIN_PROTOCOL_VERSION} to v{MAX_PROTOCOL_VERSION}; re-discover the deployment"
                )
            else:
                message = (
                    f"content type {content_type!r} is not a Restate invocation; invoke handlers "
                    "through restate-server"
                )
            _request_log.warning(
                "invoke-content-type",
                "invoke %s/%s: %s",
                truncate(service_name),
                truncate(handler_name),
                message,
            )
            self._plain(exchange, 415, message)
            return
        service = self._services.get(service_name)
        handler = service.handlers.get(handler_name) if service is not None else None
        if service is None or handler is None:
            what = (
                f"service {service_name!r}" if service is None else f"handler {service_name}/{handler_name}"
            )
            _request_log.warning("invoke-unknown", "invoke: unknown %s", truncate(what))
            self._plain(exchange, 404, f"unknown {what}; known services: {', '.join(sorted(self._services))}")
            return
        exchange.respond(200, [("content-type", content_type), SERVER_HEADER])
        factory = self._context_classes.get((service_name, handler_name))
        if factory is None:
            factory = self._context_classes[service_name, handler_name] = _context_class(service, handler)
        chain = self._middleware
        if chain is None:
            attempt = Attempt(
                service, handler, VM(version), exchange.inbox, exchange, context_factory=factory
            )
        else:
            attempt = chain.attempt(service, handler, version, exchange, context_factory=factory)
        attempt.run()


@functools.lru_cache(maxsize=32)  # the runtime sends a handful of distinct values
def _protocol_version(content_type: str) -> int | None:
    value = content_type.split(";", 1)[0].strip().lower()
    if not value.startswith(_INVOCATION_PREFIX):
        return None
    number = value[len(_INVOCATION_PREFIX) :]
    if not _VERSION_NUMBER.fullmatch(number):
        return None
    version = int(number)
    return version if MIN_PROTOCOL_VERSION <= version <= MAX_PROTOCOL_VERSION else None


def _limits(limits: H2Limits | None, http1_limits: Http1Limits | None) -> dict[str, Any]:
    given = {"limits": limits, "http1_limits": http1_limits}
    return {name: value for name, value in given.items() if value is not None}


def endpoint(*services: Any) -> Endpoint:
    """An endpoint serving ``services``; add more later with ``.bind(...)``."""
    return Endpoint().bind(*services)
