"""Bounded waiting on a condition: the tests' only way to wait for something to happen.

:func:`wait_until` is the one the product uses too; it lives with the rest of the local-process
toolkit in :mod:`restate_sync.restate_server.processes` and is re-exported here for the tests.
"""

from __future__ import annotations

from restate_sync.restate_server.processes import wait_until

__all__ = ["wait_until"]
