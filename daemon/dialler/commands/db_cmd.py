"""`dialler db ...`: the database schema."""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..config import load_config
from ..store import migrate as migrations
from .paths import config_path


def migrate(args: argparse.Namespace) -> int:
    """`dialler db migrate`: apply pending migrations; each applied version on stderr.

    An unreachable database or a failed migration raises OperationalError, which the CLI
    prints as one line and turns into exit code 1.
    """
    dsn = load_config(config_path(args)).database.dsn
    names = {
        migration.version: migration.filename for migration in migrations.available_migrations()
    }
    applied = asyncio.run(migrations.migrate(dsn))
    for version in applied:
        print(f"applied {names[version]}", file=sys.stderr)
    if not applied:
        print("schema up to date", file=sys.stderr)
    return 0
