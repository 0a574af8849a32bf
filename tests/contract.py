"""Expectations written from /work/shared/CONTRACT.md by hand — never computed by the code under
test (`classify()`, `plan_for()`, `report.FIXED`), so a mapping bug in the product cannot be
copied into what the tests expect.

CONTRACT.md, "Outcome, disposition, next action": an unanswered dial with SIP 408, 480 or no
final code from the callee (our ring timeout included) is `no_answer`; any other final failure
code is `rejected`; for unanswered attempts the disposition equals the outcome; an answered one
takes what the bot reported (the lab's reference worker reports `completed`).
CONTRACT.md, "The lab": which number does what.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LabRow:
    """One lab number and what the contract says an attempt to it records."""

    number: str
    behaviour: str  # the lab's behaviour, in CONTRACT's words
    outcome: str
    sip_code: str  # as the report writes it: "200" when answered, "" when none
    disposition: str


#: Every reject code of the lab, every other behaviour: one row each, written out literally.
LAB_TABLE: tuple[LabRow, ...] = (
    LabRow("+447700900403", "reject 403", "rejected", "403", "rejected"),
    LabRow("+447700900404", "reject 404", "rejected", "404", "rejected"),
    LabRow("+447700900408", "reject 408", "no_answer", "408", "no_answer"),
    LabRow("+447700900410", "reject 410", "rejected", "410", "rejected"),
    LabRow("+447700900429", "reject 429 (not the throttling range)", "rejected", "429", "rejected"),
    LabRow("+447700900480", "reject 480", "no_answer", "480", "no_answer"),
    LabRow("+447700900484", "reject 484", "rejected", "484", "rejected"),
    LabRow("+447700900486", "reject 486", "rejected", "486", "rejected"),
    LabRow("+447700900488", "reject 488", "rejected", "488", "rejected"),
    LabRow("+447700900500", "reject 500", "rejected", "500", "rejected"),
    LabRow("+447700900502", "reject 502", "rejected", "502", "rejected"),
    LabRow("+447700900503", "reject 503 (not the throttling range)", "rejected", "503", "rejected"),
    LabRow("+447700900504", "reject 504", "rejected", "504", "rejected"),
    LabRow("+447700900600", "reject 600", "rejected", "600", "rejected"),
    LabRow("+447700900603", "reject 603", "rejected", "603", "rejected"),
    LabRow("+447700900604", "reject 604", "rejected", "604", "rejected"),
    LabRow("+447700900606", "reject 606", "rejected", "606", "rejected"),
    LabRow("+447700900000", "answer, hold 1 s", "answered", "200", "completed"),
    LabRow("+447700900003", "answer, hold 3 s", "answered", "200", "completed"),
    LabRow("+447700900200", "ring (180), never answer", "no_answer", "", "no_answer"),
    LabRow("+447700900300", "never respond", "no_answer", "", "no_answer"),
    LabRow("+447700911000", "any other number: answer, hold the default", "answered", "200",
           "completed"),
)  # fmt: skip

#: The SIP reject codes the lab offers (CONTRACT.md, "The lab"), literally.
REJECT_CODES = (403, 404, 408, 410, 429, 480, 484, 486, 488, 500, 502, 503, 504, 600, 603, 604, 606)


def lab_row(number: str) -> LabRow:
    """The expectation for a lab number: its own row, or that of its range (ring-no-answer
    `…2xx`, never-respond `…3xx`, answer-and-hold `…0xx`, any other number)."""
    for row in LAB_TABLE:
        if row.number == number:
            return row
    prefix = "+447700900"
    if number.startswith(prefix) and len(number) == len(prefix) + 3:
        kind = number[len(prefix)]
        if kind == "0":
            return LabRow(number, "answer and hold", "answered", "200", "completed")
        if kind == "2":
            return LabRow(number, "ring, never answer", "no_answer", "", "no_answer")
        if kind == "3":
            return LabRow(number, "never respond", "no_answer", "", "no_answer")
        raise AssertionError(f"{number}: no expectation written for it")
    return LabRow(number, "answer, hold the default", "answered", "200", "completed")


def next_actions(disposition: str, on_system: set[str], max_attempts: int) -> list[str]:
    """The `next_action` of each attempt a contact gets with no callback and no redial rule
    (CONTRACT.md rules 3 and 4): retryable → `retry` until `max_attempts`, then `exhausted`;
    otherwise one attempt, `done`."""
    if disposition in on_system:
        return ["retry"] * (max_attempts - 1) + ["exhausted"]
    return ["done"]


#: The attempt report's columns, copied from CONTRACT.md ("Attempt report"), in order.
REPORT_COLUMNS = [
    "campaign_id", "contact_id", "attempt_id", "attempt_number", "phone_number", "caller_id",
    "carrier", "dialled_at", "answered_at", "ended_at", "duration_seconds", "sip_code", "outcome",
    "disposition", "worker", "next_action", "next_at", "asterisk",
]  # fmt: skip
