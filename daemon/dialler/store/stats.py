"""Live activity, the stats grid and the call list of a campaign (`sql/stats.sql`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from .conn import Connection
from .queries import load

__all__ = [
    "AttemptRates",
    "CallRow",
    "ContactCount",
    "attempt_rates",
    "call_list",
    "campaign_carriers",
    "contact_counts",
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


async def contact_counts(
    conn: Connection, campaign_id: uuid.UUID, max_attempts: int
) -> list[ContactCount]:
    """The campaign's contacts by state (states without contacts are absent)."""
    return [
        ContactCount(
            state=row["state"], n=row["n"], due=row["due"], retries_left=row["retries_left"]
        )
        for row in await conn.fetch(_Q["contact_counts"], campaign_id, max_attempts)
    ]


async def attempt_rates(conn: Connection, campaign_id: uuid.UUID) -> AttemptRates:
    """How many final attempts the campaign has, and how many were answered."""
    row = await conn.fetchrow(_Q["attempt_rates"], campaign_id)
    assert row is not None  # an aggregate always gives one row
    return AttemptRates(attempts=row["attempts"], answered=row["answered"])


async def campaign_carriers(conn: Connection, campaign_id: uuid.UUID) -> list[str]:
    """The carriers of the campaign's enabled caller IDs, each once."""
    return [
        row["carrier"] for row in await conn.fetch(_Q["campaign_carrier_capacity"], campaign_id)
    ]


async def open_attempts_by_carrier(conn: Connection) -> dict[str, int]:
    """Attempts not yet final, by carrier (every campaign's)."""
    return {row["carrier"]: row["n"] for row in await conn.fetch(_Q["open_attempts_by_carrier"])}


async def call_list(
    conn: Connection, campaign_id: uuid.UUID, prefetch: int = 1000
) -> AsyncIterator[CallRow]:
    """The call list in file order, from a cursor: the caller holds `conn.transaction()`
    around the whole iteration."""
    async for row in conn.cursor(_Q["call_list"], campaign_id, prefetch=prefetch):
        yield CallRow(
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
        )
