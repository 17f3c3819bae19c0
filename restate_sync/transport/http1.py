"""HTTP/1.1 on the endpoint's port: request/response mode.

:class:`~.h2server.H2Server` sniffs the first bytes of every connection; anything that is not the
HTTP/2 preface is handed to :func:`serve_http1` together with the bytes already read.

Restate's runtime speaks HTTP/1.1 only to deployments registered with ``use_http_11``, and then
in request/response mode: it sends the whole request body (``StartMessage`` plus the replay
journal, usually chunked) and only then reads the response. So the connection greenlet reads
the complete body into the exchange's inbox (bytes, then ``EOF``) before it calls the endpoint,
and the endpoint runs on that same greenlet: one request at a time per connection, several in
sequence with keep-alive.

Parsing and framing are done by ``h11`` (a sans-I/O HTTP/1.1 state machine from the same
python-hyper family as ``h2``): request line and header validation, ``content-length`` and
``chunked`` request bodies (extensions and trailers included), conflicting framing headers,
keep-alive rules for HTTP/1.0 and ``Connection: close``. This module only does the I/O.

Responses: ``respond(status, headers)`` without a body starts a chunked response (the streamed
invocation response; each ``write`` is one chunk sent with one ``sendall``, ``close`` sends the
last chunk); with a body the response has a ``content-length`` and is complete at once.

While a streamed response is being written, a watcher greenlet reads the socket, so a peer that
goes away turns into ``DISCONNECTED`` in the inbox (as an HTTP/2 stream reset does) and the
attempt stops; bytes it reads early (a pipelined next request) are kept for the next cycle.

A malformed request gets a 4xx answer (400 unless h11 suggests another, e.g. 431 for huge
headers), a warning in the log, and the connection is closed.
"""

from __future__ import annotations

import http
import logging
import socket
from collections.abc import Callable
from typing import Any

import gevent
import h11

from ..exchange import DISCONNECTED, EOF, SERVER_HEADER, Inbox

__all__ = ["Http1Connection", "Http1Exchange", "serve_http1"]

logger = logging.getLogger("restate_sync.transport")

_READ_SIZE = 65536
# Request line plus headers; the runtime's (JWT, trace context, additional headers) are small.
_MAX_HEAD_SIZE = 64 * 1024
# How long a closing connection waits for the peer's FIN before the socket is closed.
_LINGER = 1.0

# exchange states
_IDLE, _STREAMING, _DONE, _BROKEN = "idle", "streaming", "done", "broken"


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


class Http1Exchange:
    """One HTTP/1.1 request/response; implements :class:`~restate_sync.endpoint.HttpExchange`."""

    http2 = False

    __slots__ = ("_connection", "_state", "headers", "inbox", "method", "path")

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

    @property
    def complete(self) -> bool:
        """Whether a whole response was sent."""
        return self._state == _DONE

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes | None = None) -> None:
        if self._state != _IDLE:
            raise RuntimeError(f"respond() called twice for {self.method} {self.path}")
        head = [(name.encode("ascii"), value.encode("utf-8")) for name, value in headers]
        head = [(n, v) for n, v in head if n.lower() not in (b"content-length", b"transfer-encoding")]
        if self.method == "HEAD":  # a head only, whatever the endpoint would have sent
            self._state = _DONE
            response = h11.Response(status_code=status, headers=head, reason=_reason(status))
            self._connection.send(self, response, h11.EndOfMessage())
        elif body is None:
            # no content-length: h11 frames the body as chunked (HTTP/1.0 peers: until close)
            self._state = _STREAMING
            response = h11.Response(status_code=status, headers=head, reason=_reason(status))
            self._connection.send(self, response)
            self._connection.watch_peer(self)
        else:
            self._state = _DONE
            head.append((b"content-length", str(len(body)).encode("ascii")))
            response = h11.Response(status_code=status, headers=head, reason=_reason(status))
            self._connection.send(self, response, h11.Data(data=body), h11.EndOfMessage())

    def write(self, data: bytes) -> None:
        if self._state == _STREAMING and data:
            self._connection.send(self, h11.Data(data=data))

    def close(self) -> None:
        if self._state == _STREAMING:
            self._state = _DONE
            self._connection.send(self, h11.EndOfMessage())

    def _broken(self) -> None:
        if self._state != _BROKEN:
            self._state = _BROKEN
            self.inbox.put(DISCONNECTED)


class Http1Connection:
    """Serves one HTTP/1.1 client connection, one request after the other."""

    def __init__(self, sock: socket.socket, handler: Callable[[Http1Exchange], None], peer: str) -> None:
        self.sock = sock
        self.handler = handler
        self.peer = peer
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD_SIZE)
        self._peer_eof = False  # the peer closed (or broke) its sending half
        self._watcher: Any = None
        self._early: list[bytes] = []  # read by the watcher, not yet given to h11

    # ------------------------------------------------------------------ writing

    def send(self, exchange: Http1Exchange | None, *events: Any) -> None:
        """Serialize ``events`` and send them with one ``sendall``."""
        data = b"".join(self.conn.send(event) or b"" for event in events)
        if exchange is not None and exchange._state == _BROKEN:
            return
        try:
            self.sock.sendall(data)
        except OSError as exc:
            logger.info("HTTP/1.1 connection from %s lost while writing: %s", self.peer, exc)
            self._peer_eof = True
            if exchange is not None:
                exchange._broken()

    # ------------------------------------------------------------------ reading

    def _recv(self) -> bytes:
        try:
            return self.sock.recv(_READ_SIZE)
        except OSError as exc:
            logger.info("HTTP/1.1 connection from %s lost: %s", self.peer, exc)
            return b""

    def _next_event(self) -> Any:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = b"" if self._peer_eof else self._recv()
            if not data:
                self._peer_eof = True
            self.conn.receive_data(data)

    def _read_request(self) -> Http1Exchange | None:
        """The next request with its whole body queued in its inbox; None when the peer is done."""
        event = self._next_event()
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):  # pragma: no cover - h11 guarantees a Request here
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} before a request")
        exchange = Http1Exchange(self, event)
        if self.conn.they_are_waiting_for_100_continue:
            self.send(None, h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
        chunks: list[bytes] = []
        while True:
            event = self._next_event()
            if isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            else:  # pragma: no cover - h11 yields only Data until EndOfMessage
                raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} in a request body")
        body = b"".join(chunks)
        if body:
            exchange.inbox.put(body)
        exchange.inbox.put(EOF)
        return exchange

    def watch_peer(self, exchange: Http1Exchange) -> None:
        """While a streamed response is written, notice when the peer goes away."""
        if self._watcher is None and not self._peer_eof:
            self._watcher = gevent.spawn(self._watch, exchange)

    def _watch(self, exchange: Http1Exchange) -> None:
        while True:
            data = self._recv()
            if not data:
                self._peer_eof = True
                if exchange._state == _STREAMING:
                    logger.info("HTTP/1.1 peer %s closed the connection during %s", self.peer, exchange.path)
                    exchange._broken()
                return
            self._early.append(data)
            if sum(map(len, self._early)) > _MAX_HEAD_SIZE:
                return  # a pipelining client: stop reading, h11 gets it all afterwards

    def _stop_watching(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.kill(block=True)
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
            self._stop_watching()
        # not reached when the server kills this greenlet on stop: it closes the socket itself
        self._close()

    def _serve_requests(self) -> None:
        while True:
            try:
                exchange = self._read_request()
            except h11.RemoteProtocolError as exc:
                self._bad_request(exc)
                return
            if exchange is None:
                return
            if not self._run(exchange):
                return
            if self.conn.our_state is not h11.DONE or self.conn.their_state is not h11.DONE:
                return  # Connection: close, an HTTP/1.0 peer, or the peer left
            self.conn.start_next_cycle()

    def _run(self, exchange: Http1Exchange) -> bool:
        """Call the endpoint; True if the connection can serve another request."""
        try:
            self.handler(exchange)
        except Exception:
            logger.exception("error while serving %s %s over HTTP/1.1", exchange.method, exchange.path)
            if exchange._state == _IDLE:
                message = b"internal error in the endpoint\n"
                headers = [("content-type", "text/plain; charset=utf-8"), SERVER_HEADER]
                exchange.respond(500, headers, message)
        finally:
            self._stop_watching()
        if exchange.complete:
            return True
        if exchange._state == _IDLE:
            logger.error("endpoint sent no response to %s %s", exchange.method, exchange.path)
        elif exchange._state == _STREAMING:
            logger.error("endpoint left the response to %s %s unfinished", exchange.method, exchange.path)
        return False  # the response is unfinished or the peer is gone: drop the connection

    def _bad_request(self, exc: h11.RemoteProtocolError) -> None:
        if self._peer_eof:
            logger.info("HTTP/1.1 peer %s closed the connection mid-request: %s", self.peer, exc)
            return
        status = exc.error_status_hint if 400 <= exc.error_status_hint < 500 else 400
        logger.warning("malformed HTTP/1.1 request from %s: %s; answering %d", self.peer, exc, status)
        body = f"malformed HTTP/1.1 request: {exc}\n".encode()
        head = (
            f"HTTP/1.1 {status} {_reason(status).decode()}\r\n"
            "content-type: text/plain; charset=utf-8\r\n"
            f"{SERVER_HEADER[0]}: {SERVER_HEADER[1]}\r\n"
            f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        try:
            self.sock.sendall(head.encode("ascii") + body)
        except OSError:
            self._peer_eof = True

    def _close(self) -> None:
        """Close the sending half, then give the peer a moment to close its half (no RST)."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return
        if self._peer_eof:
            return
        with gevent.Timeout(_LINGER, False):  # pyright: ignore[reportArgumentType]  # False: no exception
            while self._recv():
                pass


def serve_http1(
    sock: socket.socket, handler: Callable[[Http1Exchange], None], initial: bytes, peer: str
) -> None:
    """Serve one HTTP/1.1 connection; ``initial`` holds the bytes already read from ``sock``."""
    Http1Connection(sock, handler, peer).serve(initial)
