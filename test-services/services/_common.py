"""Helpers shared by the contract services (public ``restate_sync`` API only)."""

from __future__ import annotations

import logging
from typing import Any

import restate_sync as restate

logger = logging.getLogger("test_services")


class UnitSerde:
    """Output serde of the contract's ``Unit`` handlers: an empty body, never ``null``.

    SDK-GAP: ``JsonSerde`` encodes a handler's ``None`` result as ``null``; the contract wants an
    empty body for handlers returning Unit (the upstream contracts (restatedev/e2e, sdk-tests): "For a handler returning
    Unit, the runner ignores the body. Return an empty body."). The SDK has no built-in "no
    output" serde, so this small one (the public ``restate.Serde`` protocol) is used instead.
    """

    content_type = "application/json"

    def serialize(self, obj: Any) -> bytes:
        if obj is None:
            return b""
        return restate.JsonSerde().serialize(obj)

    def deserialize(self, data: bytes) -> Any:
        return restate.JsonSerde().deserialize(data)

    def __repr__(self) -> str:
        return "UnitSerde()"


UNIT = UnitSerde()
"""``output=UNIT`` on every handler whose contract output is "none"."""

RAW = restate.BytesSerde()


def ms(millis: int | float) -> float:
    """Milliseconds (the contracts' unit) → seconds (the SDK's unit)."""
    return float(millis) / 1000.0
