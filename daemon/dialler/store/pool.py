"""asyncpg connections for the daemon and the CLI (the only place that opens them)."""

from __future__ import annotations

import json
from typing import cast

import asyncpg

from ..errors import OperationalError
from .conn import Connection, Pool

#: Exceptions that mean "the database is not reachable right now" (connection refused or
#: reset, server shutting down or starting): callers treat them as an outage, not as a bug.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


#: Session settings of every connection. `jit`: off — the daemon's statements are short
#: (OLTP); where the planner guesses a large row count (a per-campaign LIMIT is guessed at a
#: tenth of the table) PostgreSQL would JIT-compile the claim, ~40 ms a time at a million
#: contacts for a statement that runs in a few (docs/benchmarks.md, claim_bench).
SERVER_SETTINGS = {"jit": "off"}


async def _init_connection(conn: asyncpg.Connection) -> None:
    # json/jsonb columns come back as Python objects and go in from them.
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, min_size: int = 1, max_size: int = 10) -> Pool:
    """A connection pool; `OperationalError` (exit 1) when the database cannot be reached."""
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            timeout=10,
            server_settings=SERVER_SETTINGS,
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise OperationalError(f"cannot reach the database: {exc}") from None
    return cast(Pool, pool)


async def connect(dsn: str) -> Connection:
    """One connection (for CLI commands)."""
    try:
        conn = await asyncpg.connect(dsn, timeout=10, server_settings=SERVER_SETTINGS)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise OperationalError(f"cannot reach the database: {exc}") from None
    await _init_connection(conn)
    return cast(Connection, conn)
