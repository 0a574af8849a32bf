from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from dialler.domain.rules import (
    CONTACT_STATE,
    SYSTEM_DISPOSITIONS,
    AttemptFacts,
    Decision,
    NextAction,
    RedialPolicy,
    RetryPolicy,
    decide,
    is_retryable,
    requeue,
)
from dialler.domain.window import Window

# Weekdays 09:00–18:00 UTC; 2025-01-06 is a Monday.
WINDOW = Window.parse("09:00", "18:00", ["mon", "tue", "wed", "thu", "fri"], "UTC")
ENDED = datetime(2025, 1, 6, 10, 0, tzinfo=UTC)
DELAY = 1800.0
AFTER_DELAY = ENDED + timedelta(seconds=DELAY)

STATE = {
    NextAction.RETRY: "retry_scheduled",
    NextAction.CALLBACK: "callback_scheduled",
    NextAction.CANCELLED: "cancelled",
    NextAction.EXHAUSTED: "exhausted",
    NextAction.DONE: "done",
    NextAction.REQUEUE: "pending",
}


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 1, day, hour, minute, tzinfo=UTC)


def facts(
    outcome: str = "no_answer",
    disposition: str | None = None,
    *,
    talk: float = 0.0,
    attempts: int = 1,
    callback_at: datetime | None = None,
    ended_at: datetime = ENDED,
) -> AttemptFacts:
    return AttemptFacts(
        outcome=outcome,
        disposition=disposition or outcome,
        talk_seconds=talk,
        ended_at=ended_at,
        callback_at=callback_at,
        attempts_used=attempts,
    )


def answered(
    disposition: str = "completed",
    *,
    talk: float = 120.0,
    attempts: int = 1,
    callback_at: datetime | None = None,
) -> AttemptFacts:
    return facts("answered", disposition, talk=talk, attempts=attempts, callback_at=callback_at)


def retry(
    max_attempts: int = 3,
    delay: float = DELAY,
    on_system: tuple[str, ...] = (),
    on_custom: tuple[str, ...] = (),
) -> RetryPolicy:
    return RetryPolicy(max_attempts, delay, frozenset(on_system), frozenset(on_custom))


def redial(stop: float | None = None, short: float | None = None) -> RedialPolicy:
    return RedialPolicy(
        stop_after_connect_longer_than=stop, redial_after_connect_shorter_than=short
    )


NO_REDIAL = redial()
ALL_SYSTEM = retry(on_system=tuple(SYSTEM_DISPOSITIONS))
CUSTOM = retry(on_custom=("call_back_later", "voicemail"))


@pytest.mark.parametrize(
    ("attempt", "retry_policy", "redial_policy", "action", "next_at"),
    [
        # 1. Callback: at the asked time, moved into the window; beats everything else.
        pytest.param(
            answered(callback_at=at(6, 15)),
            retry(),
            NO_REDIAL,
            NextAction.CALLBACK,
            at(6, 15),
            id="callback-inside-window-kept",
        ),
        pytest.param(
            answered(callback_at=at(6, 9)),
            retry(),
            NO_REDIAL,
            NextAction.CALLBACK,
            at(6, 9),
            id="callback-at-window-start-kept",
        ),
        pytest.param(
            answered(callback_at=at(6, 18)),
            retry(),
            NO_REDIAL,
            NextAction.CALLBACK,
            at(7, 9),
            id="callback-at-window-end-moved",
        ),
        pytest.param(
            answered(callback_at=at(6, 20, 30)),
            retry(),
            NO_REDIAL,
            NextAction.CALLBACK,
            at(7, 9),
            id="callback-evening-moved-to-morning",
        ),
        pytest.param(
            answered(callback_at=at(11, 11)),
            retry(),
            NO_REDIAL,
            NextAction.CALLBACK,
            at(13, 9),
            id="callback-on-saturday-moved-to-monday",
        ),
        pytest.param(
            answered(callback_at=at(6, 8)),
            retry(),
            NO_REDIAL,
            NextAction.CALLBACK,
            at(6, 9),
            id="callback-before-opening-moved",
        ),
        pytest.param(
            answered(talk=900, callback_at=at(6, 15)),
            retry(),
            redial(stop=60),
            NextAction.CALLBACK,
            at(6, 15),
            id="callback-beats-stop-rule",
        ),
        pytest.param(
            answered("call_back_later", attempts=3, callback_at=at(7, 10)),
            CUSTOM,
            NO_REDIAL,
            NextAction.CALLBACK,
            at(7, 10),
            id="callback-at-max-attempts-not-exhausted",
        ),
        pytest.param(
            answered(attempts=9, callback_at=at(7, 10)),
            retry(max_attempts=1),
            NO_REDIAL,
            NextAction.CALLBACK,
            at(7, 10),
            id="callback-past-max-attempts-not-exhausted",
        ),
        pytest.param(
            answered(talk=2, callback_at=at(7, 10)),
            retry(),
            redial(short=10),
            NextAction.CALLBACK,
            at(7, 10),
            id="callback-beats-short-connect",
        ),
        pytest.param(
            answered(callback_at=at(6, 9, 30)),
            retry(),
            NO_REDIAL,
            NextAction.CALLBACK,
            at(6, 9, 30),
            id="callback-in-the-past-kept-as-asked",
        ),
        # 2. Stop rule: talk time strictly longer than its threshold.
        pytest.param(
            answered("call_back_later", talk=61),
            CUSTOM,
            redial(stop=60),
            NextAction.CANCELLED,
            None,
            id="stop-cancels-a-retry",
        ),
        pytest.param(
            answered("call_back_later", talk=60.001),
            CUSTOM,
            redial(stop=60),
            NextAction.CANCELLED,
            None,
            id="stop-just-over-threshold",
        ),
        pytest.param(
            answered("call_back_later", talk=60),
            CUSTOM,
            redial(stop=60),
            NextAction.RETRY,
            AFTER_DELAY,
            id="stop-at-threshold-does-not-stop",
        ),
        pytest.param(
            answered("completed", talk=61),
            retry(),
            redial(stop=60),
            NextAction.DONE,
            None,
            id="stop-with-nothing-to-retry-is-done",
        ),
        pytest.param(
            answered("call_back_later", talk=61, attempts=3),
            CUSTOM,
            redial(stop=60),
            NextAction.DONE,
            None,
            id="stop-when-attempts-used-up-is-done",
        ),
        pytest.param(
            answered("RNR", talk=61, attempts=2),
            retry(on_system=("RNR",)),
            redial(stop=60),
            NextAction.CANCELLED,
            None,
            id="stop-cancels-a-system-retry",
        ),
        pytest.param(
            answered("completed", talk=45),
            retry(),
            redial(stop=30, short=60),
            NextAction.CANCELLED,
            None,
            id="overlap-stop-wins-over-short-connect",
        ),
        pytest.param(
            answered("completed", talk=45, attempts=3),
            retry(),
            redial(stop=30, short=60),
            NextAction.DONE,
            None,
            id="overlap-stop-wins-when-attempts-used-up",
        ),
        pytest.param(
            answered("completed", talk=20),
            retry(),
            redial(stop=30, short=60),
            NextAction.RETRY,
            AFTER_DELAY,
            id="overlap-below-stop-short-connect-retries",
        ),
        pytest.param(
            facts("no_answer"),
            ALL_SYSTEM,
            redial(stop=0),
            NextAction.RETRY,
            AFTER_DELAY,
            id="stop-at-zero-ignores-unanswered",
        ),
        # 3. Retry on a system disposition, each of them.
        pytest.param(
            facts("no_answer"),
            ALL_SYSTEM,
            NO_REDIAL,
            NextAction.RETRY,
            AFTER_DELAY,
            id="retry-no_answer",
        ),
        pytest.param(
            facts("rejected"),
            ALL_SYSTEM,
            NO_REDIAL,
            NextAction.RETRY,
            AFTER_DELAY,
            id="retry-rejected",
        ),
        pytest.param(
            facts("error"), ALL_SYSTEM, NO_REDIAL, NextAction.RETRY, AFTER_DELAY, id="retry-error"
        ),
        pytest.param(
            answered("RNR", talk=40),
            ALL_SYSTEM,
            NO_REDIAL,
            NextAction.RETRY,
            AFTER_DELAY,
            id="retry-RNR",
        ),
        pytest.param(
            answered("timeout", talk=0),
            ALL_SYSTEM,
            NO_REDIAL,
            NextAction.RETRY,
            AFTER_DELAY,
            id="retry-timeout",
        ),
        pytest.param(
            answered("abandoned", talk=3),
            ALL_SYSTEM,
            NO_REDIAL,
            NextAction.RETRY,
            AFTER_DELAY,
            id="retry-abandoned",
        ),
        pytest.param(
            facts("rejected"),
            retry(on_system=("no_answer",)),
            NO_REDIAL,
            NextAction.DONE,
            None,
            id="system-disposition-not-in-rules-is-done",
        ),
        pytest.param(
            facts("no_answer"),
            retry(),
            NO_REDIAL,
            NextAction.DONE,
            None,
            id="no-rules-unanswered-is-done",
        ),
        pytest.param(
            answered("RNR"),
            CUSTOM,
            NO_REDIAL,
            NextAction.DONE,
            None,
            id="system-name-ignored-by-custom-rules",
        ),
        # 3. Retry on a custom disposition.
        pytest.param(
            answered("call_back_later"),
            CUSTOM,
            NO_REDIAL,
            NextAction.RETRY,
            AFTER_DELAY,
            id="retry-custom-listed",
        ),
        pytest.param(
            answered("wrong_person"),
            CUSTOM,
            NO_REDIAL,
            NextAction.DONE,
            None,
            id="custom-not-listed-is-done",
        ),
        pytest.param(
            answered("call_back_later"),
            ALL_SYSTEM,
            NO_REDIAL,
            NextAction.DONE,
            None,
            id="custom-ignored-by-system-rules",
        ),
        pytest.param(
            answered("completed"),
            ALL_SYSTEM,
            NO_REDIAL,
            NextAction.DONE,
            None,
            id="completed-is-done",
        ),
        # 3. Attempts and delay.
        pytest.param(
            facts("no_answer", attempts=2),
            retry(3, on_system=("no_answer",)),
            NO_REDIAL,
            NextAction.RETRY,
            AFTER_DELAY,
            id="attempts-max-minus-1-retries",
        ),
        pytest.param(
            facts("no_answer", attempts=3),
            retry(3, on_system=("no_answer",)),
            NO_REDIAL,
            NextAction.EXHAUSTED,
            None,
            id="attempts-at-max-exhausted",
        ),
        pytest.param(
            facts("no_answer", attempts=4),
            retry(3, on_system=("no_answer",)),
            NO_REDIAL,
            NextAction.EXHAUSTED,
            None,
            id="attempts-over-max-exhausted",
        ),
        pytest.param(
            facts("no_answer", attempts=1),
            retry(1, on_system=("no_answer",)),
            NO_REDIAL,
            NextAction.EXHAUSTED,
            None,
            id="max-attempts-1-exhausted",
        ),
        pytest.param(
            facts("rejected", attempts=3),
            retry(3, on_system=("no_answer",)),
            NO_REDIAL,
            NextAction.DONE,
            None,
            id="at-max-not-retryable-is-done",
        ),
        pytest.param(
            facts("no_answer"),
            retry(delay=0, on_system=("no_answer",)),
            NO_REDIAL,
            NextAction.RETRY,
            ENDED,
            id="delay-0-retries-at-end",
        ),
        pytest.param(
            facts("no_answer", ended_at=at(10, 17, 50)),
            retry(on_system=("no_answer",)),
            NO_REDIAL,
            NextAction.RETRY,
            at(10, 18, 20),
            id="retry-time-not-moved-into-window",
        ),
        # 3. Short-connect rule: answered, talk time strictly shorter than its threshold.
        pytest.param(
            answered("completed", talk=5),
            retry(),
            redial(short=10),
            NextAction.RETRY,
            AFTER_DELAY,
            id="short-connect-retries",
        ),
        pytest.param(
            answered("completed", talk=9.999),
            retry(),
            redial(short=10),
            NextAction.RETRY,
            AFTER_DELAY,
            id="short-connect-just-under",
        ),
        pytest.param(
            answered("completed", talk=10),
            retry(),
            redial(short=10),
            NextAction.DONE,
            None,
            id="short-connect-at-threshold-is-done",
        ),
        pytest.param(
            answered("completed", talk=5, attempts=3),
            retry(3),
            redial(short=10),
            NextAction.EXHAUSTED,
            None,
            id="short-connect-at-max-exhausted",
        ),
        pytest.param(
            answered("abandoned", talk=0),
            retry(),
            redial(short=10),
            NextAction.RETRY,
            AFTER_DELAY,
            id="short-connect-any-disposition",
        ),
        pytest.param(
            facts("no_answer"),
            retry(),
            redial(short=10),
            NextAction.DONE,
            None,
            id="short-connect-needs-an-answer",
        ),
        pytest.param(
            facts("error"),
            retry(),
            redial(short=10),
            NextAction.DONE,
            None,
            id="short-connect-ignores-error",
        ),
        pytest.param(
            answered("completed", talk=30),
            retry(),
            redial(stop=30, short=30),
            NextAction.DONE,
            None,
            id="equal-thresholds-at-threshold-neither",
        ),
        pytest.param(
            answered("completed", talk=29),
            retry(),
            redial(stop=30, short=30),
            NextAction.RETRY,
            AFTER_DELAY,
            id="equal-thresholds-below-short-connect",
        ),
        pytest.param(
            answered("completed", talk=31),
            retry(),
            redial(stop=30, short=30),
            NextAction.DONE,
            None,
            id="equal-thresholds-above-stop-done",
        ),
        # 4. Otherwise done.
        pytest.param(
            answered("completed"),
            retry(),
            NO_REDIAL,
            NextAction.DONE,
            None,
            id="plain-completed-call-done",
        ),
    ],
)
def test_decision_table(
    attempt: AttemptFacts,
    retry_policy: RetryPolicy,
    redial_policy: RedialPolicy,
    action: NextAction,
    next_at: datetime | None,
) -> None:
    assert decide(attempt, retry_policy, redial_policy, WINDOW) == Decision(
        action, next_at, STATE[action]
    )


def test_callback_outside_window_follows_the_window_zone() -> None:
    london = Window.parse("09:00", "17:00", ["mon"], "Europe/London")
    summer = datetime(2025, 6, 30, 7, 0, tzinfo=UTC)  # Monday 08:00 BST
    decision = decide(answered(callback_at=summer), retry(), NO_REDIAL, london)
    assert decision.next_at == datetime(2025, 6, 30, 8, 0, tzinfo=UTC)


def test_requeue_goes_back_to_pending_at_the_given_time() -> None:
    assert requeue(ENDED) == Decision(NextAction.REQUEUE, ENDED, "pending")


@pytest.mark.parametrize(
    ("attempt", "redial_policy", "expected"),
    [
        pytest.param(facts("no_answer"), NO_REDIAL, True, id="system-listed"),
        pytest.param(facts("rejected"), NO_REDIAL, False, id="system-not-listed"),
        pytest.param(answered("call_back_later"), NO_REDIAL, True, id="custom-listed"),
        pytest.param(answered("completed", talk=5), NO_REDIAL, False, id="completed"),
        pytest.param(answered("completed", talk=5), redial(short=10), True, id="short-connect"),
        # Attempts and the stop rule are decide()'s business, not retryability's.
        pytest.param(facts("no_answer", attempts=99), NO_REDIAL, True, id="ignores-attempts"),
        pytest.param(
            answered("call_back_later", talk=999), redial(stop=60), True, id="ignores-stop-rule"
        ),
    ],
)
def test_is_retryable(attempt: AttemptFacts, redial_policy: RedialPolicy, expected: bool) -> None:
    policy = retry(on_system=("no_answer",), on_custom=("call_back_later",))
    assert is_retryable(attempt, policy, redial_policy) is expected


@pytest.mark.parametrize(
    ("stop", "short", "expected"),
    [
        pytest.param(None, None, False, id="neither"),
        pytest.param(60.0, None, False, id="stop-only"),
        pytest.param(None, 10.0, False, id="short-only"),
        pytest.param(60.0, 10.0, False, id="short-below-stop"),
        pytest.param(30.0, 30.0, False, id="equal-no-talk-time-matches-both"),
        pytest.param(30.0, 30.5, True, id="short-just-above-stop"),
        pytest.param(30.0, 60.0, True, id="short-above-stop"),
    ],
)
def test_overlaps(stop: float | None, short: float | None, expected: bool) -> None:
    assert redial(stop, short).overlaps() is expected


def test_contact_state_for_every_action() -> None:
    assert CONTACT_STATE == STATE


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"max_attempts": 0}, "retry.max_attempts: 0 is less than 1", id="max-attempts-0"
        ),
        pytest.param(
            {"delay": -1.0}, "retry.delay: -1.0 is not a duration >= 0", id="negative-delay"
        ),
        pytest.param({"delay": float("nan")}, "retry.delay: nan", id="nan-delay"),
        pytest.param({"on_system": ("busy",)}, "retry.on_system: busy not in", id="unknown-system"),
        pytest.param(
            {"on_custom": ("RNR",)},
            "retry.on_custom: RNR not a custom disposition",
            id="system-name-as-custom",
        ),
        pytest.param(
            {"on_custom": ("completed",)},
            "retry.on_custom: completed not a custom disposition",
            id="completed-custom",
        ),
    ],
)
def test_retry_policy_is_checked(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        retry(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stop", "short"),
    [
        pytest.param(-1.0, None, id="negative-stop"),
        pytest.param(None, float("inf"), id="infinite-short"),
    ],
)
def test_redial_policy_is_checked(stop: float | None, short: float | None) -> None:
    with pytest.raises(ValueError, match=r"^redial\."):
        redial(stop, short)
