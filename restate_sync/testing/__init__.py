"""Testing durable handlers.

* :mod:`.harness` — a real restate-server with your services::

      with restate_sync.testing.start(Greeter, Counter) as env:
          assert env.ingress.call("Greeter", "greet", "World") == "Hello, World!"

* :mod:`.replay` — no server: :func:`simulate` a handler against a scripted journal, record real
  journals with :class:`JournalRecorder`, :func:`replay` them offline against today's code.
* :mod:`.pytest_plugin` — fixtures for pytest (loaded automatically once restate-sync is installed).
"""

from .harness import EndpointThread, TestEnvironment, start
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
    "EndpointThread",
    "Journal",
    "JournalRecorder",
    "NonDeterminismError",
    "ReplayError",
    "ReplayResult",
    "Simulation",
    "SimulationError",
    "TestEnvironment",
    "replay",
    "simulate",
    "start",
]
