"""A campaign of 300+ contacts over every lab behaviour runs to `completed`, and the report holds
exactly the attempts the rules imply — counted independently by the carrier."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialler.domain.outcomes import classify
from dialler.lab.numberplan import REJECT_CODES, Behaviour, plan_for

from .campaigns import by_number, create_campaign, lab_delta, max_overlap, report, running, wait_for
from .lab_helpers import lab_calls

pytestmark = pytest.mark.e2e

MAX_ATTEMPTS = 3
CONCURRENCY = 40


def numbers_over_every_behaviour() -> list[str]:
    numbers = [f"+4477009000{n:02d}" for n in range(0, 6)]  # answer, hold 1–5 s
    numbers += [f"+447700900{code}" for code in REJECT_CODES]  # every rejection code
    numbers += [f"+4477009002{n:02d}" for n in range(60)]  # ring, never answer
    numbers += [f"+4477009003{n:02d}" for n in range(60)]  # never respond
    numbers += [f"+447700911{n:03d}" for n in range(300 - len(numbers))]  # answer, hold 2 s
    return numbers


def expected_attempts(number: str) -> list[tuple[str, str, str, str]]:
    """(outcome, sip_code, disposition, next_action) of each attempt the rules imply."""
    plan = plan_for(number)
    if plan.behaviour is Behaviour.ANSWER:
        return [("answered", "200", "completed", "done")]
    if plan.behaviour is Behaviour.REJECT:
        outcome, code = classify(
            placed=True, answered=False, sip_code=plan.code, our_ring_timeout=False
        )
        sip = str(code)
    else:
        outcome, sip = (
            classify(placed=True, answered=False, sip_code=None, our_ring_timeout=True)[0],
            "",
        )
    actions = ["retry"] * (MAX_ATTEMPTS - 1) + ["exhausted"]
    return [(outcome.value, sip, outcome.value, action) for action in actions]


def test_campaign_of_300_contacts_runs_to_completion(lab_config_path: Path, tmp_path: Path) -> None:
    numbers = numbers_over_every_behaviour()
    assert len(numbers) == 300
    before = lab_calls()
    campaign = create_campaign(
        lab_config_path,
        tmp_path,
        numbers,
        concurrency=CONCURRENCY,
        variables={"Name": [f"Customer {i}" for i in range(len(numbers))]},
        retry={
            "max_attempts": MAX_ATTEMPTS,
            "delay": "2s",
            "on_system": ["no_answer", "rejected"],
            "on_custom": [],
        },
    )
    with running(lab_config_path, tmp_path / "daemon.log") as daemon:
        final = wait_for(lab_config_path, campaign, "completed", 300, daemon)

    rows = report(lab_config_path, campaign)
    got = {
        number: [
            (r["outcome"], r["sip_code"], r["disposition"], r["next_action"]) for r in attempts
        ]
        for number, attempts in by_number(rows).items()
    }
    assert got == {number: expected_attempts(number) for number in numbers}

    # The carrier's own count: one call per attempt, per number — no double dial.
    carrier = lab_delta(before, lab_calls())
    assert carrier == {number: len(attempts) for number, attempts in got.items()}

    # Concurrency, measured from the attempts' own timestamps.
    peak = max_overlap(rows)
    assert peak <= CONCURRENCY
    assert peak >= CONCURRENCY // 2  # it did run in parallel

    stats = final["stats"]
    assert stats["pending"] == stats["dialing"] == stats["connected"] == 0
    assert stats["done"] + stats["exhausted"] == len(numbers)
    assert all(r["Name"].startswith("Customer ") for r in rows)
    assert {r["caller_id"] for r in rows} == {"+441632960001", "+441632960002"}
