from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialler.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (90, 90.0),
        ("90s", 90.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("1.5s", 1.5),
        ("2m", 120.0),
        ("1d", 86400.0),
        ("1d2h3m4s5ms", 93784.005),
        ("0.25h", 900.0),
        (" 30s ", 30.0),
    ],
)
def test_parse_accepts(value: object, seconds: float) -> None:
    assert parse_duration(value, "k") == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (-1, "must not be negative"),
        ("-5s", "must not be negative"),
        ("", "empty duration"),
        ("   ", "empty duration"),
        ("5x", "unknown unit 'x'"),
        ("5S", "unknown unit 'S'"),
        ("10 minutes", "missing unit after '10'"),
        ("90", "missing unit after '90'"),
        ("s", "expected a number"),
        ("1h 30m", "expected a number"),
        (True, "got bool"),
        (False, "got bool"),
        (1.5, "got float 1.5"),
        (None, "got null"),
        ([1], "got list"),
    ],
)
def test_parse_refuses_with_key_and_reason(value: object, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(value, "scheduler.stall_after")
    message = str(info.value)
    assert message.startswith("scheduler.stall_after: ")
    assert reason in message


def test_the_error_carries_the_key_and_the_reason_apart() -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(True, "ring_timeout")
    assert (info.value.key, info.value.reason) == (
        "ring_timeout",
        "expected a duration such as 90 or '1h30m', got bool true",
    )
    assert str(info.value) == f"ring_timeout: {info.value.reason}"


def test_parse_refuses_an_absurdly_large_value() -> None:
    with pytest.raises(ValueError, match="too large"):
        parse_duration("9" * 400 + "d", "k")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5400, "1h30m"),
        (0.5, "500ms"),
        (0, "0s"),
        (90, "1m30s"),
        (86400, "1d"),
        (1.25, "1s250ms"),
        (-3, "-3s"),
        (3723.5, "1h2m3s500ms"),
    ],
)
def test_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_refuses_non_finite() -> None:
    with pytest.raises(ValueError):
        format_duration(float("inf"))


@given(st.integers(min_value=0, max_value=10**12))
def test_format_then_parse_round_trips(millis: int) -> None:
    seconds = millis / 1000
    assert parse_duration(format_duration(seconds), "k") == pytest.approx(seconds, abs=1e-6)
