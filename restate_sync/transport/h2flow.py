"""HTTP/2 flow-control windows (RFC 9113 §5.2, §6.9), one per stream and direction plus the
connection's.

* :class:`SendWindow` — how many DATA octets we may still send. WINDOW_UPDATE grows it; a change
  of the peer's SETTINGS_INITIAL_WINDOW_SIZE moves every stream's window by the difference, which
  may make it negative (the sender then waits for more credit).
* :class:`ReceiveWindow` — how many octets the peer may still send us. Every DATA frame (padding
  included) uses it up; credit goes back to the peer as the application *consumes* what it was
  given, in batches: nothing is returned until half the window has been consumed, then all of
  it in one WINDOW_UPDATE, so a large body costs a handful of updates, not one per frame.
"""

from __future__ import annotations

from .h2frames import MAX_WINDOW

__all__ = ["ReceiveWindow", "SendWindow"]


class SendWindow:
    __slots__ = ("available",)

    def __init__(self, initial: int) -> None:
        self.available = initial

    def grow(self, increment: int) -> bool:
        """Add credit; ``False`` if the window now exceeds 2^31-1 (a FLOW_CONTROL_ERROR)."""
        self.available += increment
        return self.available <= MAX_WINDOW

    def __repr__(self) -> str:
        return f"SendWindow({self.available})"


class ReceiveWindow:
    __slots__ = ("consumed_pending", "outstanding", "size", "threshold")

    def __init__(self, size: int) -> None:
        self.size = size  # the window we advertised
        self.outstanding = 0  # octets the peer sent that we have not given back yet
        self.consumed_pending = 0  # of those, consumed by the application, not yet given back
        self.threshold = max(1, size // 2)

    def receive(self, octets: int) -> bool:
        """Account a DATA frame; ``False`` if the peer sent beyond the window."""
        self.outstanding += octets
        return self.outstanding <= self.size

    def consume(self, octets: int) -> int:
        """The application took ``octets``: the WINDOW_UPDATE increment to send now, or 0."""
        pending = self.consumed_pending + octets
        if pending < self.threshold:
            self.consumed_pending = pending
            return 0
        self.consumed_pending = 0
        self.outstanding -= pending
        return pending

    def __repr__(self) -> str:
        return f"ReceiveWindow(size={self.size}, outstanding={self.outstanding}, pending={self.consumed_pending})"
