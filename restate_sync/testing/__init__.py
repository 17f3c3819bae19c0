"""Test your services against a real restate-server (or a cluster of them), no Docker needed.

::

    import restate_sync.testing

    with restate_sync.testing.start(Greeter, Counter) as env:
        assert env.ingress.call("Greeter", "greet", "World") == "Hello, World!"

    harness = restate_sync.testing.RestateTestHarness(Greeter, disable_retries=True, nodes=3)
    harness.start()
    ...
    harness.stop()

The restate-server binary is found through ``RESTATE_SERVER_BIN``, then ``PATH``, then installed
with npm into a cache directory (see :mod:`restate_sync.restate_server`). Everything listens on
loopback on free ports, with a fresh data directory, and is torn down on exit, also after a
failure. The endpoint runs on its own gevent hub in a background thread, so tests can use plain
blocking clients; under gevent monkey-patching it runs as a greenlet instead.

Modules: :mod:`.harness` (:class:`RestateTestHarness` and :func:`start`),
:mod:`.endpoint_thread` (:class:`EndpointThread`).
"""

from __future__ import annotations

from .endpoint_thread import EndpointThread
from .harness import (
    ALWAYS_SUSPEND_ENV,
    DISABLE_RETRIES_ENV,
    RestateTestHarness,
    TestEnvironment,
    start,
)

__all__ = [
    "ALWAYS_SUSPEND_ENV",
    "DISABLE_RETRIES_ENV",
    "EndpointThread",
    "RestateTestHarness",
    "TestEnvironment",
    "start",
]
