"""The triage rows as pure functions of hand-built facts (no database): each row applies and
escalates exactly when the guide says, and the wording never shows a phone number."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from dialler.campaigns.repo import Campaign
from dialler.config import SchedulerConfig
from dialler.domain.rules import RedialPolicy, RetryPolicy
from dialler.domain.states import ContactState
from dialler.domain.window import Window
from dialler.store.triage import (
    BotTestCall,
    FinishingDecision,
    OpenAttempt,
    OverdueAttempt,
    PoolNumber,
    RecentAttempt,
    WaitingContacts,
)
from dialler.triage import Check, rules, text
from dialler.triage.facts import Activity, Facts

# A Monday, inside an always-open window.
NOW = datetime(2025, 1, 6, 10, 0, tzinfo=UTC)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LAB = "+441632960001"
STALL = 120.0


def campaign(**changes: Any) -> Campaign:
    base = Campaign(
        id=uuid.UUID(int=1),
        name="Renewals",
        state="running",
        cancelled_at=None,
        bot_id=uuid.UUID(int=2),
        bot_name="renewals-bot",
        numbers=(LAB,),
        concurrency=5,
        window_start="00:00",
        window_end="24:00",
        window_days=DAYS,
        timezone="UTC",
        always_on=False,
        ring_timeout=30.0,
        retry=RetryPolicy(
            max_attempts=1, delay=1800.0, on_system=frozenset(), on_custom=frozenset()
        ),
        redial=RedialPolicy(None, None),
        created_at=NOW - timedelta(days=1),
        updated_at=NOW - timedelta(days=1),
        started_at=NOW - timedelta(hours=1),
        completed_at=None,
        last_dial_at=NOW - timedelta(seconds=5),
    )
    return dataclasses.replace(base, **changes)


def counts(**n: int) -> dict[str, int]:
    return {state: n.get(state, 0) for state in ContactState}


def activity(**changes: Any) -> Activity:
    base = Activity(
        activity="live",
        stalled=False,
        effective_concurrency=5,
        counts=counts(pending=10),
        retries_left=0,
    )
    return dataclasses.replace(base, **changes)


def recent(
    n: int,
    *,
    outcome: str = "answered",
    sip_code: int | None = 200,
    disposition: str | None = "completed",
    carrier: str = "lab",
    worker: str | None = "w1",
) -> list[RecentAttempt]:
    return [
        RecentAttempt(
            id=uuid.uuid4(),
            carrier=carrier,
            sip_code=sip_code,
            outcome=outcome,
            disposition=disposition,
            dialled_at=NOW - timedelta(minutes=i + 1),
            worker=worker,
            attached_at=None,
        )
        for i in range(n)
    ]


def passed_test_call() -> BotTestCall:
    return BotTestCall(
        id=uuid.uuid4(),
        state="final",
        dialled_at=NOW - timedelta(hours=2),
        outcome="answered",
        disposition="completed",
        sip_code=200,
        worker="w1",
        attached_at=None,
    )


def facts(**changes: Any) -> Facts:
    c = changes.pop("campaign", campaign())
    base = Facts(
        now=NOW,
        scheduler=SchedulerConfig(
            stall_after=STALL,
            poll_interval=1.0,
            max_call_length=3600.0,
            dial_margin=10.0,
            result_timeout=30.0,
            heartbeat_interval=5.0,
        ),
        campaign=c,
        activity=activity(),
        window=Window.parse(c.window_start, c.window_end, list(c.window_days), c.timezone),
        bots=["renewals-bot"],
        pool=[PoolNumber(LAB, True, "lab")],
        prompt="Hello {{Name}}.",
        contact_variables=["Name"],
        lacking={"Name": 0},
        fleet_capacity=5,
        fleet_free=5,
        daemons=1,
        recent=recent(10),
        open_attempts=[],
        finishing=[],
        waiting={},
        overdue_calls={},
        test_call=passed_test_call(),
        report_rows=10,
    )
    return dataclasses.replace(base, **changes)


def waiting(
    state: ContactState, *, due: int = 0, overdue: int = 0, oldest: datetime | None = None
) -> dict[str, WaitingContacts]:
    return {
        state: WaitingContacts(
            state=state,
            n=due,
            due=due,
            waiting=0,
            next_due_at=None,
            overdue=overdue,
            oldest_overdue_at=oldest,
        )
    }


def failed(checks: Sequence[Check]) -> list[str]:
    return [check.name for check in checks if not check.ok]


def test_a_healthy_campaign_has_nothing_to_escalate() -> None:
    f = facts()
    symptoms = rules.evaluate(f)
    assert [s.key for s in symptoms] == [
        "will_not_start",
        "no_calls",
        "no_answer",
        "bot_silent",
        "wrong_details",
        "retries",
        "stuck",
        "report_missing",
    ]
    assert not any(s.applies for s in symptoms)
    assert not any(s.escalate for s in symptoms)
    summary = rules.summary(f, symptoms)
    assert summary.call is None
    assert summary.checked == ["not observed: " + "; ".join(s.title for s in symptoms)]


def test_a_draft_lists_the_start_refusals_with_caller_ids_masked() -> None:
    f = facts(
        campaign=campaign(state="draft", bot_name=None, bot_id=None),
        pool=[PoolNumber(LAB, False, "lab")],
    )
    row = rules.will_not_start(f)
    assert row.applies and not row.escalate
    assert failed(row.checks) == ["bot_selected", "number_pool"]
    assert row.fix
    assert all(LAB not in line for line in [*row.fix, *(c.observed for c in row.checks)])
    assert any("…0001" in line for line in row.fix)


def test_a_stall_escalates_and_points_at_the_last_dial() -> None:
    last = recent(2)
    f = facts(
        activity=activity(activity="idle_waiting_for_retries", stalled=True),
        campaign=campaign(last_dial_at=NOW - timedelta(minutes=10)),
        recent=last,
        waiting=waiting(ContactState.PENDING, due=3),
    )
    row = rules.no_calls(f)
    assert row.applies and row.escalate
    assert failed(row.checks) == ["last_dial"]
    assert row.call is not None and row.call.attempt_id == last[0].id


def test_no_dial_without_a_stall_is_not_escalated_and_says_what_to_fix() -> None:
    f = facts(
        activity=activity(activity="idle_waiting_for_retries"), fleet_capacity=0, fleet_free=0
    )
    row = rules.no_calls(f)
    assert row.applies and not row.escalate
    assert "fleet_in_rotation" in failed(row.checks)
    assert any("no bot worker is in rotation" in line for line in row.fix)


def test_a_repeating_5xx_pattern_on_a_carrier_escalates() -> None:
    calls = [*recent(4, outcome="rejected", sip_code=503, disposition="rejected"), *recent(1)]
    row = rules.no_answer(facts(recent=calls))
    assert row.applies and row.escalate
    assert failed(row.checks) == ["answer_rate", "sip_5xx"]
    assert row.call is not None and row.call.detail == "SIP 503 on carrier lab"


def test_fewer_5xx_calls_than_a_pattern_do_not_escalate() -> None:
    calls = recent(2, outcome="rejected", sip_code=503, disposition="rejected")
    row = rules.no_answer(facts(recent=calls))
    assert not row.applies and not row.escalate


def test_silent_calls_escalate_only_with_a_passed_test_call() -> None:
    calls = recent(3, disposition="abandoned", worker=None)
    row = rules.bot_silent(facts(recent=calls))
    assert row.applies and row.escalate
    assert row.call is not None and row.call.detail == "answered, abandoned"

    untested = rules.bot_silent(facts(recent=calls, test_call=None))
    assert untested.applies and not untested.escalate
    assert "test_call" in failed(untested.checks)
    assert any("dialler test-call --bot renewals-bot" in line for line in untested.fix)


def test_a_concurrency_above_the_fleet_applies_without_escalating() -> None:
    row = rules.bot_silent(facts(fleet_capacity=2, fleet_free=2))
    assert row.applies and not row.escalate
    assert failed(row.checks) == ["fleet_capacity"]
    assert row.fix[0].startswith("lower the campaign's concurrency to 2")


def test_a_misspelt_variable_is_a_fix_never_an_escalation() -> None:
    row = rules.wrong_details(facts(contact_variables=["name"], lacking={"Name": 10}))
    assert row.applies and not row.escalate
    assert failed(row.checks) == ["prompt_variables"]
    assert row.fix[0].startswith("rename the CSV column (or API metadata key) 'name' to 'Name'")


def test_an_outcome_outside_the_retry_rules_is_yours_to_set() -> None:
    latest = uuid.uuid4()
    done = FinishingDecision(
        disposition="no_answer",
        next_action="done",
        n=4,
        latest=latest,
        latest_dialled_at=NOW - timedelta(minutes=3),
    )
    row = rules.retries(facts(finishing=[done]))
    assert row.applies and not row.escalate
    assert failed(row.checks) == ["retry_rules"]
    assert row.fix[0].startswith("add 'no_answer' to retry.on_system")
    assert row.call is not None and row.call.attempt_id == latest


def test_overdue_retries_escalate_only_when_the_campaign_can_dial() -> None:
    overdue = OverdueAttempt(uuid.uuid4(), NOW - timedelta(hours=1))
    state = ContactState.RETRY_SCHEDULED
    f = facts(
        waiting=waiting(state, due=2, overdue=2, oldest=NOW - timedelta(minutes=30)),
        overdue_calls={state: overdue},
    )
    row = rules.retries(f)
    assert row.applies and row.escalate
    assert row.call is not None and row.call.attempt_id == overdue.id

    paused = rules.retries(dataclasses.replace(f, campaign=campaign(state="paused")))
    assert paused.applies and not paused.escalate


def test_attempts_long_past_their_deadline_escalate() -> None:
    attempt = OpenAttempt(
        id=uuid.uuid4(),
        state="connected",
        dialled_at=NOW - timedelta(minutes=20),
        ended_at=None,
        deadline_at=NOW - timedelta(seconds=STALL + 60),
    )
    f = facts(open_attempts=[attempt], activity=activity(counts=counts(connected=1)))
    row = rules.stuck(f)
    assert row.applies and row.escalate
    assert failed(row.checks) == ["in_flight_past_deadline"]
    assert row.call is not None and row.call.attempt_id == attempt.id


def test_a_working_contact_without_an_attempt_escalates() -> None:
    row = rules.stuck(facts(activity=activity(counts=counts(dialing=2))))
    assert row.applies and row.escalate
    assert failed(row.checks) == ["in_flight_without_attempt"]


def test_an_ended_call_never_final_escalates_the_report_row() -> None:
    attempt = OpenAttempt(
        id=uuid.uuid4(),
        state="wrapping",
        dialled_at=NOW - timedelta(minutes=10),
        ended_at=NOW - timedelta(minutes=5),
        deadline_at=NOW + timedelta(minutes=1),
    )
    f = facts(open_attempts=[attempt], activity=activity(counts=counts(wrapping=1)))
    row = rules.report_missing(f)
    assert row.applies and row.escalate
    assert row.call is not None and row.call.detail.startswith("ended at 2025-01-06T09:55:00Z")
    symptoms = rules.evaluate(f)
    assert rules.summary(f, symptoms).call == row.call


def test_text_masks_numbers_and_counts_words() -> None:
    assert text.mask_numbers(f"caller ID {LAB} is disabled") == "caller ID …0001 is disabled"
    assert text.counted(1, "contact") == "1 contact"
    assert text.counted(3, "retry", "retries") == "3 retries"
    assert text.at(None) == "-"
    assert text.at(NOW) == "2025-01-06T10:00:00Z"
    assert text.ago(NOW, NOW - timedelta(seconds=90)) == "1m30s ago"
