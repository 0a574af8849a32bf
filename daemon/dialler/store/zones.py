"""Zone keys of contacts: the callee's own calling window (`sql/zones.sql`).

Migration 0004 gave `campaigns.window_per_contact`, `contacts.zone_key` (set at import and by
`contacts add`, through `store.contacts`), `contacts.state_reason` and `contacts_zone_due_idx`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from .conn import Connection
from .queries import load

__all__ = [
    "CampaignZoneWindow",
    "ZoneCount",
    "ZoneDue",
    "campaign_zone_keys",
    "campaign_zone_window",
    "cancel_never_open",
    "due_by_zone_key",
    "waiting_zone_keys",
]

_Q = load("zones.sql")


@dataclass(frozen=True, slots=True)
class CampaignZoneWindow:
    """The window columns of a campaign, as written, and whether it is read per contact."""

    window_start: str
    window_end: str
    window_days: tuple[str, ...]
    timezone: str
    per_contact: bool


@dataclass(frozen=True, slots=True)
class ZoneCount:
    zone_key: str
    n: int


@dataclass(frozen=True, slots=True)
class ZoneDue:
    """A zone key's waiting contacts, and how many of them are due now."""

    zone_key: str
    waiting: int
    due: int


async def campaign_zone_window(
    conn: Connection, campaign_id: uuid.UUID
) -> CampaignZoneWindow | None:
    """The campaign's window columns and `window_per_contact`, or None (no such campaign)."""
    row = await conn.fetchrow(_Q["campaign_zone_window"], campaign_id)
    if row is None:
        return None
    return CampaignZoneWindow(
        window_start=row["window_start"],
        window_end=row["window_end"],
        window_days=tuple(row["window_days"]),
        timezone=row["timezone"],
        per_contact=row["window_per_contact"],
    )


async def campaign_zone_keys(conn: Connection, campaign_id: uuid.UUID) -> list[ZoneCount]:
    """The zone keys of the campaign's waiting contacts, with their counts."""
    rows = await conn.fetch(_Q["campaign_zone_keys"], campaign_id)
    return [ZoneCount(zone_key=row["zone_key"], n=row["n"]) for row in rows]


async def waiting_zone_keys(conn: Connection, campaign_id: uuid.UUID) -> list[str]:
    """The distinct zone keys of the campaign's waiting contacts (a loose index scan)."""
    rows = await conn.fetch(_Q["waiting_zone_keys"], campaign_id)
    return [row["zone_key"] for row in rows]


async def due_by_zone_key(
    conn: Connection, campaign_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[ZoneDue]]:
    """Waiting and due-now contacts of each campaign, per zone key (absent: none waiting)."""
    tallies: dict[uuid.UUID, list[ZoneDue]] = {}
    for row in await conn.fetch(_Q["due_by_zone_key"], list(campaign_ids)):
        tallies.setdefault(row["campaign_id"], []).append(
            ZoneDue(row["zone_key"], row["waiting"], row["due"])
        )
    return tallies


async def cancel_never_open(
    conn: Connection, campaign_id: uuid.UUID, zone_keys: Sequence[str]
) -> list[ZoneCount]:
    """Cancel the waiting contacts with these keys (`state_reason` `no_common_window`); how
    many per key."""
    if not zone_keys:
        return []
    rows = await conn.fetch(_Q["cancel_never_open"], campaign_id, list(zone_keys))
    return [ZoneCount(zone_key=row["zone_key"], n=row["n"]) for row in rows]
