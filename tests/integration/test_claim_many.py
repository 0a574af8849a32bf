"""The batch claim (`store.engine.claim_contacts`, issue 12: many campaigns claimed in one
statement) on a real PostgreSQL: each campaign takes at most its share, only due contacts,
never a suppressed number, a callback's dial uses no attempt, every dial gets the caller ID,
carrier and Asterisk server dealt to it — and two daemons claiming at once never take the
same contact; the claim of a big campaign reads only what it takes."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import pytest

from dialler.store import engine as store
from dialler.store.engine import CampaignClaim, Claimed
from dialler.store.queries import load

from ..support import index_reads

pytestmark = pytest.mark.integration

CALLERS = ["+441632960001", "+441632960002", "+441632960003"]


async def campaign(conn: Any, contacts: list[tuple[str, str, int]]) -> uuid.UUID:
    """A running campaign with contacts (number, state, due in seconds)."""
    bot = await conn.fetchval(
        "INSERT INTO bots (name, prompt) VALUES ($1, 'hi') RETURNING id", f"b-{uuid.uuid4()}"
    )
    campaign_id: uuid.UUID = await conn.fetchval(
        """INSERT INTO campaigns (name, bot_id, state, window_start, window_end, window_days,
                                  timezone, started_at, concurrency)
           VALUES ($1, $2, 'running', '00:00', '24:00', '{mon,tue,wed,thu,fri,sat,sun}',
                   'UTC', now(), 10) RETURNING id""",
        f"c-{uuid.uuid4()}",
        bot,
    )
    for number, state, due_in in contacts:
        await conn.execute(
            "INSERT INTO contacts (campaign_id, phone_number, state, next_due_at) "
            "VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
            campaign_id,
            number,
            state,
            float(due_in),
        )
    return campaign_id


def claim(campaign_id: uuid.UUID, n: int, server: str = "pbx") -> CampaignClaim:
    return CampaignClaim(campaign_id, 60.0, CALLERS[:n], ["lab"] * n, [server] * n)


async def test_each_campaign_takes_its_share_of_due_contacts_in_one_statement(conn: Any) -> None:
    await conn.execute("INSERT INTO suppressions (phone_number) VALUES ('+447700900999')")
    first = await campaign(conn, [(f"+4477009001{i:02d}", "pending", -60 + i) for i in range(5)])
    second = await campaign(
        conn,
        [
            ("+447700900999", "pending", -120),  # suppressed: never claimed
            ("+447700900201", "callback_scheduled", -30),
            ("+447700900202", "retry_scheduled", -10),
        ],
    )
    later = await campaign(conn, [("+447700900301", "pending", 3600)])  # not due yet

    got = await store.claim_contacts(
        conn, "d1", [claim(first, 2, "pbx"), claim(second, 3, "pbx-2"), claim(later, 2)]
    )

    assert set(got) == {first, second}
    # The oldest due first, the caller IDs in the order dealt.
    assert [(c.phone_number, c.caller_id) for c in got[first]] == [
        ("+447700900100", CALLERS[0]),
        ("+447700900101", CALLERS[1]),
    ]
    by_number = {c.phone_number: c for c in got[second]}
    assert set(by_number) == {"+447700900201", "+447700900202"}
    assert by_number["+447700900201"].counts_toward_max is False  # a callback's dial
    assert by_number["+447700900202"].counts_toward_max is True
    assert {c.asterisk for c in got[second]} == {"pbx-2"}
    rows = await conn.fetch(
        "SELECT a.id, a.asterisk, a.caller_id, a.state, ct.state AS contact_state, "
        "ct.attempts_used FROM attempts a JOIN contacts ct ON ct.id = a.contact_id"
    )
    claimed: list[Claimed] = got[first] + got[second]
    assert {r["id"] for r in rows} == {c.id for c in claimed}
    assert {(r["state"], r["contact_state"]) for r in rows} == {("dialing", "dialing")}
    used = {r["id"]: r["attempts_used"] for r in rows}
    assert used[by_number["+447700900201"].id] == 0  # the callback used no attempt


async def test_two_daemons_claiming_at_once_never_take_the_same_contact(db_dsn: str) -> None:
    setup = await asyncpg.connect(db_dsn)
    try:
        campaigns = [
            await campaign(setup, [(f"+44770090{k}{i:03d}", "pending", -60) for i in range(40)])
            for k in (1, 2, 3)
        ]
    finally:
        await setup.close()

    async def daemon(name: str) -> list[uuid.UUID]:
        connection = await asyncpg.connect(db_dsn)
        taken: list[uuid.UUID] = []
        try:
            for _ in range(30):
                async with connection.transaction():
                    got = await store.claim_contacts(
                        connection, name, [claim(c, 3) for c in campaigns]
                    )
                taken += [c.contact_id for claimed in got.values() for c in claimed]
                await asyncio.sleep(0)
        finally:
            await connection.close()
        return taken

    one, two = await asyncio.gather(daemon("one"), daemon("two"))
    assert not set(one) & set(two)
    assert len(one) + len(set(one)) == 2 * len(one)  # no contact twice within a daemon either
    assert len(one) + len(two) == 120  # every contact claimed exactly once


async def test_equally_due_contacts_are_claimed_in_file_order(conn: Any) -> None:
    # Heap order is not file order (the free space map places rows): write the list's lines
    # in reverse, all due at the same instant, as an import does (one now() for all).
    first = await campaign(conn, [])
    await conn.execute(
        "INSERT INTO contacts (campaign_id, phone_number, state, next_due_at, line_number) "
        "SELECT $1, '+4477009005' || lpad(i::text, 2, '0'), 'pending', now(), i "
        "FROM generate_series(40, 2, -1) AS i",
        first,
    )
    got = await store.claim_contacts(conn, "d1", [claim(first, 3)])
    assert [c.phone_number for c in got[first]] == [
        "+447700900502",
        "+447700900503",
        "+447700900504",
    ]


async def test_a_claim_of_30_from_100k_due_contacts_reads_30_index_entries(conn: Any) -> None:
    # The planner guesses a per-campaign LIMIT at a tenth of the table; joined to contacts, that
    # guess once made every claim read the whole table. The claim must find its rows by key.
    first = await campaign(conn, [])
    await conn.execute(
        "INSERT INTO contacts (campaign_id, phone_number, next_due_at, line_number)"
        " SELECT $1, '+4477' || lpad(n::text, 9, '0'), now() - n * interval '1 ms', n"
        " FROM generate_series(1, 100000) AS n",
        first,
    )
    await conn.execute("ANALYZE contacts")
    tx = conn.transaction()
    await tx.start()
    try:
        plan_json = await conn.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + load("engine.sql")["claim_contacts"],
            [first],
            [30],
            "d1",
            [60.0],
            CALLERS[:1] * 30,
            ["lab"] * 30,
            ["pbx"] * 30,
            [1],
            [False],
            [],
            [],
        )
    finally:
        await tx.rollback()
    reads = index_reads(json.loads(plan_json)[0]["Plan"], "contacts")
    assert set(reads) == {"contacts_due_idx", "contacts_pkey"}, reads  # no sequential scan
    assert reads["contacts_due_idx"]["Actual Rows"] == 30
    assert reads["contacts_pkey"]["Actual Rows"] == 30
