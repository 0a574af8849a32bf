"""asyncpg connections for the daemon and the CLI."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from ..errors import OperationalError


async def _init_connection(conn: Any) -> None:
    # json/jsonb columns come back as Python objects and go in from them.
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads,
                                  schema="pg_catalog")


async def create_pool(dsn: str, min_size: int = 1, max_size: int = 10) -> Any:
    """A connection pool; `OperationalError` (exit 1) when the database cannot be reached."""
    try:
        return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size,
                                         init=_init_connection, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise OperationalError(f"cannot reach the database: {exc}") from None


async def connect(dsn: str) -> Any:
    """One connection (for CLI commands)."""
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise OperationalError(f"cannot reach the database: {exc}") from None
    await _init_connection(conn)
    return conn
