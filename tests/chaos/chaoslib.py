"""Faults under load: kill -9 the SDK process, restate-server or a cluster node while hundreds of
invocations are in flight, restart them, then prove from the outside what was kept.

One run (:class:`ChaosRun`):

1. start restate-server (one node) or a :class:`~restate_sync.restate_server.RestateCluster`,
   and the SDK process serving ``tests/chaos/services.py`` (``restate-sync serve --workers``), on
   ports outside the ephemeral range so that both restart on them;
2. send ``invocations`` ``Ledger.work`` invocations over ``keys`` object keys, each with an
   idempotency key (a send cut off by a fault is sent again, through another node, and is still
   one invocation), each running ``steps`` durable steps that read and write the object's state;
3. while they run, inject the planned faults, each when the records show a given share of the
   steps done: ``sdk`` (SIGKILL the SDK process group, start it again), ``server`` (SIGKILL the
   single restate-server, start it again on its data), ``node:<i>`` (SIGKILL cluster node ``i``,
   start it again on its data);
4. attach to every invocation (again after a cut-off attach) and read every key's counter;
5. check the records of every side-effect execution (see ``services.py``) against the results.

What is proved (:class:`ChaosReport`): no invocation lost (each finished with a result); no
journaled step result replaced (every execution of step ``i + 1`` saw the same ``prev``, it is a
value some execution of step ``i`` produced, and the result is a value of the last step); every
state update applied exactly once (each invocation's steps saw consecutive counter values, the
invocations of a key covered ``0 .. n*steps - 1`` without overlap, the final counter is
``n*steps``); and how many steps ran more than once (at-least-once side effects: allowed only for
a step whose result was not journaled yet, so never for a step once the next one had started).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from restate_sync.client import IngressClient, IngressError
from restate_sync.restate_server import RestateCluster, RestateServer
from restate_sync.restate_server.processes import LoggedProcess, stable_free_ports, tail_file
from restate_sync.restate_server.readiness import wait_services_known

from .services import RECORD_FILE_ENV, start_value

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES_FILE = Path(__file__).resolve().parent / "services.py"
SERVICE = "Ledger"

_MAX_PROBLEMS = 25
_RETRY_PAUSE = 0.2


@dataclass(frozen=True)
class Fault:
    """``kind`` (``sdk``, ``server``, ``node:<index>``) injected at ``at`` (share of steps done)."""

    kind: str
    at: float


@dataclass
class ChaosConfig:
    name: str
    nodes: int = 1
    invocations: int = 200
    keys: int = 50
    steps: int = 4
    step_delay: float = 0.3
    workers: int = 2
    faults: tuple[Fault, ...] = ()
    deadline: float = 300.0
    senders: int = 8
    attachers: int = 32

    def scaled(self, scale: int) -> ChaosConfig:
        """``scale`` times the invocations and keys (the same faults, the same shares)."""
        return ChaosConfig(
            name=self.name,
            nodes=self.nodes,
            invocations=self.invocations * scale,
            keys=self.keys * scale,
            steps=self.steps,
            step_delay=self.step_delay,
            workers=self.workers,
            faults=self.faults,
            deadline=self.deadline * max(1, scale // 2),
            senders=self.senders,
            attachers=self.attachers,
        )


@dataclass
class FaultRecord:
    kind: str
    planned_at: float
    injected_at: float | None = None  # share of steps done when it was injected
    recovery_seconds: float | None = None  # SIGKILL until restarted and ready again


@dataclass
class ChaosReport:
    name: str
    nodes: int
    invocations: int
    keys: int
    steps: int
    faults: list[FaultRecord] = field(default_factory=list)
    completed: int = 0
    lost: int = 0
    replaced_journal_values: int = 0
    state_update_errors: int = 0
    executions: int = 0
    reexecuted_steps: int = 0
    reexecuted_after_journaled: int = 0
    resent: int = 0
    reattached: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def faults_injected(self) -> int:
        return sum(1 for f in self.faults if f.injected_at is not None)

    @property
    def ok(self) -> bool:
        return (
            not self.problems
            and self.lost == 0
            and self.replaced_journal_values == 0
            and self.state_update_errors == 0
            and self.reexecuted_after_journaled == 0
            and self.completed == self.invocations
            and self.faults_injected == len(self.faults)
        )

    def problem(self, text: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(text)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["faults_injected"] = self.faults_injected
        data["ok"] = self.ok
        return data

    def summary(self) -> str:
        faults = ", ".join(
            f"{f.kind}@{f.injected_at:.0%} (back in {f.recovery_seconds:.1f}s)"
            if f.injected_at is not None and f.recovery_seconds is not None
            else f"{f.kind}: NOT INJECTED"
            for f in self.faults
        )
        return (
            f"{self.name}: {self.invocations} invocations x {self.steps} steps on {self.keys} keys, "
            f"{self.nodes} node(s), faults [{faults}]: completed {self.completed}, lost {self.lost}, "
            f"replaced journal values {self.replaced_journal_values}, state-update errors "
            f"{self.state_update_errors}, step executions {self.executions}, re-executed steps "
            f"{self.reexecuted_steps} (after journaled: {self.reexecuted_after_journaled}), "
            f"sends repeated {self.resent}, attaches repeated {self.reattached}, {self.seconds:.1f}s"
        )


class ChaosRun:
    """One chaos run in ``workdir`` (logs, data and the record file stay there)."""

    def __init__(self, config: ChaosConfig, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.record_file = workdir / "records.jsonl"
        self.report = ChaosReport(
            name=config.name,
            nodes=config.nodes,
            invocations=config.invocations,
            keys=config.keys,
            steps=config.steps,
            faults=[FaultRecord(f.kind, f.at) for f in config.faults],
        )
        self.runtime: RestateServer | RestateCluster | None = None
        self.sdk: LoggedProcess | None = None
        self.sdk_port = 0
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._progress_offset = 0
        self._progress_seen: set[tuple[str, int]] = set()

    # ---- the parts ----------------------------------------------------------------------------

    def ingress_urls(self) -> list[str]:
        runtime = self.runtime
        assert runtime is not None
        return runtime.ingress_urls if isinstance(runtime, RestateCluster) else [runtime.ingress_url]

    def _start_runtime(self) -> RestateServer | RestateCluster:
        data = self.workdir / "restate"
        if self.config.nodes == 1:
            return RestateServer(partitions=4, data_dir=str(data), startup_timeout=60).start()
        return RestateCluster(self.config.nodes, data_dir=str(data), log_dir=str(self.workdir)).start()

    def _start_sdk(self) -> None:
        (self.sdk_port,) = stable_free_ports(1)
        self.sdk = LoggedProcess(
            [
                sys.executable,
                "-m",
                "restate_sync.cli",
                "--log-level",
                "warning",
                "serve",
                f"{SERVICES_FILE}:endpoint",
                "--bind",
                f"127.0.0.1:{self.sdk_port}",
                "--workers",
                str(self.config.workers),
                "--grace",
                "1",
            ],
            self.workdir / "sdk.log",
            env={**os.environ, RECORD_FILE_ENV: str(self.record_file), "PYTHONUNBUFFERED": "1"},
            cwd=REPO_ROOT,
            name="chaos SDK process",
        )
        self.sdk.start("chaos: SDK process")
        self.sdk.wait_listening(self.sdk_port, timeout=30)

    # ---- load -----------------------------------------------------------------------------------

    def _specs(self) -> list[tuple[str, str]]:
        """(key, invocation id) for every invocation, keys round-robin."""
        run = uuid.uuid4().hex[:8]
        keys = [f"{run}-k{k}" for k in range(self.config.keys)]
        return [(keys[i % len(keys)], f"{run}-i{i}") for i in range(self.config.invocations)]

    def _retrying(self, what: str, index: int, call: Callable[[IngressClient], Any], counter: str) -> Any:
        """``call`` against the ingresses (rotating from ``index``) until it answers or the deadline."""
        urls = self.ingress_urls()
        attempt = 0
        last = "no attempt"
        while time.monotonic() < self._deadline:
            url = urls[(index + attempt) % len(urls)]
            if attempt:
                with self._lock:
                    setattr(self.report, counter, getattr(self.report, counter) + 1)
            attempt += 1
            try:
                return call(IngressClient(url, timeout=60))
            except IngressError as exc:
                if exc.status < 500 and exc.status not in (404, 409, 429):
                    raise
                last = f"{url}: {exc}"
            except (OSError, http.client.HTTPException) as exc:
                last = f"{url}: {type(exc).__name__}: {exc}"
            time.sleep(_RETRY_PAUSE)
        raise TimeoutError(f"{what}: no answer before the deadline; last: {last}")

    def _send(self, index: int, key: str, invocation: str) -> str:
        spec = {"id": invocation, "steps": self.config.steps, "delay": self.config.step_delay}
        answer = self._retrying(
            f"send {invocation}",
            index,
            lambda c: c.send(SERVICE, "work", spec, key=key, idempotency_key=invocation),
            "resent",
        )
        return str(answer["invocationId"])

    def _attach(self, index: int, invocation_id: str) -> Any:
        return self._retrying(
            f"attach {invocation_id}", index, lambda c: c.attach(invocation_id, timeout=60), "reattached"
        )

    # ---- faults ---------------------------------------------------------------------------------

    def progress(self) -> float:
        """Share of all steps that ran at least once (re-executions do not count twice)."""
        with self._lock:
            try:
                with open(self.record_file, "rb") as f:
                    f.seek(self._progress_offset)
                    data = f.read()
            except FileNotFoundError:
                return 0.0
            complete = data[: data.rfind(b"\n") + 1]
            self._progress_offset += len(complete)
            for line in complete.splitlines():
                entry = json.loads(line)
                self._progress_seen.add((entry["id"], entry["step"]))
            return len(self._progress_seen) / (self.config.invocations * self.config.steps)

    def _inject(self, kind: str) -> None:
        runtime = self.runtime
        assert runtime is not None and self.sdk is not None
        if kind == "sdk":
            self.sdk.kill()
            time.sleep(0.3)  # the fault itself: the SDK stays down this long (not a synchronisation)
            self.sdk.start("chaos: SDK process restarted after SIGKILL")
            self.sdk.wait_listening(self.sdk_port, timeout=30)
        elif kind == "server":
            assert isinstance(runtime, RestateServer)
            runtime.kill()
            time.sleep(0.3)  # the fault itself: restate-server stays down this long
            runtime.start()
        elif kind.startswith("node:"):
            assert isinstance(runtime, RestateCluster)
            index = int(kind.split(":", 1)[1])
            runtime.kill_node(index)
            time.sleep(0.5)  # the fault itself: the node stays down this long
            runtime.start_node(index, queries=False)  # back = writable through it (no SQL here)
        else:
            raise ValueError(f"unknown fault {kind!r}")

    def _faults(self) -> None:
        for record in self.report.faults:
            while self.progress() < record.planned_at:
                if self._done.wait(0.05):
                    return
            record.injected_at = self.progress()
            started = time.monotonic()
            self._inject(record.kind)
            record.recovery_seconds = time.monotonic() - started

    # ---- the run --------------------------------------------------------------------------------

    def run(self) -> ChaosReport:
        self._deadline = time.monotonic() + self.config.deadline
        self.workdir.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            self.runtime = self._start_runtime()
            stack.callback(self.runtime.close)
            self._start_sdk()
            assert self.sdk is not None
            stack.callback(self.sdk.stop, 2)
            self.runtime.register_deployment(f"http://127.0.0.1:{self.sdk_port}")
            for url in self.ingress_urls():
                wait_services_known(url, [(SERVICE, True)], 30)
            load_started = time.monotonic()
            specs = self._specs()
            faults = threading.Thread(target=self._fault_thread, name="chaos-faults", daemon=True)
            faults.start()
            try:
                with ThreadPoolExecutor(self.config.senders) as pool:
                    ids = list(pool.map(lambda a: self._send(a[0], *a[1]), enumerate(specs)))
                with ThreadPoolExecutor(self.config.attachers) as pool:
                    results = list(pool.map(self._safe_attach, enumerate(ids)))
            finally:
                self._done.set()
                faults.join(300)
            if self._fault_error is not None:
                raise self._fault_error
            counts = self._final_counts(sorted({key for key, _ in specs}))
            self.report.seconds = time.monotonic() - load_started
            self._analyse(specs, results, counts)
        return self.report

    _fault_error: BaseException | None = None

    def _fault_thread(self) -> None:
        try:
            self._faults()
        except BaseException as exc:  # surfaced by run()
            self._fault_error = exc

    def _safe_attach(self, item: tuple[int, str]) -> Any:
        index, invocation_id = item
        try:
            return self._attach(index, invocation_id)
        except (TimeoutError, IngressError) as exc:
            return exc

    def _final_counts(self, keys: list[str]) -> dict[str, Any]:
        counts: dict[str, Any] = {}
        for i, key in enumerate(keys):
            try:
                counts[key] = self._retrying(
                    f"count of {key}", i, lambda c, key=key: c.call(SERVICE, "count", key=key), "reattached"
                )
            except (TimeoutError, IngressError) as exc:
                counts[key] = exc
        return counts

    # ---- the proof ------------------------------------------------------------------------------

    def _analyse(self, specs: list[tuple[str, str]], results: list[Any], counts: dict[str, Any]) -> None:
        report, steps = self.report, self.config.steps
        records: dict[str, dict[int, list[tuple[int, dict[str, Any]]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for line_no, line in enumerate(self.record_file.read_text().splitlines()):
            entry = json.loads(line)
            records[entry["id"]][int(entry["step"])].append((line_no, entry))
            report.executions += 1
        by_key: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for (key, invocation), result in zip(specs, results, strict=True):
            if not isinstance(result, dict):
                report.lost += 1
                report.problem(f"{invocation}: no result ({result})")
                continue
            report.completed += 1
            executions = records.get(invocation, {})
            # The journaled value of each step: what every execution of the next step saw,
            # and for the last step the result.
            journaled: list[str | None] = []
            for step in range(steps):
                if step + 1 < steps:
                    prevs = {e["prev"] for _, e in executions.get(step + 1, [])}
                    if len(prevs) > 1:
                        report.replaced_journal_values += 1
                        report.problem(
                            f"{invocation}: step {step + 1} ran on different results of step {step}: {prevs}"
                        )
                    journaled.append(next(iter(prevs)) if prevs else None)
                else:
                    journaled.append(str(result.get("last")))
            first_prev = {e["prev"] for _, e in executions.get(0, [])}
            if first_prev != {start_value(invocation)}:
                report.replaced_journal_values += 1
                report.problem(f"{invocation}: step 0 ran with {first_prev}")
            seen = result.get("seen")
            for step in range(steps):
                runs = executions.get(step, [])
                if not runs:
                    report.replaced_journal_values += 1
                    report.problem(f"{invocation}: step {step} has no record of running")
                    continue
                report.reexecuted_steps += len(runs) - 1
                values = {e["value"] for _, e in runs}
                if journaled[step] not in values:
                    report.replaced_journal_values += 1
                    report.problem(
                        f"{invocation}: journaled step {step} = {journaled[step]!r} was never produced"
                    )
                if len({e["seen"] for _, e in runs}) != 1:
                    report.state_update_errors += 1
                    report.problem(
                        f"{invocation}: step {step} saw different counters {[e['seen'] for _, e in runs]}"
                    )
                if step + 1 < steps and executions.get(step + 1):
                    next_started = min(n for n, _ in executions[step + 1])
                    late = [n for n, _ in runs if n > next_started]
                    if late:
                        report.reexecuted_after_journaled += len(late)
                        report.problem(f"{invocation}: step {step} ran again after step {step + 1} had run")
            if (
                not isinstance(seen, list)
                or len(seen) != steps
                or seen != list(range(seen[0], seen[0] + steps))
            ):
                report.state_update_errors += 1
                report.problem(f"{invocation}: its steps saw counters {seen}, not consecutive ones")
                continue
            by_key[key].append((int(seen[0]), invocation))
        for key, starts in by_key.items():
            n = sum(1 for k, _ in specs if k == key)
            covered = sorted(c for start, _ in starts for c in range(start, start + steps))
            if covered != list(range(n * steps)):
                report.state_update_errors += 1
                report.problem(
                    f"key {key}: the invocations' counters {covered} are not 0..{n * steps - 1} once each"
                )
            if counts.get(key) != n * steps:
                report.state_update_errors += 1
                report.problem(f"key {key}: final counter {counts.get(key)!r}, expected {n * steps}")

    def diagnostics(self) -> str:
        parts = [
            f"--- SDK process log ({self.workdir / 'sdk.log'}):\n{tail_file(self.workdir / 'sdk.log', 40)}"
        ]
        runtime = self.runtime
        if runtime is not None:
            parts.append(f"--- restate-server:\n{runtime.log_tail(30, since_start=False)}")
        return "\n".join(parts)


SHORT_SINGLE_NODE = ChaosConfig(
    name="single node",
    nodes=1,
    faults=(Fault("sdk", 0.2), Fault("server", 0.45), Fault("sdk", 0.7)),
)
SHORT_THREE_NODES = ChaosConfig(
    name="three nodes",
    nodes=3,
    faults=(Fault("sdk", 0.15), Fault("node:1", 0.35), Fault("node:2", 0.6)),
)
