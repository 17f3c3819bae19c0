"""A gevent HTTP/2 (h2c, prior knowledge) server for the endpoint.

One greenlet per connection reads the socket and feeds the ``h2`` state machine; one greenlet
per stream runs the endpoint. Request bodies are acknowledged (WINDOW_UPDATE) as they are
queued, PINGs are answered, and response bodies honour the peer's flow-control window: a writer
whose window is exhausted parks until a WINDOW_UPDATE arrives. Every write of a stream is one
``sendall`` of all frames ``h2`` produced, under a per-connection lock.

The connection is never closed by us while the peer keeps it open (the runtime pools
connections; closing one under load fails every in-flight stream).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import gevent
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from gevent.event import Event
from gevent.pool import Pool
from gevent.server import StreamServer

from .invocation import DISCONNECTED, EOF, Inbox

__all__ = ["H2Server", "H2Stream", "parse_bind"]

logger = logging.getLogger("restate_sync.server")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_READ_SIZE = 65536
# Generous receive windows: the runtime may send large journals in one go.
_STREAM_WINDOW = 4 * 1024 * 1024
_CONNECTION_WINDOW = 16 * 1024 * 1024


class H2Stream:
    """One HTTP/2 request/response; implements :class:`~restate_sync.endpoint.HttpExchange`."""

    http2 = True

    __slots__ = ("_connection", "_ended", "headers", "inbox", "method", "path", "stream_id")

    def __init__(self, connection: H2Connection, stream_id: int, headers: dict[str, str]) -> None:
        self._connection = connection
        self.stream_id = stream_id
        self.headers = headers
        self.method = headers.get(":method", "GET")
        self.path = headers.get(":path", "/")
        self.inbox = Inbox()
        self._ended = False

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes | None = None) -> None:
        response = [(":status", str(status)), *headers]
        if body is not None:
            response.append(("content-length", str(len(body))))
        self._connection.send_headers(self.stream_id, response, end_stream=not body and body is not None)
        if body:
            self._connection.send_data(self.stream_id, body, end_stream=True)
        if body is not None:
            self._ended = True

    def write(self, data: bytes) -> None:
        if not self._ended:
            self._connection.send_data(self.stream_id, data, end_stream=False)

    def close(self) -> None:
        if not self._ended:
            self._ended = True
            self._connection.send_data(self.stream_id, b"", end_stream=True)


class H2Connection:
    """Serves one client connection until the peer closes it."""

    def __init__(self, sock: socket.socket, handler: Callable[[H2Stream], None]) -> None:
        self.sock = sock
        self.handler = handler
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding="utf-8",
            # the runtime is a well-behaved peer and we emit fixed, valid headers: skip the
            # per-header validation/normalisation passes (a large share of h2's CPU time)
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self.conn = h2.connection.H2Connection(config=config)
        self.streams: dict[int, H2Stream] = {}
        self._window_open = Event()
        self._flush_wanted = Event()
        self._closed = False

    # ------------------------------------------------------------------ writing

    def _flush(self) -> None:
        """Ask the writer to send whatever ``h2`` has buffered.

        The writer greenlet runs once the caller yields, so all frames produced in the meantime,
        by every stream of the connection, leave in one ``sendall``.
        """
        self._flush_wanted.set()

    def _writer(self) -> None:
        wanted = self._flush_wanted
        conn = self.conn
        sock = self.sock
        while True:
            wanted.wait()
            wanted.clear()
            data = conn.data_to_send()
            if data:
                try:
                    sock.sendall(data)
                except OSError as exc:
                    self._closed = True
                    self._window_open.set()
                    logger.info("connection lost while writing: %s", exc)
            if self._closed:
                return

    def send_headers(self, stream_id: int, headers: list[tuple[str, str]], end_stream: bool) -> None:
        if self._closed:
            return
        try:
            self.conn.send_headers(stream_id, headers, end_stream=end_stream)
        except h2.exceptions.StreamClosedError:
            return
        self._flush()

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """Send ``data`` on a stream, waiting for flow-control window as needed."""
        conn = self.conn
        view = memoryview(data)
        while True:
            if self._closed:
                return
            try:
                if not view:
                    if end_stream:
                        conn.end_stream(stream_id)
                    break
                window = conn.local_flow_control_window(stream_id)
                if window <= 0:
                    self._window_open.clear()
                    self._flush()
                    if conn.local_flow_control_window(stream_id) <= 0 and not self._closed:
                        self._window_open.wait()
                    continue
                max_frame = conn.max_outbound_frame_size
                size = min(window, len(view))
                chunk, view = view[:size], view[size:]
                offset = 0
                while offset < size:
                    piece = chunk[offset : offset + max_frame]
                    offset += len(piece)
                    last = end_stream and not view and offset >= size
                    conn.send_data(stream_id, piece.tobytes(), end_stream=last)
                if end_stream and not view:
                    break
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
                return  # the peer reset or closed the stream: nothing more to send
        self._flush()

    # ------------------------------------------------------------------ reading

    def serve(self, initial: bytes) -> None:
        conn = self.conn
        conn.initiate_connection()
        conn.update_settings(
            {
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1000,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _STREAM_WINDOW,
            }
        )
        conn.increment_flow_control_window(_CONNECTION_WINDOW - 65535)
        writer = gevent.spawn(self._writer)
        self._flush()
        data = initial
        try:
            while True:
                if data:
                    try:
                        events = conn.receive_data(data)
                    except h2.exceptions.ProtocolError as exc:
                        logger.warning("HTTP/2 protocol error from %s: %s", _peer(self.sock), exc)
                        self._flush()
                        return
                    for event in events:
                        self._on_event(event)
                    self._flush()
                try:
                    data = self.sock.recv(_READ_SIZE)
                except OSError as exc:
                    logger.info("connection from %s lost: %s", _peer(self.sock), exc)
                    return
                if not data:
                    return
        finally:
            self._closed = True
            self._window_open.set()
            self._flush_wanted.set()
            writer.join(timeout=1)
            for stream in self.streams.values():
                stream.inbox.put(DISCONNECTED)
            self.streams.clear()

    def _on_event(self, event: Any) -> None:
        stream: H2Stream | None
        if isinstance(event, h2.events.RequestReceived):
            # header_encoding="utf-8" makes h2 hand out str names and values
            headers = {str(name).lower(): str(value) for name, value in event.headers}
            stream = H2Stream(self, event.stream_id, headers)
            self.streams[event.stream_id] = stream
            gevent.spawn(self._run_stream, stream)
        elif isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id)
            if event.flow_controlled_length:
                try:
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                    pass
            if stream is not None and event.data:
                stream.inbox.put(event.data)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.inbox.put(EOF)
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None:
                stream.inbox.put(DISCONNECTED)
            self._window_open.set()
        elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            self._window_open.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            logger.info("peer %s closed the HTTP/2 connection (%s)", _peer(self.sock), event.error_code)
        # PingReceived: h2 queued the ACK; the flush after this batch sends it.
        # END_STREAM on HEADERS or trailers: h2 reports it as its own StreamEnded event.

    def _run_stream(self, stream: H2Stream) -> None:
        try:
            self.handler(stream)
        except Exception:
            logger.exception("error while serving %s %s", stream.method, stream.path)
            try:
                if not stream._ended:
                    self.conn.reset_stream(stream.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
                    self._flush()
            except h2.exceptions.H2Error:
                pass
        finally:
            self.streams.pop(stream.stream_id, None)


def _peer(sock: socket.socket) -> str:
    try:
        host, port = sock.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "?"


class H2Server:
    """A gevent ``StreamServer`` speaking h2c with prior knowledge."""

    def __init__(self, handler: Callable[[Any], None], listener: Any) -> None:
        self.handler = handler
        # A pool lets stop() kill the connection greenlets, which closes their sockets: the
        # runtime keeps pooled connections to a deployment that merely stopped listening.
        self._server = StreamServer(listener, self._handle_connection, spawn=Pool())

    @property
    def address(self) -> tuple[str, int]:
        return self._server.address

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
        H2Connection(sock, self.handler).serve(initial)


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
