"""The fleet in the database: workers, and the slot each open attempt holds on one
(`sql/fleet.sql`, docs/fleet.md)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import asyncpg

from ..domain.states import Disposition
from ..errors import OperationalError
from .conn import Connection, Pool
from .pool import SERVER_SETTINGS, _init_connection
from .queries import load

__all__ = [
    "Attach",
    "CallContext",
    "ConfigWorker",
    "Slot",
    "WorkerFree",
    "attach",
    "attach_late",
    "attach_pool",
    "call_context",
    "call_worker",
    "config_workers",
    "disable_unlisted_config_workers",
    "fleet_capacity",
    "fleet_free",
    "heartbeat_worker",
    "leave_rotation",
    "lock_fleet",
    "locked_fleet_free",
    "mark_abandoned",
    "mark_attached",
    "mark_socket_failed",
    "move_slot",
    "record_health",
    "register_worker",
    "release_slot",
    "reserve_slots",
    "slot_of_attempt",
    "upsert_config_worker",
]

_Q = load("fleet.sql")


@dataclass(frozen=True, slots=True)
class WorkerFree:
    """A worker in rotation with at least one free slot."""

    name: str
    free: int
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Slot:
    """The slot reserved for an attempt, and its worker's state now."""

    worker: str
    host: str
    port: int
    enabled: bool
    alive: bool


@dataclass(frozen=True, slots=True)
class Attach:
    """What `attach` decided for an answered call."""

    worker: str | None  # None: abandoned
    host: str | None
    port: int | None
    reserved: str | None  # the worker the slot was on before (None: no slot)
    waited: float | None  # seconds since the answer, when the answer was recorded first
    abandoned_campaign: uuid.UUID | None  # the campaign of a call abandoned now
    #: The attempt row was written too; False: it was held (the engine recording the
    #: answer), and `attach_late` must write it once Asterisk has its answer.
    written: bool = True

    @property
    def moved(self) -> bool:
        """The call went to another worker than the one reserved at claim."""
        return self.worker is not None and self.worker != self.reserved


@dataclass(frozen=True, slots=True)
class ConfigWorker:
    """A static worker in rotation: what the health check probes."""

    name: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class CallContext:
    """What a worker needs to take a call: its campaign, bot, prompt and contact variables."""

    attempt_id: uuid.UUID
    campaign_id: uuid.UUID
    caller_id: str | None
    state: str
    campaign: str
    bot: str | None
    prompt: str | None
    pipeline: Mapping[str, Any] | None
    variables: Mapping[str, Any] | None


async def upsert_config_worker(
    conn: Connection, name: str, host: str, port: int, capacity: int
) -> None:
    """A static worker of the config file into the fleet (stays `config` if it registered)."""
    await conn.execute(_Q["upsert_config_worker"], name, host, port, capacity)


async def disable_unlisted_config_workers(conn: Connection, listed: Sequence[str]) -> None:
    """Static workers no longer in the config leave rotation (their rows stay)."""
    await conn.execute(_Q["disable_unlisted_config_workers"], list(listed))


async def register_worker(conn: Connection, name: str, host: str, port: int, capacity: int) -> None:
    """A worker registering over the API (`POST /v1/workers`): in rotation, heart-beaten now."""
    await conn.execute(_Q["register_worker"], name, host, port, capacity)


async def heartbeat_worker(conn: Connection, name: str) -> bool:
    """A registered worker's heartbeat; False when no worker has that name."""
    return await conn.fetchval(_Q["heartbeat_worker"], name) is not None


async def leave_rotation(conn: Connection, name: str) -> bool:
    """A stopping worker leaves rotation now; False when no worker has that name."""
    return await conn.fetchval(_Q["leave_rotation"], name) is not None


async def config_workers(conn: Connection) -> list[ConfigWorker]:
    """The static workers in rotation, for the daemons' health check."""
    return [
        ConfigWorker(r["name"], r["host"], r["port"])
        for r in await conn.fetch(_Q["config_workers"])
    ]


async def record_health(conn: Connection, up: Sequence[str], down: Sequence[str]) -> None:
    """The health check's verdict: static workers `up` are heard from now, `down` leave
    rotation until a later check (or a heartbeat) finds them up."""
    await conn.execute(_Q["record_health"], list(up), list(down))


async def attach(conn: Connection, attempt_id: uuid.UUID, heartbeat_timeout: float) -> Attach:
    """The FastAGI attach in one statement: confirm the slot reserved at claim, or move it to
    the emptiest other worker in rotation, or mark the call abandoned (sql/fleet.sql)."""
    row = await conn.fetchrow(_Q["attach"], attempt_id, heartbeat_timeout, Disposition.ABANDONED)
    assert row is not None  # the statement always returns one row
    return Attach(
        row["worker"],
        row["host"],
        row["port"],
        row["reserved"],
        row["waited"],
        row["abandoned_campaign"],
        row["written"],
    )


async def attach_late(conn: Connection, attempt_id: uuid.UUID) -> float | None:
    """The attempt row's part of an attach that found it held (`Attach.written` False): its
    worker and attach time from its slot. Seconds since the answer, when recorded first."""
    waited: float | None = await conn.fetchval(_Q["attach_late"], attempt_id)
    return waited


#: An attempt id no attempt has: the warm-up statements below match no row.
_NO_ATTEMPT = uuid.UUID(int=0)


async def _init_attach_connection(conn: asyncpg.Connection) -> None:
    """Each attach connection runs its statements once at start (matching no row): the first
    answers then find them planned and cached, and the server process's catalog caches
    filled — on a fresh connection the first attach took ~90 ms on a busy lab."""
    await _init_connection(conn)
    await conn.fetchrow(_Q["attach"], _NO_ATTEMPT, 1.0, Disposition.ABANDONED)
    await conn.fetchval(_Q["attach_late"], _NO_ATTEMPT)
    await conn.fetchval(_Q["mark_abandoned"], _NO_ATTEMPT, "")
    await conn.fetchval(_Q["mark_socket_failed"], _NO_ATTEMPT, "", 1.0)


async def attach_pool(dsn: str, size: int) -> Pool:
    """The FastAGI attach's own pool, `size` connections opened now. Its commits do not wait
    for the WAL flush (`synchronous_commit = off`): an attach answers a callee who is waiting,
    and what it writes (the slot confirmed or moved, `attached_at`, an `abandoned` disposition)
    may be lost only in a database crash within a fraction of a second of it — the call is
    then reconciled like any call in flight at a crash. `OperationalError` when unreachable."""
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=size,
            max_size=size,
            init=_init_attach_connection,
            timeout=10,
            max_inactive_connection_lifetime=0,  # warm connections stay open
            # Named, so that its sessions stand out in pg_stat_activity.
            server_settings={
                **SERVER_SETTINGS,
                "synchronous_commit": "off",
                "application_name": "dialler-attach",
            },
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise OperationalError(f"cannot reach the database: {exc}") from None
    return cast(Pool, pool)


async def lock_fleet(conn: Connection) -> None:
    """Take the fleet lock for the rest of the caller's transaction (count free, then
    reserve, atomically across daemons)."""
    await conn.execute(_Q["lock_fleet"])


async def fleet_free(conn: Connection, heartbeat_timeout: float) -> list[WorkerFree]:
    """Workers in rotation with free slots, the emptiest first (no lock: a snapshot)."""
    return [
        WorkerFree(r["name"], r["free"], r["host"], r["port"])
        for r in await conn.fetch(_Q["fleet_free"], heartbeat_timeout)
    ]


async def locked_fleet_free(conn: Connection, heartbeat_timeout: float) -> list[WorkerFree]:
    """The one "lock the fleet, then count" sequence (claims, test calls, attach): the free
    workers, stable until the caller's transaction ends, so slots reserved from this list
    never exceed a worker's capacity."""
    await lock_fleet(conn)
    return await fleet_free(conn, heartbeat_timeout)


async def fleet_capacity(conn: Connection, heartbeat_timeout: float) -> int:
    """Total slots of the workers in rotation."""
    return int(await conn.fetchval(_Q["fleet_capacity"], heartbeat_timeout))


async def reserve_slots(
    conn: Connection, attempt_ids: Sequence[uuid.UUID], workers: Sequence[str]
) -> None:
    """One slot per attempt, on the worker at the same position."""
    await conn.execute(_Q["reserve_slots"], list(attempt_ids), list(workers))


async def slot_of_attempt(
    conn: Connection, attempt_id: uuid.UUID, heartbeat_timeout: float
) -> Slot | None:
    """The slot reserved for the attempt at dial time, None if it has none."""
    row = await conn.fetchrow(_Q["slot_of_attempt"], attempt_id, heartbeat_timeout)
    if row is None:
        return None
    return Slot(row["worker"], row["host"], row["port"], row["enabled"], row["alive"])


async def move_slot(conn: Connection, attempt_id: uuid.UUID, worker: str) -> None:
    """Move the attempt's slot to another worker."""
    await conn.execute(_Q["move_slot"], attempt_id, worker)


async def mark_attached(conn: Connection, attempt_id: uuid.UUID) -> float | None:
    """The call was handed to its slot's worker; returns seconds since the answer when the
    answer was recorded first (else None: `mark_answered` reports the latency)."""
    waited: float | None = await conn.fetchval(_Q["mark_attached"], attempt_id)
    return waited


async def mark_abandoned(conn: Connection, attempt_id: uuid.UUID, notes: str) -> uuid.UUID | None:
    """No worker can take the answered call; returns its campaign (None if already final or
    its worker's result is in)."""
    campaign: uuid.UUID | None = await conn.fetchval(_Q["mark_abandoned"], attempt_id, notes)
    return campaign


async def mark_socket_failed(
    conn: Connection, attempt_id: uuid.UUID, notes: str, within: float
) -> uuid.UUID | None:
    """The call's AudioSocket connection failed: `abandoned` when that came within `within`
    seconds of the attach (refused at once), else left to its worker's result or the result
    timeout (it broke off mid-call). Returns its campaign when marked."""
    campaign: uuid.UUID | None = await conn.fetchval(
        _Q["mark_socket_failed"], attempt_id, notes, within
    )
    return campaign


async def release_slot(conn: Connection, attempt_id: uuid.UUID) -> None:
    """The attempt is final: its slot is free again."""
    await conn.execute(_Q["release_slot"], attempt_id)


@dataclass(frozen=True, slots=True)
class CallWorker:
    """An attempt's worker: the one it was attached to, None while not attached."""

    worker: str | None


async def call_worker(conn: Connection, attempt_id: uuid.UUID) -> CallWorker | None:
    """The worker attempt `attempt_id` was attached to; None when there is no such attempt."""
    row = await conn.fetchrow(_Q["call_worker"], attempt_id)
    return None if row is None else CallWorker(row["worker"])


async def call_context(conn: Connection, attempt_id: uuid.UUID) -> CallContext | None:
    """The call's context for its worker (`GET /v1/calls/{id}/context`); None if unknown."""
    row = await conn.fetchrow(_Q["call_context"], attempt_id)
    if row is None:
        return None
    return CallContext(
        row["attempt_id"],
        row["campaign_id"],
        row["caller_id"],
        row["state"],
        row["campaign"],
        row["bot"],
        row["prompt"],
        row["pipeline"],
        row["variables"],
    )
