"""Shared plumbing of CLI commands: config, a database connection, running a coroutine."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..cli import config_path
from ..config import Config, load_config
from ..db.pool import connect

T = TypeVar("T")


def config_of(args: argparse.Namespace) -> Config:
    return load_config(config_path(args))


def with_db(args: argparse.Namespace, body: Callable[[Any, Config], Awaitable[T]]) -> T:
    """Run `body(conn, config)` with one database connection, closed afterwards."""
    config = config_of(args)

    async def main() -> T:
        conn = await connect(config.database.dsn)
        try:
            return await body(conn, config)
        finally:
            await conn.close()

    return asyncio.run(main())
