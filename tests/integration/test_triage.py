"""`dialler triage`: one broken row of the triage guide per test, against a real PostgreSQL —
each names its cause (the failing check), says the symptom applies, and escalates exactly when
the guide says so; a healthy campaign has nothing to escalate; the CLI prints the report
(exit 0), refuses an unknown campaign (exit 2) and never prints a phone number."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from dialler.campaigns.repo import sync_numbers
from dialler.config import Config, parse_config
from dialler.store.pool import connect
from dialler.store.queries import load
from dialler.triage import Report, triage

from .cli_helpers import run_cli, write_config

pytestmark = pytest.mark.integration

F = load("fleet.sql")
LAB_NUMBER = "+441632960001"
BACKUP_NUMBER = "+441632960002"
ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ALWAYS = ("00:00", "24:00")


def phone(i: int) -> str:
    return f"+4477009{i:05d}"


def make_config(dsn: str, workers: Sequence[tuple[str, int]]) -> Config:
    return parse_config(
        {
            "database": {"dsn": dsn},
            "asterisk": [{"name": "pbx", "ami": {"username": "u", "secret_env": "S"}}],
            "listeners": {"agi": {"secret_env": "A"}},
            "carriers": [{"name": "lab", "max_channels": 30}, {"name": "backup"}],
            "numbers": [
                {"number": LAB_NUMBER, "carrier": "lab"},
                {"number": BACKUP_NUMBER, "carrier": "backup"},
            ],
            "fleet": {
                "workers": [
                    {"name": name, "port": 57000 + i, "capacity": capacity}
                    for i, (name, capacity) in enumerate(workers)
                ]
            },
        },
        "test",
        env={"S": "secret", "A": "agi-secret-0123456789"},
    )


def closed_window(now: datetime) -> tuple[str, str]:
    """A one-hour UTC window at least an hour away from `now` (no flake at its edges)."""
    if now.hour < 12:
        return f"{now.hour + 2:02d}:00", f"{now.hour + 3:02d}:00"
    return "00:00", "01:00"


@dataclass
class Lab:
    """Rows of a campaign as the daemon would leave them, written with plain SQL."""

    conn: Any
    dsn: str
    config: Config

    async def configure(self, workers: Sequence[tuple[str, int]] = (("w1", 3), ("w2", 2))) -> None:
        """The config, its caller IDs and static workers in the database (as at daemon
        start)."""
        self.config = make_config(self.dsn, workers)
        await sync_numbers(self.conn, self.config)
        for worker in self.config.fleet.workers:
            await self.conn.execute(
                F["upsert_config_worker"], worker.name, worker.host, worker.port, worker.capacity
            )

    async def triage(self, campaign_id: uuid.UUID) -> Report:
        return await triage(self.conn, self.config, campaign_id)

    async def daemon(self) -> None:
        await self.conn.execute("INSERT INTO daemons (id, hostname, pid) VALUES ('d1', 'host', 1)")

    async def bot(
        self, name: str = "renewals-bot", prompt: str = "Hello {{Name}}, about your plan."
    ) -> str:
        await self.conn.execute("INSERT INTO bots (name, prompt) VALUES ($1, $2)", name, prompt)
        return name

    async def campaign(
        self,
        *,
        bot: str | None = "renewals-bot",
        state: str = "running",
        concurrency: int = 5,
        numbers: Sequence[str] = (LAB_NUMBER,),
        window: tuple[str, str] = ALWAYS,
        on_system: Sequence[str] = (),
        max_attempts: int = 1,
        last_dial_ago: float | None = 5.0,
        name: str = "Renewals",
    ) -> uuid.UUID:
        last_dial = (
            None if last_dial_ago is None else datetime.now(UTC) - timedelta(seconds=last_dial_ago)
        )
        campaign_id: uuid.UUID = await self.conn.fetchval(
            "INSERT INTO campaigns (name, bot_id, state, concurrency, window_start, window_end,"
            " window_days, timezone, retry_max_attempts, retry_delay_ms, retry_on_system,"
            " started_at, last_dial_at)"
            " VALUES ($1, (SELECT id FROM bots WHERE name = $2), $3, $4, $5, $6, $7, 'UTC', $8,"
            " 1800000, $9, CASE WHEN $3 <> 'draft' THEN now() - interval '1 hour' END, $10)"
            " RETURNING id",
            name,
            bot,
            state,
            concurrency,
            window[0],
            window[1],
            ALL_DAYS,
            max_attempts,
            list(on_system),
            last_dial,
        )
        await self.conn.execute(
            "INSERT INTO campaign_numbers (campaign_id, number) SELECT $1, unnest($2::text[])",
            campaign_id,
            list(numbers),
        )
        return campaign_id

    async def contact(
        self,
        campaign_id: uuid.UUID,
        i: int,
        *,
        state: str = "pending",
        variables: dict[str, str] | None = None,
        due_in: float = -60.0,
        attempts_used: int = 0,
    ) -> uuid.UUID:
        waiting = state in ("pending", "retry_scheduled", "callback_scheduled")
        contact_id: uuid.UUID = await self.conn.fetchval(
            "INSERT INTO contacts (campaign_id, phone_number, variables, state, next_due_at,"
            " attempts_used) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            campaign_id,
            phone(i),
            variables if variables is not None else {"Name": "Ann"},
            state,
            datetime.now(UTC) + timedelta(seconds=due_in) if waiting else None,
            attempts_used,
        )
        return contact_id

    async def attempt(
        self,
        campaign_id: uuid.UUID,
        contact_id: uuid.UUID,
        *,
        number: int = 1,
        state: str = "final",
        outcome: str | None = "answered",
        sip_code: int | None = 200,
        disposition: str | None = "completed",
        next_action: str | None = "done",
        carrier: str = "lab",
        caller_id: str = LAB_NUMBER,
        ago: float = 120.0,
        deadline_in: float = 60.0,
        next_at: datetime | None = None,
    ) -> uuid.UUID:
        attempt_id = uuid.uuid4()
        now = datetime.now(UTC)
        dialled = now - timedelta(seconds=ago)
        final = state == "final"
        await self.conn.execute(
            "INSERT INTO attempts (id, contact_id, campaign_id, attempt_number, daemon_id,"
            " state, caller_id, carrier, dialled_at, ended_at, deadline_at, sip_code, outcome,"
            " disposition, next_action, next_at, finalised_at)"
            " VALUES ($1, $2, $3, $4, 'd1', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,"
            " $16)",
            attempt_id,
            contact_id,
            campaign_id,
            number,
            state,
            caller_id,
            carrier,
            dialled,
            dialled + timedelta(seconds=20) if final else None,
            now + timedelta(seconds=deadline_in),
            sip_code if final else None,
            outcome if final else None,
            disposition if final else None,
            next_action if final else None,
            next_at,
            dialled + timedelta(seconds=21) if final else None,
        )
        return attempt_id

    async def done_call(self, campaign_id: uuid.UUID, i: int, **attempt: Any) -> uuid.UUID:
        """A contact called once and finished; the attempt's id."""
        contact_id = await self.contact(campaign_id, i, state="done", attempts_used=1)
        return await self.attempt(campaign_id, contact_id, **attempt)


@pytest.fixture
async def lab(db_dsn: str) -> AsyncIterator[Lab]:
    conn = await connect(db_dsn)
    try:
        built = Lab(conn, db_dsn, make_config(db_dsn, ()))
        await built.configure()
        yield built
    finally:
        await conn.close()


def check(report: Report, symptom: str, name: str) -> Any:
    return next(c for c in report.symptom(symptom).checks if c.name == name)


# --- a healthy campaign ----------------------------------------------------------------------


async def test_a_healthy_running_campaign_has_nothing_to_escalate(lab: Lab) -> None:
    await lab.daemon()
    await lab.bot()
    campaign_id = await lab.campaign(on_system=["no_answer"], max_attempts=3)
    for i in range(5):
        await lab.contact(campaign_id, i)
    for i in range(5, 9):
        await lab.done_call(campaign_id, i, ago=60.0 + i)
    waiting = await lab.contact(
        campaign_id, 9, state="retry_scheduled", due_in=1200, attempts_used=1
    )
    await lab.attempt(
        campaign_id,
        waiting,
        outcome="no_answer",
        sip_code=None,
        disposition="no_answer",
        next_action="retry",
        next_at=datetime.now(UTC) + timedelta(seconds=1200),
    )
    live = await lab.contact(campaign_id, 10, state="dialing")
    await lab.attempt(campaign_id, live, state="dialing", ago=2.0)

    report = await lab.triage(campaign_id)

    assert report.escalate is False
    assert [s.key for s in report.symptoms if s.escalate] == []
    applying = {s.key for s in report.symptoms if s.applies}
    assert applying == {"report_missing"}  # one live call: let it finish
    assert check(report, "report_missing", "attempts_in_progress").ok is False
    assert check(report, "no_calls", "window_open").ok
    assert check(report, "bot_silent", "fleet_capacity").ok
    assert "the next is due at" in check(report, "retries", "retry_delay").observed
    assert report.summary.campaign_id == campaign_id


# --- Campaign will not start -----------------------------------------------------------------


async def test_a_draft_without_a_bot_is_named_and_fixable(lab: Lab) -> None:
    await lab.bot()
    campaign_id = await lab.campaign(bot=None, state="draft", last_dial_ago=None)
    await lab.contact(campaign_id, 1)

    report = await lab.triage(campaign_id)

    symptom = report.symptom("will_not_start")
    assert symptom.applies
    assert [c.name for c in symptom.failed] == ["bot_selected"]
    assert symptom.escalate is False
    assert any("no bot selected" in item and "renewals-bot" in item for item in symptom.fix)
    assert report.escalate is False
    assert not report.symptom("no_calls").applies


async def test_an_empty_or_disabled_number_pool_is_named(lab: Lab) -> None:
    await lab.bot()
    empty = await lab.campaign(state="draft", numbers=(), last_dial_ago=None)
    await lab.contact(empty, 1)
    report = await lab.triage(empty)
    symptom = report.symptom("will_not_start")
    assert symptom.applies and not symptom.escalate
    assert [c.name for c in symptom.failed] == ["number_pool"]
    assert check(report, "will_not_start", "number_pool").observed == "the number pool is empty"
    assert any("number pool is empty" in item for item in symptom.fix)

    disabled = await lab.campaign(state="draft", name="Disabled", last_dial_ago=None)
    await lab.contact(disabled, 1)
    await lab.conn.execute("UPDATE numbers SET enabled = false WHERE number = $1", LAB_NUMBER)
    report = await lab.triage(disabled)
    observed = check(report, "will_not_start", "number_pool")
    assert observed.ok is False
    assert "disabled" in observed.observed and "…0001" in observed.observed
    assert LAB_NUMBER not in json.dumps(report.to_json())


# --- Running but no calls go out -------------------------------------------------------------


async def test_running_outside_the_window_is_not_a_stall(lab: Lab) -> None:
    await lab.daemon()
    await lab.bot()
    campaign_id = await lab.campaign(window=closed_window(datetime.now(UTC)), last_dial_ago=3600)
    for i in range(3):
        await lab.contact(campaign_id, i)

    report = await lab.triage(campaign_id)

    symptom = report.symptom("no_calls")
    assert symptom.applies
    assert check(report, "no_calls", "window_open").ok is False
    assert check(report, "no_calls", "window_open").observed.startswith("closed now")
    assert check(report, "no_calls", "contacts_left").ok
    assert symptom.escalate is False
    assert any(item.startswith("wait for the window to open at") for item in symptom.fix)
    assert report.escalate is False


async def test_a_per_contact_window_open_in_the_contacts_zones_is_open(lab: Lab) -> None:
    # window.per_contact: the window is read on each contact's own clock (Etc/GMT-6 is UTC+6),
    # so it is open for these contacts while the campaign's own zone (UTC) is outside it.
    await lab.daemon()
    await lab.bot()
    hour = datetime.now(ZoneInfo("Etc/GMT-6")).hour
    window = (f"{hour:02d}:00", f"{min(hour + 2, 24):02d}:00")
    campaign_id = await lab.campaign(window=window, last_dial_ago=5)
    await lab.conn.execute(
        "UPDATE campaigns SET window_per_contact = true WHERE id = $1", campaign_id
    )
    for i in range(3):
        contact_id = await lab.contact(campaign_id, i)
        await lab.conn.execute(
            "UPDATE contacts SET zone_key = 'Etc/GMT-6' WHERE id = $1", contact_id
        )

    report = await lab.triage(campaign_id)

    window_open = check(report, "no_calls", "window_open")
    assert window_open.ok, window_open.observed
    assert window_open.observed.startswith("open now for some contacts")
    assert not any("wait for the window" in item for item in report.symptom("no_calls").fix)


async def test_a_stall_inside_the_window_escalates(lab: Lab) -> None:
    await lab.daemon()
    await lab.bot()
    campaign_id = await lab.campaign(last_dial_ago=900)
    contact = await lab.contact(campaign_id, 1, state="done", attempts_used=1)
    last = await lab.attempt(campaign_id, contact, ago=900)
    for i in range(2, 5):
        await lab.contact(campaign_id, i)

    report = await lab.triage(campaign_id)

    symptom = report.symptom("no_calls")
    assert symptom.applies and symptom.escalate
    assert check(report, "no_calls", "last_dial").ok is False
    assert report.escalate
    assert report.summary.call is not None and report.summary.call.attempt_id == last


# --- Calls answer but the bot never speaks ---------------------------------------------------


async def test_a_fleet_smaller_than_concurrency_is_named(lab: Lab) -> None:
    await lab.configure(workers=[("w1", 1), ("w2", 1)])
    await lab.daemon()
    await lab.bot()
    campaign_id = await lab.campaign(concurrency=5)
    await lab.contact(campaign_id, 1)

    report = await lab.triage(campaign_id)

    symptom = report.symptom("bot_silent")
    assert symptom.applies
    fleet = check(report, "bot_silent", "fleet_capacity")
    assert fleet.ok is False
    assert fleet.observed.startswith("2 bot slots in rotation")
    assert symptom.escalate is False
    assert any("lower the campaign's concurrency to 2" in item for item in symptom.fix)


async def test_abandoned_calls_with_room_and_a_passing_test_call_escalate(lab: Lab) -> None:
    await lab.daemon()
    await lab.bot()
    campaign_id = await lab.campaign()
    abandoned = [
        await lab.done_call(campaign_id, i, disposition="abandoned", ago=100 - i) for i in range(3)
    ]
    test_campaign = await lab.campaign(name="test-call: renewals-bot", state="paused")
    contact = await lab.contact(test_campaign, 99, state="done")
    await lab.attempt(test_campaign, contact)
    await lab.conn.execute(
        "UPDATE attempts SET worker = 'w1' WHERE campaign_id = $1", test_campaign
    )

    report = await lab.triage(campaign_id)

    symptom = report.symptom("bot_silent")
    assert symptom.applies and symptom.escalate
    assert check(report, "bot_silent", "abandoned_share").ok is False
    assert check(report, "bot_silent", "test_call").ok
    assert symptom.call is not None and symptom.call.attempt_id == abandoned[-1]


# --- Bot says the wrong customer details -----------------------------------------------------


async def test_a_prompt_variable_missing_from_the_contacts_is_named_with_a_suggestion(
    lab: Lab,
) -> None:
    await lab.daemon()
    await lab.bot(prompt="Hello {{CustomerName}}, your {{call.Plan}} plan.")
    campaign_id = await lab.campaign()
    await lab.contact(campaign_id, 1, variables={"CUSTOMERNAME": "Ann", "Plan": "gold"})
    await lab.contact(campaign_id, 2, variables={"CUSTOMERNAME": "Bob", "Plan": ""})

    report = await lab.triage(campaign_id)

    symptom = report.symptom("wrong_details")
    assert symptom.applies and symptom.escalate is False
    variables = check(report, "wrong_details", "prompt_variables")
    assert variables.ok is False
    assert variables.observed == (
        "prompt variable {{CustomerName}} is not a variable of any "
        "contact (did you mean 'CUSTOMERNAME'?)"
    )
    values = check(report, "wrong_details", "contact_values")
    assert values.ok is False and "1 of 2 contacts without a value for 'Plan'" in values.observed
    assert any("'CUSTOMERNAME'" in item and "'CustomerName'" in item for item in symptom.fix)


# --- Retries are not happening ---------------------------------------------------------------


async def test_a_contact_not_retried_because_its_outcome_is_not_in_the_rules(lab: Lab) -> None:
    await lab.daemon()
    await lab.bot()
    campaign_id = await lab.campaign(on_system=["no_answer"], max_attempts=3)
    rejected = await lab.done_call(
        campaign_id, 1, outcome="rejected", sip_code=486, disposition="rejected"
    )
    due = datetime.now(UTC) + timedelta(minutes=25)
    waiting = await lab.contact(
        campaign_id, 2, state="retry_scheduled", due_in=25 * 60, attempts_used=1
    )
    await lab.attempt(
        campaign_id,
        waiting,
        outcome="no_answer",
        sip_code=None,
        disposition="no_answer",
        next_action="retry",
        next_at=due,
    )

    report = await lab.triage(campaign_id)

    symptom = report.symptom("retries")
    assert symptom.applies and symptom.escalate is False
    rules = check(report, "retries", "retry_rules")
    assert rules.ok is False
    assert rules.observed == (
        "1 contact ended done after 'rejected', which is not in retry.on_system"
    )
    assert any(item.startswith("add 'rejected' to retry.on_system") for item in symptom.fix)
    delay = check(report, "retries", "retry_delay")
    assert delay.ok is False
    assert due.strftime("%Y-%m-%dT%H:%M") in delay.observed
    assert symptom.call is not None and symptom.call.attempt_id == rejected


async def test_an_eligible_retry_never_dialled_with_a_free_slot_escalates(lab: Lab) -> None:
    await lab.daemon()
    await lab.bot()
    campaign_id = await lab.campaign(on_system=["no_answer"], max_attempts=3)
    overdue = await lab.contact(
        campaign_id, 1, state="retry_scheduled", due_in=-600, attempts_used=1
    )
    last = await lab.attempt(
        campaign_id,
        overdue,
        outcome="no_answer",
        sip_code=None,
        disposition="no_answer",
        next_action="retry",
        ago=2400,
        next_at=datetime.now(UTC) - timedelta(seconds=600),
    )

    report = await lab.triage(campaign_id)

    symptom = report.symptom("retries")
    assert symptom.applies and symptom.escalate
    assert check(report, "retries", "retry_rules").ok
    assert check(report, "retries", "retries_overdue").ok is False
    assert symptom.call is not None and symptom.call.attempt_id == last


# --- Contacts stuck in a working state -------------------------------------------------------


async def test_an_in_flight_attempt_long_past_its_deadline_escalates(lab: Lab) -> None:
    await lab.daemon()
    await lab.bot()
    campaign_id = await lab.campaign()
    contact = await lab.contact(campaign_id, 1, state="dialing")
    stuck = await lab.attempt(campaign_id, contact, state="dialing", ago=900, deadline_in=-840)

    report = await lab.triage(campaign_id)

    symptom = report.symptom("stuck")
    assert symptom.applies and symptom.escalate
    past = check(report, "stuck", "in_flight_past_deadline")
    assert past.ok is False
    assert past.observed.startswith("1 of 1 in-flight attempt past the deadline")
    assert report.escalate
    assert report.summary.call is not None
    assert report.summary.call.attempt_id == stuck
    assert report.summary.call.symptom == "stuck"


# --- Many no-answer or rejected --------------------------------------------------------------


async def test_a_sip_503_pattern_escalates_and_names_the_carrier(lab: Lab) -> None:
    await lab.daemon()
    await lab.bot()
    campaign_id = await lab.campaign(numbers=(LAB_NUMBER, BACKUP_NUMBER))
    attempts = [
        await lab.done_call(
            campaign_id, i, outcome="rejected", sip_code=503, disposition="rejected", ago=300 - i
        )
        for i in range(8)
    ]
    for i in range(8, 10):
        await lab.done_call(campaign_id, i, carrier="backup", caller_id=BACKUP_NUMBER, ago=400 - i)

    report = await lab.triage(campaign_id)

    symptom = report.symptom("no_answer")
    assert symptom.applies and symptom.escalate
    sip = check(report, "no_answer", "sip_5xx")
    assert sip.ok is False
    assert "carrier lab: 8 of 8 recent calls (100%) SIP 5xx (503 ×8)" in sip.observed
    assert "carrier backup: 0 of 2" in sip.observed
    assert "carrier lab" in symptom.reason and "backup" not in symptom.reason
    assert check(report, "no_answer", "sip_429").ok
    assert report.escalate
    call = report.summary.call
    assert call is not None and call.attempt_id == attempts[-1]
    assert call.detail == "SIP 503 on carrier lab"


# --- the command line ------------------------------------------------------------------------


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(db_dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def test_the_cli_prints_the_report_and_never_a_phone_number(lab: Lab, tmp_path: Path) -> None:
    config = write_config(
        tmp_path, lab.dsn, numbers=f"  - {{number: '{LAB_NUMBER}', carrier: lab}}\n"
    )
    await lab.daemon()
    await lab.bot()
    campaign_id = await lab.campaign()
    for i in range(4):
        await lab.done_call(
            campaign_id, i, outcome="rejected", sip_code=503, disposition="rejected", ago=100 - i
        )

    code, out, err = await run_cli("--config", str(config), "triage", str(campaign_id), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"campaign_id", "name", "state", "escalate", "symptoms", "summary"}
    assert data["campaign_id"] == str(campaign_id) and data["escalate"] is True
    assert [s["key"] for s in data["symptoms"]] == [
        "will_not_start",
        "no_calls",
        "no_answer",
        "bot_silent",
        "wrong_details",
        "retries",
        "stuck",
        "report_missing",
    ]
    for symptom in data["symptoms"]:
        assert set(symptom) == {
            "key",
            "title",
            "applies",
            "checks",
            "fix",
            "escalate",
            "escalate_when",
            "reason",
            "call",
        }
        for item in symptom["checks"]:
            assert set(item) == {"name", "ok", "observed"}
    summary = data["summary"]
    assert summary["campaign_id"] == str(campaign_id)
    assert summary["call"]["at"].endswith("Z") and summary["call"]["attempt_id"]
    assert summary["checked"]

    code, human, err = await run_cli("--config", str(config), "triage", "Renewals")
    assert code == 0, err
    assert "Many no-answer or rejected — OBSERVED" in human
    assert "✗ sip_5xx: carrier lab: 4 of 4" in human
    assert "Escalate: yes — " in human
    assert f"  campaign:   {campaign_id}" in human
    assert "Escalation summary" in human

    for text in (out, err, human):
        for number in (LAB_NUMBER, *(phone(i) for i in range(4))):
            assert number not in text and number[1:] not in text


async def test_the_cli_refuses_an_unknown_campaign(lab: Lab, tmp_path: Path) -> None:
    config = write_config(tmp_path, lab.dsn)
    code, out, err = await run_cli("--config", str(config), "triage", str(uuid.uuid4()), "--json")
    assert code == 2
    assert out == ""
    assert "unknown campaign" in err
