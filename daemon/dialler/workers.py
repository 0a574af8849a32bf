"""The fleet's status for operators (`dialler fleet list`, `GET /v1/fleet`, the console's
fleet page): every bot worker with its capacity, slots in use and free, heartbeat age and
whether it gets new calls, and the totals against what the running campaigns ask for (the
guide's "concurrency set higher than available fleet capacity"). docs/fleet.md.

A static worker of the config that no daemon has written to the `workers` table yet is listed
as the daemon will see it once it starts (in rotation, nothing in use); nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from .config import Config
from .store import Connection
from .store import campaigns as campaigns_store
from .store import workers as store

__all__ = ["FleetStatus", "WorkerStatus", "fleet_status"]

Source = Literal["config", "api"]


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """One bot worker. `free` is 0 for a worker out of rotation: it gets no new calls."""

    name: str
    host: str
    port: int
    capacity: int
    in_use: int
    free: int
    heartbeat_age_seconds: float | None  # None: never heard from (static workers need not)
    in_rotation: bool
    source: Source


@dataclass(frozen=True, slots=True)
class FleetStatus:
    """The fleet: its workers by name, and totals over those in rotation (`in_use` over all:
    a worker that left rotation may still finish calls)."""

    workers: list[WorkerStatus]
    capacity: int
    in_use: int
    free: int
    running_concurrency: int  # the sum of the running campaigns' concurrency

    def to_json(self) -> dict[str, object]:
        """The JSON of `GET /v1/fleet` and `dialler fleet list --json`."""
        return {
            "capacity": self.capacity,
            "in_use": self.in_use,
            "free": self.free,
            "running_concurrency": self.running_concurrency,
            "workers": [
                {
                    "name": worker.name,
                    "host": worker.host,
                    "port": worker.port,
                    "capacity": worker.capacity,
                    "in_use": worker.in_use,
                    "free": worker.free,
                    "heartbeat_age_seconds": worker.heartbeat_age_seconds,
                    "in_rotation": worker.in_rotation,
                    "source": worker.source,
                }
                for worker in self.workers
            ],
        }


async def fleet_status(
    conn: Connection, config: Config, now: datetime | None = None
) -> FleetStatus:
    """The fleet's status now (`now`: the clock heartbeat ages are measured against)."""
    now = now or datetime.now(UTC)
    workers: dict[str, WorkerStatus] = {}
    for row in await store.fleet_listing(conn, config.fleet.heartbeat_timeout):
        age = None
        if row.last_heartbeat_at is not None:
            age = max(0.0, round((now - row.last_heartbeat_at).total_seconds(), 3))
        workers[row.name] = WorkerStatus(
            name=row.name,
            host=row.host,
            port=row.port,
            capacity=row.capacity,
            in_use=row.in_use,
            free=max(0, row.capacity - row.in_use) if row.in_rotation else 0,
            heartbeat_age_seconds=age,
            in_rotation=row.in_rotation,
            source="api" if row.source == "api" else "config",
        )
    for static in config.fleet.workers:
        if static.name not in workers:
            workers[static.name] = WorkerStatus(
                name=static.name,
                host=static.host,
                port=static.port,
                capacity=static.capacity,
                in_use=0,
                free=static.capacity,
                heartbeat_age_seconds=None,
                in_rotation=True,
                source="config",
            )
    listed = sorted(workers.values(), key=lambda worker: worker.name)
    return FleetStatus(
        workers=listed,
        capacity=sum(worker.capacity for worker in listed if worker.in_rotation),
        in_use=sum(worker.in_use for worker in listed),
        free=sum(worker.free for worker in listed),
        running_concurrency=await campaigns_store.running_concurrency(conn),
    )
