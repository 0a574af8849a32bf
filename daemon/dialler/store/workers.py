"""The fleet as operators see it: every worker with its slots in use (`sql/workers.sql`,
docs/fleet.md, "Listing the fleet")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .conn import Connection
from .queries import load

__all__ = ["WorkerRow", "fleet_listing"]

_Q = load("workers.sql")


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """One worker of the `workers` table with its reservations counted."""

    name: str
    host: str
    port: int
    capacity: int
    source: str  # config | api
    enabled: bool
    in_use: int  # slots reserved by open attempts
    last_heartbeat_at: datetime | None  # None: never heard from (a static worker)
    in_rotation: bool  # gets new calls (enabled, and alive if it registered over the API)


async def fleet_listing(conn: Connection, heartbeat_timeout: float) -> list[WorkerRow]:
    """Every worker, by name."""
    return [
        WorkerRow(
            name=row["name"],
            host=row["host"],
            port=row["port"],
            capacity=row["capacity"],
            source=row["source"],
            enabled=row["enabled"],
            in_use=row["in_use"],
            last_heartbeat_at=row["last_heartbeat_at"],
            in_rotation=row["in_rotation"],
        )
        for row in await conn.fetch(_Q["fleet_listing"], heartbeat_timeout)
    ]
