"""Shared plumbing of CLI commands: config, a database connection, running a coroutine."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from ..config import Config, load_config
from ..store import Connection, connect
from .paths import config_path

T = TypeVar("T")


def config_of(args: argparse.Namespace) -> Config:
    return load_config(config_path(args))


def with_db(args: argparse.Namespace, body: Callable[[Connection, Config], Awaitable[T]]) -> T:
    """Run `body(conn, config)` with one database connection, closed afterwards."""
    config = config_of(args)

    async def main() -> T:
        conn = await connect(config.database.dsn)
        try:
            return await body(conn, config)
        finally:
            await conn.close()

    return asyncio.run(main())


def display_time(moment: datetime | None) -> str:
    """`moment` as RFC 3339 UTC to the second (``2024-11-04T09:00:00Z``); ``-`` for None."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, the header first (no trailing spaces)."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]
    return "\n".join(lines)
