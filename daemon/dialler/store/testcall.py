"""`dialler test-call` in the database (`sql/testcall.sql`): one call outside any campaign,
recorded in a per-bot test campaign that is never scheduled."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from .conn import Connection
from .queries import load

__all__ = [
    "TestProgress",
    "bot_id",
    "test_attempt",
    "test_campaign",
    "test_contact",
    "test_progress",
]

_Q = load("testcall.sql")


@dataclass(frozen=True, slots=True)
class TestProgress:
    """Where a test call's attempt is now (the test-call stream polls it)."""

    __test__ = False  # not a pytest class, despite its name

    state: str
    worker: str | None
    attached_at: datetime | None
    outcome: str | None
    sip_code: int | None
    disposition: str | None
    notes: str | None
    duration_ms: int
    audio_frames_sent: int | None
    audio_frames_received: int | None


async def bot_id(conn: Connection, name: str) -> uuid.UUID | None:
    """The bot's id, None when no bot has that name."""
    found: uuid.UUID | None = await conn.fetchval(_Q["bot_by_name"], name)
    return found


async def test_campaign(
    conn: Connection, name: str, bot: uuid.UUID, ring_timeout: float
) -> uuid.UUID:
    """The bot's test-call campaign (created on first use; paused forever)."""
    campaign: uuid.UUID = await conn.fetchval(
        _Q["test_campaign"], name, bot, int(ring_timeout * 1000)
    )
    return campaign


async def test_contact(
    conn: Connection, campaign_id: uuid.UUID, phone: str, daemon_id: str, lease: float
) -> uuid.UUID | None:
    """The callee as a contact of the test campaign, leased; None while a test call to it is
    still in flight."""
    contact: uuid.UUID | None = await conn.fetchval(
        _Q["test_contact"], campaign_id, phone, daemon_id, lease
    )
    return contact


async def test_attempt(
    conn: Connection,
    attempt_id: uuid.UUID,
    contact_id: uuid.UUID,
    campaign_id: uuid.UUID,
    caller_id: str,
    carrier: str,
    asterisk: str,
    daemon_id: str,
    deadline: float,
) -> None:
    """The test call's attempt, `dialing`, due for reconciliation after `deadline` s."""
    await conn.execute(
        _Q["test_attempt"],
        attempt_id,
        contact_id,
        campaign_id,
        caller_id,
        carrier,
        asterisk,
        daemon_id,
        deadline,
    )


async def test_progress(conn: Connection, attempt_id: uuid.UUID) -> TestProgress | None:
    """The test call's attempt now; None if there is no such attempt."""
    r = await conn.fetchrow(_Q["test_progress"], attempt_id)
    if r is None:
        return None
    return TestProgress(
        r["state"],
        r["worker"],
        r["attached_at"],
        r["outcome"],
        r["sip_code"],
        r["disposition"],
        r["notes"],
        r["duration_ms"],
        r["audio_frames_sent"],
        r["audio_frames_received"],
    )
