"""HTTP/1.1 on the endpoint's port: request/response mode.

:class:`~.h2server.H2Server` sniffs the first bytes of every connection; anything that is not the
HTTP/2 preface is handed to :func:`serve_http1` together with the bytes already read.

Restate's runtime speaks HTTP/1.1 only to deployments registered with ``use_http_11``, and then
in request/response mode: it sends the whole request body (``StartMessage`` plus the replay
journal, usually chunked) and only then reads the response. One request is served at a time per
connection, several in sequence with keep-alive; the endpoint runs on the connection's greenlet.

Theory of operation, one request:

1. The head is read (within ``head_timeout`` of its first byte; a connection waits at most
   ``idle_timeout`` for the next request) and checked: both ``content-length`` and
   ``transfer-encoding`` is a 400 (RFC 9112 §6.1), a ``content-length`` above ``max_body_size`` a
   413 — each answered at once, without reading the body, and the connection is closed.
2. The endpoint is called with the head and whatever body bytes arrived with it (no read). It
   routes, checks the request identity and negotiates the protocol on the head alone, so a
   rejected request (401, 404, 415, ...) costs no more than its head; its unread body is never
   read — the response says ``connection: close`` and the connection is closed after it.
3. Only when the endpoint accepts the request (``respond`` without a body: an invocation) does a
   reader greenlet start: it sends ``100 Continue`` if the client waits for one, reads the rest
   of the body into the exchange's inbox under ``max_body_size`` (:mod:`.body`), then keeps
   reading the socket so that a peer going away becomes ``DISCONNECTED`` in the inbox (as an
   HTTP/2 stream reset does); bytes of a pipelined next request are kept, up to
   ``max_head_size``, for the next cycle.
4. The streamed response's head is sent with its first body chunk (or at ``close``), so a body
   that crosses the limit before the endpoint wrote anything is still answered 413; once the
   response has started, crossing it (or a stalled body, ``body_timeout``) ends the attempt and
   closes the connection.

Parsing and framing are done by ``h11`` (a sans-I/O HTTP/1.1 state machine from the same
python-hyper family as ``h2``): request line and header validation, ``content-length`` and
``chunked`` request bodies, conflicting lengths, keep-alive rules for HTTP/1.0 and
``Connection: close``. This module only does the I/O. A malformed request gets a 4xx answer
(400 unless h11 suggests another, e.g. 431 for a huge head) and the connection is closed; what a
peer can trigger at will is logged truncated and rate-limited.
"""

from __future__ import annotations

import http
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import gevent
import h11
from gevent.lock import Semaphore

from .._ratelimit import RateLimitedLog, truncate
from ..exchange import DISCONNECTED, SERVER_HEADER, Inbox
from .body import BodyFeed, BodyTooLarge, too_large
from .http1limits import DEFAULT_HTTP1_LIMITS, Http1Limits

__all__ = ["Http1Connection", "Http1Exchange", "serve_http1"]

logger = logging.getLogger("restate_sync.transport")
# what a peer can trigger at will: at most 10 lines a minute per kind
_peer_log = RateLimitedLog(logger, burst=10, interval=60.0)

_READ_SIZE = 65536
# How long a closing connection waits for the peer's FIN before the socket is closed.
_LINGER = 1.0

# exchange states
_IDLE = "idle"  # no response yet
_PENDING = "pending"  # respond() without a body: the head leaves with the first write or close()
_STREAMING = "streaming"  # head sent, body chunks follow
_DONE = "done"  # the whole response was sent
_BROKEN = "broken"  # the peer went away or the request was cut off: nothing more is sent


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


class _Timeout(Exception):
    """A read or write did not finish in time (``what`` says which limit)."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(f"{what} ({seconds:g}s) expired")


class Http1Exchange:
    """One HTTP/1.1 request/response; implements :class:`~restate_sync.exchange.Exchange`."""

    http2 = False

    __slots__ = ("_connection", "_head", "_state", "headers", "inbox", "method", "path")

    def __init__(self, connection: Http1Connection, request: h11.Request) -> None:
        self._connection = connection
        self.method = request.method.decode("ascii", "replace")
        self.path = _text(request.target)
        headers: dict[str, str] = {}
        for raw_name, raw_value in request.headers:  # h11 lower-cases the names
            name, value = _text(raw_name), _text(raw_value)
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.headers = headers
        self.inbox = Inbox()
        self._state = _IDLE
        self._head: h11.Response | None = None

    @property
    def complete(self) -> bool:
        """Whether a whole response was sent."""
        return self._state == _DONE

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes | None = None) -> None:
        if self._state == _BROKEN:
            return
        if self._state != _IDLE:
            raise RuntimeError(f"respond() called twice for {self.method} {self.path}")
        connection = self._connection
        head = [(name.encode("ascii"), value.encode("utf-8")) for name, value in headers]
        head = [(n, v) for n, v in head if n.lower() not in (b"content-length", b"transfer-encoding")]
        if body is None and self.method != "HEAD":
            # no content-length: h11 frames the body as chunked (HTTP/1.0 peers: until close)
            self._state = _PENDING
            self._head = h11.Response(status_code=status, headers=head, reason=_reason(status))
            connection.accept_body(self)
            return
        self._state = _DONE
        if not connection.body_complete:
            head.append((b"connection", b"close"))  # the rest of the request body is not read
        if self.method == "HEAD":  # a head only, whatever the endpoint would have sent
            response = h11.Response(status_code=status, headers=head, reason=_reason(status))
            connection.send(self, response, h11.EndOfMessage())
            return
        assert body is not None
        head.append((b"content-length", str(len(body)).encode("ascii")))
        response = h11.Response(status_code=status, headers=head, reason=_reason(status))
        connection.send(self, response, h11.Data(data=body), h11.EndOfMessage())

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._state == _STREAMING:
            self._connection.send(self, h11.Data(data=data))
        elif self._state == _PENDING:
            self._state = _STREAMING
            head, self._head = self._head, None
            self._connection.send(self, head, h11.Data(data=data))

    def _send_head(self) -> None:
        """Send the pending response head (the request body is in: nothing can be refused now)."""
        if self._state == _PENDING:
            self._state = _STREAMING
            head, self._head = self._head, None
            self._connection.send(self, head)

    def close(self) -> None:
        if self._state == _STREAMING:
            self._state = _DONE
            self._connection.send(self, h11.EndOfMessage())
        elif self._state == _PENDING:
            self._state = _DONE
            head, self._head = self._head, None
            self._connection.send(self, head, h11.EndOfMessage())

    def _broken(self) -> None:
        if self._state != _BROKEN:
            self._state = _BROKEN
            self.inbox.put(DISCONNECTED)


class Http1Connection:
    """Serves one HTTP/1.1 client connection, one request after the other."""

    def __init__(
        self,
        sock: socket.socket,
        handler: Callable[[Http1Exchange], None],
        peer: str,
        limits: Http1Limits = DEFAULT_HTTP1_LIMITS,
    ) -> None:
        self.sock = sock
        self.handler = handler
        self.peer = peer
        self.limits = limits
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head_size)
        self._peer_eof = False  # the peer closed (or broke) its sending half
        self._reader: Any = None  # reads the accepted request's body, then watches the peer
        self._early: list[bytes] = []  # read after the body by the reader, not yet given to h11
        self._body: BodyFeed | None = None
        # what the reader found wrong with the body: (status, text) to answer if nothing was sent
        self._body_error: tuple[int, bytes] | None = None
        self._send_lock = Semaphore()

    @property
    def body_complete(self) -> bool:
        """Whether the current request's body has been received to its end."""
        return self.conn.their_state is not h11.SEND_BODY

    # ------------------------------------------------------------------ writing

    def send(self, exchange: Http1Exchange | None, *events: Any) -> None:
        """Serialize ``events`` and send them with one ``sendall`` (within ``send_timeout``).

        The reader greenlet may send the response head while the handler greenlet writes: the
        lock keeps one ``sendall`` from interleaving with another that is blocked half-way.
        """
        with self._send_lock:
            data = b"".join(self.conn.send(event) or b"" for event in events)
            if exchange is not None and exchange._state == _BROKEN:
                return
            sent = self._sendall(data)
        if not sent and exchange is not None:
            exchange._broken()

    def _sendall(self, data: bytes) -> bool:
        timer = gevent.Timeout(self.limits.send_timeout)
        timer.start()
        try:
            self.sock.sendall(data)
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            _peer_log.info(
                "http1-send-timeout",
                "HTTP/1.1 peer %s did not take a response within %gs; closing the connection",
                self.peer,
                self.limits.send_timeout,
            )
        except OSError as exc:
            _peer_log.info("http1-lost", "HTTP/1.1 connection from %s lost while writing: %s", self.peer, exc)
        else:
            return True
        finally:
            timer.close()
        self._peer_eof = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        return False

    # ------------------------------------------------------------------ reading

    def _recv(self, seconds: float | None, what: str = "") -> bytes:
        """One read; ``b""`` at the peer's end; raises :class:`_Timeout` after ``seconds``."""
        timer = None if seconds is None else gevent.Timeout(seconds)
        if timer is not None:
            timer.start()
        try:
            data = self.sock.recv(_READ_SIZE)
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            raise _Timeout(what, seconds or 0.0) from None
        except OSError as exc:
            _peer_log.info("http1-lost", "HTTP/1.1 connection from %s lost: %s", self.peer, exc)
            data = b""
        finally:
            if timer is not None:
                timer.close()
        if not data:
            self._peer_eof = True
        return data

    def _read_head(self) -> h11.Request | None:
        """The next request head; None when the peer is done or was idle for ``idle_timeout``."""
        conn = self.conn
        event = conn.next_event()
        if event is h11.NEED_DATA:
            if not conn.trailing_data[0]:  # nothing of the next request yet: an idle connection
                try:
                    data = b"" if self._peer_eof else self._recv(self.limits.idle_timeout, "idle_timeout")
                except _Timeout:
                    logger.debug("closing HTTP/1.1 connection from %s: idle", self.peer)
                    return None
                conn.receive_data(data)
            deadline = time.monotonic() + self.limits.head_timeout
            while (event := conn.next_event()) is h11.NEED_DATA:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _Timeout("head_timeout", self.limits.head_timeout)
                conn.receive_data(b"" if self._peer_eof else self._recv(remaining, "head_timeout"))
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):  # pragma: no cover - h11 guarantees a Request here
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} before a request")
        return event

    def _take_body_events(self, feed: BodyFeed) -> bool:
        """Queue the body bytes h11 already holds (no read); True once the body ended."""
        chunks: list[bytes] = []
        try:
            while True:
                event = self.conn.next_event()
                cls = type(event)
                if isinstance(event, h11.Data):
                    chunks.append(event.data)
                elif cls is h11.EndOfMessage:
                    feed.feed(b"".join(chunks))
                    feed.end()
                    return True
                elif event is h11.NEED_DATA or event is h11.PAUSED:
                    feed.feed(b"".join(chunks))
                    return False
                else:  # pragma: no cover - h11 yields only Data until EndOfMessage
                    raise h11.RemoteProtocolError(f"unexpected {cls.__name__} in a request body")
        finally:
            chunks.clear()

    def accept_body(self, exchange: Http1Exchange) -> None:
        """The endpoint accepted the request: read the rest of its body, then watch the peer.

        The response head is sent once the whole body is in (at once if it came with the head),
        or with the first response bytes, whichever is first.
        """
        if self.conn.they_are_waiting_for_100_continue:
            self.send(None, h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
        if self._reader is None and not self._peer_eof:
            self._reader = gevent.spawn(self._read_body, exchange)
        if self._body is not None and self._body.ended:
            exchange._send_head()

    def _read_body(self, exchange: Http1Exchange) -> None:
        feed = self._body
        assert feed is not None
        try:
            while not feed.ended and not self._take_body_events(feed):
                if self._peer_eof:
                    raise h11.RemoteProtocolError("peer closed the connection inside the request body")
                self.conn.receive_data(self._recv(self.limits.body_timeout, "body_timeout"))
        except BodyTooLarge as exc:
            status, _headers, text = too_large(exc.limit)
            self._body_error = (status, text)
            _peer_log.warning(
                "http1-too-large",
                "HTTP/1.1 request %s from %s cut off: %s",
                truncate(exchange.path, 200),
                self.peer,
                exc,
            )
            exchange._broken()
            return
        except (_Timeout, h11.RemoteProtocolError) as exc:
            if self._peer_eof:
                _peer_log.info(
                    "http1-lost",
                    "HTTP/1.1 peer %s left during %s: %s",
                    self.peer,
                    truncate(exchange.path, 200),
                    exc,
                )
            else:
                _peer_log.warning(
                    "http1-bad-body", "HTTP/1.1 request body from %s abandoned: %s", self.peer, exc
                )
                status = 408 if isinstance(exc, _Timeout) else 400
                self._body_error = (status, f"request body abandoned: {exc}\n".encode())
            exchange._broken()
            return
        exchange._send_head()
        self._watch(exchange)

    def _watch(self, exchange: Http1Exchange) -> None:
        """After the body: a peer that goes away breaks the exchange; pipelined bytes are kept."""
        size = 0
        while True:
            data = self._recv(None)
            if not data:
                if exchange._state in (_PENDING, _STREAMING):
                    _peer_log.info(
                        "http1-lost",
                        "HTTP/1.1 peer %s closed the connection during %s",
                        self.peer,
                        truncate(exchange.path, 200),
                    )
                    exchange._broken()
                return
            self._early.append(data)
            size += len(data)
            if size > self.limits.max_head_size:
                return  # a pipelining client: stop reading, h11 gets it all afterwards

    def _stop_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.kill(block=True)
        if self._early:
            self.conn.receive_data(b"".join(self._early))
            self._early.clear()

    # ------------------------------------------------------------------ serving

    def serve(self, initial: bytes) -> None:
        """Serve requests until the peer closes, asks to close, or misbehaves."""
        if initial:
            self.conn.receive_data(initial)
        try:
            self._serve_requests()
        finally:
            self._stop_reader()
        # not reached when the server kills this greenlet on stop: it closes the socket itself
        self._close()

    def _serve_requests(self) -> None:
        while True:
            try:
                request = self._read_head()
            except _Timeout as exc:
                self._refuse(408, f"request head not received in time: {exc}", "http1-head-timeout")
                return
            except h11.RemoteProtocolError as exc:
                self._bad_request(exc)
                return
            if request is None:
                return
            if not self._head_acceptable(request):
                return
            exchange = Http1Exchange(self, request)
            feed = self._body = BodyFeed(exchange.inbox, self.limits.max_body_size)
            try:
                self._take_body_events(feed)
            except BodyTooLarge as exc:
                self._refuse_too_large(exc.limit)
                return
            except h11.RemoteProtocolError as exc:
                self._bad_request(exc)
                return
            if not self._run(exchange):
                return
            if self.conn.our_state is not h11.DONE or self.conn.their_state is not h11.DONE:
                return  # Connection: close, an HTTP/1.0 peer, an unread body, or the peer left
            self.conn.start_next_cycle()

    def _head_acceptable(self, request: h11.Request) -> bool:
        """Refuse (and close) what can be refused on the head: CL+TE, a too large content-length."""
        length: bytes | None = None
        chunked = False
        for name, value in request.headers:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        if length is not None and chunked:
            self._refuse(
                400,
                "a request may not have both content-length and transfer-encoding (RFC 9112 §6.1)",
                "http1-cl-te",
            )
            return False
        if length is not None and int(length) > self.limits.max_body_size:  # h11 checked the digits
            self._refuse_too_large(self.limits.max_body_size)
            return False
        return True

    def _refuse_too_large(self, limit: int) -> None:
        status, _headers, body = too_large(limit)
        self._refuse(status, body.decode("utf-8").rstrip("\n"), "http1-too-large")

    def _run(self, exchange: Http1Exchange) -> bool:
        """Call the endpoint; True if the connection can serve another request."""
        try:
            self.handler(exchange)
        except Exception:
            logger.exception(
                "error while serving %s %s over HTTP/1.1", exchange.method, truncate(exchange.path, 200)
            )
            if exchange._state in (_IDLE, _PENDING):  # nothing sent yet: answer 500 instead
                exchange._state = _IDLE
                message = b"internal error in the endpoint\n"
                headers = [("content-type", "text/plain; charset=utf-8"), SERVER_HEADER]
                exchange.respond(500, headers, message)
        finally:
            self._stop_reader()
        body_error, self._body_error = self._body_error, None
        if body_error is not None:
            if exchange._head is not None:  # the response had not started: answer the error
                self._send_error(*body_error)
            return False
        if exchange.complete:
            return True
        if exchange._state == _IDLE:
            logger.error("endpoint sent no response to %s %s", exchange.method, truncate(exchange.path, 200))
        elif exchange._state in (_PENDING, _STREAMING):
            logger.error(
                "endpoint left the response to %s %s unfinished",
                exchange.method,
                truncate(exchange.path, 200),
            )
        return False  # the response is unfinished or the peer is gone: drop the connection

    def _bad_request(self, exc: h11.RemoteProtocolError) -> None:
        if self._peer_eof:
            _peer_log.info(
                "http1-lost", "HTTP/1.1 peer %s closed the connection mid-request: %s", self.peer, exc
            )
            return
        status = exc.error_status_hint if 400 <= exc.error_status_hint < 500 else 400
        self._refuse(status, f"malformed HTTP/1.1 request: {exc}", "http1-malformed")

    def _refuse(self, status: int, message: str, key: str) -> None:
        """Answer ``status`` with ``message`` and ``connection: close`` (whatever h11's state)."""
        _peer_log.warning(
            key, "HTTP/1.1 request from %s refused with %d: %s", self.peer, status, truncate(message, 200)
        )
        self._send_error(status, f"{message}\n".encode())

    def _send_error(self, status: int, body: bytes) -> None:
        head = (
            f"HTTP/1.1 {status} {_reason(status).decode()}\r\n"
            "content-type: text/plain; charset=utf-8\r\n"
            f"{SERVER_HEADER[0]}: {SERVER_HEADER[1]}\r\n"
            f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        if not self._peer_eof:
            self._sendall(head.encode("ascii") + body)

    def _close(self) -> None:
        """Close the sending half, then give the peer a moment to close its half (no RST)."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return
        if self._peer_eof:
            return
        with gevent.Timeout(_LINGER, False):  # pyright: ignore[reportArgumentType]  # False: no exception
            while self._recv(None):
                pass


def serve_http1(
    sock: socket.socket,
    handler: Callable[[Http1Exchange], None],
    initial: bytes,
    peer: str,
    limits: Http1Limits = DEFAULT_HTTP1_LIMITS,
) -> None:
    """Serve one HTTP/1.1 connection; ``initial`` holds the bytes already read from ``sock``."""
    Http1Connection(sock, handler, peer, limits).serve(initial)
