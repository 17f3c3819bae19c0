"""Testing durable handlers.

* :mod:`.harness` — a real restate-server (or a cluster of them) with your services, no Docker::

      with restate_sync.testing.start(Greeter, Counter) as env:
          assert env.ingress.call("Greeter", "greet", "World") == "Hello, World!"

      harness = restate_sync.testing.RestateTestHarness(Greeter, disable_retries=True, nodes=3)
      harness.start()
      ...
      harness.stop()

  The restate-server binary is found through ``RESTATE_SERVER_BIN``, then ``PATH``, then
  installed with npm into a cache directory (see :mod:`restate_sync.restate_server`). Everything
  listens on loopback on free ports, with a fresh data directory, and is torn down on exit, also
  after a failure. The endpoint runs on its own gevent hub in a background thread
  (:mod:`.endpoint_thread`), so tests can use plain blocking clients.
* :mod:`.replay` — no server: :func:`simulate` a handler against a scripted journal, record real
  journals with :class:`JournalRecorder`, :func:`replay` them offline against today's code.
* :mod:`.pytest_plugin` — fixtures for pytest (loaded automatically once restate-sync is installed).
"""

from .endpoint_thread import EndpointThread
from .harness import (
    ALWAYS_SUSPEND_ENV,
    DISABLE_RETRIES_ENV,
    RestateTestHarness,
    TestEnvironment,
    start,
)
from .replay import (
    Journal,
    JournalRecorder,
    NonDeterminismError,
    ReplayError,
    ReplayResult,
    Simulation,
    SimulationError,
    replay,
    simulate,
)

__all__ = [
    "ALWAYS_SUSPEND_ENV",
    "DISABLE_RETRIES_ENV",
    "EndpointThread",
    "Journal",
    "JournalRecorder",
    "NonDeterminismError",
    "ReplayError",
    "ReplayResult",
    "RestateTestHarness",
    "Simulation",
    "SimulationError",
    "TestEnvironment",
    "replay",
    "simulate",
    "start",
]
