"""The life of an HTTP/2 stream, seen from the server (RFC 9113 §5.1), and the protocol error.

Rules of this file
------------------
* Every stream state and every transition between states is listed here, in
  :data:`TRANSITIONS`; :mod:`.h2connection` moves a stream only through :func:`transition`.
* A transition that the table does not list is not a programming error but bad input from the
  peer: :func:`transition` returns ``None`` and the caller decides between a stream error and a
  connection error (:class:`H2ProtocolError`).

Theory of operation
-------------------
::

    IDLE ──recv HEADERS──▶ OPEN ──recv END_STREAM──▶ HALF_CLOSED_REMOTE ──send END_STREAM──▶ CLOSED
      │                     │                                                                ▲
      │                     └──send END_STREAM──▶ HALF_CLOSED_LOCAL ──recv END_STREAM────────┤
      └──recv HEADERS + END_STREAM──▶ HALF_CLOSED_REMOTE                                      │
    OPEN / HALF_CLOSED_* ──send or recv RST_STREAM─────────────────────────────────────────────┘

A server never sends PUSH_PROMISE, so the reserved states do not occur. Request body frames
(DATA, trailers) are accepted while the remote half is open (:data:`RECEIVING`), response frames
may be sent while the local half is (:data:`SENDING`). A CLOSED stream's state is dropped by the
connection; frames that arrive for it later are answered from the stream id alone.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

__all__ = [
    "RECEIVING",
    "SENDING",
    "TRANSITIONS",
    "H2ProtocolError",
    "StreamInput",
    "StreamState",
    "transition",
]


class StreamState(IntEnum):
    # IntEnum: hashed and compared as ints, which keeps the per-frame checks cheap
    IDLE = 0
    OPEN = 1
    HALF_CLOSED_REMOTE = 2
    HALF_CLOSED_LOCAL = 3
    CLOSED = 4

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", " ")


class StreamInput(IntEnum):
    RECV_HEADERS = 0  # a request header block without END_STREAM
    RECV_HEADERS_END = 1  # a request header block with END_STREAM
    RECV_END_STREAM = 2  # END_STREAM on DATA or on trailers
    SEND_END_STREAM = 3
    RECV_RST_STREAM = 4
    SEND_RST_STREAM = 5


_S = StreamState
_I = StreamInput

TRANSITIONS: Final[dict[tuple[StreamState, StreamInput], StreamState]] = {
    (_S.IDLE, _I.RECV_HEADERS): _S.OPEN,
    (_S.IDLE, _I.RECV_HEADERS_END): _S.HALF_CLOSED_REMOTE,
    (_S.OPEN, _I.RECV_END_STREAM): _S.HALF_CLOSED_REMOTE,
    (_S.OPEN, _I.SEND_END_STREAM): _S.HALF_CLOSED_LOCAL,
    (_S.HALF_CLOSED_REMOTE, _I.SEND_END_STREAM): _S.CLOSED,
    (_S.HALF_CLOSED_LOCAL, _I.RECV_END_STREAM): _S.CLOSED,
    **{
        (state, reset): _S.CLOSED
        for state in (_S.OPEN, _S.HALF_CLOSED_REMOTE, _S.HALF_CLOSED_LOCAL)
        for reset in (_I.RECV_RST_STREAM, _I.SEND_RST_STREAM)
    },
}

RECEIVING: Final = frozenset({_S.OPEN, _S.HALF_CLOSED_LOCAL})
"""States in which the peer may still send request body frames (DATA, trailers)."""
SENDING: Final = frozenset({_S.OPEN, _S.HALF_CLOSED_REMOTE})
"""States in which the server may still send response frames."""

_lookup = TRANSITIONS.get


def transition(state: StreamState, event: StreamInput) -> StreamState | None:
    """The state after ``event``, or ``None`` if ``event`` is not allowed in ``state``."""
    return _lookup((state, event))


class H2ProtocolError(Exception):
    """A connection error (RFC 9113 §5.4.1): the connection sends GOAWAY with :attr:`code` and closes.

    :attr:`frame` names the frame that broke the protocol (``"DATA"``, ``"preface"``, ...) and
    :attr:`state` the state it met: a stream state's label, or ``"connection"``.
    """

    def __init__(self, code: int, frame: str, state: str, message: str) -> None:
        super().__init__(f"{frame} in state {state}: {message}")
        self.code = code
        self.frame = frame
        self.state = state
        self.detail = message
