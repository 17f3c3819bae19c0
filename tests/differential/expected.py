"""THE list of deliberate differences between restate_sync's VM and the shared core.

Every entry says what differs and why we keep it. A scripted scenario that shows a difference
names its entry and the test checks that the difference is still there (so a stale entry fails
and gets removed); generated scenarios accept a first difference only if an entry's
``matches`` recognises it. Anything else is a bug to fix in ``restate_sync/protocol/vm.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from restate_sync.protocol.messages import pb

from .runner import Comparison, Record


@dataclass(frozen=True)
class ExpectedDifference:
    id: str
    what: str
    why: str
    matches: Callable[[Record, Record], bool]


def _eof_inside_frame(ours: Record, core: Record) -> bool:
    return ours.step[0] == "close" and any(f[0] == 0x0002 for f in ours.frames) and not core.frames


def _run_choice(ours: Record, core: Record) -> bool:
    return (
        ours.step[0] == "await"
        and ours.outcome[0] == "execute_run"
        and core.outcome[0] == "execute_run"
        and ours.outcome != core.outcome
    )


def _cleared_key_listed(ours: Record, core: Record) -> bool:
    if ours.step[0] != "get_state_keys" or ours.outcome != core.outcome:
        return False
    if [f[0] for f in ours.frames] != [0x0408] or [f[0] for f in core.frames] != [0x0408]:
        return False
    mine = list(pb.GetEagerStateKeysCommandMessage.FromString(ours.frames[0][2]).value.keys)
    theirs = list(pb.GetEagerStateKeysCommandMessage.FromString(core.frames[0][2]).value.keys)
    return mine == [key for key in theirs if key in mine] and len(mine) < len(theirs)


def _second_start(ours: Record, core: Record) -> bool:
    return ours.step[0] == "feed" and [f[0] for f in ours.frames] == [0x0002] and not core.frames


def _closed_by_suspension(ours: Record, core: Record) -> bool:
    return ours.outcome == ("error", 599) and core.outcome == ("error", 598) and ours.frames == core.frames


def _retry_delay_rounding(ours: Record, core: Record) -> bool:
    if ours.outcome != core.outcome or len(ours.frames) != 1 or len(core.frames) != 1:
        return False
    (a_type, a_flags, a), (b_type, b_flags, b) = ours.frames[0], core.frames[0]
    if a_type != 0x0002 or b_type != 0x0002 or a_flags != b_flags:
        return False
    mine, theirs = pb.ErrorMessage.FromString(a), pb.ErrorMessage.FromString(b)
    delay_diff = mine.next_retry_delay - theirs.next_retry_delay
    mine.next_retry_delay = theirs.next_retry_delay
    return mine == theirs and delay_diff == 1


EXPECTED_DIFFERENCES: tuple[ExpectedDifference, ...] = (
    ExpectedDifference(
        id="eof-inside-a-frame",
        what="the request body ends in the middle of a message: restate_sync fails the attempt "
        "(ErrorMessage 500), the core ignores the partial bytes",
        why="a truncated message means the stream was cut; failing makes the runtime retry on a "
        "fresh stream instead of letting the handler continue on a journal that lost a message",
        matches=_eof_inside_frame,
    ),
    ExpectedDifference(
        id="run-choice",
        what="when an await could start several runs, the core starts one in its hash-map order "
        "(which differs from one VM instance to the next); restate_sync starts the first one in "
        "the awaited tree",
        why="both are valid: the SDK executes whatever run the VM names; ours is deterministic, "
        "so a failure reproduces",
        matches=_run_choice,
    ),
    ExpectedDifference(
        id="cleared-keys-not-listed",
        what="with a complete eager state, the core's GetEagerStateKeys also lists keys the "
        "handler cleared; restate_sync lists only keys that have a value",
        why="a cleared key has no value: listing it would contradict the next get (None) and the "
        "runtime's own GetLazyStateKeys answer",
        matches=_cleared_key_listed,
    ),
    ExpectedDifference(
        id="retry-delay-rounding",
        what="a run's next retry delay can be 1 ms shorter in the core, which computes it in f32 "
        "seconds and truncates (29 ms comes out as 28 ms)",
        why="restate_sync computes in milliseconds as written in the policy; the runtime only "
        "uses the delay to schedule the retry",
        matches=_retry_delay_rounding,
    ),
    ExpectedDifference(
        id="second-start-message",
        what="a second StartMessage: restate_sync fails with 571, the core silently starts over",
        why="the runtime sends exactly one; starting over would mix two journals in one attempt",
        matches=_second_start,
    ),
    ExpectedDifference(
        id="closed-by-suspension",
        what="a syscall after the VM suspended: restate_sync raises its suspension signal (599), "
        "the core a generic 'closed' error (598); neither writes anything",
        why="the invocation driver unwinds the handler quietly on the suspension signal, which is "
        "what happened; a 'closed' error would be logged as a failure",
        matches=_closed_by_suspension,
    ),
)

BY_ID = {entry.id: entry for entry in EXPECTED_DIFFERENCES}


def explained(comparison: Comparison) -> ExpectedDifference | None:
    """The entry explaining the comparison's first difference, if any."""
    i = comparison.first_difference
    if i is None:
        return None
    ours, core = comparison.ours[i], comparison.core[i]
    return next((e for e in EXPECTED_DIFFERENCES if e.matches(ours, core)), None)
