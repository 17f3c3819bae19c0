#!/usr/bin/env python3
"""Scale test: one restate_sync process holding 10,000 concurrent in-flight invocations.

    .venv/bin/python benchmarks/scale_test.py [--quick] [--invocations N] [--json out.json]

1. Starts a restate-server (4 partitions; ``worker.invoker.inactivity-timeout`` raised so parked
   invocations are not suspended, ``worker.invoker.concurrent-invocations-limit`` raised because its
   default of 1,000 per partition would cap the test at 4,000) and
   ``restate-sync serve benchmarks/services/scale_services.py:endpoint``; registers it.
2. Warm-up: 200 invocations held and released, then the baseline RSS of the restate_sync process.
3. Starts N invocations of ``HoldSync/hold`` with one-way ingress requests (``POST .../send``, 16
   client threads with keep-alive connections). Each handler creates an awakeable, appends its id
   to a file (the side channel: restate_sync's streams may all be busy with parked invocations)
   and blocks on it. Waits (bounded) until N handlers are parked at once (or no progress for
   10 s), then samples the RSS (/proc/<pid>/status VmRSS) of the restate_sync process.
4. Resolves every awakeable through the ingress (``POST /restate/awakeables/{id}/resolve``); waits
   (bounded) until every handler returned and checks with the admin SQL API that restate has no
   invocation of ``HoldSync`` left unfinished.

Every phase has a deadline; the script stops everything it started, also on failure or SIGTERM.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib as bl

bl.ensure_project_python()

from restate_sync.client import AdminClient  # noqa: E402
from restate_sync.restate_server import RestateServer  # noqa: E402
from restate_sync.restate_server.processes import wait_until  # noqa: E402

CLIENT_THREADS = 16


class Client:
    """Keep-alive HTTP/1.1 connections to the ingress, one per thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local = threading.local()

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        for attempt in range(3):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                conn.request("POST", path, body=body, headers={"content-type": "application/json"})
                response = conn.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def run_parallel(items: Iterable[Any], fn: Callable[[Any], Any], deadline: float) -> list[Any]:
    results: list[Any] = []
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        futures = [pool.submit(fn, item) for item in items]
        for f in futures:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for other in futures:
                    other.cancel()
                raise TimeoutError("phase deadline passed")
            results.append(f.result(timeout=remaining))
    return results


def wait_for(predicate: Callable[[], Any], deadline: float, what: str, interval: float = 0.25) -> Any:
    """:func:`wait_until` up to the monotonic ``deadline``; TimeoutError when it passes."""
    return wait_until(
        predicate,
        deadline - time.monotonic(),
        interval,
        on_timeout=lambda: TimeoutError(f"timed out waiting for {what}"),
    )


class SideChannel:
    """Reads the awakeable ids and the finished count the handlers append to files."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.offset = 0
        self.ids: list[str] = []
        self.partial = b""
        self.cursor = 0  # ids before it were handed out by unresolved()

    def unresolved(self) -> list[str]:
        self.new_ids()
        fresh = self.ids[self.cursor :]
        self.cursor = len(self.ids)
        return fresh

    def new_ids(self) -> list[str]:
        try:
            with open(self.dir / "ids.txt", "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        fresh = [line.decode() for line in lines if line]
        self.ids.extend(fresh)
        return fresh

    def started(self) -> int:
        self.new_ids()
        return len(self.ids)

    def finished(self) -> int:
        try:
            return (self.dir / "finished.txt").read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0


def established_connections(port: int) -> int:
    """ESTABLISHED TCP connections whose local port is ``port`` (from /proc/net/tcp and tcp6)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                        count += 1
        except OSError:
            continue
    return count


def run_phase(
    n: int, invoker_limit: int | None, out: Path, hard_deadline: float, label: str
) -> dict[str, Any]:
    """One restate-server + one restate_sync process; hold n invocations, then release them."""
    result: dict[str, Any] = {"invocations": n, "label": label, "invoker_limit": invoker_limit}
    phase_dir = out / f"scale-{label}"
    if phase_dir.exists():
        for child in phase_dir.iterdir():
            child.unlink()
    phase_dir.mkdir(parents=True, exist_ok=True)
    server = RestateServer(
        partitions=4,
        log_file=str(phase_dir / "restate-server.log"),
        env={
            # held invocations are idle by design: don't let restate suspend/abort them meanwhile
            "RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT": "30m",
            "RESTATE_WORKER__INVOKER__ABORT_TIMEOUT": "30m",
            **(
                {"RESTATE_WORKER__INVOKER__CONCURRENT_INVOCATIONS_LIMIT": str(invoker_limit)}
                if invoker_limit
                else {}
            ),
        },
    )
    env = {"BENCH_SCALE_DIR": str(phase_dir)}
    with bl.Processes() as procs:
        try:
            server.start()
            port = bl.free_port()
            proc = procs.start(
                [
                    str(bl.PROJECT_PYTHON),
                    str(bl.BENCH_DIR / "services" / "serve_sync.py"),
                    "--log-level",
                    "warning",
                    "serve",
                    str(bl.BENCH_DIR / "services" / "scale_services.py") + ":endpoint",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--grace",
                    "1",
                ],
                phase_dir / "restate_sync.log",
                env=env,
            )
            bl.wait_port(port, proc, what="restate_sync")
            server.register_deployment(f"http://127.0.0.1:{port}")
            admin = AdminClient(server.admin_url)
            client = Client(int(server.ingress_url.rsplit(":", 1)[1]))
            side = SideChannel(phase_dir)

            def start_one(i: int) -> None:
                status, body = client.post("/HoldSync/hold/send", str(i).encode())
                if status == 404:  # the ingress learns the deployment asynchronously
                    time.sleep(0.5)
                    status, body = client.post("/HoldSync/hold/send", str(i).encode())
                if status not in (200, 202):
                    raise RuntimeError(f"send {i}: HTTP {status} {body[:200]!r}")

            def resolve_one(awakeable_id: str) -> None:
                status, body = client.post(f"/restate/awakeables/{awakeable_id}/resolve", b'"ok"')
                if status not in (200, 202):
                    raise RuntimeError(f"resolve {awakeable_id}: HTTP {status} {body[:200]!r}")

            def release_until(total: int, deadline: float) -> None:
                """Resolve every id that shows up until ``total`` handlers have returned."""
                while side.finished() < total:
                    fresh = side.unresolved()
                    if fresh:
                        run_parallel(fresh, resolve_one, deadline)
                    elif time.monotonic() > deadline:
                        raise TimeoutError(f"{side.finished()} of {total} handlers returned")
                    else:
                        time.sleep(0.1)

            # ---- warm-up and baseline
            warm = 200
            run_parallel(range(warm), start_one, time.monotonic() + 60)
            wait_for(lambda: side.started() >= warm, time.monotonic() + 60, "warm-up handlers")
            release_until(warm, time.monotonic() + 60)
            time.sleep(1.0)
            baseline = bl.rss_bytes(proc.pid)
            result["rss_baseline"] = baseline
            bl.log(
                f"[{label}] baseline RSS of restate_sync after {warm} warm-up invocations: {bl.fmt_bytes(baseline)}"
            )

            # ---- start n and hold them
            t0 = time.monotonic()
            run_parallel(range(warm, warm + n), start_one, min(hard_deadline, t0 + 300))
            result["start_seconds"] = time.monotonic() - t0
            bl.log(f"[{label}] {n:,} one-way sends accepted by the ingress in {result['start_seconds']:.1f}s")
            peak = {"in_flight": 0, "rss": 0, "changed": time.monotonic(), "last": -1}

            def parked_or_stalled() -> bool:
                in_flight = side.started() - side.finished()
                now = time.monotonic()
                if in_flight != peak["last"]:
                    peak["last"], peak["changed"] = in_flight, now
                peak["in_flight"] = max(peak["in_flight"], in_flight)
                peak["rss"] = max(peak["rss"], bl.rss_bytes(proc.pid))
                return in_flight >= n or now - peak["changed"] > 10  # no progress for 10 s: a cap

            wait_for(parked_or_stalled, min(hard_deadline, time.monotonic() + 240), "parked handlers", 0.5)
            result["park_seconds"] = time.monotonic() - t0
            time.sleep(1.0)
            held = bl.rss_bytes(proc.pid)
            in_flight = side.started() - side.finished()
            result["in_flight_peak"] = max(peak["in_flight"], in_flight)
            result["all_in_flight"] = result["in_flight_peak"] >= n
            result["rss_held"] = max(held, peak["rss"])
            result["rss_per_invocation"] = (result["rss_held"] - baseline) / max(1, result["in_flight_peak"])
            result["restate_server_rss"] = bl.rss_bytes(server.pid)
            result["h2_connections"] = established_connections(port)
            bl.log(
                f"[{label}] {result['in_flight_peak']:,} of {n:,} in flight at once: RSS {bl.fmt_bytes(result['rss_held'])} "
                f"(+{bl.fmt_bytes(result['rss_held'] - baseline)}, {bl.fmt_bytes(result['rss_per_invocation'])}/invocation); "
                f"restate-server RSS {bl.fmt_bytes(result['restate_server_rss'])}; "
                f"{result['h2_connections']} h2 connections from restate-server"
            )

            # ---- resolve all (those beyond a stream cap arrive as earlier ones finish)
            t1 = time.monotonic()
            try:
                release_until(warm + n, min(hard_deadline, t1 + 300))
                result["all_finished"] = True
            except TimeoutError as exc:
                bl.log(f"[{label}] {exc}")
                result["all_finished"] = False
            result["finished"] = side.finished() - warm
            result["complete_seconds"] = time.monotonic() - t1
            time.sleep(1.0)
            rows = admin.query(
                "SELECT status, count(*) AS n FROM sys_invocation "
                "WHERE target_service_name = 'HoldSync' GROUP BY status"
            )
            result["restate_status"] = {r["status"]: r["n"] for r in rows}
            result["restate_unfinished"] = sum(
                v for k, v in result["restate_status"].items() if k != "completed"
            )
            result["rss_after"] = bl.rss_bytes(proc.pid)
            result["ok"] = bool(result["all_finished"] and result["restate_unfinished"] == 0)
            bl.log(
                f"[{label}] {result['finished']:,} of {n:,} handlers returned {result['complete_seconds']:.1f}s after "
                f"the resolving started; restate statuses {result['restate_status']}; RSS after "
                f"{bl.fmt_bytes(result['rss_after'])}"
            )
        finally:
            procs.stop_all()
            server.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2,000 invocations instead of 10,000")
    parser.add_argument("--invocations", type=int)
    parser.add_argument(
        "--invoker-limit",
        type=int,
        default=20_000,
        help="restate-server worker.invoker.concurrent-invocations-limit (its default, 1,000 per partition, "
        "caps in-flight invocations at 4,000 with 4 partitions); 0 keeps the default",
    )
    parser.add_argument("--json", help="write the results (and a markdown section) to this file")
    parser.add_argument("--out-dir", help="directory for logs (default: benchmarks/out/scale-<time>)")
    args = parser.parse_args()
    n = args.invocations or (2_000 if args.quick else 10_000)
    out = Path(args.out_dir) if args.out_dir else bl.OUT_DIR / f"scale-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    with bl.sigterm_as_exit():
        phase = run_phase(n, args.invoker_limit or None, out, t_start + 720, "scale")
    result: dict[str, Any] = {**phase, "elapsed_s": time.monotonic() - t_start}
    result["markdown"] = markdown(result)
    print(result["markdown"])
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0 if result["ok"] and result["all_in_flight"] else 1


def _try(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:
        return None


def markdown(r: dict[str, Any]) -> str:
    n = r["invocations"]
    limit = r.get("invoker_limit")
    lines = [
        f"{n:,} invocations of `HoldSync/hold` started with one-way ingress sends (after 200 warm-up ones); each "
        "handler creates an awakeable, appends its id to a file (the side channel) and blocks on it; then every id "
        "is resolved through the ingress (`POST /restate/awakeables/{id}/resolve`). RSS is VmRSS of the "
        "restate_sync process (/proc/<pid>/status). restate-server (4 partitions) runs with "
        "`worker.invoker.inactivity-timeout = 30m` so parked invocations stay in flight instead of being suspended"
        + (
            f", and `worker.invoker.concurrent-invocations-limit = {limit:,}`: with its default the runtime itself "
            "keeps at most 1,000 invocations per partition in flight (4,000 here) and queues the rest."
            if limit
            else "."
        ),
        "",
        "| measure | value |",
        "|---|---|",
        f"| invocations parked at once (peak) | {r.get('in_flight_peak', 0):,} of {n:,} |",
        f"| sends accepted / all parked after | {r.get('start_seconds', float('nan')):.1f} s / {r.get('park_seconds', float('nan')):.1f} s |",
        f"| h2 connections restate-server opened to restate_sync | {r.get('h2_connections', '?')} |",
        f"| restate_sync RSS: baseline (after warm-up) | {bl.fmt_bytes(r.get('rss_baseline', 0))} |",
        f"| restate_sync RSS: all parked | **{bl.fmt_bytes(r.get('rss_held', 0))}** |",
        f"| RSS per parked invocation | {bl.fmt_bytes(r.get('rss_per_invocation', 0))} |",
        f"| restate-server RSS meanwhile | {bl.fmt_bytes(r.get('restate_server_rss', 0))} |",
        f"| handlers returned after resolving | {r.get('finished', 0):,} of {n:,} in {r.get('complete_seconds', float('nan')):.1f} s |",
        f"| restate `sys_invocation` statuses of HoldSync (incl. warm-up) | {r.get('restate_status', {})} |",
        f"| restate_sync RSS after all completed | {bl.fmt_bytes(r.get('rss_after', 0))} |",
        f"| all in flight at once, all completed | {'yes' if r.get('ok') and r.get('all_in_flight') else '**no**'} |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
