"""The AMI link breaks mid-call: the client reconnects by itself and never dials twice."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import pytest

from dialler.ami.calls import CallResultLost, CallTracker, TrackedCall
from dialler.ami.client import AmiClient, AmiUnavailable
from dialler.config import Config
from dialler.domain.outcomes import DialResult, Outcome

from .lab_helpers import lab_calls
from .tcpproxy import FaultyLink
from .test_sip_outcomes import request

pytestmark = pytest.mark.e2e


@pytest.fixture
async def link(lab_config: Config) -> AsyncIterator[FaultyLink]:
    ami = lab_config.asterisk[0].ami
    proxy = FaultyLink(ami.host, ami.port)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def linked_tracker(lab_config: Config, link: FaultyLink) -> AsyncIterator[CallTracker]:
    pbx = lab_config.asterisk[0]
    ami_cfg = dataclasses.replace(
        pbx.ami, port=link.port, ping_interval=1.0, ping_timeout=1.0, reconnect_delay=1.0
    )
    client = AmiClient(dataclasses.replace(pbx, ami=ami_cfg))
    await client.start()
    await client.wait_ready(15)
    yield CallTracker(client)
    await client.close()


async def wait_reconnected(client: AmiClient, reconnects: int, timeout: float) -> float:
    start = time.monotonic()
    while not (client.ready and client.reconnects >= reconnects):
        if time.monotonic() - start > timeout:
            raise AssertionError(
                f"no reconnect within {timeout}s: ready={client.ready}, "
                f"reconnects={client.reconnects} (wanted {reconnects})"
            )
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def wait_down(client: AmiClient, timeout: float) -> None:
    """Until the client knows its link is gone."""
    deadline = time.monotonic() + timeout
    while client.ready:
        assert time.monotonic() < deadline, f"the client still says ready {timeout}s after the cut"
        await asyncio.sleep(0.02)


async def wait_stage(call: TrackedCall, stage: str, timeout: float) -> float:
    """Until the tracked call reached `stage`; when it did (the tracker's clock, time.time)."""
    deadline = time.monotonic() + timeout
    while True:
        for name, at in call.stages:
            if name == stage:
                return at
        assert time.monotonic() < deadline, f"no {stage} within {timeout}s: {call.stages}"
        await asyncio.sleep(0.05)


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        n: after.get(n, 0) - before.get(n, 0)
        for n in set(after) | set(before)
        if after.get(n, 0) != before.get(n, 0)
    }


async def test_cut_link_reconnects_and_never_redials(
    linked_tracker: CallTracker, lab_config: Config, link: FaultyLink
) -> None:
    before = lab_calls()
    # The long call outlasts the outage and the client's reconnect (its retries back off).
    long_call = await linked_tracker.dial(request(lab_config, "+447700900015"))  # holds 15 s
    short_call = await linked_tracker.dial(request(lab_config, "+447700900001"))  # holds 1 s
    await wait_stage(long_call, "answered", 10)
    short_answered = await wait_stage(short_call, "answered", 10)

    link.refusing = True  # Asterisk unreachable until we say so
    link.cut()
    await wait_down(linked_tracker.ami, 5)
    with pytest.raises(AmiUnavailable):
        # Down: nothing is sent, so nothing can be dialled twice later.
        await linked_tracker.dial(request(lab_config, "+447700900002"))
    # The outage lasts until the short call (1 s hold) is surely over: it ends unseen.
    await asyncio.sleep(max(0.0, short_answered + 2.0 - time.time()))
    link.refusing = False
    await wait_reconnected(linked_tracker.ami, 1, 10)
    assert long_call.result.done() is False, "the long call ended before the reconnect"

    # The long call ended after the reconnect: its result is known and exact.
    long_result: DialResult = await asyncio.wait_for(long_call.result, 25)
    assert (long_result.outcome, long_result.sip_code) == (Outcome.ANSWERED, 200)
    # The short call ended while the link was down: lost, never guessed.
    with pytest.raises(CallResultLost):
        await asyncio.wait_for(short_call.result, 15)

    after_reconnect = await linked_tracker.dial(request(lab_config, "+447700900486"))
    assert (await asyncio.wait_for(after_reconnect.result, 10)).sip_code == 486

    assert delta(before, lab_calls()) == {
        "+447700900015": 1,
        "+447700900001": 1,
        "+447700900486": 1,
    }


async def test_silent_link_is_detected_and_unacknowledged_originate_not_resent(
    linked_tracker: CallTracker, lab_config: Config, link: FaultyLink
) -> None:
    before = lab_calls()
    link.silent = True  # Asterisk's replies vanish: the Originate arrives, its response not
    started = time.monotonic()
    call = await linked_tracker.dial(request(lab_config, "+447700900005"))
    assert call.stages[-1][0] == "originate-unacknowledged"
    link.silent = False  # new connections relay normally again
    # Dead link noticed by the watchdog (1 s ping + 1 s timeout) and replaced.
    await wait_reconnected(linked_tracker.ami, 1, 15)
    assert time.monotonic() - started < 15

    # The call was placed once and is still tracked: reconciliation found its channel alive.
    result = await asyncio.wait_for(call.result, 20)
    assert (result.outcome, result.sip_code) == (Outcome.ANSWERED, 200)
    assert delta(before, lab_calls()) == {"+447700900005": 1}


async def test_asterisk_restart_reconnects(tracker: CallTracker, lab_config: Config) -> None:
    from dialler.lab import asterisk
    from dialler.lab.lab import Lab

    lab = Lab()
    asterisk.cli(lab.root, "core restart now")
    await wait_reconnected(tracker.ami, 1, 60)
    before = lab_calls()
    call = await tracker.dial(request(lab_config, "+447700900603"))
    assert (await asyncio.wait_for(call.result, 10)).sip_code == 603
    assert delta(before, lab_calls()) == {"+447700900603": 1}
