"""Official Python SDK (``restate-sdk`` from PyPI) side of the benchmark, served by hypercorn (h2c).

Runs in the separate virtualenv ``benchmarks/.venv-official`` (never a dependency of restate_sync):

    benchmarks/.venv-official/bin/python benchmarks/services/official_services.py --port 9081

Hypercorn settings that matter (see benchmarks/README.md):

* ``keep_alive_max_requests``: hypercorn closes an HTTP/2 connection once it has seen this many
  requests (default 1,000). restate-server multiplexes every invocation over one pooled h2
  connection, so the default makes the runtime fail and retry every in-flight stream once per
  1,000 invocations. We set it to 2**62 (never).
* ``keep_alive_timeout``: idle connections are closed after it (default 5 s); raised to 3,600 s
  so the runtime's pooled connection survives the pauses between measured windows.
* ``h2_max_concurrent_streams``: 100 by default; raised to 1,000 (c=50 plus one-way sends).
* one process (``serve()`` in-process, no worker subprocess), access log off, loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal

import restate
from hypercorn.asyncio import serve
from hypercorn.config import Config

noop = restate.Service("NoopPy")


@noop.handler()
async def echo(ctx: restate.Context, value: str) -> str:
    return value


greeter = restate.Service("GreeterPy")


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    # an async action: restate-sdk runs a plain (sync) function in a thread-pool executor, which
    # would cost the official SDK a thread hop per run; the coroutine is its cheapest idiom.
    async def build() -> str:
        return f"Hello, {name}!"

    return await ctx.run_typed("greet", build)


counter = restate.VirtualObject("CounterPy")


@counter.handler()
async def add(ctx: restate.ObjectContext, amount: int) -> int:
    current = await ctx.get("count", type_hint=int) or 0
    ctx.set("count", current + amount)
    return current + amount


sender = restate.Service("SenderPy")


@sender.handler()
async def send(ctx: restate.Context, value: str) -> str:
    ctx.service_send(echo, value)
    return "sent"


app = restate.app(services=[noop, greeter, counter, sender])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = Config()
    config.bind = [f"{args.host}:{args.port}"]
    config.keep_alive_max_requests = 2**62  # never close the runtime's h2 connection (default 1,000)
    config.keep_alive_timeout = 3600
    config.h2_max_concurrent_streams = 1000
    config.backlog = 1024
    config.accesslog = None
    config.errorlog = "-"
    config.loglevel = "WARNING"
    config.graceful_timeout = 1.0
    asyncio.run(_serve(config))


async def _serve(config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        # hypercorn's graceful shutdown can wait on the runtime's idle pooled connection; the
        # benchmark needs the process gone (sockets closed) promptly, so exit hard shortly after.
        stop.set()
        loop.call_later(1.0, os._exit, 0)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
