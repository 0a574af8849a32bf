"""The database gauges' queries (`sql/metrics.sql`, docs/metrics.md): running and paused
campaigns only, one scan per concern, grouped by campaign."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from .conn import Connection
from .queries import load

__all__ = [
    "OpenAttempts",
    "WatchedCampaign",
    "fleet_busy",
    "open_attempts",
    "watched_campaigns",
]

_Q = load("metrics.sql")


@dataclass(frozen=True, slots=True)
class WatchedCampaign:
    """A running or paused campaign, with what its gauges need."""

    id: uuid.UUID
    state: str
    window_start: str
    window_end: str
    window_days: list[str]
    timezone: str
    last_dial_at: datetime | None


@dataclass(frozen=True, slots=True)
class OpenAttempts:
    """Open attempts of one campaign in one state; `stuck`: past their deadline."""

    campaign_id: uuid.UUID
    state: str
    n: int
    stuck: int


async def watched_campaigns(conn: Connection) -> list[WatchedCampaign]:
    """Running and paused campaigns."""
    return [
        WatchedCampaign(
            r["id"],
            r["state"],
            r["window_start"],
            r["window_end"],
            list(r["window_days"]),
            r["timezone"],
            r["last_dial_at"],
        )
        for r in await conn.fetch(_Q["watched_campaigns"])
    ]


async def open_attempts(conn: Connection) -> list[OpenAttempts]:
    """Open attempts per campaign and attempt state, of the watched campaigns."""
    return [
        OpenAttempts(r["campaign_id"], r["state"], r["n"], r["stuck"])
        for r in await conn.fetch(_Q["open_attempts"])
    ]


async def fleet_busy(conn: Connection) -> int:
    """Reserved slots, on whichever worker."""
    return int(await conn.fetchval(_Q["fleet_busy"]))
