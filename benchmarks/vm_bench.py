#!/usr/bin/env python3
"""Micro-benchmarks of the sans-I/O protocol VM (``restate_sync.protocol.vm.VM``) and the framing.

    .venv/bin/python benchmarks/vm_bench.py [--quick] [--json out.json]

1. **Replay**: journals of 10, 1,000 and 10,000 entries (plus 100,000 to check linearity; not in
   ``--quick``) are built as real framed protocol bytes — ``StartMessage``, ``InputCommand``, then
   ``RunCommand``/``RunCompletionNotification`` pairs (a journal of even length ends with one
   ``RunCommand`` whose result is not journaled, so that run executes again) — and replayed through
   a fresh VM exactly as the driver does: ``notify_input`` (in 16 KiB chunks, the HTTP/2 frame
   size; once as one buffer too), ``sys_input``, then per run ``sys_run`` → ``do_progress``
   (``ANY_COMPLETED``) → ``take``, and finally ``sys_write_output`` + ``sys_end``. Reported: time
   per entry (best of several repetitions), the split between decoding and replaying, and peak
   traced memory (``tracemalloc``, a separate run) per entry.
2. **Fresh invocation**: the VM's own cost for a whole noop invocation and a one-``run`` invocation
   (no I/O), to compare with the SDK's CPU per request in RESULTS.md.
3. **Framing**: ``encode_frame`` and ``FrameDecoder.feed`` throughput for small and 1 KiB payloads.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from restate_sync.protocol import messages as m
from restate_sync.protocol.framing import FrameDecoder, encode_frame
from restate_sync.protocol.messages import pb
from restate_sync.protocol.vm import VM, Progress

CHUNK = 16384  # HTTP/2 SETTINGS_MAX_FRAME_SIZE default: how the runtime's DATA frames arrive
RAW_ID = bytes(range(24))


def frame(message: Any) -> bytes:
    return encode_frame(m.MESSAGE_TYPES[type(message)], message.SerializeToString())


def journal_bytes(entries: int) -> tuple[bytes, int]:
    """Framed bytes of a journal with exactly ``entries`` entries; returns (bytes, number of runs)."""
    runs_completed = (entries - 1) // 2
    trailing_run = (entries - 1) % 2  # even length: one last run without its result
    start = pb.StartMessage(
        id=RAW_ID,
        debug_id="inv_1bench",
        known_entries=entries,
        partial_state=True,
        key="",
        random_seed=42,
    )
    parts = [frame(start)]
    inp = pb.InputCommandMessage()
    inp.value.content = b'"World"'
    parts.append(frame(inp))
    for cid in range(1, runs_completed + 1):
        parts.append(frame(pb.RunCommandMessage(result_completion_id=cid, name="step")))
        note = pb.RunCompletionNotificationMessage(completion_id=cid)
        note.value.content = b'"Hello, World! step result"'
        parts.append(frame(note))
    if trailing_run:
        parts.append(frame(pb.RunCommandMessage(result_completion_id=runs_completed + 1, name="step")))
    return b"".join(parts), runs_completed + trailing_run


def feed(vm: VM, data: bytes, chunk: int | None) -> None:
    if chunk is None:
        vm.notify_input(data)
        return
    view = memoryview(data)
    for i in range(0, len(data), chunk):
        vm.notify_input(bytes(view[i : i + chunk]))


def replay(data: bytes, runs: int, chunk: int | None = CHUNK) -> tuple[float, float]:
    """One replay; returns (seconds decoding input, seconds replaying + finishing)."""
    t0 = time.perf_counter()
    vm = VM(6)
    feed(vm, data, chunk)
    assert vm.is_replaying or vm.is_ready, vm.phase
    t1 = time.perf_counter()
    vm.sys_input()
    for _ in range(runs):
        h = vm.sys_run("step")
        progress = vm.do_progress(h)
        if progress is Progress.ANY_COMPLETED:
            vm.take(h)
        else:  # the trailing run of an even-length journal executes again
            assert progress is Progress.EXECUTE_RUN, progress
            assert vm.do_progress(h) is Progress.WAITING
            vm.propose_run_completion(h, b'"again"')
            note = pb.RunCompletionNotificationMessage(completion_id=h)
            note.value.content = b'"again"'
            vm.notify_input(frame(note))
            assert vm.do_progress(h) is Progress.ANY_COMPLETED
            vm.take(h)
    vm.sys_write_output(b'"done"')
    vm.sys_end()
    vm.take_output()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def best_of(fn: Callable[[], tuple[float, float]], repeat: int) -> tuple[float, float, float]:
    """(best total, its decode part, its replay part) over ``repeat`` runs, GC off while timing."""
    results = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeat):
            results.append(fn())
    finally:
        gc.enable()
    decode, rest = min(results, key=lambda r: r[0] + r[1])
    return decode + rest, decode, rest


def median_of(fn: Callable[[], tuple[float, float]], repeat: int) -> float:
    totals = []
    for _ in range(repeat):
        d, r = fn()
        totals.append(d + r)
    return statistics.median(totals)


def peak_memory(data: bytes, runs: int) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        replay(data, runs)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def bench_replay(sizes: list[int], budget_s: float) -> list[dict[str, Any]]:
    rows = []
    for entries in sizes:
        data, runs = journal_bytes(entries)
        # repetitions: ~budget per size, at least 3
        once = sum(replay(data, runs))
        repeat = max(3, min(2000, int(budget_s / max(once, 1e-6))))
        chunked = functools.partial(replay, data, runs)
        total, decode, rest = best_of(chunked, repeat)
        med = median_of(chunked, max(3, repeat // 2))
        one_shot, _, _ = best_of(functools.partial(replay, data, runs, chunk=None), max(3, repeat // 2))
        peak = peak_memory(data, runs)
        rows.append(
            {
                "entries": entries,
                "bytes": len(data),
                "repeat": repeat,
                "best_s": total,
                "median_s": med,
                "decode_s": decode,
                "replay_s": rest,
                "one_buffer_s": one_shot,
                "us_per_entry": 1e6 * total / entries,
                "peak_bytes": peak,
                "peak_bytes_per_entry": peak / entries,
            }
        )
        print(
            f"replay {entries:>7,} entries ({len(data):>9,} B): best {total * 1e3:9.3f} ms "
            f"(decode {decode * 1e3:.3f} + replay {rest * 1e3:.3f}), median {med * 1e3:.3f} ms, "
            f"{1e6 * total / entries:.2f} µs/entry, one buffer {one_shot * 1e3:.3f} ms, "
            f"peak {peak / 1024:.0f} KiB ({peak / entries:.0f} B/entry)",
            flush=True,
        )
    return rows


def fresh_noop() -> tuple[float, float]:
    t0 = time.perf_counter()
    vm = VM(6)
    vm.notify_input(_NOOP_INPUT)
    vm.sys_input()
    vm.sys_write_output(b'"hello"')
    vm.sys_end()
    vm.take_output()
    return 0.0, time.perf_counter() - t0


def fresh_greet() -> tuple[float, float]:
    t0 = time.perf_counter()
    vm = VM(6)
    vm.notify_input(_NOOP_INPUT)
    vm.sys_input()
    h = vm.sys_run("greet")
    assert vm.do_progress(h) is Progress.EXECUTE_RUN
    vm.do_progress(h)
    vm.propose_run_completion(h, b'"Hello, World!"')
    vm.take_output()
    vm.notify_input(_GREET_COMPLETION)
    assert vm.do_progress(h) is Progress.ANY_COMPLETED
    vm.take(h)
    vm.sys_write_output(b'"Hello, World!"')
    vm.sys_end()
    vm.take_output()
    return 0.0, time.perf_counter() - t0


_NOOP_INPUT, _ = journal_bytes(1)
_note = pb.RunCompletionNotificationMessage(completion_id=1)
_note.value.content = b'"Hello, World!"'
_GREET_COMPLETION = frame(_note)


def bench_fresh(repeat: int) -> dict[str, float]:
    out = {}
    for name, fn in (("noop", fresh_noop), ("greet", fresh_greet)):
        for _ in range(200):
            fn()
        samples = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(repeat):
                fn()
            samples.append((time.perf_counter() - t0) / repeat)
        out[name] = min(samples) * 1e6
        print(f"fresh {name} invocation through the VM: {out[name]:.1f} µs", flush=True)
    return out


def bench_framing(seconds: float) -> list[dict[str, Any]]:
    rows = []
    small = pb.RunCommandMessage(result_completion_id=7, name="step").SerializeToString()
    kib = b"x" * 1024
    for label, payload in ((f"RunCommand ({len(small)} B payload)", small), ("1 KiB payload", kib)):
        # encode
        n = 0
        t0 = time.perf_counter()
        deadline = t0 + seconds
        while time.perf_counter() < deadline:
            for _ in range(1000):
                encode_frame(0x0411, payload)
            n += 1000
        enc_s = time.perf_counter() - t0
        # decode a stream of such frames fed in 16 KiB chunks
        one = encode_frame(0x0411, payload)
        stream = one * max(1, (4 * 1024 * 1024) // len(one))
        frames_per_stream = len(stream) // len(one)
        chunks = [stream[i : i + CHUNK] for i in range(0, len(stream), CHUNK)]
        decoded = 0
        t0 = time.perf_counter()
        deadline = t0 + seconds
        while time.perf_counter() < deadline:
            dec = FrameDecoder()
            count = 0
            for c in chunks:
                count += len(dec.feed(c))
            assert count == frames_per_stream
            decoded += count
        dec_s = time.perf_counter() - t0
        row: dict[str, Any] = {
            "payload": label,
            "frame_bytes": len(one),
            "encode_frames_per_s": n / enc_s,
            "encode_mb_per_s": n * len(one) / enc_s / 1e6,
            "decode_frames_per_s": decoded / dec_s,
            "decode_mb_per_s": decoded * len(one) / dec_s / 1e6,
        }
        rows.append(row)
        print(
            f"framing {label}: encode {row['encode_frames_per_s'] / 1e6:.2f} M frames/s "
            f"({row['encode_mb_per_s']:.0f} MB/s), decode {row['decode_frames_per_s'] / 1e6:.2f} M frames/s "
            f"({row['decode_mb_per_s']:.0f} MB/s)",
            flush=True,
        )
    return rows


def linearity(replay_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-entry time at 10,000 vs 1,000 entries (and at the largest size, if larger)."""
    by_size = {r["entries"]: r for r in replay_rows}
    largest = max(by_size)
    base = by_size[1_000]["us_per_entry"]
    ratio = by_size[10_000]["us_per_entry"] / base
    return {
        "largest": largest,
        "ratio": ratio,
        "ratio_largest": by_size[largest]["us_per_entry"] / base,
        "linear": ratio <= 1.5,
    }


def markdown(
    replay_rows: list[dict[str, Any]],
    fresh: dict[str, float],
    framing: list[dict[str, Any]],
    linear: dict[str, Any],
) -> str:
    lines = [
        "Replay of a journal of N entries (`StartMessage` + `InputCommand` + `RunCommand`/`RunCompletionNotification` "
        "pairs) through a fresh `VM`: bytes fed in 16 KiB chunks, `sys_input`, `sys_run`/`do_progress`/`take` per run, "
        "`sys_write_output`/`sys_end`. Best of N repetitions (GC off while timing); peak = `tracemalloc` peak above the "
        "baseline during one replay (the input bytes themselves excluded).",
        "",
        "| entries | bytes | best ms | median ms | decode ms | replay ms | µs/entry | one-buffer ms | peak memory | B/entry |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in replay_rows:
        lines.append(
            f"| {r['entries']:,} | {r['bytes']:,} | {r['best_s'] * 1e3:.3f} | {r['median_s'] * 1e3:.3f} | "
            f"{r['decode_s'] * 1e3:.3f} | {r['replay_s'] * 1e3:.3f} | {r['us_per_entry']:.2f} | "
            f"{r['one_buffer_s'] * 1e3:.3f} | {r['peak_bytes'] / 1024:,.0f} KiB | {r['peak_bytes_per_entry']:.0f} |"
        )
    lines += [
        "",
        f"Linearity: µs/entry at 10,000 entries is {linear['ratio']:.2f}× that at 1,000 entries "
        f"({'linear' if linear['linear'] else '**not linear**'}; ≤ 1.5× counts as linear)"
        + (
            f"; at {linear['largest']:,} entries {linear['ratio_largest']:.2f}× (the VM's work per entry is "
            "constant — deque pops, dict lookups — so growth there comes from a working set far beyond the CPU "
            "caches and from fewer repetitions)."
            if linear["largest"] > 10_000
            else "."
        ),
        "",
        f"A whole fresh invocation through the VM alone (no I/O, no greenlets): noop {fresh['noop']:.1f} µs, "
        f"one-`run` greet {fresh['greet']:.1f} µs.",
        "",
        "| framing | frame bytes | encode frames/s | encode MB/s | decode frames/s (16 KiB chunks) | decode MB/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in framing:
        lines.append(
            f"| {r['payload']} | {r['frame_bytes']} | {r['encode_frames_per_s']:,.0f} | {r['encode_mb_per_s']:,.0f} | "
            f"{r['decode_frames_per_s']:,.0f} | {r['decode_mb_per_s']:,.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the results (and a markdown section) to this file")
    parser.add_argument("--out-dir", help="accepted for symmetry with scale_test.py; vm_bench writes no logs")
    args = parser.parse_args()
    sizes = [10, 1_000, 10_000] + ([] if args.quick else [100_000])
    budget = 0.5 if args.quick else 3.0
    print(f"python {sys.version.split()[0]}; sizes {sizes}", flush=True)
    replay_rows = bench_replay(sizes, budget)
    fresh = bench_fresh(500 if args.quick else 5000)
    framing = bench_framing(0.3 if args.quick else 1.5)
    by_size = {r["entries"]: r for r in replay_rows}
    linear = linearity(replay_rows)
    ratio = linear["ratio"]
    result = {
        "replay": replay_rows,
        "replay_10000_s": by_size[10_000]["best_s"],
        "replay_10000_median_s": by_size[10_000]["median_s"],
        "fresh_us": fresh,
        "framing": framing,
        "linearity": linear,
        "markdown": markdown(replay_rows, fresh, framing, linear),
    }
    print(
        f"10,000-entry replay: {result['replay_10000_s'] * 1e3:.1f} ms (target < 500 ms); "
        f"linearity {ratio:.2f}×",
        flush=True,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
