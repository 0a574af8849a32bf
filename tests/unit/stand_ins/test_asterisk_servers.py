"""Several Asterisk servers, against a real PostgreSQL and the real engine and call tracker.

**Faked: Asterisk's AMI** (`StubAmi`: a link that is up or down and places nothing, so a
server can go away between a claim and its Originate on demand). Dials dealt least loaded
first within each server's cap, only to servers up; a dial whose server went away before its
Originate is put back and sent elsewhere (never twice); calls of a server that stays away are
closed once they must have ended. The lab version with real Asterisks:
tests/e2e/test_asterisk_servers.py."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from dialler.ami.calls import CallTracker
from dialler.ami.client import AmiUnavailable, OriginateRequest
from dialler.campaigns import repo
from dialler.config import AsteriskConfig, Config, parse_config
from dialler.engine.engine import Engine
from dialler.store import Pool

pytestmark = pytest.mark.stand_in
CALLER_ID = "+441632960001"


class StubAmi:
    """An AMI connection that is up or down; an Originate is recorded, never placed (or, with
    `refuse`, not sent: as when the link drops between the claim and the send)."""

    def __init__(self, config: AsteriskConfig) -> None:
        self.config = config
        self.name = config.name
        self.ready = True
        self.refuse = False
        self.sent: list[str] = []

    def add_listener(self, _listener: Any) -> None:
        pass

    def on_up(self, _callback: Any) -> None:
        pass

    async def originate(self, request: OriginateRequest) -> None:
        if self.refuse or not self.ready:
            raise AmiUnavailable(f"AMI {self.name}: not connected")
        self.sent.append(request.attempt_id)

    async def live_channels(self) -> dict[str, str]:
        return {}


def make_config(db_dsn: str, caps: dict[str, int | None]) -> Config:
    servers: list[dict[str, Any]] = []
    for name, cap in caps.items():
        server: dict[str, Any] = {"name": name, "ami": {"username": "u", "secret_env": "S"}}
        if cap is not None:
            server["max_channels"] = cap
        servers.append(server)
    return parse_config(
        {
            "database": {"dsn": db_dsn},
            "asterisk": servers,
            "listeners": {"agi": {"secret_env": "A"}},
            "carriers": [{"name": "lab", "max_channels": 100, "calls_per_second": 100}],
            "numbers": [{"number": CALLER_ID, "carrier": "lab"}],
        },
        "test",
        env={"S": "secret", "A": "agi-secret-0123456789"},
    )


class Rig:
    """The engine over stand-in servers, and a running campaign to fill."""

    def __init__(self, config: Config, pool: Pool) -> None:
        self.pool = pool
        self.amis = {a.name: StubAmi(a) for a in config.asterisk}
        trackers = {name: CallTracker(ami) for name, ami in self.amis.items()}  # type: ignore[arg-type]
        self.engine = Engine(config, pool, trackers, "servers-test")

    async def campaign(self, contacts: int, concurrency: int = 20) -> uuid.UUID:
        async with self.pool.acquire() as conn:
            await repo.sync_numbers(conn, self.engine.config)
            await conn.execute(
                "INSERT INTO workers (name, host, port, capacity, source) "
                "VALUES ('w', '127.0.0.1', 57001, 50, 'config') ON CONFLICT DO NOTHING"
            )
            bot = await conn.fetchval(
                "INSERT INTO bots (name, prompt) VALUES ($1, 'hi') RETURNING id",
                f"bot-{uuid.uuid4()}",
            )
            campaign: uuid.UUID = await conn.fetchval(
                """INSERT INTO campaigns (name, bot_id, state, concurrency, window_start,
                                          window_end, window_days, timezone, started_at)
                   VALUES ($1, $2, 'running', $3, '00:00', '24:00',
                           '{mon,tue,wed,thu,fri,sat,sun}', 'UTC', now())
                   RETURNING id""",
                f"c-{uuid.uuid4()}",
                bot,
                concurrency,
            )
            await conn.execute(
                "INSERT INTO campaign_numbers (campaign_id, number) VALUES ($1, $2)",
                campaign,
                CALLER_ID,
            )
            await conn.executemany(
                "INSERT INTO contacts (campaign_id, phone_number, next_due_at) "
                "VALUES ($1, $2, now() - interval '1 s')",
                [(campaign, f"+4477009150{n:02d}") for n in range(contacts)],
            )
        return campaign

    async def attempts(self, campaign: uuid.UUID) -> list[Any]:
        async with self.pool.acquire() as conn:
            return list(
                await conn.fetch(
                    "SELECT a.id, a.asterisk, a.state, a.disposition, a.outcome, ct.phone_number "
                    "FROM attempts a JOIN contacts ct ON ct.id = a.contact_id "
                    "WHERE a.campaign_id = $1",
                    campaign,
                )
            )

    async def close(self) -> None:
        await self.engine.abandon()


async def rig(db_dsn: str, pool: Pool, caps: dict[str, int | None]) -> Rig:
    return Rig(make_config(db_dsn, caps), pool)


async def test_dials_go_to_every_server_up_least_loaded_first_within_its_cap(
    db_dsn: str, pool: Pool
) -> None:
    r = await rig(db_dsn, pool, {"pbx1": 2, "pbx2": None, "pbx3": None})
    r.amis["pbx3"].ready = False  # down: dealt nothing
    try:
        campaign = await r.campaign(6)
        await r.engine.tick()
        rows = await r.attempts(campaign)
        assert Counter(row["asterisk"] for row in rows) == {"pbx1": 2, "pbx2": 4}
        # Each call went out through the server its attempt names, once.
        for name, ami in r.amis.items():
            assert sorted(ami.sent) == sorted(str(x["id"]) for x in rows if x["asterisk"] == name)
        assert [r.engine.servers.in_flight(n) for n in ("pbx1", "pbx2", "pbx3")] == [2, 4, 0]
    finally:
        await r.close()


async def test_every_server_at_its_cap_claims_nothing_more(db_dsn: str, pool: Pool) -> None:
    r = await rig(db_dsn, pool, {"pbx1": 1, "pbx2": 1})
    try:
        campaign = await r.campaign(4)
        await r.engine.tick()
        await r.engine.tick()
        rows = await r.attempts(campaign)
        assert sorted(row["asterisk"] for row in rows) == ["pbx1", "pbx2"]
        async with pool.acquire() as conn:
            pending = await conn.fetchval(
                "SELECT count(*) FROM contacts WHERE campaign_id = $1 AND state = 'pending'",
                campaign,
            )
        assert pending == 2  # left waiting, not claimed and not used up
    finally:
        await r.close()


async def test_a_dial_whose_server_went_away_is_put_back_and_sent_elsewhere_once(
    db_dsn: str, pool: Pool
) -> None:
    r = await rig(db_dsn, pool, {"pbx1": None, "pbx2": None})
    try:
        campaign = await r.campaign(4)
        r.amis["pbx1"].refuse = True  # its link drops between the claim and the send
        await r.engine.tick()
        rows = await r.attempts(campaign)
        assert Counter(row["asterisk"] for row in rows) == {"pbx2": 2}  # pbx1's were undone
        r.amis["pbx1"].ready = False  # now seen down
        await r.engine.tick()
        rows = await r.attempts(campaign)
        assert Counter(row["asterisk"] for row in rows) == {"pbx2": 4}
        sent = r.amis["pbx2"].sent
        assert len(sent) == len(set(sent)) == 4 and r.amis["pbx1"].sent == []
        assert len({row["phone_number"] for row in rows}) == 4  # one attempt per contact
        r.amis["pbx1"].ready, r.amis["pbx1"].refuse = True, False  # back: dealt to again
        assert r.engine.servers.deal(1) == ["pbx1"]
    finally:
        await r.close()


async def test_calls_of_a_server_that_stays_away_are_closed_once_they_must_have_ended(
    db_dsn: str, pool: Pool
) -> None:
    r = await rig(db_dsn, pool, {"pbx1": None})
    engine = r.engine
    try:
        campaign = await r.campaign(2)
        await engine.tick()
        rows = await r.attempts(campaign)
        assert len(rows) == 2
        answered, ringing = (row["id"] for row in rows)
        tracker = engine.trackers["pbx1"]
        # One call was answered and its worker has reported (its session ended with the
        # server); the other was ringing when the server went away.
        tracker.calls[str(answered)].answered_at = time.time()
        async with pool.acquire() as conn:
            await conn.execute(
                "UPDATE attempts SET state = 'connected', answered_at = now(), "
                "attached_at = now(), disposition = 'completed' WHERE id = $1",
                answered,
            )
        r.amis["pbx1"].ready = False
        assert await engine.close_lost_calls() == 1  # the answered one: its result is in
        await asyncio.wait_for(engine.live.pop(answered), 5)
        sched = engine.config.scheduler
        later = time.time() + 30.0 + sched.dial_margin + 1  # ring timeout 30 s + margin
        assert await engine.close_lost_calls(now=time.time()) == 0  # may still be ringing
        assert await engine.close_lost_calls(now=later) == 1
        await asyncio.wait_for(engine.live.pop(ringing), 5)
        final = {row["id"]: row for row in await r.attempts(campaign)}
        assert (final[answered]["state"], final[answered]["disposition"]) == ("final", "completed")
        assert (final[ringing]["state"], final[ringing]["disposition"]) == ("final", "timeout")
        assert tracker.calls == {}
    finally:
        await r.close()


async def test_a_call_answered_while_the_link_was_away_waits_for_its_worker_not_the_ring_bound(
    db_dsn: str, pool: Pool
) -> None:
    r = await rig(db_dsn, pool, {"pbx1": None})
    engine = r.engine
    try:
        campaign = await r.campaign(1)
        await engine.tick()
        (row,) = await r.attempts(campaign)
        attempt = row["id"]
        # AMI never told of the answer, but the worker's attach did (FastAGI, not AMI).
        async with pool.acquire() as conn:
            await conn.execute(
                "UPDATE attempts SET attached_at = now() WHERE id = $1 AND state = 'dialing'",
                attempt,
            )
        r.amis["pbx1"].ready = False
        sched = engine.config.scheduler
        past_ring = time.time() + 30.0 + sched.dial_margin + 1
        assert await engine.close_lost_calls(now=past_ring) == 0  # answered: the bot may talk
        async with pool.acquire() as conn:
            await conn.execute(
                "UPDATE attempts SET disposition = 'call_me_later' WHERE id = $1", attempt
            )
        assert await engine.close_lost_calls(now=past_ring) == 1  # its result is in: over
        await asyncio.wait_for(engine.live.pop(attempt), 5)
        (final,) = await r.attempts(campaign)
        assert (final["state"], final["outcome"], final["disposition"]) == (
            "final",
            "answered",
            "call_me_later",
        )
    finally:
        await r.close()
