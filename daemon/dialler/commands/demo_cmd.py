"""`dialler demo`: bring the lab up and place one call of each kind through it.

Until the campaign engine lands this is the product's visible main job: every lab behaviour
dialled once through Asterisk over AMI, each result mapped to its outcome and SIP code.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid

from ..ami.calls import CallTracker
from ..ami.client import AmiClient, OriginateRequest
from ..config import Config, load_config
from ..domain.outcomes import DialResult, Outcome, classify
from ..lab.lab import Lab
from ..lab.numberplan import Behaviour, plan_for

DEMO_NUMBERS = ("+447700900003", "+447700900200", "+447700900300", "+447700900486",
                "+447700900603", "+447700900503", "+447700900404", "+447700900429",
                "+447700900408", "+447700900480")
RING_TIMEOUT = 5.0


def expected(number: str) -> tuple[Outcome, int | None]:
    """What the contract says a call to this lab number must give."""
    plan = plan_for(number)
    if plan.behaviour is Behaviour.ANSWER:
        return Outcome.ANSWERED, 200
    if plan.behaviour in (Behaviour.RING_FOREVER, Behaviour.SILENT):
        return Outcome.NO_ANSWER, None
    return classify(placed=True, answered=False, sip_code=plan.code, our_ring_timeout=False)


async def _run(config: Config) -> list[tuple[str, DialResult, float]]:
    ami = AmiClient(config.asterisk[0])
    await ami.start()
    try:
        await ami.wait_ready(15)
        tracker = CallTracker(ami)
        carrier = config.carriers[0]
        started = time.monotonic()
        calls = []
        for i, number in enumerate(DEMO_NUMBERS):
            request = OriginateRequest(
                attempt_id=str(uuid.uuid4()), channel=f"PJSIP/{number}@{carrier.endpoint}",
                context=config.asterisk[0].originate_context,
                caller_id=config.numbers[i % len(config.numbers)].number,
                ring_timeout=RING_TIMEOUT)
            calls.append((number, await tracker.dial(request)))
        print(f"demo: {len(calls)} calls placed; waiting for their results…", file=sys.stderr)
        results = []
        for number, call in calls:
            result = await asyncio.wait_for(call.result, RING_TIMEOUT + 30)
            results.append((number, result, time.monotonic() - started))
        return results
    finally:
        await ami.close()


def demo(args: argparse.Namespace) -> int:
    lab = Lab()
    path = lab.up()
    config = load_config(str(path))
    results = asyncio.run(_run(config))
    print(f"{'number':15} {'outcome':10} {'sip':>4} {'talk':>6}  {'why':14} check")
    failures = 0
    for number, result, _elapsed in results:
        ok = (result.outcome, result.sip_code) == expected(number)
        failures += not ok
        sip = str(result.sip_code or "-")
        print(f"{number:15} {result.outcome.value:10} {sip:>4} {result.talk_seconds:5.1f}s  "
              f"{result.reason:14} {'ok' if ok else 'UNEXPECTED'}")
    count = lab.calls()
    placed = sum(count.by_number.get(n, 0) for n in DEMO_NUMBERS)
    print(f"carrier received {count.total} calls since `lab up` ({placed} to the demo numbers)")
    print(f"lab config: {path}")
    return 0 if failures == 0 else 1
