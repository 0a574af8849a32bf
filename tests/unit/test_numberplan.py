"""The lab number plan (CONTRACT.md, "The lab"): what the carrier does with each number."""

from __future__ import annotations

import pytest

from dialler.lab.numberplan import (
    DEFAULT_HOLD_SECONDS,
    THROTTLE_CODE,
    THROTTLE_HOLD_SECONDS,
    Behaviour,
    plan_for,
)


@pytest.mark.parametrize("number", ["+447700901000", "+447700901042", "+447700901099"])
def test_the_throttling_range_is_throttled(number: str) -> None:
    plan = plan_for(number)
    assert plan.behaviour is Behaviour.THROTTLE
    assert (plan.hold_seconds, plan.code) == (THROTTLE_HOLD_SECONDS, THROTTLE_CODE) == (2.0, 429)


@pytest.mark.parametrize("number", ["+447700901100", "+447700900999", "+44770090100"])
def test_next_to_the_throttling_range_is_an_ordinary_answer(number: str) -> None:
    assert plan_for(number).behaviour is Behaviour.ANSWER
    assert plan_for(number).hold_seconds == DEFAULT_HOLD_SECONDS


def test_the_ordinary_429_number_still_rejects() -> None:
    plan = plan_for("+447700900429")
    assert (plan.behaviour, plan.code) == (Behaviour.REJECT, 429)


def test_answer_range_holds_its_last_two_digits() -> None:
    assert plan_for("+447700900007").hold_seconds == 7.0
    assert plan_for("+447700900000").hold_seconds == 1.0
