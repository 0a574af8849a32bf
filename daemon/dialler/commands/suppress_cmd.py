"""`dialler suppress add|remove|list`: the do-not-call list (docs/api.md, "Suppressions")."""

from __future__ import annotations

import argparse
import sys

from ..config import Config
from ..contacts.suppressions import (
    AddedSuppression,
    Suppression,
    add_suppression,
    list_suppressions,
    remove_suppression,
)
from ..store import Connection
from .common import display_time, format_table, with_db


def add(args: argparse.Namespace) -> int:
    """`suppress add NUMBER [--reason R]`: prints the number in E.164 on stdout; how many
    waiting contacts were cancelled on stderr."""

    async def body(conn: Connection, config: Config) -> AddedSuppression:
        return await add_suppression(conn, args.number, config.contacts.default_region, args.reason)

    added = with_db(args, body)
    number = added.entry.phone_number
    state = "added to" if added.new else "already on"
    campaigns = len({campaign for _, campaign in added.cancelled})
    print(
        f"{number} {state} the do-not-call list; {len(added.cancelled)} waiting contact(s) "
        f"cancelled in {campaigns} campaign(s)",
        file=sys.stderr,
    )
    print(number)
    return 0


def remove(args: argparse.Namespace) -> int:
    """`suppress remove NUMBER`: exit 2 when the number is not on the list."""

    async def body(conn: Connection, config: Config) -> str:
        return await remove_suppression(conn, args.number, config.contacts.default_region)

    number = with_db(args, body)
    print(
        f"{number} removed from the do-not-call list (contacts it cancelled stay cancelled)",
        file=sys.stderr,
    )
    return 0


def list_numbers(args: argparse.Namespace) -> int:
    """`suppress list`: a table of the list on stdout, oldest first."""

    async def body(conn: Connection, _config: Config) -> list[Suppression]:
        return await list_suppressions(conn)

    rows = [
        (entry.phone_number, display_time(entry.added_at), entry.reason or "-")
        for entry in with_db(args, body)
    ]
    print(format_table(("NUMBER", "ADDED", "REASON"), rows))
    return 0
