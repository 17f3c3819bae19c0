"""A gevent HTTP/2 (h2c, prior knowledge) server for the endpoint: the I/O around
:class:`~.h2connection.H2Connection`.

The protocol — frames, stream states, flow-control accounting, HPACK — is in the sans-I/O
:mod:`.h2connection`; this module owns the sockets and the greenlets:

* one greenlet per connection reads the socket, feeds the bytes to the protocol and turns the
  events into exchanges (:class:`H2Stream`) and inbox items;
* one greenlet per stream runs the handler (``Endpoint.handle``);
* one writer greenlet per connection sends what the protocol queued. Whoever produces frames (a
  stream's response, an acknowledgement, a WINDOW_UPDATE) wakes the writer, which runs once the
  producer yields, so every frame produced in the meantime by every stream leaves in one send.
  While the reader works through a batch of received bytes it wakes the writer only at the end,
  after the streams that batch started or fed, so their immediate answers share that send with
  our acknowledgements.

A stream writer without flow-control credit parks until a WINDOW_UPDATE or SETTINGS change
arrives (or the stream or connection goes away). Request body credit is given back as soon as
the bytes are queued for the stream, in batches (a WINDOW_UPDATE once half a window was used).

An RST_STREAM from the peer puts ``DISCONNECTED`` in that stream's inbox, a lost connection in
every stream's; writing to a reset stream is a silent no-op. The connection is never closed by
us while the peer keeps it open (the runtime pools connections; closing one under load fails
every in-flight stream), except after a protocol error: then the GOAWAY naming it goes out, a
warning is logged, and that connection is closed (the server keeps serving the others).
Stopping the server sends GOAWAY (NO_ERROR) and closes every connection.

Anything that does not start with the HTTP/2 preface is HTTP/1.1, handed to :mod:`.http1`.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any, cast

import gevent
from gevent.event import Event
from gevent.hub import Waiter
from gevent.pool import Pool
from gevent.server import StreamServer

from ..exchange import DISCONNECTED, EOF, Inbox
from . import h2frames as f
from .h2connection import (
    ConnectionTerminated,
    DataReceived,
    H2Connection,
    RequestReceived,
    SettingsChanged,
    Stream,
    StreamEnded,
    StreamReset,
    WindowUpdated,
    response_header_block,
)
from .h2frames import PREFACE
from .h2limits import DEFAULT_LIMITS, H2Limits
from .h2state import SENDING, H2ProtocolError

__all__ = ["PREFACE", "H2Server", "H2Stream", "ServerConnection", "parse_bind"]

logger = logging.getLogger("restate_sync.transport")

_READ_SIZE = 65536
# how long a connection closed after a protocol error waits for the peer to go away
_LINGER = 1.0


class H2Stream:
    """One HTTP/2 request/response; implements :class:`~restate_sync.exchange.Exchange`."""

    http2 = True

    __slots__ = ("_connection", "_ended", "done", "headers", "inbox", "method", "path", "stream")

    def __init__(self, connection: ServerConnection, stream: Stream, headers: dict[str, str]) -> None:
        self._connection = connection
        self.stream = stream
        self.headers = headers
        self.method = headers.get(":method", "GET")
        self.path = headers.get(":path", "/")
        self.inbox = Inbox()
        self._ended = False  # the handler ended the response (respond with body, or close)
        self.done = False  # the handler returned: request body bytes are dropped

    @property
    def stream_id(self) -> int:
        return self.stream.stream_id

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes | None = None) -> None:
        connection = self._connection
        block = response_header_block(status, headers, None if body is None else len(body))
        if body is None:
            connection.send_headers(self, block, end_stream=False)
            return
        self._ended = True
        if body:
            connection.send_headers(self, block, end_stream=False)
            connection.send_data(self, body, end_stream=True)
        else:
            connection.send_headers(self, block, end_stream=True)

    def write(self, data: bytes) -> None:
        if not self._ended:
            self._connection.send_data(self, data, end_stream=False)

    def close(self) -> None:
        if not self._ended:
            self._ended = True
            self._connection.send_data(self, b"", end_stream=True)


class ServerConnection:
    """Serves one client connection until the peer closes it (or breaks the protocol)."""

    def __init__(
        self, sock: socket.socket, handler: Callable[[H2Stream], None], limits: H2Limits = DEFAULT_LIMITS
    ) -> None:
        self.sock = sock
        self.handler = handler
        self.protocol = H2Connection(limits)
        self.streams = self.protocol.streams  # the open streams' protocol state, by id
        self._writer_waiter: Waiter | None = None
        self._window_event: Event | None = None
        self._loop = gevent.get_hub().loop
        # While the reader processes received frames, the writer is woken only at the end: its
        # wake-up then comes after those of the streams the frames started or fed, so what they
        # answer straight away leaves in the same send as our acknowledgements.
        self._receiving = False
        self._closed = False

    # ------------------------------------------------------------------ writing

    def _kick(self) -> None:
        """Wake the writer if frames are queued (deferred while the reader processes a batch)."""
        waiter = self._writer_waiter
        if waiter is not None and not self._receiving and self.protocol.out:
            self._writer_waiter = None
            self._loop.run_callback(waiter.switch, None)

    def _writer(self) -> None:
        sock = self.sock
        protocol = self.protocol
        while True:
            if protocol.out:
                try:
                    _send_all(sock, protocol.data_to_send())
                except OSError as exc:
                    if not self._closed:
                        logger.info("connection to %s lost while writing: %s", _peer(sock), exc)
                        self._closed = True
                        self._window_changed()
                        try:
                            sock.shutdown(socket.SHUT_RDWR)  # wakes the reader
                        except OSError:
                            pass
                    return
                continue
            if self._closed:
                return
            waiter = Waiter()
            self._writer_waiter = waiter
            waiter.get()

    def _window_changed(self) -> None:
        """Wake the writers parked for flow-control window."""
        event = self._window_event
        if event is not None:
            self._window_event = None
            event.set()

    def send_headers(self, exchange: H2Stream, block: bytes, end_stream: bool) -> None:
        if not self._closed:
            self.protocol.send_headers(exchange.stream, block, end_stream)
            self._kick()

    def send_data(self, exchange: H2Stream, data: bytes, end_stream: bool) -> None:
        """Send ``data`` on a stream, waiting for flow-control window as needed."""
        protocol = self.protocol
        stream = exchange.stream
        total = len(data)
        pos = 0
        while not self._closed:
            pos = protocol.send_data(stream, data, end_stream, pos)
            self._kick()
            if pos == total:
                return
            # no window: the frames queued so far leave while we wait
            event = self._window_event
            if event is None:
                event = self._window_event = Event()
            event.wait()

    def reset(self, exchange: H2Stream, code: int) -> None:
        if not self._closed:
            self.protocol.reset_stream(exchange.stream, code)
            self._window_changed()
            self._kick()

    # ------------------------------------------------------------------ reading

    def serve(self, initial: bytes) -> None:
        """Serve the connection; ``initial`` holds the bytes read so far (the preface first)."""
        protocol = self.protocol
        protocol.initiate()
        writer = gevent.spawn(self._writer)
        sock = self.sock
        data = initial
        failed = False
        try:
            while True:
                if data:
                    self._receiving = True
                    try:
                        events = protocol.receive(data)
                    except H2ProtocolError as exc:
                        logger.warning(
                            "HTTP/2 protocol error from %s: %s: %s; closing the connection",
                            _peer(sock),
                            f.error_name(exc.code),
                            exc,
                        )
                        failed = True
                        return
                    if events:
                        self._dispatch(events)
                    self._receiving = False
                    self._kick()
                try:
                    data = sock.recv(_READ_SIZE)
                except OSError as exc:
                    if not self._closed:
                        logger.info("connection from %s lost: %s", _peer(sock), exc)
                    return
                if not data:
                    return
        except gevent.GreenletExit:  # the server stops
            protocol.close(f.NO_ERROR)
            raise
        finally:
            self._receiving = False
            self._closed = True
            streams = [stream.user for stream in self.streams.values()]
            self.streams.clear()
            for exchange in streams:
                if exchange is not None:
                    exchange.inbox.put(DISCONNECTED)
            self._window_changed()
            waiter = self._writer_waiter
            if waiter is not None:
                self._writer_waiter = None
                self._loop.run_callback(waiter.switch, None)
            writer.join(timeout=1)
            if failed:
                self._linger()

    def _dispatch(self, events: list[Any]) -> None:
        protocol = self.protocol
        for event in events:
            cls = event.__class__
            if cls is DataReceived:
                stream = event.stream
                exchange = stream.user
                if not exchange.done:
                    exchange.inbox.put(event.data)
                    if event.end_stream:
                        exchange.inbox.put(EOF)
                protocol.acknowledge_received_data(stream, len(event.data))
            elif cls is RequestReceived:
                stream = event.stream
                exchange = H2Stream(self, stream, event.headers)
                stream.user = exchange
                if event.end_stream:
                    exchange.inbox.put(EOF)
                gevent.spawn(self._run_stream, exchange)
            elif cls is StreamEnded:
                exchange = event.stream.user
                if not exchange.done:
                    exchange.inbox.put(EOF)
            elif cls is StreamReset:
                event.stream.user.inbox.put(DISCONNECTED)
                self._window_changed()
            elif cls is WindowUpdated or cls is SettingsChanged:
                self._window_changed()
            elif cls is ConnectionTerminated:
                logger.info(
                    "peer %s is closing the HTTP/2 connection (%s, last stream %d)",
                    _peer(self.sock),
                    f.error_name(event.code),
                    event.last_stream_id,
                )

    def _linger(self) -> None:
        """After GOAWAY: stop sending and let the peer close first (briefly), so it reads it."""
        sock = self.sock
        try:
            sock.shutdown(socket.SHUT_WR)
            with gevent.Timeout(_LINGER, False):  # pyright: ignore[reportArgumentType]  # False: no exception
                while sock.recv(_READ_SIZE):
                    pass
        except OSError:
            pass

    def _run_stream(self, exchange: H2Stream) -> None:
        try:
            self.handler(exchange)
        except Exception:
            logger.exception("error while serving %s %s", exchange.method, exchange.path)
            if not exchange._ended:
                self.reset(exchange, f.INTERNAL_ERROR)
        else:
            if not exchange._ended and exchange.stream.state in SENDING:
                exchange.close()  # the handler returned without ending the response
        finally:
            # the stream stays known until the request half ends too (its DATA is dropped)
            exchange.done = True


def _send_all(sock: socket.socket, data: bytes) -> None:
    """``sendall`` without gevent's per-call ``getsockopt``: plain sends, looping on partial writes."""
    sent = sock.send(data)
    if sent < len(data):
        view = memoryview(data)
        while sent < len(data):
            sent += sock.send(view[sent:])


def _peer(sock: socket.socket) -> str:
    try:
        host, port = sock.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "?"


class H2Server:
    """A gevent ``StreamServer`` speaking h2c with prior knowledge (and HTTP/1.1 on the same port)."""

    def __init__(
        self, handler: Callable[[Any], None], listener: Any, limits: H2Limits = DEFAULT_LIMITS
    ) -> None:
        self.handler = handler
        self.limits = limits
        # A pool lets stop() kill the connection greenlets, which closes their sockets: the
        # runtime keeps pooled connections to a deployment that merely stopped listening.
        self._server = StreamServer(listener, self._handle_connection, spawn=Pool())

    @property
    def address(self) -> tuple[str, int]:
        return cast("tuple[str, int]", self._server.address)

    def start(self) -> None:
        self._server.start()

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self, timeout: float | None = None) -> None:
        self._server.stop(timeout=timeout)

    def _handle_connection(self, sock: socket.socket, address: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            initial = _read_preface(sock)
        except OSError:
            return
        if initial is None:
            return
        if initial[: len(PREFACE)] != PREFACE:
            if PREFACE.startswith(initial):
                logger.info("connection from %s:%s closed inside the HTTP/2 preface", *address[:2])
                return
            # not HTTP/2 with prior knowledge: HTTP/1.1 (request/response mode) on the same port
            from .http1 import serve_http1

            serve_http1(sock, self.handler, initial, f"{address[0]}:{address[1]}")
            return
        ServerConnection(sock, self.handler, self.limits).serve(initial)


def _read_preface(sock: socket.socket) -> bytes | None:
    """Read until the HTTP/2 preface is complete or clearly absent; None if the peer left."""
    data = b""
    while len(data) < len(PREFACE):
        chunk = sock.recv(_READ_SIZE)
        if not chunk:
            return data or None
        data += chunk
        if not PREFACE.startswith(data[: len(PREFACE)]):
            return data
    return data


def parse_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"bind address must be HOST:PORT, got {bind!r}")
    return host.strip("[]"), int(port)
