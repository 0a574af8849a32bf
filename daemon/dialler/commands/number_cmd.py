"""`dialler number disable|enable NUMBER`: take a caller ID out of rotation or put it back;
`number swap OLD NEW`: replace it in every pool that can still dial; `number list`."""

from __future__ import annotations

import argparse
import json
import sys

from .. import carriers
from ..campaigns import repo
from ..carriers import NumberStatus, SwapResult, swap_number
from ..config import Config
from ..store import Connection
from .common import format_table, with_db


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


def swap(args: argparse.Namespace) -> int:
    """Replace OLD by NEW in every draft, running or paused pool that has OLD; the names of
    the campaigns changed on stdout, one a line."""

    async def body(conn: Connection, config: Config) -> SwapResult:
        return await swap_number(conn, config, args.old, args.new)

    result = with_db(args, body)
    for name in result.campaigns:
        print(name)
    print(
        f"number {result.old} replaced by {result.new} in {len(result.campaigns)} campaign(s)",
        file=sys.stderr,
    )
    return 0


def list_numbers(args: argparse.Namespace) -> int:
    """A table of the configured caller IDs with the last hour's figures (`--json`:
    `GET /v1/numbers`'s list)."""

    async def body(conn: Connection, config: Config) -> list[NumberStatus]:
        return await carriers.list_numbers(conn, config)

    numbers = with_db(args, body)
    if args.json:
        print(json.dumps([number.to_json() for number in numbers], indent=2))
        return 0
    rows = [
        (
            number.number,
            number.carrier,
            "yes" if number.enabled else "no",
            str(number.calls_last_hour),
            f"{number.share_4xx:.0%}",
            f"{number.share_5xx:.0%}",
            f"{number.share_429:.0%}",
            ", ".join(number.campaigns) or "-",
        )
        for number in numbers
    ]
    headers = ("NUMBER", "CARRIER", "ENABLED", "CALLS_1H", "4XX", "5XX", "429", "CAMPAIGNS")
    print(format_table(headers, rows))
    return 0
