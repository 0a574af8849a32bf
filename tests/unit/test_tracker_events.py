"""The call tracker's reading of AMI events in the orders Asterisk sends them under load: a
failed `OriginateResponse` may come before the channel's own events (seen at 500 dials at
once). A call whose channel was made must never pass for one that was not placed — it would be
requeued and dialled again. The AMI side here is a stand-in that only records the Originate;
the event orders are the lab's (docs/asterisk.md)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dialler.ami import calls
from dialler.ami.calls import CallTracker
from dialler.ami.client import OriginateRequest
from dialler.domain.outcomes import Outcome


class _SentAmi:
    """Takes the Originate; events are fed by the test."""

    name = "pbx"
    ready = True

    def add_listener(self, _listener: Any) -> None:
        pass

    def on_up(self, _callback: Any) -> None:
        pass

    async def originate(self, _request: OriginateRequest) -> None:
        pass


REQUEST = OriginateRequest(
    "a-1", "PJSIP/+447700900486@lab", "dialler-outbound", "+441632960001", 30
)


@pytest.fixture(autouse=True)
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calls, "ORIGINATE_RESPONSE_GRACE", 0.05)


async def test_a_failed_response_before_the_channel_events_is_the_callees_refusal() -> None:
    tracker = CallTracker(_SentAmi())  # type: ignore[arg-type]
    call = await tracker.dial(REQUEST)
    tracker.on_event(
        {"Event": "OriginateResponse", "Uniqueid": "a-1", "Response": "Failure", "Reason": "0"}
    )
    await asyncio.sleep(0.01)  # the channel's events trail the response
    assert not call.result.done()
    tracker.on_event({"Event": "Newchannel", "Uniqueid": "a-1", "Channel": "PJSIP/lab-1"})
    tracker.on_event({"Event": "Hangup", "Uniqueid": "a-1", "Cause": "17", "TechCause": "486"})
    result = await asyncio.wait_for(call.result, 1)
    assert (result.outcome, result.sip_code) == (Outcome.REJECTED, 486)


async def test_a_failed_response_with_no_channel_is_not_placed_after_the_grace() -> None:
    tracker = CallTracker(_SentAmi())  # type: ignore[arg-type]
    call = await tracker.dial(REQUEST)
    tracker.on_event(
        {"Event": "OriginateResponse", "Uniqueid": "a-1", "Response": "Failure", "Reason": "0"}
    )
    assert not call.result.done()  # not yet: its channel's events may still come
    result = await asyncio.wait_for(call.result, 1)
    assert result.outcome is Outcome.ERROR
    assert not call.placed
