"""Carrier pacing shared through PostgreSQL (engine/pacing.py, store/pacing.py): two daemons'
claims together stay within a carrier's calls per second, and its throttling state (AIMD on
429/503) is one for all of them — with the refusals it requeues."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from dialler import metrics
from dialler.config import Config, parse_config
from dialler.domain.outcomes import DialResult, Outcome
from dialler.engine.engine import Engine
from dialler.engine.pacing import TokenBucket, carrier_room
from dialler.stats import campaign_show
from dialler.store import Pool, create_pool
from dialler.store import engine as engine_store
from dialler.store import pacing as pacing_store

pytestmark = pytest.mark.integration


def make_config(db_dsn: str, rate: float, **throttle: Any) -> Config:
    return parse_config(
        {
            "database": {"dsn": db_dsn},
            "asterisk": [{"name": "pbx", "ami": {"username": "u", "secret_env": "S"}}],
            "listeners": {"agi": {"secret_env": "A"}},
            "carriers": [
                {
                    "name": "lab",
                    "calls_per_second": rate,
                    "max_channels": 1000,
                    "throttle": throttle or None,
                },
                {"name": "other", "calls_per_second": rate, "max_channels": 1000},
            ],
            "numbers": [{"number": "+441632960001", "carrier": "lab"}],
        },
        "test",
        env={"S": "secret", "A": "agi-secret-0123456789"},
    )


@pytest.fixture
async def pools(db_dsn: str) -> AsyncIterator[tuple[Pool, Pool]]:
    """Two daemons' pools on the one database."""
    first, second = await create_pool(db_dsn), await create_pool(db_dsn)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def campaign_with_contacts(conn: Any, n: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    bot = await conn.fetchval(
        "INSERT INTO bots (name, prompt) VALUES ($1, 'hi') RETURNING id", f"bot-{uuid.uuid4()}"
    )
    campaign = await conn.fetchval(
        """INSERT INTO campaigns (name, bot_id, state, window_start, window_end, window_days,
                                  timezone, started_at, concurrency)
           VALUES ($1, $2, 'running', '00:00', '24:00', '{mon,tue,wed,thu,fri,sat,sun}',
                   'UTC', now(), 30)
           RETURNING id""",
        f"c-{uuid.uuid4()}",
        bot,
    )
    await conn.execute(
        "INSERT INTO numbers (number, carrier) VALUES ('+441632960001', 'lab') "
        "ON CONFLICT DO NOTHING"
    )
    await conn.execute(
        "INSERT INTO campaign_numbers (campaign_id, number) VALUES ($1, '+441632960001')",
        campaign,
    )
    contacts = [
        await conn.fetchval(
            """INSERT INTO contacts (campaign_id, phone_number, state, attempts_used)
               VALUES ($1, $2, 'dialing', 1) RETURNING id""",
            campaign,
            f"+4477009010{i:02d}",
        )
        for i in range(n)
    ]
    return campaign, contacts


async def dial(conn: Any, campaign: uuid.UUID, contact: uuid.UUID, carrier: str) -> uuid.UUID:
    """An attempt as a claim inserts it (the insert trigger takes its token)."""
    attempt = uuid.uuid4()
    await conn.execute(
        """INSERT INTO attempts (id, contact_id, campaign_id, attempt_number, daemon_id, carrier,
                                 dialled_at, deadline_at)
           VALUES ($1, $2, $3,
                   (SELECT count(*) + 1 FROM attempts WHERE contact_id = $2),
                   'test', $4, clock_timestamp(), now() + interval '1 hour')""",
        attempt,
        contact,
        campaign,
        carrier,
    )
    return attempt


def max_in_sliding_second(times: list[float]) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def test_two_daemons_claiming_at_once_stay_within_the_rate(
    db_dsn: str, pools: tuple[Pool, Pool], conn: Any
) -> None:
    config = make_config(db_dsn, 10.0)
    campaign, contacts = await campaign_with_contacts(conn, 200)
    pending = iter(contacts)
    run_for = 3.0

    async def daemon(pool: Pool) -> int:
        buckets: dict[str, TokenBucket] = {}
        dialled = 0
        deadline = time.monotonic() + run_for
        while time.monotonic() < deadline:
            async with pool.acquire() as c, c.transaction():
                room = (await carrier_room(c, config, buckets))["lab"]
                for _ in range(room):
                    await dial(c, campaign, next(pending), "lab")
                dialled += room
            buckets["lab"].take(room)  # as the engine's fill does after a claim
            # Wake when the shared bucket's next token is due, as the scheduler does.
            await asyncio.sleep(max(buckets["lab"].seconds_until(), 0.005))
        return dialled

    counts = await asyncio.gather(daemon(pools[0]), daemon(pools[1]))
    times = [
        r["t"]
        for r in await conn.fetch(
            "SELECT extract(epoch FROM dialled_at)::float8 AS t FROM attempts WHERE carrier = 'lab'"
        )
    ]
    assert all(counts), f"both daemons dialled: {counts}"
    assert max_in_sliding_second(times) <= 11, sorted(times)
    # Not starved either: close to 10/s over the run.
    assert 0.85 * 10 * run_for <= len(times) <= 10 * run_for + 2, len(times)


async def test_throttling_is_shared_and_requeues_the_refusals(
    db_dsn: str, pools: tuple[Pool, Pool], conn: Any
) -> None:
    config = make_config(db_dsn, 100.0)
    first = Engine(config, pools[0], {}, "one")
    second = Engine(config, pools[1], {}, "two")
    campaign, contacts = await campaign_with_contacts(conn, 40)
    async with pools[0].acquire() as c, c.transaction():
        await carrier_room(c, config, first.buckets)  # the carriers' rows exist
    attempts = [await dial(conn, campaign, contact, "lab") for contact in contacts[:30]]
    other = await dial(conn, campaign, contacts[39], "other")

    async def refuse(engine: Engine, attempt: uuid.UUID, code: int = 429) -> str:
        result = DialResult(Outcome.REJECTED, code, ended_at=time.time())
        decision = await engine.finalise(attempt, result, "rejected")
        assert decision is not None
        return decision.action.value

    # 30 dials; 6 refusals (20 %) trip it, settled by either daemon.
    actions = [await refuse((first, second)[i % 2], a) for i, a in enumerate(attempts[:6])]
    assert actions[:5] != ["requeue"] * 5  # decided as ordinary attempts at first …
    assert actions[5] == "requeue"  # … until the one that tripped it
    rows = await conn.fetch(
        """SELECT a.next_action, a.sip_code, a.outcome, a.counts_toward_max, ct.state,
                  ct.attempts_used
           FROM attempts a JOIN contacts ct ON ct.id = a.contact_id WHERE a.id = ANY($1)""",
        attempts[:6],
    )
    # The refusals that tripped it are requeued too: kept as they were, no attempt used.
    assert {
        (r["next_action"], r["sip_code"], r["outcome"], r["counts_toward_max"], r["state"])
        for r in rows
    } == {("requeue", 429, "rejected", False, "pending")}
    assert {r["attempts_used"] for r in rows} == {0}
    pacing = await conn.fetchrow("SELECT * FROM carrier_pacing WHERE carrier = 'lab'")
    assert pacing["allowed_rate"] == 50.0 and pacing["configured_rate"] == 100.0

    # One state for both daemons: a later refusal is requeued whoever settles it.
    assert await refuse(second, attempts[6]) == "requeue"
    assert await refuse(first, attempts[7], 503) == "requeue"
    # Another carrier is not throttled: its 429 is an ordinary attempt.
    assert await refuse(first, other) != "requeue"
    # Not a throttling code: an ordinary attempt even on the throttled carrier.
    assert await refuse(second, attempts[8], 486) != "requeue"

    async with pools[1].acquire() as c:
        shown = await campaign_show(c, config, campaign, datetime.now(UTC))
        room = await carrier_room(c, config, second.buckets)
    assert shown["capped_by"] == "carrier_throttle"
    assert room["lab"] <= 5  # the burst of 50/s: a tenth of a second's worth

    # The metrics every daemon exports, read from the shared row.
    async with pools[1].acquire() as c:
        await metrics.refresh(c, config)
    sample = metrics.REGISTRY.get_sample_value
    assert sample("dialler_carrier_throttled", {"carrier": "lab"}) == 1.0
    assert sample("dialler_carrier_throttled", {"carrier": "other"}) == 0.0
    assert sample("dialler_carrier_allowed_calls_per_second", {"carrier": "lab"}) == 50.0


async def test_a_lone_429_stays_an_ordinary_attempt(
    db_dsn: str, pools: tuple[Pool, Pool], conn: Any
) -> None:
    config = make_config(db_dsn, 10.0)
    engine = Engine(config, pools[0], {}, "one")
    campaign, contacts = await campaign_with_contacts(conn, 10)
    async with pools[0].acquire() as c, c.transaction():
        await carrier_room(c, config, engine.buckets)
    attempts = [await dial(conn, campaign, contact, "lab") for contact in contacts]
    decision = await engine.finalise(
        attempts[0], DialResult(Outcome.REJECTED, 429, ended_at=time.time()), "rejected"
    )
    assert decision is not None and decision.action.value != "requeue"
    row = await conn.fetchrow("SELECT * FROM carrier_pacing WHERE carrier = 'lab'")
    assert (row["allowed_rate"], row["refusals"], row["dials"]) == (10.0, 1, 10)


async def test_an_empty_shared_bucket_caps_a_campaign_that_wants_dials(
    db_dsn: str, pools: tuple[Pool, Pool], conn: Any
) -> None:
    config = make_config(db_dsn, 10.0)
    campaign, contacts = await campaign_with_contacts(conn, 5)
    await conn.execute(
        "UPDATE contacts SET state = 'pending', next_due_at = now() WHERE id = ANY($1)",
        contacts[2:],
    )
    await conn.execute(  # a fleet with room: not what caps it
        "INSERT INTO workers (name, host, port, capacity, source, last_heartbeat_at) "
        "VALUES ('w1', '127.0.0.1', 9, 100, 'api', now())"
    )
    async with pools[0].acquire() as c:
        idle = await campaign_show(c, config, campaign, datetime.now(UTC))
    assert idle["capped_by"] is None  # a full bucket holds nothing back
    # Another daemon just spent the carrier's tokens (two dials at once: the burst of 1.5).
    buckets: dict[str, TokenBucket] = {}
    async with pools[1].acquire() as c, c.transaction():
        assert (await carrier_room(c, config, buckets))["lab"] == 1
        await dial(c, campaign, contacts[0], "lab")
        await dial(c, campaign, contacts[1], "lab")
    async with pools[0].acquire() as c:
        held = await campaign_show(c, config, campaign, datetime.now(UTC))
    assert held["capped_by"] == "carrier"


async def test_a_contact_requeued_max_requeues_times_gets_an_ordinary_attempt(
    db_dsn: str, pools: tuple[Pool, Pool], conn: Any
) -> None:
    config = make_config(db_dsn, 100.0, max_requeues=2, min_refusals=1, threshold=0.01)
    engine = Engine(config, pools[0], {}, "one")
    campaign, contacts = await campaign_with_contacts(conn, 2)
    await conn.execute("UPDATE contacts SET attempts_used = 0")
    async with pools[0].acquire() as c, c.transaction():
        await carrier_room(c, config, engine.buckets)

    async def refused(contact: uuid.UUID) -> str:
        attempt = await dial(conn, campaign, contact, "lab")
        await conn.execute(  # as the claim does: in a call, the dial counted
            "UPDATE contacts SET state = 'dialing', attempts_used = attempts_used + 1 "
            "WHERE id = $1",
            contact,
        )
        result = DialResult(Outcome.REJECTED, 429, ended_at=time.time())
        decision = await engine.finalise(attempt, result, "rejected")
        assert decision is not None
        return decision.action.value

    # The first refusal trips it (min_refusals 1); the contact is requeued twice in a row …
    assert [await refused(contacts[0]) for _ in range(2)] == ["requeue", "requeue"]
    # … and the third refusal, the carrier still throttled, is an ordinary attempt.
    assert await refused(contacts[0]) != "requeue"
    assert await refused(contacts[1]) == "requeue"  # the cap is per contact
    used = await conn.fetchval("SELECT attempts_used FROM contacts WHERE id = $1", contacts[0])
    assert used == 1  # the two requeues were uncounted (the claim counted each dial)


async def test_a_claim_and_a_throttling_requeue_never_deadlock(db_dsn: str, conn: Any) -> None:
    # Found by repeating the e2e suite: a settle that tripped the carrier's throttling holds the
    # carrier's pacing row and requeues refusals it finalised earlier in its transaction — a
    # second write of those rows, which checks their campaign's foreign key (FOR KEY SHARE). A
    # claim holds its campaigns' rows and waits for the pacing row. Neither may wait for the
    # other: PostgreSQL would abort one ("deadlock detected").
    campaign, [contact] = await campaign_with_contacts(conn, 1)
    settle, claim = await asyncpg.connect(db_dsn), await asyncpg.connect(db_dsn)
    try:
        async with claim.transaction():
            await pacing_store.lock_pacing(claim, {"lab": 10.0})  # the row exists from here on
        settling = settle.transaction()
        await settling.start()
        await settle.execute("UPDATE contacts SET state = 'retry_scheduled' WHERE id = $1", contact)
        await pacing_store.lock_pacing(settle, {"lab": 10.0})  # the AIMD cut holds the row
        claiming = claim.transaction()
        await claiming.start()
        assert await engine_store.lock_campaigns_for_claim(claim, [campaign]) == {campaign: 30}
        waiting = asyncio.create_task(pacing_store.lock_pacing(claim, {"lab": 10.0}))
        await asyncio.sleep(0.2)  # the claim now waits for the pacing row
        assert not waiting.done()
        # The requeue writes the contact a second time in the settle's transaction.
        await asyncio.wait_for(
            settle.execute("UPDATE contacts SET state = 'pending' WHERE id = $1", contact), 5
        )
        await settling.commit()
        assert [row.carrier for row in await asyncio.wait_for(waiting, 5)] == ["lab"]
        await claiming.commit()
    finally:
        await settle.close()
        await claim.close()
