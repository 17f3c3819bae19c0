"""``endpoint.app``: the endpoint as a PEP 3333 WSGI application, in request/response mode.

For processes that already run a gevent WSGI server — ``gevent.pywsgi.WSGIServer``,
``gunicorn -k gevent``, a Flask or Django app with the endpoint mounted under a prefix (werkzeug's
``DispatcherMiddleware``). Restate's runtime talks to such a deployment over HTTP/1.1 in
request/response mode (register it with ``"use_http_11": true``; discovery announces
``REQUEST_RESPONSE``), so every await that has to wait ends the attempt with a suspension and the
invocation resumes by replaying its journal.

One request, on the server's greenlet:

1. ``CONTENT_LENGTH`` together with ``Transfer-Encoding`` is a 400 (RFC 9112 §6.1), a
   ``CONTENT_LENGTH`` above ``max_body_size`` a 413, before anything else.
2. The endpoint (``Endpoint.handle``) runs on the server's greenlet with the request head: it
   routes, checks the request identity and negotiates the protocol before any of the body is read,
   so a refused request's body is never read by the app (the server discards it).
3. When the endpoint accepts an invocation, a reader greenlet reads ``wsgi.input`` chunk by chunk
   into the exchange's inbox under the size limit (:mod:`.body`, shared with the built-in
   HTTP/1.1 server).
4. The response head goes out (``start_response`` and the ``write`` callable it returns) once the
   body is in, or with the first response bytes; the attempt's messages are written as they are
   produced. A body that crosses the limit before that is answered 413; later, the attempt stops
   and the response ends (the runtime retries). A client that went away is noticed on the next
   write, which stops the attempt.

Paths: the endpoint sees ``SCRIPT_NAME + PATH_INFO`` (the path the runtime requested, prefix
included, re-quoted) and routes on its suffix, so a mount at ``/restate`` is registered as
``http://host:port/restate``. The server in front owns the connection and its timeouts.
"""

from __future__ import annotations

import http
import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

import gevent
from gevent.lock import Semaphore

from .._ratelimit import RateLimitedLog, truncate
from ..exchange import DISCONNECTED, SERVER_HEADER, Handler, Inbox
from .body import DEFAULT_MAX_BODY_SIZE, BodyFeed, BodyTooLarge, declared_length, pump, too_large
from .patching import warn_if_unpatched

__all__ = ["WsgiApp", "WsgiExchange", "request_path"]

logger = logging.getLogger("restate_sync.transport")
_peer_log = RateLimitedLog(logger, burst=10, interval=60.0)

StartResponse = Callable[..., Callable[[bytes], Any]]

_IDLE, _PENDING, _STREAMING, _DONE, _BROKEN = "idle", "pending", "streaming", "done", "broken"
# characters kept as they are when the decoded path is quoted again (RFC 3986 pchar and "/")
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def _status_line(status: int) -> str:
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def request_path(environ: dict[str, Any]) -> str:
    """The request's path as the client sent it: ``SCRIPT_NAME + PATH_INFO``, quoted, and the query."""
    decoded = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    try:
        raw = decoded.encode("latin-1")  # PEP 3333: the path's bytes, decoded as latin-1
    except UnicodeEncodeError:
        raw = decoded.encode("utf-8")
    path = quote(raw, safe=_PATH_SAFE) or "/"
    query = environ.get("QUERY_STRING", "")
    return f"{path}?{query}" if query else path


def _request_headers(environ: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").lower()
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key.replace("_", "-").lower()
        else:
            continue
        if isinstance(value, str) and value:
            try:  # latin-1 per PEP 3333; the runtime sends UTF-8 (or ASCII) values
                value = value.encode("latin-1").decode("utf-8")
            except (UnicodeEncodeError, UnicodeDecodeError):
                pass
            headers[name] = value
    return headers


class WsgiExchange:
    """One WSGI request/response; implements :class:`~restate_sync.exchange.Exchange`."""

    http2 = False

    __slots__ = (
        "_environ",
        "_feed",
        "_head",
        "_length",
        "_lock",
        "_reader",
        "_result",
        "_start_response",
        "_state",
        "_write",
        "headers",
        "inbox",
        "method",
        "path",
        "too_large",
    )

    def __init__(
        self, environ: dict[str, Any], start_response: StartResponse, length: int | None, limit: int
    ) -> None:
        self.method = str(environ.get("REQUEST_METHOD", "GET"))
        self.path = request_path(environ)
        self.headers = _request_headers(environ)
        self.inbox = Inbox()
        self._environ = environ
        self._start_response = start_response
        self._length = length
        self._feed = BodyFeed(self.inbox, limit)
        self._state = _IDLE
        self._head: tuple[str, list[tuple[str, str]]] | None = None
        self._write: Callable[[bytes], Any] | None = None
        self._result: list[bytes] = []
        self._reader: Any = None
        self._lock = Semaphore()
        self.too_large: BodyTooLarge | None = None

    # ------------------------------------------------------------------ the Exchange interface

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes | None = None) -> None:
        if self._state == _BROKEN:
            return
        if self._state != _IDLE:
            raise RuntimeError(f"respond() called twice for {self.method} {self.path}")
        head = [(n, v) for n, v in headers if n.lower() not in ("content-length", "transfer-encoding")]
        if body is None:
            self._state = _PENDING
            self._head = (_status_line(status), head)
            self._reader = gevent.spawn(self._read_body)
            return
        self._state = _DONE
        head.append(("content-length", str(len(body))))
        self._start_response(_status_line(status), head)
        self._result = [body]

    def write(self, data: bytes) -> None:
        if not data or self._state in (_DONE, _BROKEN):
            return
        with self._lock:
            self._send(data)

    def close(self) -> None:
        if self._state == _PENDING:
            with self._lock:
                self._send(b"")
        if self._state == _STREAMING:
            self._state = _DONE

    # ------------------------------------------------------------------ internals

    def _send(self, data: bytes) -> None:
        """Send ``data`` (the head first, if pending) through the server's ``write`` callable."""
        try:
            if self._state == _PENDING:
                assert self._head is not None
                status, head = self._head
                self._head = None
                self._state = _STREAMING
                self._write = self._start_response(status, head)
                self._write(data)  # also sends the head
            elif self._state == _STREAMING and self._write is not None:
                self._write(data)
        except Exception as exc:  # the server's write failed: the client is gone
            _peer_log.info("wsgi-lost", "WSGI client went away during %s: %r", truncate(self.path, 200), exc)
            self._broken()

    def _broken(self) -> None:
        if self._state != _BROKEN:
            self._state = _BROKEN
            self.inbox.put(DISCONNECTED)

    def _read_body(self) -> None:
        environ = self._environ
        stream = environ["wsgi.input"]
        length = self._length
        if length is None and not environ.get("wsgi.input_terminated"):
            length = 0  # PEP 3333: no CONTENT_LENGTH and an unterminated input means no body
        try:
            complete = pump(stream.read, self._feed, length)
        except BodyTooLarge as exc:
            self.too_large = exc
            _peer_log.warning("wsgi-too-large", "WSGI request %s cut off: %s", truncate(self.path, 200), exc)
            self._broken()
            return
        except gevent.GreenletExit:
            raise
        except Exception as exc:  # the server could not read the body (malformed chunks, ...)
            _peer_log.warning(
                "wsgi-bad-body", "WSGI request body of %s abandoned: %r", truncate(self.path, 200), exc
            )
            self._broken()
            return
        if not complete:
            _peer_log.info("wsgi-lost", "WSGI client left inside the body of %s", truncate(self.path, 200))
            self._broken()
            return
        if self._state == _PENDING:  # the body is in: nothing can be refused any more
            with self._lock:
                self._send(b"")

    def finish(self) -> Iterable[bytes]:
        """After the endpoint returned: stop reading and say what the server still has to send."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.kill(block=True)
        if self.too_large is not None and self._head is not None:  # nothing sent yet: a clean 413
            status, headers, body = too_large(self.too_large.limit)
            self._head = None
            headers.append(("content-length", str(len(body))))
            self._start_response(_status_line(status), headers)
            return [body]
        if self._state == _PENDING:  # the endpoint returned without ending the response
            self.close()
        return self._result


class WsgiApp:
    """A WSGI application that hands every request to ``handler`` (``Endpoint.handle``)."""

    def __init__(self, handler: Handler, max_body_size: int = DEFAULT_MAX_BODY_SIZE) -> None:
        if isinstance(max_body_size, bool) or not isinstance(max_body_size, int) or max_body_size < 1:
            raise ValueError(f"max_body_size must be a positive int, got {max_body_size!r}")
        self.handler = handler
        self.max_body_size = max_body_size
        self._checked = False

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not self._checked:
            self._checked = True
            warn_if_unpatched("endpoint.app")
        content_length = environ.get("CONTENT_LENGTH") or None
        if content_length is not None and environ.get("HTTP_TRANSFER_ENCODING"):
            return _refuse(
                start_response,
                400,
                "a request may not have both content-length and transfer-encoding (RFC 9112 §6.1)",
            )
        try:
            length = declared_length(content_length)
        except ValueError as exc:
            return _refuse(start_response, 400, str(exc))
        if length is not None and length > self.max_body_size:
            status, headers, body = too_large(self.max_body_size)
            _peer_log.warning(
                "wsgi-too-large",
                "WSGI request %s refused: content-length %d above %d",
                truncate(request_path(environ), 200),
                length,
                self.max_body_size,
            )
            headers.append(("content-length", str(len(body))))
            start_response(_status_line(status), headers)
            return [body]
        exchange = WsgiExchange(environ, start_response, length, self.max_body_size)
        try:
            self.handler(exchange)
        except Exception:
            logger.exception(
                "error while serving %s %s over WSGI", exchange.method, truncate(exchange.path, 200)
            )
            if exchange._state in (_IDLE, _PENDING):  # nothing sent yet: answer 500 instead
                exchange._state = _IDLE
                exchange.respond(
                    500,
                    [("content-type", "text/plain; charset=utf-8"), SERVER_HEADER],
                    b"internal error in the endpoint\n",
                )
        return exchange.finish()


def _refuse(start_response: StartResponse, status: int, message: str) -> list[bytes]:
    _peer_log.warning("wsgi-refused", "WSGI request refused with %d: %s", status, truncate(message, 200))
    body = f"{message}\n".encode()
    start_response(
        _status_line(status),
        [
            ("content-type", "text/plain; charset=utf-8"),
            SERVER_HEADER,
            ("content-length", str(len(body))),
        ],
    )
    return [body]
