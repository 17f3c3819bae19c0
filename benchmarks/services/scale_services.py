"""Services of ``benchmarks/scale_test.py``: invocations that park on an awakeable.

``HoldSync/hold`` creates an awakeable, appends its id to ``$BENCH_SCALE_DIR/ids.txt`` (the side
channel the test reads; not through restate, whose streams to this process may all be taken by
parked invocations) and blocks until the awakeable is resolved through the ingress
(``POST /restate/awakeables/{id}/resolve``); then it appends a line to ``finished.txt``.
"""

from __future__ import annotations

import os

import restate_sync as restate

_dir = os.environ.get("BENCH_SCALE_DIR", ".")
_flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
_ids_fd = os.open(os.path.join(_dir, "ids.txt"), _flags, 0o644)
_finished_fd = os.open(os.path.join(_dir, "finished.txt"), _flags, 0o644)
_seen: set[str] = set()


class HoldSync(restate.Service):
    @restate.handler
    def hold(ctx: restate.Context, index: int) -> str:
        awakeable_id, future = ctx.awakeable()
        if awakeable_id not in _seen:  # a retried attempt re-creates the same id
            _seen.add(awakeable_id)
            os.write(_ids_fd, awakeable_id.encode() + b"\n")
        value = future.result()
        os.write(_finished_fd, b"1\n")
        return f"{index}:{value}"


endpoint = restate.endpoint(HoldSync)
