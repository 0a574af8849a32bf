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

# The throttling carrier (`+447700901000`–`…099`): fixed 1-second windows on the carrier's own
# clock; the first THROTTLE_LIMIT calls of a window are answered (held THROTTLE_HOLD_SECONDS),
# every later one in the same window is refused with 429 (with `Retry-After: 1`).
THROTTLE_PREFIX = "+4477009010"
THROTTLE_LIMIT = 5
THROTTLE_WINDOW_SECONDS = 1.0
THROTTLE_HOLD_SECONDS = 2.0
THROTTLE_CODE = 429


class Behaviour(enum.Enum):
    """What the lab carrier does with a call."""

    ANSWER = "answer"  # ring ~1 s, answer, hold, hang up; media echoed
    RING_FOREVER = "ring"  # 180 Ringing, never answers
    SILENT = "silent"  # never responds at all
    REJECT = "reject"  # final failure response with a given code
    THROTTLE = "throttle"  # ANSWER while the window has room, else REJECT with 429


@dataclass(frozen=True, slots=True)
class Plan:
    """The carrier's behaviour for one dialled number."""

    behaviour: Behaviour
    hold_seconds: float = 0.0  # ANSWER and THROTTLE (when accepted)
    code: int | None = None  # REJECT, and THROTTLE when the window is full


_LAB_NUMBER = re.compile(r"^\+447700900(\d{3})$")
_THROTTLED = re.compile(r"^\+4477009010\d{2}$")


def plan_for(number: str, default_hold: float = DEFAULT_HOLD_SECONDS) -> Plan:
    """The carrier's behaviour for `number` (E.164), per the contract's number plan."""
    if _THROTTLED.match(number):
        return Plan(Behaviour.THROTTLE, hold_seconds=THROTTLE_HOLD_SECONDS, code=THROTTLE_CODE)
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
