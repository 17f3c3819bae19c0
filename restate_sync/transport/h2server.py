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

Backpressure, both ways. A stream writer without flow-control credit parks until a
WINDOW_UPDATE or SETTINGS change arrives (or the stream or connection goes away). Request body
credit goes back to the peer only as the handler *consumes* the bytes (the inbox reports every
chunk taken), in batches (a WINDOW_UPDATE once half a window was consumed), so a handler that
does not read holds at most one stream window of its body. When the peer does not read what we
send, at most ``max_output_buffer`` octets are queued: beyond that handlers' writes park and the
connection is not read from either (nothing more to acknowledge piles up) until the writer
made room.

An RST_STREAM from the peer puts ``DISCONNECTED`` in that stream's inbox, a lost connection in
every stream's; writing to a reset stream is a silent no-op. The connection is not closed by us
while the peer uses it (the runtime pools connections; closing one under load fails every
in-flight stream). It is closed after a protocol error (the GOAWAY naming it goes out, a
rate-limited warning is logged), when a timeout of :class:`~.h2limits.H2Limits` expires (a
preface, a header block or a send that does not complete, or no stream and no frame for
``idle_timeout``; checked once a second by a timer per connection, so the hot path pays
nothing), and when the server stops (GOAWAY NO_ERROR to every connection).

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
from greenlet import getcurrent

from .._ratelimit import RateLimitedLog
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
from .h2state import SENDING, H2ProtocolError, StreamState
from .http1limits import DEFAULT_HTTP1_LIMITS, Http1Limits
from .workers import Workers

__all__ = ["CLOSE_WAIT", "PREFACE", "H2Limits", "H2Server", "H2Stream", "ServerConnection", "parse_bind"]

logger = logging.getLogger("restate_sync.transport")
# what peers can trigger at will is logged at most 10 times a minute per kind
_peer_log = RateLimitedLog(logger, burst=10, interval=60.0)

_READ_SIZE = 65536
# how long a connection closed after a protocol error or by the server's stop waits for the
# peer to go away, and how long its writer gets to flush what is queued
_LINGER = 1.0
_FLUSH = 1.0
#: After the last request in flight ended, how long a stopping server keeps its open connections
#: (serving what their peer still sends, ending as soon as the peer closes them) before it closes
#: them itself, with GOAWAY. Chosen by measurement, not derived: with it the gunicorn reload test
#: passed 15 runs of 15 (``docs/limits.md``, "Stopping").
CLOSE_WAIT = 2.0
_CLOSED = StreamState.CLOSED


class _Expired(BaseException):
    """Thrown into a connection's reader when one of its timeouts expired."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(reason)
        self.code = code  # the GOAWAY to send, None when nothing can be sent any more
        self.reason = reason


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
        self.inbox = Inbox(self._consumed, connection.credit_batch)
        self._ended = False  # the handler ended the response (respond with body, or close)
        self.done = False  # the handler returned: request body bytes are dropped

    @property
    def stream_id(self) -> int:
        return self.stream.stream_id

    def _consumed(self, octets: int) -> None:
        """The handler took ``octets`` of the request body from the inbox: credit for the peer."""
        self._connection.consumed(self, octets)

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
        self,
        sock: socket.socket,
        handler: Callable[[H2Stream], None],
        limits: H2Limits = DEFAULT_LIMITS,
        workers: Workers | None = None,
    ) -> None:
        self.sock = sock
        self.handler = handler
        # the greenlets the streams' handlers run on (reused across connections by the server)
        self._spawn = workers.spawn if workers is not None else gevent.spawn
        self.limits = limits
        self.protocol = H2Connection(limits)
        self.streams = self.protocol.streams  # the open streams' protocol state, by id
        self._writer_waiter: Waiter | None = None
        self._window_event: Event | None = None
        self._room_event: Event | None = None  # writers and the reader waiting for output room
        self._max_output = limits.max_output_buffer
        self.credit_batch = limits.credit_batch  # each stream's Inbox tells its consumption in these
        self._sending = 0  # octets of the send in progress
        self._progress = 0  # sends completed (partial ones included), for the send timeout
        self._reads = 0  # reads that returned data, for the idle timeout
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
                data = protocol.data_to_send()
                self._sending = len(data)
                try:
                    self._send_all(data)
                except OSError as exc:
                    if not self._closed:
                        _peer_log.info("lost", "connection to %s lost while writing: %s", _peer(sock), exc)
                        self._closed = True
                        self._window_changed()
                        try:
                            sock.shutdown(socket.SHUT_RDWR)  # wakes the reader
                        except OSError:
                            pass
                    return
                finally:
                    self._sending = 0
                    self._room_made()
                continue
            if self._closed:
                return
            waiter = Waiter()
            self._writer_waiter = waiter
            waiter.get()

    def _send_all(self, data: bytes) -> None:
        """``sendall`` without gevent's per-call ``getsockopt``: plain sends, looping on partial writes."""
        sock = self.sock
        sent = sock.send(data)
        self._progress += 1
        if sent < len(data):
            view = memoryview(data)
            while sent < len(data):
                sent += sock.send(view[sent:])
                self._progress += 1

    def _window_changed(self) -> None:
        """Wake the writers parked for flow-control window."""
        event = self._window_event
        if event is not None:
            self._window_event = None
            event.set()

    def _output_full(self) -> bool:
        return self.protocol.out_size + self._sending >= self._max_output

    def _room_made(self) -> None:
        event = self._room_event
        if event is not None and (self._closed or not self._output_full()):
            self._room_event = None
            event.set()

    def _wait_for_room(self) -> None:
        """Park until the writer brought the queued output below ``max_output_buffer``."""
        event = self._room_event
        if event is None:
            event = self._room_event = Event()
        self._kick()
        event.wait()

    def send_headers(self, exchange: H2Stream, block: bytes, end_stream: bool) -> None:
        if not self._closed:
            self.protocol.send_headers(exchange.stream, block, end_stream)
            self._kick()

    def send_data(self, exchange: H2Stream, data: bytes, end_stream: bool) -> None:
        """Send ``data`` on a stream, waiting for flow-control window and output room as needed."""
        protocol = self.protocol
        stream = exchange.stream
        total = len(data)
        pos = 0
        while not self._closed:
            room = self._max_output - protocol.out_size - self._sending
            if room <= 0:
                self._wait_for_room()
                continue
            pos = protocol.send_data(stream, data, end_stream, pos, room)
            self._kick()
            if pos == total:
                return
            if self._output_full():
                continue
            # no window: the frames queued so far leave while we wait
            event = self._window_event
            if event is None:
                event = self._window_event = Event()
            event.wait()

    def consumed(self, exchange: H2Stream, octets: int) -> None:
        """The handler consumed ``octets`` of the request body: the peer may send more (batched)."""
        if not self._closed:
            self.protocol.acknowledge_received_data(exchange.stream, octets)
            self._kick()

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
        timer = _Timeouts(self, getcurrent())
        data = initial
        linger = False  # after our GOAWAY, let the peer read it (and what preceded it) before closing
        try:
            while True:
                if data:
                    self._reads += 1
                    self._receiving = True
                    try:
                        events = protocol.receive(data)
                    except H2ProtocolError as exc:
                        name = f.error_name(exc.code)
                        _peer_log.warning(
                            f"{name}:{exc.frame}",
                            "HTTP/2 protocol error from %s: %s: %s; closing the connection",
                            _peer(sock),
                            name,
                            exc,
                        )
                        linger = True
                        return
                    if events:
                        self._dispatch(events)
                    self._receiving = False
                    self._kick()
                    while self._output_full() and not self._closed:
                        self._wait_for_room()  # the peer does not read: stop reading it too
                try:
                    data = sock.recv(_READ_SIZE)
                except OSError as exc:
                    if not self._closed:
                        _peer_log.info("lost", "connection from %s lost: %s", _peer(sock), exc)
                    return
                if not data:
                    return
        except _Expired as exc:
            _peer_log.info(exc.reason, "closing the HTTP/2 connection from %s: %s", _peer(sock), exc.reason)
            if exc.code is None:  # nothing can be sent any more
                self._closed = True
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            else:
                protocol.close(exc.code, exc.reason)
                linger = exc.code != f.NO_ERROR
        except gevent.GreenletExit:  # the server stops: the last responses and GOAWAY must arrive
            protocol.close(f.NO_ERROR)
            linger = True
            raise
        finally:
            timer.stop()
            self._receiving = False
            self._closed = True
            self._room_made()
            streams = [stream.user for stream in self.streams.values()]
            for stream in self.streams.values():
                stream.user = None
            self.streams.clear()
            for exchange in streams:
                if exchange is not None:
                    exchange.inbox.put(DISCONNECTED)
            self._window_changed()
            waiter = self._writer_waiter
            if waiter is not None:
                self._writer_waiter = None
                self._loop.run_callback(waiter.switch, None)
            try:
                writer.join(timeout=_FLUSH)
                if linger:
                    self._linger()
            except _Expired:  # a timeout that expired just as the connection ended anyway
                pass

    def _dispatch(self, events: list[Any]) -> None:
        protocol = self.protocol
        for event in events:
            cls = event.__class__
            if cls is DataReceived:
                stream = event.stream
                exchange = stream.user
                if not exchange.done:  # credit goes back as the handler consumes it
                    exchange.inbox.put(event.data)
                    if event.end_stream:
                        exchange.inbox.put(EOF)
                else:  # nobody will: give it back now
                    protocol.acknowledge_received_data(stream, len(event.data))
                    if stream.state is _CLOSED:
                        stream.user = None
            elif cls is RequestReceived:
                stream = event.stream
                exchange = H2Stream(self, stream, event.headers)
                stream.user = exchange
                if event.end_stream:
                    exchange.inbox.put(EOF)
                self._spawn(self._run_stream, exchange)
            elif cls is StreamEnded:
                stream = event.stream
                exchange = stream.user
                if not exchange.done:
                    exchange.inbox.put(EOF)
                elif stream.state is _CLOSED:
                    stream.user = None
            elif cls is StreamReset:
                stream = event.stream
                exchange = stream.user
                exchange.inbox.put(DISCONNECTED)
                if exchange.done:
                    stream.user = None
                self._window_changed()
            elif cls is WindowUpdated or cls is SettingsChanged:
                self._window_changed()
            elif cls is ConnectionTerminated:  # any peer may send many: DEBUG only
                logger.debug(
                    "peer %s is closing the HTTP/2 connection (%s, last stream %d)",
                    _peer(self.sock),
                    f.error_name(event.code),
                    event.last_stream_id,
                )

    def _linger(self) -> None:
        """After GOAWAY: stop sending and let the peer close first (briefly), so it reads it.

        Closing a socket with received bytes still unread makes the kernel send RST and drop what
        it has not transmitted yet (RFC 2525 §2.17): the last frames of a response, the GOAWAY.
        """
        sock = self.sock
        try:
            sock.shutdown(socket.SHUT_WR)
            with gevent.Timeout(_LINGER, False):  # pyright: ignore[reportArgumentType]  # False: no exception
                while sock.recv(_READ_SIZE):
                    pass
        except OSError:
            pass

    def _run_stream(self, exchange: H2Stream) -> None:
        if exchange.stream.state is _CLOSED:  # reset before it started ("rapid reset"): no work
            exchange.done = True
            exchange.inbox.on_take = None
            exchange.stream.user = None
            return
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
            inbox = exchange.inbox
            inbox.on_take = None  # (a reference cycle through the exchange, broken here)
            unread = inbox.discard()
            if unread:
                self.consumed(exchange, unread)
            stream = exchange.stream
            if stream.state is _CLOSED:
                stream.user = None  # no more events for it: break the stream <-> exchange cycle


class _Timeouts:
    """The connection's timeouts, checked by one repeating timer on the hub (nothing per frame).

    Each check compares counters the connection keeps anyway with their values at the previous
    check, so a timeout expires between ``timeout`` and ``timeout`` + one interval.
    """

    def __init__(self, connection: ServerConnection, reader: Any) -> None:
        self.connection = connection
        self.reader = reader
        limits = connection.limits
        self.interval = min(1.0, limits.preface_timeout / 2, limits.head_timeout / 2, limits.idle_timeout / 2)
        self.elapsed = 0.0
        self.block: object | None = None
        self.block_since = 0.0
        self.idle_since = 0.0
        self.stall_since = 0.0
        self.reads = -1
        self.progress = -1
        self.timer = connection._loop.timer(self.interval, self.interval)
        self.timer.start(self._check)

    def stop(self) -> None:
        self.timer.close()

    def _expire(self, code: int | None, reason: str) -> None:
        self.timer.stop()
        gevent.kill(self.reader, _Expired(code, reason))

    def _check(self) -> None:
        connection = self.connection
        if connection._closed:
            self.timer.stop()
            return
        limits = connection.limits
        protocol = connection.protocol
        now = self.elapsed = self.elapsed + self.interval
        if not protocol.settings_received:
            if now >= limits.preface_timeout:
                self._expire(f.ENHANCE_YOUR_CALM, "preface timeout")
            return
        block = protocol.header_block
        if block is not self.block:
            self.block, self.block_since = block, now
        elif block is not None and now - self.block_since >= limits.head_timeout:
            self._expire(f.ENHANCE_YOUR_CALM, "header block timeout")
            return
        if protocol.streams or connection._reads != self.reads:
            self.reads, self.idle_since = connection._reads, now
        elif now - self.idle_since >= limits.idle_timeout:
            self._expire(f.NO_ERROR, "idle timeout")
            return
        if not connection._sending or connection._progress != self.progress:
            self.progress, self.stall_since = connection._progress, now
        elif now - self.stall_since >= limits.send_timeout:
            self._expire(None, "send timeout")


def _peer(sock: socket.socket) -> str:
    try:
        host, port = sock.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "?"


class H2Server:
    """A gevent ``StreamServer`` speaking h2c with prior knowledge (and HTTP/1.1 on the same port).

    ``limits`` (:class:`~.h2limits.H2Limits`) bounds every connection, and their number: with
    ``max_connections`` open the server stops accepting until one closes (the kernel's listen
    backlog holds the others), as nginx and gunicorn do, rather than accepting and closing at
    once, which the runtime would see as a failed connection.
    """

    def __init__(
        self,
        handler: Callable[[Any], None],
        listener: Any,
        limits: H2Limits = DEFAULT_LIMITS,
        http1_limits: Http1Limits = DEFAULT_HTTP1_LIMITS,
    ) -> None:
        self.handler = handler
        self.limits = limits
        self.http1_limits = http1_limits
        # A pool lets stop() kill the connection greenlets, which closes their sockets: the
        # runtime keeps pooled connections to a deployment that merely stopped listening.
        self._pool = Pool(limits.max_connections)
        self._server = StreamServer(listener, self._handle_connection, spawn=self._pool)
        self._workers = Workers()

    @property
    def address(self) -> tuple[str, int]:
        return cast("tuple[str, int]", self._server.address)

    def start(self) -> None:
        self._server.start()

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def close(self) -> None:
        """Stop accepting connections. The open ones are served on, new streams included, until
        :meth:`stop`: no GOAWAY is announced while requests are in flight, because restate-server
        1.7 was seen to lose the results of bidirectional invocation streams still open when a
        GOAWAY NO_ERROR arrived (they were retried; measured with gunicorn reloads, about one run
        in six). GOAWAY goes out when :meth:`stop` closes a connection."""
        self._server.close()

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting; wait up to ``timeout`` seconds for the connections to end; close the rest.

        A connection closed here first flushes what its streams queued (their last frames, then
        GOAWAY) and lingers until the peer closes (at most ``_FLUSH + _LINGER`` seconds), so a
        response that was complete when the server stopped reaches the peer.
        """
        self._server.close()
        pool = self._pool
        if timeout:
            pool.join(timeout=timeout)
        pool.kill(block=True, timeout=_FLUSH + _LINGER + 0.5)
        self._workers.close()

    def _handle_connection(self, sock: socket.socket, address: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            with gevent.Timeout(self.limits.preface_timeout):
                initial = _read_preface(sock)
        except (OSError, gevent.Timeout):  # gone, or silent for preface_timeout
            return
        if initial is None:
            return
        if initial[: len(PREFACE)] != PREFACE:
            if PREFACE.startswith(initial):
                _peer_log.info(
                    "preface", "connection from %s:%s closed inside the HTTP/2 preface", *address[:2]
                )
                return
            # not HTTP/2 with prior knowledge: HTTP/1.1 (request/response mode) on the same port
            from .http1 import serve_http1

            serve_http1(sock, self.handler, initial, f"{address[0]}:{address[1]}", self.http1_limits)
            return
        connection = ServerConnection(sock, self.handler, self.limits, self._workers)
        connection.serve(initial)


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
