from __future__ import annotations

import pytest

from dialler.domain.outcomes import (
    Outcome,
    classify,
    parse_tech_cause,
    sip_code_from_q850,
)

from ..contract import LAB_TABLE, REJECT_CODES, LabRow


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (408, Outcome.NO_ANSWER),
        (480, Outcome.NO_ANSWER),
        (486, Outcome.REJECTED),
        (603, Outcome.REJECTED),
        (503, Outcome.REJECTED),
        (404, Outcome.REJECTED),
        (429, Outcome.REJECTED),
        (487, Outcome.REJECTED),
        (600, Outcome.REJECTED),
        (500, Outcome.REJECTED),
        (403, Outcome.REJECTED),
    ],
)
def test_callee_final_codes(code: int, expected: Outcome) -> None:
    assert classify(placed=True, answered=False, sip_code=code, our_ring_timeout=False) == (
        expected,
        code,
    )


def test_no_final_code_is_no_answer_without_code() -> None:
    assert classify(placed=True, answered=False, sip_code=None, our_ring_timeout=False) == (
        Outcome.NO_ANSWER,
        None,
    )


@pytest.mark.parametrize("code", [480, 487, None])
def test_our_ring_timeout_keeps_no_code(code: int | None) -> None:
    # Asterisk synthesises 480 for its own timeout; the callee answers our CANCEL with 487.
    assert classify(placed=True, answered=False, sip_code=code, our_ring_timeout=True) == (
        Outcome.NO_ANSWER,
        None,
    )


def test_answered_records_200() -> None:
    assert classify(placed=True, answered=True, sip_code=None, our_ring_timeout=False) == (
        Outcome.ANSWERED,
        200,
    )


def test_not_placed_is_error() -> None:
    assert classify(placed=False, answered=False, sip_code=None, our_ring_timeout=False) == (
        Outcome.ERROR,
        None,
    )


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("486", 486),
        ("SIP 486 Busy Here", 486),
        ("", None),
        (None, None),
        ("SIP", None),
        ("0", None),
    ],
)
def test_parse_tech_cause(raw: str | None, code: int | None) -> None:
    assert parse_tech_cause(raw) == code


def test_q850_fallback_keeps_the_outcome() -> None:
    # busy, declined → rejected; no user responding, no answer → no_answer
    for cause, outcome in (
        (17, Outcome.REJECTED),
        (21, Outcome.REJECTED),
        (18, Outcome.NO_ANSWER),
        (19, Outcome.NO_ANSWER),
    ):
        code = sip_code_from_q850(cause)
        assert (
            classify(placed=True, answered=False, sip_code=code, our_ring_timeout=False)[0]
            is outcome
        )
    assert sip_code_from_q850(16) is None
    assert sip_code_from_q850(None) is None


# --- the contract's table, written by hand (tests/contract.py) ------------------------------


def test_the_table_covers_every_reject_code_of_the_lab() -> None:
    codes = {int(row.sip_code) for row in LAB_TABLE if row.behaviour.startswith("reject")}
    assert codes == set(REJECT_CODES)


@pytest.mark.parametrize(
    "row", [r for r in LAB_TABLE if r.behaviour.startswith("reject")], ids=lambda r: r.number
)
def test_every_reject_code_gets_the_contract_outcome(row: LabRow) -> None:
    code = int(row.sip_code)
    outcome, kept = classify(placed=True, answered=False, sip_code=code, our_ring_timeout=False)
    assert (outcome.value, kept) == (row.outcome, code)


def test_ring_no_answer_and_never_respond_are_no_answer_without_a_code() -> None:
    # Ring-no-answer: our ring timeout fires, Asterisk CANCELs, the callee answers 487.
    ring = next(r for r in LAB_TABLE if r.number == "+447700900200")
    assert classify(placed=True, answered=False, sip_code=487, our_ring_timeout=True) == (
        Outcome(ring.outcome),
        None,
    )
    # Never-respond: no final code from the callee at all.
    silent = next(r for r in LAB_TABLE if r.number == "+447700900300")
    assert classify(placed=True, answered=False, sip_code=None, our_ring_timeout=True) == (
        Outcome(silent.outcome),
        None,
    )


def test_a_487_the_callee_sent_on_its_own_is_rejected() -> None:
    assert classify(placed=True, answered=False, sip_code=487, our_ring_timeout=False) == (
        Outcome.REJECTED,
        487,
    )
