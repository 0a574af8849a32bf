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
    "CampaignHeader",
    "ContactCount",
    "attempt_rates",
    "call_list",
    "campaign_carriers",
    "campaign_header",
    "contact_counts",
    "open_attempts_by_carrier",
]

_Q = load("stats.sql")


@dataclass(frozen=True, slots=True)
class CampaignHeader:
    """A campaign's settings and lifecycle as `campaign show` reads them (durations in ms)."""

    id: uuid.UUID
    name: str
    state: str
    concurrency: int
    window_start: str
    window_end: str
    window_days: tuple[str, ...]
    timezone: str
    always_on: bool
    retry_max_attempts: int
    retry_delay_ms: int
    retry_on_system: tuple[str, ...]
    retry_on_custom: tuple[str, ...]
    redial_stop_after_ms: int | None
    redial_short_connect_ms: int | None
    ring_timeout_ms: int
    cancelled_at: datetime | None
    started_at: datetime | None
    last_dial_at: datetime | None
    completed_at: datetime | None


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


async def campaign_header(conn: Connection, campaign_id: uuid.UUID) -> CampaignHeader | None:
    """The campaign's settings and lifecycle; None when there is no such campaign."""
    row = await conn.fetchrow(_Q["campaign_header"], campaign_id)
    if row is None:
        return None
    return CampaignHeader(
        id=row["id"],
        name=row["name"],
        state=row["state"],
        concurrency=row["concurrency"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        window_days=tuple(row["window_days"]),
        timezone=row["timezone"],
        always_on=row["always_on"],
        retry_max_attempts=row["retry_max_attempts"],
        retry_delay_ms=row["retry_delay_ms"],
        retry_on_system=tuple(row["retry_on_system"]),
        retry_on_custom=tuple(row["retry_on_custom"]),
        redial_stop_after_ms=row["redial_stop_after_ms"],
        redial_short_connect_ms=row["redial_short_connect_ms"],
        ring_timeout_ms=row["ring_timeout_ms"],
        cancelled_at=row["cancelled_at"],
        started_at=row["started_at"],
        last_dial_at=row["last_dial_at"],
        completed_at=row["completed_at"],
    )


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
