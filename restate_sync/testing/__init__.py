"""Testing durable handlers: a real restate-server with your services (:mod:`.harness`).

::

    import restate_sync.testing

    with restate_sync.testing.start(Greeter, Counter) as env:
        assert env.ingress.call("Greeter", "greet", "World") == "Hello, World!"
"""

from .harness import EndpointThread, TestEnvironment, start

__all__ = ["EndpointThread", "TestEnvironment", "start"]
