"""The errors of :mod:`restate_sync.restate_server`."""

from __future__ import annotations

__all__ = ["RestateServerError", "ServerBinaryNotFound"]


class RestateServerError(RuntimeError):
    """restate-server could not be found, installed, started or stopped."""


class ServerBinaryNotFound(RestateServerError):
    """No usable restate-server binary (and installing one was not allowed or failed)."""
