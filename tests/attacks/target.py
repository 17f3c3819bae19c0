"""The process the attacks are aimed at: the endpoint server as ``restate-sync serve`` runs it.

    python -m tests.attacks.target '{"idle_timeout": 2}'
    python -m tests.attacks.target '{"http1": {"max_body_size": 1048576}, "identity_key": "publickeyv1_..."}'

Serves :data:`endpoint` with :class:`~restate_sync.transport.h2server.H2Server` on a free
loopback port, with the :class:`~restate_sync.transport.h2limits.H2Limits` given as JSON (the
defaults otherwise), tuned like ``restate-sync serve`` (``tune_process``). Prints ``PORT <n>``
once it listens; SIGTERM stops it.
"""

from __future__ import annotations

import json
import logging
import signal
import sys

import gevent

import restate_sync as restate
from restate_sync.transport.h2limits import H2Limits
from restate_sync.transport.h2server import H2Server
from restate_sync.transport.http1limits import Http1Limits
from restate_sync.transport.serving import tune_process


class Sleeper(restate.Service):
    @restate.handler
    def nap(ctx: restate.Context, seconds: float) -> str:
        # a run block executes inline: the request body is not consumed meanwhile
        return ctx.run_sync("nap", lambda: gevent.sleep(seconds) or "rested")


class Echo(restate.Service):
    @restate.handler
    def echo(ctx: restate.Context, value: str) -> str:
        return value


endpoint = restate.endpoint(Sleeper, Echo)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    # besides H2Limits fields: "http1" (Http1Limits fields) and "identity_key" (publickeyv1_...)
    http1_limits = Http1Limits(**config.pop("http1", {}))
    identity_key = config.pop("identity_key", None)
    if identity_key:
        endpoint.identity_key(identity_key)
    limits = H2Limits(**config)
    tune_process()
    server = H2Server(endpoint.handle, ("127.0.0.1", 0), limits=limits, http1_limits=http1_limits)
    server.start()
    print(f"PORT {server.address[1]}", flush=True)
    gevent.signal_handler(signal.SIGTERM, lambda: gevent.spawn(server.stop, 1))
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
