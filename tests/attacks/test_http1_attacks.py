"""Attacks on the HTTP/1.1 side of the endpoint's port, each bounded in requests and seconds.

After every attack the harness checks that the process lives, answers a fresh request (over
HTTP/2 and HTTP/1.1) within 2 s, and that its peak RSS and its log stayed within the bound the
attack states (see ``harness.py``). The limits under attack are those of ``docs/limits.md``,
"HTTP/1.1 and WSGI".
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from restate_sync.identity import format_public_key
from restate_sync.protocol import messages as m

from .harness import MiB, Target, invocation_body

pytestmark = pytest.mark.timeout(120)

INVOKE = "application/vnd.restate.invocation.v5"
SMALL_BODY_LIMIT = 1 * MiB


@pytest.fixture(scope="module")
def small() -> Iterator[Target]:
    """Short HTTP/1.1 timeouts and a 1 MiB body limit, so attacks reach them quickly."""
    limits = {
        "http1": {
            "max_body_size": SMALL_BODY_LIMIT,
            "head_timeout": 1.0,
            "body_timeout": 1.0,
            "send_timeout": 2.0,
        }
    }
    with Target(limits) as served:
        yield served


@pytest.fixture(scope="module")
def signed() -> Iterator[Target]:
    key = Ed25519PrivateKey.generate()
    with Target({"identity_key": format_public_key(key.public_key())}) as served:
        yield served


def head(path: str, framing: str) -> bytes:
    return f"POST {path} HTTP/1.1\r\nhost: attack\r\ncontent-type: {INVOKE}\r\n{framing}\r\n\r\n".encode()


def push(sock: socket.socket, data: bytes, seconds: float) -> int:
    """Send as much of ``data`` as the server takes within ``seconds``; the bytes sent."""
    sock.settimeout(0.2)
    sent = 0
    view = memoryview(data)
    deadline = time.monotonic() + seconds
    while sent < len(data) and time.monotonic() < deadline:
        try:
            sent += sock.send(view[sent : sent + 65536])
        except (TimeoutError, BlockingIOError):
            continue
        except OSError:
            break
    return sent


def answer(sock: socket.socket, seconds: float = 5.0) -> bytes:
    """What the server sends until it closes the connection or ``seconds`` pass."""
    received = b""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except OSError:
            break
        if not chunk:
            break
        received += chunk
    return received


def test_bodies_declared_far_above_the_limit_are_refused_unread(target: Target) -> None:
    with target.attack("content-length 1 GiB x 20", max_rss_growth=4 * MiB, http1=True):
        for _ in range(20):
            with socket.create_connection(target.address, timeout=5) as sock:
                sock.sendall(head("/invoke/Echo/echo", f"content-length: {1 << 30}"))
                push(sock, b"\0" * (2 * MiB), 0.5)  # the server must not read (let alone keep) it
                got = answer(sock)
                assert got.startswith(b"HTTP/1.1 413 "), got[:100]


def test_chunked_bodies_crossing_the_limit_are_cut_off(small: Target) -> None:
    # nothing is answered before the limit: the attempt waits for a second entry, which a frame
    # header declares as a 4 MiB message
    prefix = invocation_body(b'"x"', known_entries=2) + struct.pack(">HHI", m.INPUT, 0, 4 * MiB)
    filler = b"4000\r\n" + b"\0" * 0x4000 + b"\r\n"
    with small.attack("chunked bodies over the 1 MiB limit x 8", max_rss_growth=6 * MiB, http1=True):
        for _ in range(8):
            with socket.create_connection(small.address, timeout=5) as sock:
                sock.sendall(head("/invoke/Echo/echo", "transfer-encoding: chunked"))
                sock.sendall(f"{len(prefix):x}\r\n".encode() + prefix + b"\r\n")
                push(sock, filler * 256, 2.0)  # 4 MiB offered; what is not refused lingers in buffers
                got = answer(sock)
                assert got.startswith(b"HTTP/1.1 413 "), got[:100]


def test_unsigned_large_bodies_are_refused_on_their_heads(signed: Target) -> None:
    with signed.attack("unsigned 32 MiB bodies x 20", max_rss_growth=4 * MiB, http1=True):
        for _ in range(20):
            with socket.create_connection(signed.address, timeout=5) as sock:
                sock.sendall(head("/invoke/Echo/echo", f"content-length: {32 * MiB}"))
                push(sock, b"\0" * (4 * MiB), 0.5)
                got = answer(sock)
                assert got.startswith(b"HTTP/1.1 401 "), got[:100]
                assert b"connection: close" in got.lower()


def test_content_length_with_transfer_encoding_is_refused_and_closed(target: Target) -> None:
    smuggled = b"GET /health HTTP/1.1\r\nhost: attack\r\n\r\n"
    request = head("/invoke/Echo/echo", "content-length: 4\r\ntransfer-encoding: chunked")
    with target.attack("CL+TE x 50", max_rss_growth=4 * MiB, http1=True):
        for _ in range(50):
            with socket.create_connection(target.address, timeout=5) as sock:
                sock.sendall(request + b"0\r\n\r\n" + smuggled)
                got = answer(sock)
                assert got.startswith(b"HTTP/1.1 400 "), got[:100]
                assert got.count(b"HTTP/1.1 ") == 1, "the smuggled request was answered"


def test_slow_heads_are_timed_out(small: Target) -> None:
    started = time.monotonic()
    with small.attack("200 slow heads", max_rss_growth=8 * MiB, http1=True):
        socks = [socket.create_connection(small.address, timeout=5) for _ in range(200)]
        try:
            line = b"GET /health HTTP/1.1\r\nx-slow: "
            for i in range(12):  # one byte per connection every 0.25 s: never a complete head
                for sock in socks:
                    try:
                        sock.send(line[i : i + 1] if i < len(line) else b"a")
                    except OSError:
                        pass
                time.sleep(0.25)  # the attack's pace: one byte per connection every 0.25 s (slowloris)
            for sock in socks:
                got = answer(sock, seconds=max(0.1, 6 - (time.monotonic() - started)))
                assert got.startswith(b"HTTP/1.1 408 "), got[:100]
        finally:
            for sock in socks:
                sock.close()


def test_a_pipelining_flood_from_a_peer_that_never_reads(small: Target) -> None:
    request = b"GET /health HTTP/1.1\r\nhost: attack\r\n\r\n"
    with (
        small.attack("pipelined GETs, responses never read", max_rss_growth=4 * MiB, http1=True),
        socket.create_connection(small.address, timeout=5) as sock,
    ):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        push(sock, request * 200_000, 4.0)  # 7.8 MB offered, no response read
