"""Live activity, the stats grid and the call list of a campaign (`sql/stats.sql`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from .conn import Connection, Record
from .queries import load

__all__ = [
    "AttemptRates",
    "CallRow",
    "ContactCount",
    "OutcomeCount",
    "attempt_outcomes",
    "attempt_rates",
    "call_cursor",
    "call_page",
    "campaign_carriers",
    "contact_counts",
    "contact_in_campaign",
    "open_attempts_by_carrier",
]

_Q = load("stats.sql")


@dataclass(frozen=True, slots=True)
class ContactCount:
    """Contacts of a campaign in one state: how many, how many are due, retries left."""

    state: str
    n: int
    due: int
    retries_left: int | None


@dataclass(frozen=True, slots=True)
class AttemptRates:
    """Final attempts of a campaign, and how many of them were answered."""

    attempts: int
    answered: int


@dataclass(frozen=True, slots=True)
class CallRow:
    """One contact of the call list with its last attempt's result (NULLs: never dialled)."""

    id: uuid.UUID
    phone_number: str
    state: str
    attempts_used: int
    next_due_at: datetime | None
    line_number: int | None
    outcome: str | None
    sip_code: int | None
    disposition: str | None
    next_action: str | None
    attempt_number: int | None
    #: When the last attempt ended (else when it was dialled, else queued); None: never.
    last_attempt_at: datetime | None = None
    #: Why the contact was cancelled without a call (`no_common_window`); None: no reason
    #: recorded.
    state_reason: str | None = None


async def contact_counts(
    conn: Connection, campaign_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[ContactCount]]:
    """Each campaign's contacts by state (states without contacts, campaigns without any,
    are absent)."""
    counts: dict[uuid.UUID, list[ContactCount]] = {}
    for row in await conn.fetch(_Q["contact_counts"], list(campaign_ids)):
        counts.setdefault(row["campaign_id"], []).append(
            ContactCount(row["state"], row["n"], row["due"], row["retries_left"])
        )
    return counts


async def attempt_rates(conn: Connection, campaign_id: uuid.UUID) -> AttemptRates:
    """How many final attempts the campaign has, and how many were answered."""
    row = await conn.fetchrow(_Q["attempt_rates"], campaign_id)
    assert row is not None  # an aggregate always gives one row
    return AttemptRates(attempts=row["attempts"], answered=row["answered"])


async def campaign_carriers(
    conn: Connection, campaign_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[str]]:
    """The carriers of each campaign's enabled caller IDs, each once (absent: none)."""
    carriers: dict[uuid.UUID, list[str]] = {}
    for row in await conn.fetch(_Q["campaign_carriers"], list(campaign_ids)):
        carriers.setdefault(row["campaign_id"], []).append(row["carrier"])
    return carriers


async def open_attempts_by_carrier(conn: Connection) -> dict[str, int]:
    """Attempts not yet final, by carrier (every campaign's)."""
    return {row["carrier"]: row["n"] for row in await conn.fetch(_Q["open_attempts_by_carrier"])}


@dataclass(frozen=True, slots=True)
class OutcomeCount:
    """Final attempts of a campaign with one outcome; of those, how many ended since the
    cut-off asked for, and how many of these were abandoned (no worker took the call)."""

    outcome: str
    n: int
    recent: int
    abandoned: int


async def attempt_outcomes(
    conn: Connection, campaign_ids: Sequence[uuid.UUID], since: datetime
) -> dict[uuid.UUID, list[OutcomeCount]]:
    """Each campaign's final attempts by outcome (outcomes without attempts, campaigns
    without any, are absent)."""
    outcomes: dict[uuid.UUID, list[OutcomeCount]] = {}
    for row in await conn.fetch(_Q["attempt_outcomes"], list(campaign_ids), since):
        outcomes.setdefault(row["campaign_id"], []).append(
            OutcomeCount(row["outcome"], row["n"], row["recent"], row["abandoned"])
        )
    return outcomes


async def call_page(
    conn: Connection,
    campaign_id: uuid.UUID,
    *,
    state: str | None,
    after: uuid.UUID | None,
    limit: int | None,
) -> list[CallRow]:
    """A page of the call list in its order: after the contact `after` (None: from the
    start), only contacts in `state` (None: all), at most `limit` (None: all)."""
    rows = await conn.fetch(_Q["call_page"], campaign_id, after, state, limit)
    return [_call_row(row) for row in rows]


async def call_cursor(
    conn: Connection, campaign_id: uuid.UUID, prefetch: int = 1000
) -> AsyncIterator[CallRow]:
    """The whole call list in its order (`call_page` without a page), from a cursor: the
    caller holds `conn.transaction()` around the whole iteration."""
    async for row in conn.cursor(_Q["call_page"], campaign_id, None, None, None, prefetch=prefetch):
        yield _call_row(row)


async def contact_in_campaign(
    conn: Connection, campaign_id: uuid.UUID, contact_id: uuid.UUID
) -> bool:
    """Whether the contact belongs to the campaign."""
    found: bool = await conn.fetchval(_Q["contact_in_campaign"], campaign_id, contact_id)
    return found


def _call_row(row: Record) -> CallRow:
    return CallRow(
        id=row["id"],
        phone_number=row["phone_number"],
        state=row["state"],
        attempts_used=row["attempts_used"],
        next_due_at=row["next_due_at"],
        line_number=row["line_number"],
        outcome=row["outcome"],
        sip_code=row["sip_code"],
        disposition=row["disposition"],
        next_action=row["next_action"],
        attempt_number=row["attempt_number"],
        last_attempt_at=row["last_attempt_at"],
        state_reason=row["state_reason"],
    )
