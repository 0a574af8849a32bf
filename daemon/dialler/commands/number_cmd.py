"""`dialler number disable|enable NUMBER`: take a caller ID out of rotation or put it back."""

from __future__ import annotations

import argparse
import sys

from ..campaigns import repo
from ..config import Config
from ..store import Connection
from .common import with_db


def disable(args: argparse.Namespace) -> int:
    """Disable the number; warn about live campaigns left without an enabled number."""
    return _set(args, enabled=False)


def enable(args: argparse.Namespace) -> int:
    """Enable the number (refused when the config itself disables it)."""
    return _set(args, enabled=True)


def _set(args: argparse.Namespace, *, enabled: bool) -> int:
    number: str = args.number

    async def body(conn: Connection, config: Config) -> list[str]:
        await repo.sync_numbers(conn, config)
        return await repo.set_number_enabled(conn, number, enabled, config=config)

    stranded = with_db(args, body)
    print(f"number {number} {'enabled' if enabled else 'disabled'}", file=sys.stderr)
    for name in stranded:
        print(
            f"dialler: warning: campaign {name} has no enabled number left; it places no "
            "calls until one is enabled",
            file=sys.stderr,
        )
    return 0
