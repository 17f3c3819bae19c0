"""Both limits objects refuse what is not a positive number, naming the class and the field."""

from __future__ import annotations

from typing import Any

import pytest

from restate_sync.transport.h2limits import H2Limits
from restate_sync.transport.http1limits import Http1Limits


@pytest.mark.parametrize("cls", [H2Limits, Http1Limits])
@pytest.mark.parametrize("bad", [0, -1, True, "5", None])
def test_counts_must_be_positive_ints(cls: Any, bad: Any) -> None:
    name = "max_concurrent_streams" if cls is H2Limits else "max_body_size"
    with pytest.raises(ValueError, match=rf"^{cls.__name__}\.{name} must be a positive int, got "):
        cls(**{name: bad})


@pytest.mark.parametrize("cls", [H2Limits, Http1Limits])
@pytest.mark.parametrize("bad", [0, -0.5, False, "1", float("nan")])
def test_timeouts_must_be_positive_seconds(cls: Any, bad: Any) -> None:
    name = "idle_timeout"
    with pytest.raises(ValueError, match=rf"^{cls.__name__}\.{name} must be a positive number of seconds"):
        cls(**{name: bad})


@pytest.mark.parametrize("cls", [H2Limits, Http1Limits])
def test_positive_values_are_kept(cls: Any) -> None:
    limits = cls(idle_timeout=0.25)
    assert limits.idle_timeout == 0.25


def test_h2_windows_stay_in_the_protocol_range() -> None:
    with pytest.raises(ValueError, match=r"stream_window must be in \[65535, 2\^31-1\]"):
        H2Limits(stream_window=1000)
