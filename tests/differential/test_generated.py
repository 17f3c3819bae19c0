"""Generated scenarios: the core runs a random handler program against the simulated runtime,
what it wrote becomes a journal (with the notifications the runtime answered, in the order it
answered them), and that journal is replayed on both VMs at random lengths and splits.

CI runs a bounded number of examples; ``RESTATE_SYNC_FUZZ_EXAMPLES=N`` runs N per test (the
long run; see docs/protocol.md).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import shared_versions
from .drivers import Fail, Policy
from .expected import explained
from .programs import Runtime, execute, frames, input_message, journal_bytes, signal, start_message, transient
from .runner import Comparison, Step, compare

EXAMPLES = int(os.environ.get("RESTATE_SYNC_FUZZ_EXAMPLES", "60"))
VERSIONS = shared_versions()

values = st.sampled_from([b'"a"', b'"bb"', b"", b"\x00\xff"])
failures = st.builds(Fail, st.sampled_from([400, 409, 500]), st.sampled_from(["no", "bad"]))
policies = st.one_of(
    st.just(Policy()),
    st.builds(
        Policy,
        initial_interval=st.one_of(st.none(), st.integers(1, 2000)),
        max_attempts=st.one_of(st.none(), st.integers(1, 4)),
        max_duration=st.one_of(st.none(), st.integers(1, 500)),
        max_interval=st.one_of(st.none(), st.integers(1, 5000)),
        factor=st.one_of(st.none(), st.sampled_from([1.0, 1.5, 2.0, 3.0])),
    ),
)


@st.composite
def programs(draw: Any) -> list[Any]:
    """A random handler: operations that create handles, awaits over them, takes."""
    program: list[Any] = []
    open_handles: list[str] = []
    awakeables = 0
    for i in range(draw(st.integers(1, 12))):
        name = f"h{i}"
        kind = draw(
            st.sampled_from(
                ["run", "sleep", "call", "send", "get", "set", "clear", "clear_all", "keys", "awakeable",
                 "signal", "promise", "peek", "complete_promise", "attach", "complete_awakeable", "cancel",
                 "await", "await", "await", "take"]
            )
        )  # fmt: skip
        if kind == "run":
            outcome = draw(
                st.one_of(
                    st.tuples(st.just("ok"), st.one_of(values, failures)),
                    st.builds(
                        transient, st.sampled_from([500, 503]), st.just("boom"), st.integers(0, 300), policies
                    ),
                )
            )
            program.append(("run", name, f"run-{i}", outcome))
            open_handles.append(name)
        elif kind == "sleep":
            program.append(("sleep", name, draw(st.integers(0, 10_000)), draw(st.sampled_from(["", "nap"]))))
            open_handles.append(name)
        elif kind == "call":
            program.append(("call", name, "Svc", "h", draw(values), draw(st.sampled_from([None, "k1"])),
                            draw(st.sampled_from([None, "idem"]))))  # fmt: skip
            open_handles.extend([name, name + ".id"])
        elif kind == "send":
            program.append(
                ("send", name, "Svc", "h", draw(values), None, draw(st.sampled_from([None, 1000])))
            )
            open_handles.append(name)
        elif kind == "get":
            program.append(("get_state", name, draw(st.sampled_from(["k", "other", "x"]))))
            open_handles.append(name)
        elif kind == "set":
            program.append(("set_state", draw(st.sampled_from(["k", "x"])), draw(values)))
        elif kind == "clear":
            program.append(("clear_state", draw(st.sampled_from(["k", "x"]))))
        elif kind == "clear_all":
            program.append(("clear_all_state",))
        elif kind == "keys":
            program.append(("get_state_keys", name))
            open_handles.append(name)
        elif kind == "awakeable":
            program.append(("awakeable", name))
            if draw(st.booleans()):
                program.append(
                    ("runtime", signal(idx=17 + awakeables, result=draw(st.one_of(values, failures))))
                )
            awakeables += 1
            open_handles.append(name)
        elif kind == "signal":
            signal_name = draw(st.sampled_from(["s1", "s2"]))
            program.append(("signal", name, signal_name))
            if draw(st.booleans()):
                program.append(
                    ("runtime", signal(name=signal_name, result=draw(st.one_of(values, failures))))
                )
            open_handles.append(name)
        elif kind in ("promise", "peek"):
            program.append(("get_promise" if kind == "promise" else "peek_promise", name, "pk"))
            open_handles.append(name)
        elif kind == "complete_promise":
            program.append(("complete_promise", name, "pk", draw(st.one_of(values, failures))))
            open_handles.append(name)
        elif kind == "attach":
            program.append(("attach", name, "inv_1other"))
            open_handles.append(name)
        elif kind == "complete_awakeable":
            program.append(("complete_awakeable", "sign_1x", draw(st.one_of(values, failures))))
        elif kind == "cancel":
            if draw(st.booleans()):
                program.append(("cancel", "inv_1victim"))
            else:
                program.append(("runtime", signal(idx=1, result=None)))
        elif kind == "await" and open_handles:
            chosen = draw(st.lists(st.sampled_from(open_handles), min_size=1, max_size=4, unique=True))
            program.append(("await", draw(trees(chosen))))
            if draw(st.booleans()):
                for handle in chosen:
                    program.append(("take", handle))
                    open_handles.remove(handle)
        elif kind == "take" and open_handles:
            handle = draw(st.sampled_from(open_handles))
            program.append(("take", handle))
            open_handles.remove(handle)
    return program


def trees(leaves: list[str]) -> st.SearchStrategy[Any]:
    """Random combinator trees over exactly these leaves (first/all, nested)."""

    @st.composite
    def build(draw: Any, names: tuple[str, ...]) -> Any:
        if len(names) == 1 and draw(st.booleans()):
            return ("single", names[0])
        kind = draw(st.sampled_from(["first", "all"]))
        if len(names) <= 1:
            return (kind, [("single", n) for n in names])
        cut = draw(st.integers(1, len(names) - 1)) if draw(st.booleans()) else len(names)
        children = [("single", n) for n in names[:cut]]
        if cut < len(names):
            children.append(draw(build(names[cut:])))
        return (kind, children)

    return build(tuple(leaves))


def check(comparison: Comparison) -> None:
    if comparison.first_difference is None:
        return
    assert explained(comparison) is not None, "VMs differ:\n" + comparison.report()


SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize="RESTATE_SYNC_FUZZ_EXAMPLES" not in os.environ,
    database=None,
)


@pytest.mark.parametrize("version", VERSIONS)
@SETTINGS
@given(program=programs(), data=st.data())
def test_generated_program_fresh_and_replayed(version: int, program: list[Any], data: Any) -> None:
    runtime = Runtime(version)
    runtime.lazy_state = {b"k": b"lazy"}
    runtime.withheld = set(data.draw(st.sets(st.integers(1, 12), max_size=3), label="withheld completions"))
    fresh = execute(
        program,
        version,
        frames(start_message(1, partial=data.draw(st.booleans(), label="partial state")), input_message()),
        runtime=runtime,
        choose=lambda n: data.draw(st.integers(0, n - 1), label="next notification"),
    )
    check(compare(fresh.steps, version))
    journal = runtime.journal
    if not journal:
        return
    length = data.draw(st.integers(1, len(journal) + 1), label="replayed journal length")
    prefix = journal_bytes(journal, length)
    replay = execute(program, version, prefix, close_after_prefix=data.draw(st.booleans(), label="eof"))
    check(compare(replay.steps, version))
    # the same replay, its input split at one random byte
    split = data.draw(st.integers(1, len(prefix)), label="split")
    steps: list[Step] = [("feed", prefix[:split]), ("feed", prefix[split:]), *replay.steps[1:]]
    check(compare(steps, version))
