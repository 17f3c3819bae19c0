"""A minimal blocking HTTP/2 (h2c prior knowledge) client for talking to the endpoint directly."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    reset: bool = False
    chunks: list[bytes] = field(default_factory=list)


class H2Client:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> H2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        end: bool = True,
    ) -> Response:
        stream_id = self.conn.get_next_available_stream_id()
        request_headers = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "test")]
        request_headers += list((headers or {}).items())
        self.conn.send_headers(stream_id, request_headers, end_stream=body is None and end)
        if body is not None:
            self.conn.send_data(stream_id, body, end_stream=end)
        self.sock.sendall(self.conn.data_to_send())
        response = Response(0, {})
        while True:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            for event in self.conn.receive_data(data):
                if getattr(event, "stream_id", None) != stream_id:
                    continue
                if isinstance(event, h2.events.ResponseReceived):
                    response.headers = dict(event.headers)
                    response.status = int(response.headers[":status"])
                elif isinstance(event, h2.events.DataReceived):
                    response.chunks.append(event.data)
                    self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    response.body = b"".join(response.chunks)
                    self.sock.sendall(self.conn.data_to_send())
                    return response
                elif isinstance(event, h2.events.StreamReset):
                    response.reset = True
                    response.body = b"".join(response.chunks)
                    return response
            self.sock.sendall(self.conn.data_to_send())
