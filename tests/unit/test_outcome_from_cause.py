"""The outcome of a call known only from Asterisk's record (CEL): its Q.850 cause, read as
chan_pjsip maps SIP codes to causes (docs/engine.md) — never a SIP code derived from it."""

from __future__ import annotations

import pytest

from dialler.domain.outcomes import Outcome, outcome_from_cause


@pytest.mark.parametrize(
    ("cause", "why"),
    [
        (None, "no cause recorded"),
        (0, "no cause"),
        (16, "normal clearing, unanswered: no final code from the callee"),
        (18, "no user responding"),
        (19, "no answer: 480, or our own ring timeout"),
        (102, "recovery on timer expiry: 408"),
    ],
)
def test_nobody_answering_is_no_answer(cause: int | None, why: str) -> None:
    assert outcome_from_cause(answered=False, cause=cause) is Outcome.NO_ANSWER, why


@pytest.mark.parametrize(
    ("cause", "sip"),
    [
        (1, 404),
        (17, 486),
        (21, 603),
        (22, 410),
        (28, 484),
        (34, 503),
        (27, 502),
        (38, 500),
        (58, 488),
        (127, 487),
    ],
)
def test_a_refusal_is_rejected(cause: int, sip: int) -> None:
    assert outcome_from_cause(answered=False, cause=cause) is Outcome.REJECTED, sip


def test_an_answer_wins_over_any_cause() -> None:
    for cause in (None, 16, 17, 127):
        assert outcome_from_cause(answered=True, cause=cause) is Outcome.ANSWERED
