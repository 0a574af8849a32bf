"""Live Activity and the stall, as `campaign show --json` reports them, against a real
PostgreSQL (rows written as the daemon leaves them).

Expectations from the triage guide ("Running but no calls go out") and CONTRACT.md: `live` —
a dial in the last 30 s; `idle_waiting_for_retries` — running, inside the window, no dial for
30 s; `paused_outside_window` outside the window. `stalled`: running, inside the window,
contacts due, a free slot (neither concurrency, carrier nor fleet saturated), and no dial for
longer than `stall_after`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dialler.config import Config, parse_config
from dialler.stats import campaign_show
from dialler.store.pool import connect

from .test_triage import LAB_NUMBER, Lab, closed_window

pytestmark = pytest.mark.integration

#: The carrier `lab` offers two channels here, so "carrier full" needs only two calls.
LAB_CHANNELS = 2


def config_for(dsn: str, stall_after: str = "120s", worker_capacity: int = 5) -> Config:
    return parse_config(
        {
            "database": {"dsn": dsn},
            "asterisk": [{"name": "pbx", "ami": {"username": "u", "secret_env": "S"}}],
            "listeners": {"agi": {"secret_env": "A"}},
            "carriers": [{"name": "lab", "max_channels": LAB_CHANNELS}],
            "numbers": [{"number": LAB_NUMBER, "carrier": "lab"}],
            "fleet": {"workers": [{"name": "w1", "port": 57001, "capacity": worker_capacity}]},
            "scheduler": {"stall_after": stall_after},
        },
        "test",
        env={"S": "secret", "A": "agi-secret-0123456789"},
    )


@pytest.fixture
async def lab(db_dsn: str) -> AsyncIterator[Lab]:
    conn = await connect(db_dsn)
    try:
        built = Lab(conn, db_dsn, config_for(db_dsn))
        await built.configure()
        built.config = config_for(db_dsn)  # configure() wrote the numbers and workers
        await built.daemon()
        await built.bot()
        yield built
    finally:
        await conn.close()


async def last_dial_at(lab: Lab, campaign: uuid.UUID, at: datetime) -> None:
    await lab.conn.execute("UPDATE campaigns SET last_dial_at = $2 WHERE id = $1", campaign, at)


async def show(lab: Lab, campaign: uuid.UUID, now: datetime | None = None) -> dict[str, Any]:
    return await campaign_show(lab.conn, lab.config, campaign, now)


# --- Live Activity ---------------------------------------------------------------------------


async def test_a_dial_within_30_seconds_is_live_and_after_30_idle(lab: Lab) -> None:
    campaign = await lab.campaign(concurrency=5)
    await lab.contact(campaign, 1, due_in=3600)  # waiting for a retry: nothing due now
    dialled = datetime.now(UTC).replace(microsecond=0)
    await last_dial_at(lab, campaign, dialled)

    assert (await show(lab, campaign, dialled + timedelta(seconds=1)))["activity"] == "live"
    assert (await show(lab, campaign, dialled + timedelta(seconds=29.5)))["activity"] == "live"
    later = await show(lab, campaign, dialled + timedelta(seconds=30.5))
    assert later["activity"] == "idle_waiting_for_retries"
    assert later["stats"]["last_dial_at"] == dialled.isoformat().replace("+00:00", "Z")


async def test_a_running_campaign_never_dialled_is_idle(lab: Lab) -> None:
    campaign = await lab.campaign(last_dial_ago=None)
    await lab.contact(campaign, 1, due_in=3600)
    assert (await show(lab, campaign))["activity"] == "idle_waiting_for_retries"


async def test_outside_the_window_is_paused_outside_window_even_after_a_recent_dial(
    lab: Lab,
) -> None:
    campaign = await lab.campaign(window=closed_window(datetime.now(UTC)), last_dial_ago=2)
    await lab.contact(campaign, 1)
    data = await show(lab, campaign)
    assert (data["activity"], data["stalled"]) == ("paused_outside_window", False)


async def test_outside_the_window_is_never_a_stall(lab: Lab) -> None:
    campaign = await lab.campaign(window=closed_window(datetime.now(UTC)), last_dial_ago=600)
    await lab.contact(campaign, 1)  # due, a free slot, no dial for ten minutes: but closed
    data = await show(lab, campaign)
    assert (data["activity"], data["stalled"]) == ("paused_outside_window", False)


@pytest.mark.parametrize("state", ["draft", "paused", "completed"])
async def test_a_campaign_not_running_shows_its_state(lab: Lab, state: str) -> None:
    campaign = await lab.campaign(state=state, last_dial_ago=2)
    await lab.contact(campaign, 1)
    data = await show(lab, campaign)
    assert (data["activity"], data["stalled"]) == (state, False)


# --- the stall -------------------------------------------------------------------------------


async def test_due_contacts_a_free_slot_and_no_dial_past_stall_after_is_a_stall(lab: Lab) -> None:
    campaign = await lab.campaign(concurrency=5, last_dial_ago=121)
    await lab.contact(campaign, 1)  # due a minute ago
    data = await show(lab, campaign)
    assert (data["activity"], data["stalled"]) == ("idle_waiting_for_retries", True)


async def test_no_stall_before_stall_after(lab: Lab) -> None:
    campaign = await lab.campaign(concurrency=5, last_dial_ago=100)  # default stall_after 120 s
    await lab.contact(campaign, 1)
    assert (await show(lab, campaign))["stalled"] is False


async def test_stall_after_comes_from_the_config(lab: Lab) -> None:
    campaign = await lab.campaign(concurrency=5, last_dial_ago=200)
    await lab.contact(campaign, 1)
    assert (await show(lab, campaign))["stalled"] is True
    lab.config = config_for(lab.dsn, stall_after="5m")
    assert (await show(lab, campaign))["stalled"] is False
    lab.config = config_for(lab.dsn, stall_after="10s")
    assert (await show(lab, campaign))["stalled"] is True


async def test_a_never_dialled_campaign_stalls_from_its_start(lab: Lab) -> None:
    campaign = await lab.campaign(concurrency=5, last_dial_ago=None)  # started an hour ago
    await lab.contact(campaign, 1)
    assert (await show(lab, campaign))["stalled"] is True


async def test_nothing_due_is_not_a_stall(lab: Lab) -> None:
    campaign = await lab.campaign(concurrency=5, last_dial_ago=600)
    await lab.contact(campaign, 1, state="retry_scheduled", due_in=600, attempts_used=1)
    await lab.contact(campaign, 2, state="callback_scheduled", due_in=600, attempts_used=1)
    await lab.contact(campaign, 3, state="done", attempts_used=1)
    assert (await show(lab, campaign))["stalled"] is False


async def test_concurrency_full_is_not_a_stall(lab: Lab) -> None:
    campaign = await lab.campaign(concurrency=1, last_dial_ago=600)
    busy = await lab.contact(campaign, 1, state="connected", attempts_used=1)
    await lab.attempt(campaign, busy, state="connected", ago=600, deadline_in=3600)
    await lab.contact(campaign, 2)  # due, but the one slot is taken
    data = await show(lab, campaign)
    assert (data["stats"]["connected"], data["stalled"]) == (1, False)


async def test_carrier_full_is_not_a_stall(lab: Lab) -> None:
    # Another campaign holds both of the carrier's channels: this one cannot dial.
    other = await lab.campaign(concurrency=5, name="Other")
    for i in range(LAB_CHANNELS):
        contact = await lab.contact(other, 100 + i, state="connected", attempts_used=1)
        await lab.attempt(other, contact, state="connected", ago=30, deadline_in=3600)
    campaign = await lab.campaign(concurrency=5, last_dial_ago=600)
    await lab.contact(campaign, 1)
    data = await show(lab, campaign)
    assert data["stalled"] is False
    # The same campaign with a channel free again is a stall: the carrier was the only reason.
    await lab.conn.execute("DELETE FROM attempts WHERE campaign_id = $1", other)
    assert (await show(lab, campaign))["stalled"] is True


async def test_fleet_full_is_not_a_stall(lab: Lab) -> None:
    # Every bot slot is reserved by another campaign's calls: no free slot, so no stall.
    lab.config = config_for(lab.dsn, worker_capacity=1)
    await lab.conn.execute("UPDATE workers SET capacity = 1 WHERE name = 'w1'")
    await lab.conn.execute("UPDATE workers SET enabled = false WHERE name <> 'w1'")
    other = await lab.campaign(concurrency=5, name="Other")
    contact = await lab.contact(other, 100, state="connected", attempts_used=1)
    attempt = await lab.attempt(other, contact, state="connected", ago=30, deadline_in=3600)
    await lab.conn.execute(
        "INSERT INTO worker_slots (attempt_id, worker) VALUES ($1, 'w1')", attempt
    )
    campaign = await lab.campaign(concurrency=5, last_dial_ago=600)
    await lab.contact(campaign, 1)
    assert (await show(lab, campaign))["stalled"] is False
