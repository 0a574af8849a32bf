"""A campaign of 300 contacts over every lab behaviour runs to `completed`, and the report holds
exactly the attempts CONTRACT.md implies (tests/contract.py, written by hand — not computed by
`classify()` or `plan_for()`) — counted independently by the carrier, per number."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..contract import REJECT_CODES, lab_row, next_actions
from .campaigns import by_number, create_campaign, lab_delta, max_overlap, report, running, wait_for
from .lab_helpers import lab_calls

pytestmark = pytest.mark.e2e

MAX_ATTEMPTS = 3
CONCURRENCY = 40
ON_SYSTEM = ["no_answer", "rejected"]
#: The campaign completes in about a minute; the wait is well below the test's own timeout,
#: so a slow run fails with what `campaign show` said last, not a pytest-timeout traceback.
COMPLETION_WAIT = 240


def numbers_over_every_behaviour() -> list[str]:
    numbers = [f"+4477009000{n:02d}" for n in range(0, 6)]  # answer, hold 1–5 s
    numbers += [f"+447700900{code}" for code in REJECT_CODES]  # every rejection code
    numbers += [f"+4477009002{n:02d}" for n in range(60)]  # ring, never answer
    numbers += [f"+4477009003{n:02d}" for n in range(60)]  # never respond
    numbers += [f"+447700911{n:03d}" for n in range(300 - len(numbers))]  # answer, hold 2 s
    return numbers


def expected_attempts(number: str) -> list[tuple[str, str, str, str]]:
    """(outcome, sip_code, disposition, next_action) of each attempt CONTRACT implies."""
    row = lab_row(number)
    actions = next_actions(row.disposition, set(ON_SYSTEM), MAX_ATTEMPTS)
    return [(row.outcome, row.sip_code, row.disposition, action) for action in actions]


@pytest.mark.timeout(COMPLETION_WAIT + 180)
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
            "on_system": ON_SYSTEM,
            "on_custom": [],
        },
    )
    with running(lab_config_path, tmp_path / "daemon.log") as daemon:
        final = wait_for(lab_config_path, campaign, "completed", COMPLETION_WAIT, daemon)

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
