"""Outcome of a dial: the SIP result mapped to `answered`, `no_answer`, `rejected` or `error`.

CONTRACT.md ("Outcome, disposition, next action"): SIP 408, 480 or no final code from the callee
(our own ring timeout included: the 487 after our CANCEL is not the callee's) → `no_answer`; any
other final failure code → `rejected` (a 487 the callee sent on its own too); answered calls →
`answered` with SIP code 200; a call we could not place → `error`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

NO_ANSWER_CODES = frozenset({408, 480})


class Outcome(enum.StrEnum):
    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    REJECTED = "rejected"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class DialResult:
    """What happened to one dial, as the call tracker observed it."""

    outcome: Outcome
    sip_code: int | None  # the callee's final code; 200 when answered; None when none
    answered_at: float | None = None
    ended_at: float | None = None
    reason: str = ""  # a short human explanation, for logs and test-call

    @property
    def talk_seconds(self) -> float:
        """Talk time: from answer to hang-up (0 when unanswered)."""
        if self.answered_at is None or self.ended_at is None:
            return 0.0
        return max(0.0, self.ended_at - self.answered_at)


def classify(
    *, placed: bool, answered: bool, sip_code: int | None, our_ring_timeout: bool
) -> tuple[Outcome, int | None]:
    """Map what the tracker saw to (outcome, recorded SIP code).

    `sip_code` is the callee's final failure code if any; `our_ring_timeout` is true when the dial
    ended because our own ring timeout fired (Asterisk then CANCELs and reports a synthesised 480,
    and the callee's 487 is an answer to our CANCEL): neither code is the callee's, so none is kept.
    """
    if answered:
        return Outcome.ANSWERED, 200
    if not placed:
        return Outcome.ERROR, None
    if our_ring_timeout or sip_code is None:
        return Outcome.NO_ANSWER, None
    if sip_code in NO_ANSWER_CODES:
        return Outcome.NO_ANSWER, sip_code
    return Outcome.REJECTED, sip_code


# Fallback for an Asterisk whose Hangup event has no TechCause: the SIP code chan_pjsip maps to
# each Q.850 cause (Asterisk's hangup_cause2sip), so the outcome stays right even if the exact
# code is approximate. Causes 0 and 16 (normal clearing) carry no failure code.
_Q850_TO_SIP = {
    1: 404,
    2: 404,
    3: 404,
    17: 486,
    18: 408,
    19: 480,
    20: 480,
    21: 403,
    22: 410,
    23: 410,
    26: 404,
    27: 502,
    28: 484,
    29: 501,
    31: 480,
    34: 503,
    38: 503,
    41: 503,
    42: 503,
    58: 488,
    65: 488,
    88: 488,
    102: 504,
    111: 500,
    127: 500,
}


def sip_code_from_q850(cause: int | None) -> int | None:
    """Approximate SIP code for a Q.850 cause (used only when TechCause is absent)."""
    if cause is None:
        return None
    return _Q850_TO_SIP.get(cause)


def parse_tech_cause(value: str | None) -> int | None:
    """Parse the Hangup event's TechCause (`486`, or `SIP 486 Busy Here` on some versions)."""
    if not value:
        return None
    for token in value.replace(";", " ").split():
        if token.isdigit() and 100 <= int(token) <= 699:
            return int(token)
    return None


#: Q.850 causes of an unanswered call that mean nobody answered (CONTRACT's `no_answer`), as
#: Asterisk records them (chan_pjsip's sip2cause): 0 none, 16 normal clearing (no final code
#: from the callee: our own CANCEL at the ring timeout), 18 no user responding, 19 no answer
#: (480, 483; also Asterisk's own originate timeout), 102 timer expiry (408 — and 504, which a
#: cause cannot tell apart). Any other cause is a refusal.
NO_ANSWER_CAUSES = frozenset({0, 16, 18, 19, 102})


def outcome_from_cause(*, answered: bool, cause: int | None) -> Outcome:
    """The outcome of a call known only from Asterisk's own record (CEL): `answered` if it was
    answered; else `no_answer` for the causes of NO_ANSWER_CAUSES or no cause at all, else
    `rejected`. No SIP code is derived from a cause (a cause maps from several codes)."""
    if answered:
        return Outcome.ANSWERED
    if cause is None or cause in NO_ANSWER_CAUSES:
        return Outcome.NO_ANSWER
    return Outcome.REJECTED
