"""The attack suite's harness: a real server process to attack, and the checks after each attack.

Every attack runs against :class:`Target`, the endpoint server in a process of its own
(``tests/attacks/target.py``: ``H2Server`` tuned like ``restate-sync serve``, on a free loopback
port, with the :class:`~restate_sync.transport.h2limits.H2Limits` the test asks for), and inside
:meth:`Target.attack`, which afterwards asserts that

* the process is still alive;
* a fresh request (``GET /health`` over a new HTTP/2 connection, and over HTTP/1.1 too with
  ``http1=True``) is answered within 2 seconds;
* the process's peak RSS during the attack (``VmHWM``, reset before it through
  ``/proc/<pid>/clear_refs``) stayed less than ``max_rss_growth`` above its RSS before;
* its log grew by less than ``max_log_bytes``.

::

    def test_flood(target: Target) -> None:            # the module's default-limits target
        with target.attack("ping flood", max_rss_growth=8 * MiB):
            client = RawH2(target.address)
            client.send(ping() * 10_000)                 # bounded in frames ...
            client.drain(seconds=2)                      # ... and in seconds

    with Target(limits={"idle_timeout": 1}) as quick:   # limits of its own
        ...

Attacks are bounded in frames and seconds and use loopback only. :class:`RawH2` writes frames
as given (built with :func:`frame` or hyperframe), so it can break every rule; ``tests/h2client.py``
is the well-behaved client. HTTP/1.1 and protocol-message attacks reuse all of this.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hpack

from restate_sync.protocol import messages as m
from restate_sync.protocol.framing import encode_frame
from restate_sync.protocol.messages import pb
from tests.h2client import H2Client

__all__ = ["MiB", "RawH2", "Target", "frame", "invocation_body"]

MiB = 1024 * 1024
ANSWER_WITHIN = 2.0
REPO = Path(__file__).resolve().parents[2]
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE = range(9)
CONTINUATION = 9
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8


def frame(frame_type: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    size = len(payload)
    return struct.pack(">HBBBL", size >> 8, size & 0xFF, frame_type, flags, stream_id) + payload


def setting(identifier: int, value: int) -> bytes:
    return struct.pack(">HL", identifier, value)


def invocation_body(input_value: bytes, known_entries: int = 1) -> bytes:
    """StartMessage + InputCommand (service protocol v5) for a one-argument JSON handler."""
    start = pb.StartMessage(id=bytes(range(24)), debug_id="inv_1attack", known_entries=known_entries)
    command = pb.InputCommandMessage()
    command.value.content = input_value
    return b"".join(
        encode_frame(m.MESSAGE_TYPES[type(message)], message.SerializeToString())
        for message in (start, command)
    )


INVOKE_HEADERS = {"content-type": "application/vnd.restate.invocation.v5"}


class RawH2:
    """A client socket that sends frames exactly as given (it may break every rule)."""

    def __init__(self, address: tuple[str, int], settings: bytes | None = b"", timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.encoder = hpack.Encoder()
        self.buffer = b""
        self.closed = False
        if settings is not None:
            self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0, settings))

    def block(self, path: str, method: str = "GET", **headers: str) -> bytes:
        fields = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "attack")]
        return self.encoder.encode(fields + list(headers.items()))

    def send(self, *frames: bytes) -> bool:
        """Send; ``False`` once the server closed the connection."""
        try:
            self.sock.sendall(b"".join(frames))
            return True
        except OSError:
            self.closed = True
            return False

    def read_frame(self, timeout: float = 5.0) -> tuple[int, int, int, bytes] | None:
        """The next frame (type, flags, stream id, payload); None if closed or nothing came in time."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buffer) >= 9:
                high, low, frame_type, flags, stream_id = struct.unpack_from(">HBBBL", self.buffer)
                length = (high << 8) | low
                if len(self.buffer) >= 9 + length:
                    payload = self.buffer[9 : 9 + length]
                    self.buffer = self.buffer[9 + length :]
                    return frame_type, flags, stream_id & 0x7FFFFFFF, payload
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                return None
            except OSError:
                data = b""
            if not data:
                self.closed = True
                return None
            self.buffer += data

    def until(self, frame_type: int, timeout: float = 5.0) -> tuple[int, int, int, bytes] | None:
        """Read frames until one of ``frame_type`` (returned) or the end."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            got = self.read_frame(left)
            if got is None:
                return None
            if got[0] == frame_type:
                return got
        return None

    def goaway_code(self, timeout: float = 5.0) -> int | None:
        got = self.until(GOAWAY, timeout)
        return None if got is None else struct.unpack_from(">LL", got[3])[1]

    def wait_closed(self, timeout: float) -> bool:
        """Read (and drop) everything until the server closes the connection; whether it did."""
        deadline = time.monotonic() + timeout
        while not self.closed and (left := deadline - time.monotonic()) > 0:
            self.read_frame(left)
        return self.closed

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for pid {pid}")


class Target:
    """The endpoint server in its own process, with ``limits`` (H2Limits fields) as given."""

    def __init__(self, limits: dict[str, Any] | None = None, log_dir: Path | None = None) -> None:
        self.limits = limits or {}
        self.log_path = (
            log_dir or Path(os.environ.get("TMPDIR", "/tmp"))
        ) / f"attack-target-{os.getpid()}-{id(self)}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.address: tuple[str, int] = ("127.0.0.1", 0)

    def __enter__(self) -> Target:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child writes it until stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.attacks.target", json.dumps(self.limits)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()  # bounded: the child prints it or exits
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"the attack target did not start: {line!r}; log: {self.log_tail()}")
        self.address = ("127.0.0.1", int(line.split()[1]))
        self.assert_answers()

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
        with contextlib.suppress(OSError):
            self.log_path.unlink()

    @property
    def pid(self) -> int:
        assert self.proc is not None, "target not started"
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss(self) -> int:
        return _status(self.pid, "VmRSS")

    def peak_rss(self) -> int:
        return _status(self.pid, "VmHWM")

    def cpu_seconds(self) -> float:
        """User + system CPU time the process used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def reset_peak_rss(self) -> None:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def assert_answers(self, http1: bool = False) -> None:
        """A fresh connection gets ``GET /health`` answered within 2 s."""
        started = time.monotonic()
        with H2Client(self.url, timeout=ANSWER_WITHIN) as client:
            response = client.request("GET", "/health")
        assert response.status == 200 and b"ok" in response.body, response
        if http1:
            with socket.create_connection(self.address, timeout=ANSWER_WITHIN) as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nhost: attack\r\nconnection: close\r\n\r\n")
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        elapsed = time.monotonic() - started
        assert elapsed < ANSWER_WITHIN, f"a fresh request took {elapsed:.2f}s"

    @contextlib.contextmanager
    def attack(
        self, name: str, max_rss_growth: int = 16 * MiB, max_log_bytes: int = 64 * 1024, http1: bool = False
    ) -> Iterator[None]:
        """Run one attack; then the process must be alive, answer, and have stayed within bounds."""
        assert self.alive(), f"the target died before {name}: {self.log_tail()}"
        before = self.rss()
        log_before = self.log_size()
        self.reset_peak_rss()
        yield
        assert self.alive(), f"the target died during {name}: {self.log_tail()}"
        peak = self.peak_rss()
        self.assert_answers(http1=http1)
        growth = peak - before
        assert growth < max_rss_growth, (
            f"{name}: peak RSS {peak / MiB:.1f} MiB, {growth / MiB:.1f} MiB above the "
            f"{before / MiB:.1f} MiB before (bound {max_rss_growth / MiB:.0f} MiB)"
        )
        logged = self.log_size() - log_before
        assert logged < max_log_bytes, (
            f"{name}: {logged} bytes of log (bound {max_log_bytes}): {self.log_since(log_before)[:2000]}"
        )
