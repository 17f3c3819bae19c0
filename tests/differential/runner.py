"""Run one scripted scenario on both VMs and compare what they did, step by step.

A scenario is a list of steps:

* ``("feed", bytes)`` — input bytes from the runtime (a whole journal, a chunk, a notification)
* ``("close",)``      — the request body ended
* ``("ready",)``      — ask whether the handler may start
* ``(op, *args)``     — a syscall, an await or a take (see :mod:`.drivers`)

After every step the runner takes both VMs' output. A step's record is ``(step, outcome,
frames)``; frames are ``(type, flags, payload)`` with :data:`MASKED_FIELDS` cleared first. The
first step whose records differ is a difference, unless an entry of
:data:`.expected.EXPECTED_DIFFERENCES` explains it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import text_format

from restate_sync.protocol import messages as m
from restate_sync.protocol.framing import FrameDecoder

from .drivers import CoreDriver, Driver, OursDriver

Step = tuple[Any, ...]
Frame = tuple[int, int, bytes]

#: Fields that may legitimately differ between the two VMs; cleared before comparing frames.
#: * ``ErrorMessage.message``/``stacktrace`` of errors the VM itself raises: each VM words its
#:   own diagnostics (code, related command index/name/type and retry delay are compared).
#: * ``SleepCommandMessage.wake_up_time`` and ``OneWayCallCommandMessage.invoke_time``: absolute
#:   times computed from each VM's own reading of the wall clock.
MASKED_FIELDS: dict[int, tuple[str, ...]] = {
    m.ERROR: ("message", "stacktrace"),
    m.SLEEP: ("wake_up_time",),
    m.ONE_WAY_CALL: ("invoke_time",),
}

#: Steps whose ErrorMessage text is the caller's own (so it is compared, not masked).
_USER_ERROR_STEPS = frozenset({"notify_error", "propose_transient"})


def decode_frames(data: bytes) -> list[Frame]:
    decoder = FrameDecoder()
    frames = decoder.feed(data)
    assert decoder.pending == 0, "a VM wrote a partial frame"
    return frames


def mask(frame: Frame, user_error: bool) -> Frame:
    message_type, flags, payload = frame
    fields = MASKED_FIELDS.get(message_type)
    if not fields or (message_type == m.ERROR and user_error):
        return frame
    message = m.MESSAGE_CLASSES[message_type].FromString(payload)
    for name in fields:
        message.ClearField(name)
    return (message_type, flags, message.SerializeToString())


def describe(frame: Frame) -> str:
    message_type, flags, payload = frame
    cls = m.MESSAGE_CLASSES.get(message_type)
    if cls is None:
        return f"0x{message_type:04x}[{payload!r}]"
    text = text_format.MessageToString(cls.FromString(payload), as_one_line=True)
    flag_text = f" flags=0x{flags:04x}" if flags else ""
    return f"{cls.DESCRIPTOR.name}{flag_text}{{{text}}}"


@dataclass
class Record:
    step: Step
    outcome: Any
    frames: list[Frame]

    def show(self) -> str:
        frames = "; ".join(describe(f) for f in self.frames) or "-"
        return f"{_show_step(self.step)} -> {self.outcome!r} | wrote: {frames}"


def _show_step(step: Step) -> str:
    if step[0] == "feed":
        return f"feed({len(step[1])} bytes)"
    return f"{step[0]}{step[1:]!r}" if len(step) > 1 else step[0]


def run(driver: Driver, steps: Sequence[Step]) -> list[Record]:
    records = []
    for step in steps:
        kind = step[0]
        outcome: Any
        if kind == "feed":
            driver.feed(step[1])  # type: ignore[attr-defined]
            outcome = None
        elif kind == "close":
            driver.close()  # type: ignore[attr-defined]
            outcome = None
        elif kind == "ready":
            outcome = driver.ready()  # type: ignore[attr-defined]
        else:
            outcome = driver.call(kind, *step[1:])  # type: ignore[attr-defined]
        user_error = kind in _USER_ERROR_STEPS
        frames = [mask(f, user_error) for f in decode_frames(driver.output())]  # type: ignore[attr-defined]
        records.append(Record(step, outcome, frames))
    return records


@dataclass
class Comparison:
    ours: list[Record]
    core: list[Record]
    first_difference: int | None

    def report(self) -> str:
        lines = []
        for i, (a, b) in enumerate(zip(self.ours, self.core, strict=True)):
            marker = ">>" if i == self.first_difference else "  "
            if a.outcome == b.outcome and a.frames == b.frames:
                lines.append(f"{marker} {i:3} both  {a.show()}")
            else:
                lines.append(f"{marker} {i:3} ours  {a.show()}")
                lines.append(f"{marker} {i:3} core  {b.show()}")
        return "\n".join(lines)


def compare(steps: Sequence[Step], version: int) -> Comparison:
    ours = run(OursDriver(version), steps)
    core = run(CoreDriver(version), steps)
    first = next(
        (
            i
            for i, (a, b) in enumerate(zip(ours, core, strict=True))
            if a.outcome != b.outcome or a.frames != b.frames
        ),
        None,
    )
    return Comparison(ours, core, first)
