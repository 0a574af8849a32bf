"""The attempt report's two cursors (`sql/report.sql`); the caller holds
`conn.transaction()` around each iteration."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from .conn import Connection
from .queries import load

__all__ = ["FinalAttempt", "contact_variables", "final_attempts"]

_Q = load("report.sql")


@dataclass(frozen=True, slots=True)
class FinalAttempt:
    """One attempt with a final result, with its contact's number and variables."""

    campaign_id: uuid.UUID
    contact_id: uuid.UUID
    attempt_id: uuid.UUID
    attempt_number: int
    phone_number: str
    caller_id: str | None
    carrier: str | None
    dialled_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    duration_ms: int
    sip_code: int | None
    outcome: str | None
    disposition: str | None
    worker: str | None
    next_action: str | None
    next_at: datetime | None
    asterisk: str | None  # the server that placed the call, by its config name
    variables: dict[str, str] | None


async def contact_variables(
    conn: Connection, campaign_id: uuid.UUID, prefetch: int = 2000
) -> AsyncIterator[dict[str, str]]:
    """Every contact's variables, in import order (keys in the CSV's column order)."""
    async for row in conn.cursor(_Q["contact_variables"], campaign_id, prefetch=prefetch):
        yield row["variables"] or {}


async def final_attempts(
    conn: Connection, campaign_id: uuid.UUID, prefetch: int = 2000
) -> AsyncIterator[FinalAttempt]:
    """The campaign's final attempts, oldest first."""
    async for row in conn.cursor(_Q["final_attempts"], campaign_id, prefetch=prefetch):
        yield FinalAttempt(
            campaign_id=row["campaign_id"],
            contact_id=row["contact_id"],
            attempt_id=row["attempt_id"],
            attempt_number=row["attempt_number"],
            phone_number=row["phone_number"],
            caller_id=row["caller_id"],
            carrier=row["carrier"],
            dialled_at=row["dialled_at"],
            answered_at=row["answered_at"],
            ended_at=row["ended_at"],
            duration_ms=row["duration_ms"],
            sip_code=row["sip_code"],
            outcome=row["outcome"],
            disposition=row["disposition"],
            worker=row["worker"],
            next_action=row["next_action"],
            next_at=row["next_at"],
            asterisk=row["asterisk"],
            variables=row["variables"],
        )
