"""The lab's number plan (CONTRACT.md, "The lab"): what the simulated carrier does per number.

Pure data and one pure function, shared by the SIPp scenario generator and the tests that compute
what a call to a lab number must produce.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

CARRIER = "lab"
CALLER_IDS: tuple[str, ...] = tuple(f"+4416329600{n:02d}" for n in range(1, 11))
REJECT_CODES: tuple[int, ...] = (
    403,
    404,
    408,
    410,
    429,
    480,
    484,
    486,
    488,
    500,
    502,
    503,
    504,
    600,
    603,
    604,
    606,
)
PREFIX = "+447700900"
DEFAULT_HOLD_SECONDS = 2.0
RING_SECONDS = 1.0


class Behaviour(enum.Enum):
    """What the lab carrier does with a call."""

    ANSWER = "answer"  # ring ~1 s, answer, hold, hang up; media echoed
    RING_FOREVER = "ring"  # 180 Ringing, never answers
    SILENT = "silent"  # never responds at all
    REJECT = "reject"  # final failure response with a given code


@dataclass(frozen=True, slots=True)
class Plan:
    """The carrier's behaviour for one dialled number."""

    behaviour: Behaviour
    hold_seconds: float = 0.0  # ANSWER only
    code: int | None = None  # REJECT only


_LAB_NUMBER = re.compile(r"^\+447700900(\d{3})$")


def plan_for(number: str, default_hold: float = DEFAULT_HOLD_SECONDS) -> Plan:
    """The carrier's behaviour for `number` (E.164), per the contract's number plan."""
    match = _LAB_NUMBER.match(number)
    if match:
        suffix = int(match.group(1))
        if suffix < 100:
            return Plan(Behaviour.ANSWER, hold_seconds=float(suffix or 1))
        if 200 <= suffix < 300:
            return Plan(Behaviour.RING_FOREVER)
        if 300 <= suffix < 400:
            return Plan(Behaviour.SILENT)
        if suffix in REJECT_CODES:
            return Plan(Behaviour.REJECT, code=suffix)
    return Plan(Behaviour.ANSWER, hold_seconds=default_hold)
