"""The facts behind `dialler triage` (`sql/triage.sql`): read-only, each bounded by one
campaign. `snapshot` opens the one repeatable-read transaction they are read in."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from .conn import Connection
from .queries import load

__all__ = [
    "BotTestCall",
    "FinishingDecision",
    "OpenAttempt",
    "OverdueAttempt",
    "PoolNumber",
    "RecentAttempt",
    "WaitingContacts",
    "finishing_decisions",
    "last_test_call",
    "live_daemons",
    "open_attempts",
    "overdue_attempt",
    "pool",
    "recent_attempts",
    "snapshot",
    "variable_coverage",
    "waiting_contacts",
]

_Q = load("triage.sql")


@dataclass(frozen=True, slots=True)
class PoolNumber:
    """A caller ID of the campaign's pool, as the daemon sees it."""

    number: str
    enabled: bool
    carrier: str


@dataclass(frozen=True, slots=True)
class RecentAttempt:
    """A final attempt (never a requeued one), without its phone number."""

    id: uuid.UUID
    carrier: str | None
    sip_code: int | None
    outcome: str | None
    disposition: str | None
    dialled_at: datetime  # queued_at when it was never dialled
    worker: str | None
    attached_at: datetime | None


@dataclass(frozen=True, slots=True)
class OpenAttempt:
    """An attempt not final yet."""

    id: uuid.UUID
    state: str  # dialing | connected | wrapping
    dialled_at: datetime
    ended_at: datetime | None
    deadline_at: datetime


@dataclass(frozen=True, slots=True)
class FinishingDecision:
    """Finished contacts by the disposition and decision of the attempt that ended them, with
    the most recent such attempt."""

    disposition: str | None
    next_action: str  # done | exhausted | cancelled
    n: int
    latest: uuid.UUID
    latest_dialled_at: datetime


@dataclass(frozen=True, slots=True)
class WaitingContacts:
    """Contacts in one waiting state: due now, still waiting (and the next due), overdue by
    more than the stall threshold (and the oldest due time among them)."""

    state: str
    n: int
    due: int
    waiting: int
    next_due_at: datetime | None
    overdue: int
    oldest_overdue_at: datetime | None


@dataclass(frozen=True, slots=True)
class OverdueAttempt:
    """The last attempt of a contact overdue for its retry or callback."""

    id: uuid.UUID
    dialled_at: datetime


@dataclass(frozen=True, slots=True)
class BotTestCall:
    """A bot's latest `dialler test-call` attempt."""

    id: uuid.UUID
    state: str
    dialled_at: datetime
    outcome: str | None
    disposition: str | None
    sip_code: int | None
    worker: str | None
    attached_at: datetime | None


@asynccontextmanager
async def snapshot(conn: Connection) -> AsyncIterator[None]:
    """A read-only repeatable-read transaction, unless the caller holds one already (then
    its own): facts read inside describe one moment."""
    if conn.is_in_transaction():
        yield
        return
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        yield


async def pool(conn: Connection, campaign_id: uuid.UUID) -> list[PoolNumber]:
    """The campaign's caller IDs with their carrier, by number."""
    return [
        PoolNumber(number=row["number"], enabled=row["enabled"], carrier=row["carrier"])
        for row in await conn.fetch(_Q["pool"], campaign_id)
    ]


async def recent_attempts(
    conn: Connection, campaign_id: uuid.UUID, limit: int
) -> list[RecentAttempt]:
    """The newest `limit` final attempts (requeued ones left out), newest first."""
    return [
        RecentAttempt(
            id=row["id"],
            carrier=row["carrier"],
            sip_code=row["sip_code"],
            outcome=row["outcome"],
            disposition=row["disposition"],
            dialled_at=row["dialled_at"],
            worker=row["worker"],
            attached_at=row["attached_at"],
        )
        for row in await conn.fetch(_Q["recent_attempts"], campaign_id, limit)
    ]


async def open_attempts(conn: Connection, campaign_id: uuid.UUID) -> list[OpenAttempt]:
    """Every attempt of the campaign not final yet, oldest dial first."""
    return [
        OpenAttempt(
            id=row["id"],
            state=row["state"],
            dialled_at=row["dialled_at"],
            ended_at=row["ended_at"],
            deadline_at=row["deadline_at"],
        )
        for row in await conn.fetch(_Q["open_attempts"], campaign_id)
    ]


async def finishing_decisions(conn: Connection, campaign_id: uuid.UUID) -> list[FinishingDecision]:
    """How the campaign's finished contacts ended, the most frequent first."""
    return [
        FinishingDecision(
            disposition=row["disposition"],
            next_action=row["next_action"],
            n=row["n"],
            latest=row["latest"],
            latest_dialled_at=row["latest_dialled_at"],
        )
        for row in await conn.fetch(_Q["finishing_decisions"], campaign_id)
    ]


async def waiting_contacts(
    conn: Connection, campaign_id: uuid.UUID, now: datetime, overdue_before: datetime
) -> list[WaitingContacts]:
    """The campaign's waiting contacts by state (states without contacts are absent)."""
    return [
        WaitingContacts(
            state=row["state"],
            n=row["n"],
            due=row["due"],
            waiting=row["waiting"],
            next_due_at=row["next_due_at"],
            overdue=row["overdue"],
            oldest_overdue_at=row["oldest_overdue_at"],
        )
        for row in await conn.fetch(_Q["waiting_contacts"], campaign_id, now, overdue_before)
    ]


async def overdue_attempt(
    conn: Connection, campaign_id: uuid.UUID, state: str, overdue_before: datetime
) -> OverdueAttempt | None:
    """The last attempt of the contact in `state` due the longest before `overdue_before`."""
    row = await conn.fetchrow(_Q["overdue_attempt"], campaign_id, state, overdue_before)
    if row is None:
        return None
    return OverdueAttempt(id=row["id"], dialled_at=row["dialled_at"])


async def variable_coverage(
    conn: Connection, campaign_id: uuid.UUID, names: Sequence[str]
) -> dict[str, int]:
    """For each variable of `names`: how many of the campaign's contacts have no value."""
    return {
        row["name"]: row["lacking"]
        for row in await conn.fetch(_Q["variable_coverage"], campaign_id, list(names))
    }


async def live_daemons(conn: Connection, since: datetime) -> int:
    """How many daemons have heart-beaten since `since`."""
    row = await conn.fetchrow(_Q["live_daemons"], since)
    assert row is not None  # an aggregate always gives one row
    n: int = row["n"]
    return n


async def last_test_call(conn: Connection, bot_name: str) -> BotTestCall | None:
    """The bot's latest test call; None when it has had none."""
    row = await conn.fetchrow(_Q["last_test_call"], bot_name)
    if row is None:
        return None
    return BotTestCall(
        id=row["id"],
        state=row["state"],
        dialled_at=row["dialled_at"],
        outcome=row["outcome"],
        disposition=row["disposition"],
        sip_code=row["sip_code"],
        worker=row["worker"],
        attached_at=row["attached_at"],
    )
