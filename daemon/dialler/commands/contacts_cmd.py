"""`dialler contacts import|add|cancel`: the contacts of a campaign (docs/contacts.md)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..campaigns.lookup import resolve_campaign
from ..config import Config
from ..contacts.importer import ImportSummary, import_contacts
from ..contacts.single import AddedContact, CancelledContact, add_contact, cancel_contact
from ..errors import InvalidInput
from ..store import Connection
from .common import with_db


def import_csv(args: argparse.Namespace) -> int:
    """`contacts import ID FILE [--errors FILE]`: the summary on stderr, then a warning per
    prompt variable no column provides; exit 0 even with rejected rows (they are in the
    errors file) or warnings, 2 when the file cannot be imported at all."""
    path = Path(args.file)
    errors = Path(args.errors) if args.errors else None
    progress = _TtyProgress() if sys.stderr.isatty() else None

    async def body(conn: Connection, config: Config) -> ImportSummary:
        campaign_id = await resolve_campaign(conn, args.campaign)
        try:
            return await import_contacts(
                conn, campaign_id, path, config.contacts.default_region, errors, progress=progress
            )
        finally:
            if progress is not None:
                progress.clear()

    summary = with_db(args, body)
    print(summary.describe(), file=sys.stderr)
    _warn(summary.warnings)
    return 0


def add(args: argparse.Namespace) -> int:
    """`contacts add ID --phone N [--var K=V ...]`: prints the new contact's id; warns (exit
    0) about prompt variables no `--var` provides."""
    variables = parse_vars(args.var)

    async def body(conn: Connection, config: Config) -> AddedContact:
        campaign_id = await resolve_campaign(conn, args.campaign)
        return await add_contact(
            conn, campaign_id, args.phone, variables, config.contacts.default_region
        )

    added = with_db(args, body)
    if added.suppressed:
        print(
            f"warning: {added.phone} is on the do-not-call list: added as cancelled, it "
            "will not be dialled",
            file=sys.stderr,
        )
    _warn(added.warnings)
    print(added.id)
    return 0


def cancel(args: argparse.Namespace) -> int:
    """`contacts cancel ID --phone N`: the waiting contact will not be dialled (message on
    stderr); exit 2 when there is no such contact or it is in a call now."""

    async def body(conn: Connection, config: Config) -> CancelledContact:
        campaign_id = await resolve_campaign(conn, args.campaign)
        return await cancel_contact(conn, campaign_id, args.phone, config.contacts.default_region)

    result = with_db(args, body)
    if result.already_final is None:
        print(
            f"cancelled contact {result.id} ({result.phone}): it will not be dialled",
            file=sys.stderr,
        )
    else:
        print(
            f"contact {result.id} ({result.phone}) is already final "
            f"({result.already_final}); nothing to cancel",
            file=sys.stderr,
        )
    return 0


def parse_vars(items: list[str]) -> dict[str, str]:
    """`--var K=V` arguments as a dict in the order given; `InvalidInput` naming the bad one."""
    variables: dict[str, str] = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals:
            raise InvalidInput(f"--var {item!r}: expected NAME=VALUE")
        if not name.strip():
            raise InvalidInput(f"--var {item!r}: the variable name is empty")
        if name in variables:
            raise InvalidInput(f"--var {item!r}: variable {name!r} is given twice")
        variables[name] = value
    return variables


def _warn(warnings: Sequence[str]) -> None:
    for warning in warnings:
        print(f"dialler: warning: {warning}", file=sys.stderr)


class _TtyProgress:
    """Progress of an import on one terminal line, rewritten in place."""

    def __call__(self, text: str) -> None:
        sys.stderr.write(f"\r\x1b[K{text}")
        sys.stderr.flush()

    def clear(self) -> None:
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()
