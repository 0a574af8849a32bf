"""Every SIP result, originated through the lab's Asterisk to SIPp, maps to the right outcome."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from dialler.ami.calls import CallTracker
from dialler.ami.client import OriginateRequest
from dialler.config import Config
from dialler.domain.outcomes import DialResult, Outcome

from .lab_helpers import lab_calls

pytestmark = pytest.mark.e2e

RING_TIMEOUT = 4.0

# number → (outcome, SIP code recorded)
CASES: dict[str, tuple[Outcome, int | None]] = {
    "+447700900003": (Outcome.ANSWERED, 200),
    "+447700900486": (Outcome.REJECTED, 486),
    "+447700900603": (Outcome.REJECTED, 603),
    "+447700900503": (Outcome.REJECTED, 503),
    "+447700900404": (Outcome.REJECTED, 404),
    "+447700900429": (Outcome.REJECTED, 429),
    "+447700900408": (Outcome.NO_ANSWER, 408),
    "+447700900480": (Outcome.NO_ANSWER, 480),
    "+447700900200": (Outcome.NO_ANSWER, None),  # rings; our ring timeout → CANCEL → 487
    "+447700900300": (Outcome.NO_ANSWER, None),  # never responds
}


def request(config: Config, number: str, ring_timeout: float = RING_TIMEOUT) -> OriginateRequest:
    carrier = config.carriers[0]
    return OriginateRequest(
        attempt_id=str(uuid.uuid4()),
        channel=f"PJSIP/{number}@{carrier.endpoint}",
        context=config.asterisk[0].originate_context,
        caller_id=config.numbers[0].number,
        ring_timeout=ring_timeout,
    )


async def test_every_sip_result_maps_to_its_outcome(
    tracker: CallTracker, lab_config: Config
) -> None:
    before = lab_calls()
    calls = {number: await tracker.dial(request(lab_config, number)) for number in CASES}
    results: dict[str, DialResult] = dict(
        zip(
            calls,
            await asyncio.wait_for(asyncio.gather(*(c.result for c in calls.values())), 30),
            strict=True,
        )
    )

    got = {number: (r.outcome, r.sip_code) for number, r in results.items()}
    assert got == CASES

    answered = results["+447700900003"]
    assert answered.answered_at is not None
    # The lab holds …900003 for 3 s after answering.
    assert 2.5 <= answered.talk_seconds <= 4.5
    for number in ("+447700900200", "+447700900300"):
        assert results[number].reason == "ring timeout"
        assert results[number].talk_seconds == 0

    after = lab_calls()
    delta = {n: after.get(n, 0) - before.get(n, 0) for n in set(after) | set(before)}
    assert {n: c for n, c in delta.items() if c} == dict.fromkeys(CASES, 1)


async def test_unknown_endpoint_is_an_error_not_a_dial(
    tracker: CallTracker, lab_config: Config
) -> None:
    before = lab_calls()
    req = request(lab_config, "+447700900001")
    req = OriginateRequest(
        req.attempt_id,
        "PJSIP/+447700900001@no-such-trunk",
        req.context,
        req.caller_id,
        req.ring_timeout,
    )
    call = await tracker.dial(req)
    result = await asyncio.wait_for(call.result, 10)
    assert (result.outcome, result.sip_code) == (Outcome.ERROR, None)
    assert lab_calls() == before
