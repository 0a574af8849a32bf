"""The services behind the console and the new `/v1` routes, called directly against a real
PostgreSQL: what the HTTP and CLI tests do not reach (a static worker no daemon wrote yet, the
call list's keyset pages across contacts with and without a file line, checking an edit
against the campaign's contacts)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dialler.campaigns import repo
from dialler.campaigns.spec import BotSpec, Document, parse_campaign
from dialler.carriers import list_numbers
from dialler.config import Config, parse_config
from dialler.domain.states import ContactState
from dialler.errors import InvalidField, UnknownBot
from dialler.stats import call_items
from dialler.store import Connection
from dialler.store.pool import create_pool
from dialler.workers import fleet_status

pytestmark = pytest.mark.integration

NUMBERS = ("+441632960001", "+441632960002")


def make_config(dsn: str, **extra: Any) -> Config:
    return parse_config(
        {
            "database": {"dsn": dsn},
            "asterisk": [{"name": "pbx", "ami": {"username": "u", "secret_env": "S"}}],
            "listeners": {"agi": {"secret_env": "A"}},
            "carriers": [{"name": "lab"}],
            "numbers": [
                {"number": NUMBERS[0], "carrier": "lab"},
                {"number": NUMBERS[1], "carrier": "lab", "enabled": False},
            ],
            **extra,
        },
        "test",
        env={"S": "secret", "A": "agi-secret-0123456789"},
    )


@pytest.fixture
async def conn(db_dsn: str) -> AsyncIterator[Connection]:
    pool = await create_pool(db_dsn)
    try:
        async with pool.acquire() as connection:
            yield connection
    finally:
        await pool.close()


async def _campaign(conn: Connection, config: Config, **fields: Any) -> uuid.UUID:
    await repo.sync_numbers(conn, config)
    document = Document.request_body({"name": "C", "numbers": [NUMBERS[0]], **fields})
    spec = parse_campaign(document, bots=await repo.bot_names(conn), numbers=list(NUMBERS))
    return await repo.create_campaign(conn, spec)


async def test_a_static_worker_no_daemon_wrote_yet_is_listed(conn: Connection, db_dsn: str) -> None:
    config = make_config(
        db_dsn,
        fleet={"workers": [{"name": "ref", "host": "127.0.0.1", "port": 9092, "capacity": 3}]},
    )
    fleet = await fleet_status(conn, config)
    assert [(w.name, w.source, w.in_rotation, w.free) for w in fleet.workers] == [
        ("ref", "config", True, 3)
    ]
    assert (fleet.capacity, fleet.in_use, fleet.free, fleet.running_concurrency) == (3, 0, 3, 0)


async def test_a_worker_taken_out_of_rotation_is_listed_as_never_heard_from(
    conn: Connection, db_dsn: str
) -> None:
    # A failed health check stamps '-infinity' (fleet.sql); the listing must not turn that
    # into an age (asyncpg reads it as a naive year 1: subtracting it from now crashed).
    config = make_config(db_dsn)
    await conn.execute(
        "INSERT INTO workers (name, host, port, capacity, source, last_heartbeat_at, enabled)"
        " VALUES ('gone', '127.0.0.1', 9093, 2, 'api', '-infinity', true)"
    )
    fleet = await fleet_status(conn, config)
    assert [(w.name, w.heartbeat_age_seconds, w.in_rotation, w.free) for w in fleet.workers] == [
        ("gone", None, False, 0)
    ]


async def test_numbers_follow_the_config_before_any_sync(conn: Connection, db_dsn: str) -> None:
    # Nothing synced yet: the config's word (the second number is disabled there).
    listed = await list_numbers(conn, make_config(db_dsn))
    assert [(n.number, n.enabled, n.calls_last_hour) for n in listed] == [
        (NUMBERS[0], True, 0),
        (NUMBERS[1], False, 0),
    ]


async def test_call_list_pages_in_order_with_state_filter(conn: Connection, db_dsn: str) -> None:
    campaign_id = await _campaign(conn, make_config(db_dsn))
    # Two contacts from a file (lines 3 and 2) and two added through the API (no line): the
    # list is by line, then the added ones in creation order.
    rows = [("+447700900003", 3, "pending"), ("+447700900002", 2, "done")]
    rows += [("+447700900010", None, "pending"), ("+447700900011", None, "done")]
    created = datetime.now(UTC)
    for n, (phone, line, state) in enumerate(rows):
        await conn.execute(
            "INSERT INTO contacts (campaign_id, phone_number, line_number, state, next_due_at,"
            " created_at) VALUES ($1, $2, $3, $4, CASE WHEN $4 = 'pending' THEN now() END, $5)",
            campaign_id,
            phone,
            line,
            state,
            created + timedelta(seconds=n),
        )

    async def page(**options: Any) -> list[str]:
        return [
            str(item["phone_number"]) async for item in call_items(conn, campaign_id, **options)
        ]

    expected = ["+447700900002", "+447700900003", "+447700900010", "+447700900011"]
    async with conn.transaction():
        assert await page() == expected
    seen: list[str] = []
    after: uuid.UUID | None = None
    for _ in range(10):
        items = [i async for i in call_items(conn, campaign_id, after=after, limit=1)]
        if not items:
            break
        seen.append(str(items[0]["phone_number"]))
        after = uuid.UUID(str(items[0]["contact_id"]))
    assert seen == expected
    assert await page(state=ContactState.PENDING) == ["+447700900003", "+447700900010"]
    with pytest.raises(InvalidField) as refused:
        await page(after=uuid.uuid4(), limit=5)
    assert refused.value.field == "after"


async def test_validate_an_edit_compares_the_prompt_with_the_contacts(
    conn: Connection, db_dsn: str
) -> None:
    config = make_config(db_dsn)
    await repo.create_bot(conn, BotSpec("b", "Hello {{CustomerNmae}}"))
    campaign_id = await _campaign(conn, config, bot="b")
    await conn.execute(
        "INSERT INTO contacts (campaign_id, phone_number, variables) VALUES ($1, $2, $3)",
        campaign_id,
        "+447700900001",
        {"CustomerName": "Ann"},
    )
    body = Document.request_body({"name": "C", "bot": "b", "numbers": [NUMBERS[1]]})
    check = await repo.validate_campaign(conn, config, body, campaign_id=campaign_id)
    # The pool's only number is disabled in the config; the prompt's misspelt variable is
    # named with the near miss among the contacts' variables.
    assert [field for field, _ in check.problems] == ["numbers"]
    assert any("CustomerNmae" in w and "CustomerName" in w for w in check.warnings)
    # Nothing was written: the campaign keeps its pool.
    assert (await repo.get_campaign(conn, campaign_id)).numbers == (NUMBERS[0],)


async def test_get_and_edit_an_unknown_bot(conn: Connection) -> None:
    with pytest.raises(UnknownBot):
        await repo.get_bot(conn, "ghost")
    with pytest.raises(UnknownBot):
        await repo.edit_bot(conn, "ghost", BotSpec("ghost", "x"))
