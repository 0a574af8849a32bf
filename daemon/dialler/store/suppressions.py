"""The do-not-call list (`sql/suppressions.sql`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from .conn import Connection
from .queries import load

__all__ = [
    "SuppressedContact",
    "Suppression",
    "SuppressionAdded",
    "add_suppression",
    "cancel_suppressed_contacts",
    "is_suppressed",
    "list_suppressions",
    "remove_suppression",
]

_Q = load("suppressions.sql")


@dataclass(frozen=True, slots=True)
class Suppression:
    phone_number: str
    reason: str | None
    added_at: datetime


@dataclass(frozen=True, slots=True)
class SuppressionAdded:
    phone_number: str
    reason: str | None
    added_at: datetime
    #: False when the number was listed already.
    inserted: bool


@dataclass(frozen=True, slots=True)
class SuppressedContact:
    """A waiting contact cancelled because its number was listed."""

    id: uuid.UUID
    campaign_id: uuid.UUID


async def add_suppression(conn: Connection, phone: str, reason: str | None) -> SuppressionAdded:
    """List `phone` (E.164); a `reason` replaces the old one, None keeps it."""
    row = await conn.fetchrow(_Q["add_suppression"], phone, reason)
    assert row is not None  # INSERT ... ON CONFLICT DO UPDATE always returns the row
    return SuppressionAdded(
        phone_number=row["phone_number"],
        reason=row["reason"],
        added_at=row["added_at"],
        inserted=row["inserted"],
    )


async def cancel_suppressed_contacts(conn: Connection, phone: str) -> list[SuppressedContact]:
    """Cancel the number's waiting contacts in every campaign."""
    return [
        SuppressedContact(id=row["id"], campaign_id=row["campaign_id"])
        for row in await conn.fetch(_Q["cancel_suppressed_contacts"], phone)
    ]


async def remove_suppression(conn: Connection, phone: str) -> str | None:
    """Take `phone` off the list; it, or None when it was not listed."""
    removed: str | None = await conn.fetchval(_Q["remove_suppression"], phone)
    return removed


async def list_suppressions(conn: Connection) -> list[Suppression]:
    """Every entry, oldest first."""
    return [
        Suppression(
            phone_number=row["phone_number"], reason=row["reason"], added_at=row["added_at"]
        )
        for row in await conn.fetch(_Q["list_suppressions"])
    ]


async def is_suppressed(conn: Connection, phone: str) -> bool:
    """Is `phone` (E.164) on the do-not-call list?"""
    return bool(await conn.fetchval(_Q["is_suppressed"], phone))
