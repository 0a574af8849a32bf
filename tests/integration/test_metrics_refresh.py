"""`metrics.refresh` against a real PostgreSQL: the gauges read from the database."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dialler import metrics
from dialler.config import Config, parse_config
from dialler.domain.window import DAYS
from dialler.stats import STATES

from ..support import CountingConnection

pytestmark = pytest.mark.integration
E164 = re.compile(r"\+\d{8,}")


@pytest.fixture
def config(db_dsn: str) -> Config:
    return parse_config(
        {
            "database": {"dsn": db_dsn},
            "asterisk": [{"name": "pbx", "ami": {"username": "u", "secret_env": "S"}}],
            "listeners": {"agi": {"secret_env": "A"}},
            "carriers": [{"name": "lab"}],
            "scheduler": {"stall_after": "120s"},
        },
        "test",
        env={"S": "secret", "A": "agi-secret-0123456789"},
    )


def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(metrics.REGISTRY).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def campaign(
    conn: Any,
    bot: uuid.UUID,
    name: str,
    state: str,
    days: list[str] | None = None,
    last_dial: str | None = None,
) -> uuid.UUID:
    campaign_id: uuid.UUID = await conn.fetchval(
        """INSERT INTO campaigns (name, bot_id, state, window_start, window_end, window_days,
                                  timezone, started_at, last_dial_at)
           VALUES ($1, $2, $3, '00:00', '24:00', $4, 'UTC', now() - interval '1 hour',
                   now() - $5::text::interval)
           RETURNING id""",
        name,
        bot,
        state,
        days or list(DAYS),
        last_dial,
    )
    return campaign_id


async def contacts(
    conn: Any, campaign_id: uuid.UUID, states: dict[str, int], first: int
) -> dict[str, list[uuid.UUID]]:
    """`states[s]` contacts in state s, numbered from +4477009000<first>."""
    made: dict[str, list[uuid.UUID]] = {}
    n = first
    for state, count in states.items():
        for _ in range(count):
            # Waiting contacts: due now, except retries (due in an hour).
            due = "1 hour" if state == "retry_scheduled" else "-1 minute"
            made.setdefault(state, []).append(
                await conn.fetchval(
                    """INSERT INTO contacts (campaign_id, phone_number, state, next_due_at)
                   VALUES ($1, $2, $3, now() + $4::text::interval) RETURNING id""",
                    campaign_id,
                    f"+44770090{n:04d}",
                    state,
                    due,
                )
            )
            n += 1
    return made


async def attempt(
    conn: Any, contact_id: uuid.UUID, campaign_id: uuid.UUID, state: str, deadline: str
) -> uuid.UUID:
    attempt_id = uuid.uuid4()
    await conn.execute(
        """INSERT INTO attempts (id, contact_id, campaign_id, attempt_number, caller_id, carrier,
                                 asterisk, daemon_id, state, dialled_at, deadline_at)
           VALUES ($1, $2, $3, 1, '+441632960001', 'lab', 'pbx', 'd1', $4,
                   now() - interval '5 minutes', now() + $5::text::interval)""",
        attempt_id,
        contact_id,
        campaign_id,
        state,
        deadline,
    )
    return attempt_id


async def test_refresh_exports_campaign_contact_call_and_fleet_gauges(
    conn: Any, config: Config
) -> None:
    now = datetime.now(UTC)
    bot = await conn.fetchval("INSERT INTO bots (name, prompt) VALUES ('b', 'Hi') RETURNING id")
    running = await campaign(conn, bot, "running", "running", last_dial="10 minutes")
    # Paused, and today is not one of its days: its window is closed.
    paused = await campaign(
        conn, bot, "paused", "paused", days=[d for i, d in enumerate(DAYS) if i != now.weekday()]
    )
    done = await campaign(conn, bot, "completed", "completed", last_dial="1 day")
    draft = await campaign(conn, bot, "draft", "draft")
    made = await contacts(
        conn,
        running,
        {
            "pending": 3,
            "retry_scheduled": 1,
            "callback_scheduled": 1,
            "dialing": 1,
            "connected": 1,
            "done": 2,
            "exhausted": 1,
            "cancelled": 1,
        },
        first=1,
    )
    await contacts(conn, paused, {"pending": 2}, first=100)
    await contacts(conn, done, {"done": 5}, first=200)
    await contacts(conn, draft, {"pending": 1}, first=300)
    stuck = await attempt(conn, made["dialing"][0], running, "dialing", "-1 minute")
    talking = await attempt(conn, made["connected"][0], running, "connected", "10 minutes")
    # One static worker in rotation (4 slots), one registered worker that stopped heart-beating.
    await conn.execute("""INSERT INTO workers (name, host, port, capacity, source)
                          VALUES ('w1', '127.0.0.1', 57001, 4, 'config')""")
    await conn.execute("""INSERT INTO workers (name, host, port, capacity, source,
                                               last_heartbeat_at)
                          VALUES ('gone', '127.0.0.1', 57002, 10, 'api',
                                  now() - interval '1 hour')""")
    await conn.execute(
        """INSERT INTO worker_slots (attempt_id, worker)
                          VALUES ($1, 'w1'), ($2, 'w1')""",
        stuck,
        talking,
    )

    await metrics.refresh(conn, config, now)
    samples = scrape()
    r, p = str(running), str(paused)

    assert value(samples, "dialler_campaign_running", campaign=r) == 1
    assert value(samples, "dialler_campaign_running", campaign=p) == 0
    assert value(samples, "dialler_campaign_window_open", campaign=r) == 1
    assert value(samples, "dialler_campaign_window_open", campaign=p) == 0
    # Running, window open, contacts due, 2 in flight < 4 fleet slots, no dial for 10 min.
    assert value(samples, "dialler_campaign_stalled", campaign=r) == 1
    assert value(samples, "dialler_campaign_stalled", campaign=p) == 0
    last_dial = await conn.fetchval("SELECT last_dial_at FROM campaigns WHERE id = $1", running)
    assert value(
        samples, "dialler_campaign_last_dial_timestamp_seconds", campaign=r
    ) == pytest.approx(last_dial.timestamp())
    assert value(samples, "dialler_campaign_last_dial_timestamp_seconds", campaign=p) is None

    expected_contacts = {
        "pending": 3,
        "retry_scheduled": 1,
        "callback_scheduled": 1,
        "dialing": 1,
        "connected": 1,
        "wrapping": 0,
        "done": 2,
        "exhausted": 1,
        "cancelled": 1,
    }
    assert set(expected_contacts) == set(STATES)
    for state, n in expected_contacts.items():
        assert value(samples, "dialler_contacts", campaign=r, state=state) == n, state
    assert value(samples, "dialler_contacts", campaign=p, state="pending") == 2
    assert value(samples, "dialler_contacts", campaign=p, state="done") == 0
    # 3 pending and the callback are due; the retry is an hour away.
    assert value(samples, "dialler_campaign_contacts_due", campaign=r) == 4
    assert value(samples, "dialler_campaign_contacts_due", campaign=p) == 2

    assert value(samples, "dialler_calls_in_flight", campaign=r, state="dialing") == 1
    assert value(samples, "dialler_calls_in_flight", campaign=r, state="connected") == 1
    assert value(samples, "dialler_calls_in_flight", campaign=r, state="wrapping") == 0
    assert value(samples, "dialler_calls_in_flight", campaign=p, state="dialing") == 0
    assert value(samples, "dialler_stuck_attempts", campaign=r) == 1
    assert value(samples, "dialler_stuck_attempts", campaign=p) == 0

    assert value(samples, "dialler_fleet_slots", state="total") == 4
    assert value(samples, "dialler_fleet_slots", state="busy") == 2

    # Completed and draft campaigns have no series at all.
    for absent in (str(done), str(draft)):
        assert not [key for key in samples if ("campaign", absent) in key[1]]
    # No label value is a phone number (the contacts' and the caller ID's).
    for _, labels in samples:
        for label, label_value in labels:
            assert not E164.search(label_value), (label, label_value)
    assert not E164.search(generate_latest(metrics.REGISTRY).decode())


async def test_refresh_follows_dials_and_drops_campaigns_that_end(
    conn: Any, config: Config
) -> None:
    bot = await conn.fetchval("INSERT INTO bots (name, prompt) VALUES ('b', 'Hi') RETURNING id")
    running = await campaign(conn, bot, "running", "running", last_dial="10 minutes")
    await contacts(conn, running, {"pending": 1}, first=1)
    await conn.execute("""INSERT INTO workers (name, host, port, capacity, source)
                          VALUES ('w1', '127.0.0.1', 57001, 4, 'config')""")
    r = str(running)

    await metrics.refresh(conn, config)
    assert value(scrape(), "dialler_campaign_stalled", campaign=r) == 1

    # A dial just now: no longer stalled.
    await conn.execute("UPDATE campaigns SET last_dial_at = now() WHERE id = $1", running)
    await metrics.refresh(conn, config)
    assert value(scrape(), "dialler_campaign_stalled", campaign=r) == 0

    # Without fleet capacity there is no free slot: waiting is not a stall.
    await conn.execute("UPDATE campaigns SET last_dial_at = now() - interval '1 hour'")
    await conn.execute("UPDATE workers SET enabled = false")
    await metrics.refresh(conn, config)
    samples = scrape()
    assert value(samples, "dialler_campaign_stalled", campaign=r) == 0
    assert value(samples, "dialler_fleet_slots", state="total") == 0

    # Completed: every series of the campaign disappears.
    await conn.execute("UPDATE campaigns SET state = 'completed', completed_at = now()")
    await metrics.refresh(conn, config)
    assert not [key for key in scrape() if ("campaign", r) in key[1]]


async def test_refresh_reads_each_concern_once_for_every_running_campaign(
    conn: Any, config: Config
) -> None:
    # Each running campaign gets its own `campaign show` verdict, from statements shared by
    # all of them: 22 running campaigns cost the refresh no more statements than 2.
    bot = await conn.fetchval("INSERT INTO bots (name, prompt) VALUES ('b', 'Hi') RETURNING id")
    await conn.execute("""INSERT INTO workers (name, host, port, capacity, source)
                          VALUES ('w1', '127.0.0.1', 57001, 4, 'config')""")
    idle = await campaign(conn, bot, "idle", "running", last_dial="10 minutes")
    await contacts(conn, idle, {"pending": 2}, first=1)
    busy = await campaign(conn, bot, "busy", "running", last_dial="1 second")
    made = await contacts(conn, busy, {"pending": 1, "done": 1}, first=10)
    await conn.execute(
        """INSERT INTO attempts (id, contact_id, campaign_id, attempt_number, daemon_id, state,
                                 dialled_at, answered_at, ended_at, deadline_at, finalised_at,
                                 outcome, disposition, next_action)
           VALUES (gen_random_uuid(), $1, $2, 1, 'd1', 'final', now() - interval '1 minute',
                   now() - interval '50 seconds', now(), now(), now(), 'answered', 'abandoned',
                   'done')""",
        made["done"][0],
        busy,
    )

    counted = CountingConnection(conn)
    await metrics.refresh(counted, config)
    statements = len(counted.statements)
    samples = scrape()
    i, b = str(idle), str(busy)
    assert value(samples, "dialler_campaign_stalled", campaign=i) == 1  # due, no dial for 10 min
    assert value(samples, "dialler_campaign_stalled", campaign=b) == 0  # dialled a second ago
    assert value(samples, "dialler_campaign_contacts_due", campaign=i) == 2
    assert value(samples, "dialler_campaign_contacts_due", campaign=b) == 1
    assert value(samples, "dialler_campaign_abandon_rate", campaign=i) == 0
    assert value(samples, "dialler_campaign_abandon_rate", campaign=b) == 1

    for n in range(20):
        more = await campaign(conn, bot, f"more-{n}", "running", last_dial="1 second")
        await contacts(conn, more, {"pending": 1}, first=100 + n)
    counted = CountingConnection(conn)
    await metrics.refresh(counted, config)
    assert len(counted.statements) == statements
    samples = scrape()
    assert value(samples, "dialler_campaign_stalled", campaign=i) == 1
    assert value(samples, "dialler_campaign_contacts_due", campaign=str(more)) == 1
