"""The callee's own calling window in the engine, against a real PostgreSQL: the scheduler
lets a per-contact campaign through while its own zone is closed, the claim takes only the due
contacts whose zones are all open now — in one statement, on `contacts_zone_due_idx`, reading
no closed zone's rows — and a retry or callback of such a contact moves into ITS window (or
cancels it, `no_common_window`, when its zones never open together again)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from dialler.config import Config
from dialler.domain.outcomes import DialResult, Outcome
from dialler.domain.results import ResultRecorded, WorkerResult
from dialler.domain.rules import NextAction
from dialler.domain.zones import CAMPAIGN_ZONE_KEY
from dialler.engine.engine import Engine
from dialler.store import Pool
from dialler.store import engine as store
from dialler.store.engine import CampaignClaim, Claimed
from dialler.store.queries import load

from ..support import CountingConnection, index_reads

pytestmark = pytest.mark.integration


async def claim(
    conn: Any, campaign_id: uuid.UUID, n: int, daemon: str, keys: list[str] | None
) -> list[Claimed]:
    """The engine's claim statement for this one campaign: up to `n` dials (one caller ID,
    carrier `lab`, server `pbx` each), within the open zone `keys` (None: one window)."""
    one = CampaignClaim(campaign_id, 60.0, ["+441632960001"] * n, ["lab"] * n, ["pbx"] * n, keys)
    return (await store.claim_contacts(conn, daemon, [one])).get(campaign_id, [])


ALL_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Every zone a Russian mobile number may be in: no 09:00-17:00 weekday moment in common.
RUSSIA = (
    "Asia/Anadyr Asia/Chita Asia/Irkutsk Asia/Kamchatka Asia/Krasnoyarsk Asia/Magadan "
    "Asia/Novosibirsk Asia/Omsk Asia/Sakhalin Asia/Srednekolymsk Asia/Vladivostok "
    "Asia/Yakutsk Asia/Yekaterinburg Europe/Kaliningrad Europe/Moscow Europe/Samara"
)


def etc_zone(offset: int) -> str:
    """The fixed-offset IANA zone `offset` hours east of UTC (`Etc/GMT-3` is UTC+3)."""
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


def open_and_closed_zones(now: datetime) -> tuple[str, str]:
    """A zone where it is about noon at `now`, and one where it is about midnight: a 09:00 to
    15:00 window is open in the first and closed in the second for three hours either way."""
    noon = 12 - now.hour
    midnight = noon - 12 if noon >= 0 else noon + 12
    return etc_zone(noon), etc_zone(midnight)


async def make_campaign(
    conn: Any,
    *,
    zone: str,
    start: str = "09:00",
    end: str = "15:00",
    days: tuple[str, ...] = ALL_DAYS,
    per_contact: bool = True,
) -> uuid.UUID:
    """A running campaign: retries on `no_answer` after a minute, three attempts."""
    bot = await conn.fetchval(
        "INSERT INTO bots (name, prompt) VALUES ($1, 'hi') RETURNING id", f"bot-{uuid.uuid4()}"
    )
    campaign_id: uuid.UUID = await conn.fetchval(
        """INSERT INTO campaigns (name, bot_id, state, window_start, window_end, window_days,
                                  timezone, window_per_contact, started_at, retry_max_attempts,
                                  retry_delay_ms, retry_on_system)
           VALUES ($1, $2, 'running', $3, $4, $5::text[], $6, $7, now(), 3, 60000,
                   '{no_answer}')
           RETURNING id""",
        f"c-{uuid.uuid4()}",
        bot,
        start,
        end,
        list(days),
        zone,
        per_contact,
    )
    return campaign_id


async def add_contacts(conn: Any, campaign_id: uuid.UUID, key: str, count: int) -> list[str]:
    numbers = [f"+4477009{uuid.uuid4().int % 10**6:06d}" for _ in range(count)]
    await conn.execute(
        "INSERT INTO contacts (campaign_id, phone_number, zone_key, next_due_at)"
        " SELECT $1, n, $2, now() - interval '1 minute' FROM unnest($3::text[]) AS n",
        campaign_id,
        key,
        numbers,
    )
    return numbers


async def test_only_contacts_whose_zones_are_open_now_are_claimed_in_one_statement(
    config: Config, pool: Pool, conn: Any
) -> None:
    open_zone, closed_zone = open_and_closed_zones(datetime.now(UTC))
    # The campaign's own zone is closed: only its contacts' clocks can open it.
    campaign_id = await make_campaign(conn, zone=closed_zone)
    callable_now = await add_contacts(conn, campaign_id, open_zone, 3)
    await add_contacts(conn, campaign_id, closed_zone, 4)
    await add_contacts(conn, campaign_id, CAMPAIGN_ZONE_KEY, 2)  # the campaign's zone: closed
    engine = Engine(config, pool, {}, "daemon-z")
    [rules] = await store.running_campaigns(conn)
    assert rules.per_contact and not rules.window.is_open(datetime.now(UTC))
    # The scheduler's gate lets it through; the claim decides.
    assert engine._dialable_now(rules, datetime.now(UTC))

    async with conn.transaction():
        counted = CountingConnection(conn)
        keys = await engine._open_zone_keys(counted, rules)
        assert keys == [open_zone]
        assert len(counted.statements) == 1  # the zone keys: a loose index scan
        claimed = await claim(counted, campaign_id, 10, "daemon-z", keys)
    assert len(counted.statements) == 2  # the claim itself: one statement
    assert sorted(c.phone_number for c in claimed) == sorted(callable_now)
    assert {(c.attempt_number, c.attempts_used, c.carrier) for c in claimed} == {(1, 1, "lab")}
    states = await conn.fetch(
        "SELECT zone_key, state, count(*) AS n FROM contacts WHERE campaign_id = $1"
        " GROUP BY zone_key, state ORDER BY zone_key",
        campaign_id,
    )
    assert [(r["zone_key"], r["state"], r["n"]) for r in states] == sorted(
        [(CAMPAIGN_ZONE_KEY, "pending", 2), (closed_zone, "pending", 4), (open_zone, "dialing", 3)]
    )
    attempts = await conn.fetchval(
        "SELECT count(*) FROM attempts WHERE campaign_id = $1 AND state = 'dialing'"
        " AND daemon_id = 'daemon-z' AND asterisk = 'pbx'",
        campaign_id,
    )
    assert attempts == 3

    # Nothing open: nothing claimed, and no statement sent for it.
    async with conn.transaction():
        counted = CountingConnection(conn)
        none = await claim(counted, campaign_id, 10, "daemon-z", [])
    assert none == [] and counted.statements == []


async def test_a_campaign_on_its_own_window_claims_any_due_contact(
    config: Config, pool: Pool, conn: Any
) -> None:
    open_zone, closed_zone = open_and_closed_zones(datetime.now(UTC))
    campaign_id = await make_campaign(conn, zone=open_zone, per_contact=False)
    await add_contacts(conn, campaign_id, closed_zone, 2)  # its key plays no part
    engine = Engine(config, pool, {}, "daemon-z")
    [rules] = await store.running_campaigns(conn)
    assert not rules.per_contact and engine._dialable_now(rules, datetime.now(UTC))
    async with conn.transaction():
        keys = await engine._open_zone_keys(conn, rules)
        claimed = await claim(conn, campaign_id, 10, "daemon-z", keys)
    assert keys is None and len(claimed) == 2


async def test_two_daemons_claiming_at_once_never_take_the_same_contact(
    db_dsn: str, conn: Any
) -> None:
    campaign_id = await make_campaign(conn, zone="UTC")
    await add_contacts(conn, campaign_id, "America/New_York", 25)
    await add_contacts(conn, campaign_id, "Europe/London", 15)
    await add_contacts(conn, campaign_id, "Australia/Sydney", 10)  # closed: never taken
    keys = ["America/New_York", "Europe/London"]
    other = await asyncpg.connect(db_dsn)
    try:
        first_tx, second_tx = conn.transaction(), other.transaction()
        await first_tx.start()
        await second_tx.start()
        try:
            first = await claim(conn, campaign_id, 30, "a", keys)
            second = await claim(other, campaign_id, 30, "b", keys)
        finally:
            await first_tx.commit()
            await second_tx.commit()
        # SKIP LOCKED: the second never waits for the first nor takes its rows. (It may get
        # fewer than are left: a key's rows read past the final LIMIT stay locked until the
        # first commits. In the engine the campaign's row lock serialises its claimers.)
        assert len(first) == 30 and len(second) <= 10
        assert not {c.contact_id for c in first} & {c.contact_id for c in second}
        third = await claim(other, campaign_id, 30, "b", keys)
    finally:
        await other.close()
    assert len(first) + len(second) + len(third) == 40
    left = await conn.fetch(
        "SELECT zone_key, state FROM contacts WHERE campaign_id = $1 AND state <> 'dialing'",
        campaign_id,
    )
    assert [(r["zone_key"], r["state"]) for r in left] == [("Australia/Sydney", "pending")] * 10


async def test_the_zoned_claim_reads_only_the_open_groups_of_100k_contacts(conn: Any) -> None:
    # 100 000 waiting contacts: 95 000 due in a closed zone, 5 000 in an open one. The claim
    # of 30 reads about 30 index entries of the open zone's range, none of the closed one.
    campaign_id = await make_campaign(conn, zone="UTC")
    await conn.execute(
        "INSERT INTO contacts (campaign_id, phone_number, zone_key, next_due_at)"
        " SELECT $1, '+1310' || lpad(n::text, 7, '0'), 'America/Los_Angeles',"
        "        now() - interval '1 hour' - n * interval '1 ms'"
        " FROM generate_series(1, 95000) AS n",
        campaign_id,
    )
    await conn.execute(
        "INSERT INTO contacts (campaign_id, phone_number, zone_key, next_due_at)"
        " SELECT $1, '+1212' || lpad(n::text, 7, '0'), 'America/New_York',"
        "        now() - n * interval '1 ms'"
        " FROM generate_series(1, 5000) AS n",
        campaign_id,
    )
    await conn.execute("ANALYZE contacts")
    statement = load("engine.sql")["claim_contacts"]
    tx = conn.transaction()
    await tx.start()
    try:
        plan_json = await conn.fetchval(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement,
            [campaign_id],
            [30],
            "daemon-z",
            [60.0],
            ["+441632960001"] * 30,
            ["lab"] * 30,
            ["pbx"] * 30,
            [1],
            [True],
            [campaign_id],
            ["America/New_York"],
        )
        claimed_zones = await conn.fetch(
            "SELECT zone_key, count(*) AS n FROM contacts WHERE campaign_id = $1"
            " AND state = 'dialing' GROUP BY zone_key",
            campaign_id,
        )
    finally:
        await tx.rollback()
    plan = json.loads(plan_json)[0]["Plan"]
    reads = index_reads(plan, "contacts")  # (the one-window branch is planned, never run)
    # The due step: the open key's range of contacts_zone_due_idx, stopped after the limit;
    # the UPDATE finds the claimed rows by their key. No other read of contacts at all.
    assert set(reads) == {"contacts_zone_due_idx", "contacts_pkey"}, plan
    due = reads["contacts_zone_due_idx"]
    assert (due["Node Type"], due["Actual Rows"], due["Actual Loops"]) == ("Index Scan", 30, 1)
    assert reads["contacts_pkey"]["Actual Rows"] == 30
    assert [(r["zone_key"], r["n"]) for r in claimed_zones] == [("America/New_York", 30)]


async def running_attempt(
    conn: Any, campaign_id: uuid.UUID, key: str, state: str = "dialing"
) -> tuple[uuid.UUID, uuid.UUID]:
    """One contact of the campaign in a call, its open attempt in `state`."""
    contact = await conn.fetchval(
        """INSERT INTO contacts (campaign_id, phone_number, state, attempts_used, zone_key)
           VALUES ($1, $2, $3, 1, $4) RETURNING id""",
        campaign_id,
        f"+4477009{uuid.uuid4().int % 10**6:06d}",
        state,
        key,
    )
    attempt = uuid.uuid4()
    await conn.execute(
        """INSERT INTO attempts (id, contact_id, campaign_id, attempt_number, daemon_id, state,
                                 dialled_at, answered_at, ended_at, duration_ms, deadline_at)
           VALUES ($1, $2, $3, 1, 'test', $4, now() - interval '20 s',
                   CASE WHEN $4 = 'wrapping' THEN now() - interval '15 s' END,
                   CASE WHEN $4 = 'wrapping' THEN now() END, 15000,
                   now() + interval '1 hour')""",
        attempt,
        contact,
        campaign_id,
        state,
    )
    return contact, attempt


async def contact_after(conn: Any, contact: uuid.UUID) -> tuple[str, datetime | None, Any]:
    row = await conn.fetchrow(
        "SELECT state, next_due_at, state_reason FROM contacts WHERE id = $1", contact
    )
    return row["state"], row["next_due_at"], row["state_reason"]


def no_answer_at(ended: datetime) -> DialResult:
    return DialResult(Outcome.NO_ANSWER, None, ended_at=ended.timestamp())


async def test_a_retry_moves_into_the_next_opening_of_the_contacts_own_zones(
    config: Config, pool: Pool, conn: Any
) -> None:
    # 08:00-21:00 on the contact's clocks; the campaign's zone (Tokyo) plays no part.
    campaign_id = await make_campaign(conn, zone="Asia/Tokyo", start="08:00", end="21:00")
    contact, attempt = await running_attempt(conn, campaign_id, "America/New_York")
    engine = Engine(config, pool, {}, "test")
    # Monday 9 March 2026 03:00 UTC: 23:00 on Sunday in New York, the day its clocks went
    # forward (UTC-4 now). The retry's minute of delay ends at 23:01 there: it waits until
    # 08:00 New York time, 12:00 UTC — not the campaign zone's 08:00 (23:00 UTC).
    ended = datetime(2026, 3, 9, 3, tzinfo=UTC)
    decision = await engine.finalise(attempt, no_answer_at(ended), "no_answer")
    assert decision is not None and decision.action is NextAction.RETRY
    opening = datetime(2026, 3, 9, 12, tzinfo=UTC)
    assert await contact_after(conn, contact) == ("retry_scheduled", opening, None)
    next_at = await conn.fetchval("SELECT next_at FROM attempts WHERE id = $1", attempt)
    assert next_at == opening


async def test_a_callback_moves_into_the_next_opening_of_the_contacts_own_zones(
    config: Config, pool: Pool, conn: Any
) -> None:
    campaign_id = await make_campaign(conn, zone="Asia/Tokyo", start="08:00", end="21:00")
    contact, attempt = await running_attempt(conn, campaign_id, "America/Los_Angeles", "wrapping")
    engine = Engine(config, pool, {}, "test")
    # The callee asks for 21:30 on Sunday 1 November 2026 in Los Angeles, the evening its
    # clocks went back (UTC-8): the callback is due at 08:00 Pacific on Monday, 16:00 UTC.
    asked = datetime(2026, 11, 2, 5, 30, tzinfo=UTC)
    recorded = await engine.record_result(attempt, WorkerResult("completed", callback_at=asked))
    assert recorded is ResultRecorded.FINAL
    assert await contact_after(conn, contact) == (
        "callback_scheduled",
        datetime(2026, 11, 2, 16, tzinfo=UTC),
        None,
    )


async def test_a_contact_whose_zones_never_open_together_is_cancelled_with_its_reason(
    config: Config, pool: Pool, conn: Any
) -> None:
    campaign_id = await make_campaign(
        conn, zone="Europe/Moscow", start="09:00", end="17:00", days=ALL_DAYS[:5]
    )
    contact, attempt = await running_attempt(conn, campaign_id, RUSSIA)
    engine = Engine(config, pool, {}, "test")
    decision = await engine.finalise(attempt, no_answer_at(datetime.now(UTC)), "no_answer")
    assert decision is not None and decision.action is NextAction.CANCELLED
    assert await contact_after(conn, contact) == ("cancelled", None, "no_common_window")
    row = await conn.fetchrow("SELECT next_action, next_at FROM attempts WHERE id = $1", attempt)
    assert (row["next_action"], row["next_at"]) == ("cancelled", None)


async def test_on_the_campaigns_own_window_a_retry_is_not_moved(
    config: Config, pool: Pool, conn: Any
) -> None:
    campaign_id = await make_campaign(
        conn, zone="Asia/Tokyo", start="08:00", end="21:00", per_contact=False
    )
    contact, attempt = await running_attempt(conn, campaign_id, "America/New_York")
    engine = Engine(config, pool, {}, "test")
    ended = datetime(2026, 3, 9, 3, tzinfo=UTC)
    await engine.finalise(attempt, no_answer_at(ended), "no_answer")
    assert await contact_after(conn, contact) == (
        "retry_scheduled",
        ended + timedelta(minutes=1),
        None,
    )
