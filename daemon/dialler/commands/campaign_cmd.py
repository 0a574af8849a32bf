"""`dialler campaign create|edit|list|start|pause|resume|cancel` (docs/campaigns.md)."""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Sequence
from datetime import datetime

from ..campaigns import repo
from ..campaigns.lookup import resolve_campaign
from ..campaigns.spec import read_document
from ..config import Config
from ..domain.states import CampaignState
from ..errors import NameTaken
from ..store import Connection
from .common import display_time, format_table, with_db


def create(args: argparse.Namespace) -> int:
    """Store the file's campaign as a draft; print its id alone on stdout."""
    document = read_document(args.file)

    async def body(conn: Connection, config: Config) -> uuid.UUID:
        spec = await repo.read_campaign_spec(conn, config, document)
        try:
            return await repo.create_campaign(conn, spec)
        except NameTaken as exc:
            raise document.error([("name", str(exc))]) from None

    print(with_db(args, body))
    return 0


def edit(args: argparse.Namespace) -> int:
    """Replace a draft or paused campaign's settings with the file's."""
    document = read_document(args.file)

    async def body(conn: Connection, config: Config) -> repo.Changed:
        campaign_id = await resolve_campaign(conn, args.campaign)
        spec = await repo.read_campaign_spec(conn, config, document)
        try:
            return await repo.edit_campaign(conn, campaign_id, spec)
        except NameTaken as exc:
            raise document.error([("name", str(exc))]) from None

    changed = with_db(args, body)
    _warn(changed.warnings)
    print(f"campaign {changed.name} updated", file=sys.stderr)
    return 0


def list_campaigns(args: argparse.Namespace) -> int:
    """A table of every campaign on stdout."""

    async def body(conn: Connection, config: Config) -> list[repo.CampaignSummary]:
        return await repo.list_campaigns(conn)

    rows = [
        (
            str(c.id),
            c.name,
            _state(c.state, c.cancelled_at),
            c.bot_name or "-",
            str(c.concurrency),
            str(c.numbers),
            "yes" if c.always_on else "no",
            display_time(c.created_at),
        )
        for c in with_db(args, body)
    ]
    print(
        format_table(
            ("ID", "NAME", "STATE", "BOT", "CONCURRENCY", "NUMBERS", "ALWAYS_ON", "CREATED"), rows
        )
    )
    return 0


def start(args: argparse.Namespace) -> int:
    """draft → running after the start checks; exit 2 with every problem otherwise."""

    async def body(conn: Connection, config: Config) -> repo.Changed:
        return await repo.start_campaign(conn, config, await resolve_campaign(conn, args.campaign))

    changed = with_db(args, body)
    _warn(changed.warnings)
    print(f"campaign {changed.name} started", file=sys.stderr)
    return 0


def pause(args: argparse.Namespace) -> int:
    """running → paused: no new dials; live calls finish."""

    async def body(conn: Connection, config: Config) -> repo.Changed:
        return await repo.pause_campaign(conn, await resolve_campaign(conn, args.campaign))

    changed = with_db(args, body)
    print(f"campaign {changed.name} paused; live calls finish normally", file=sys.stderr)
    return 0


def resume(args: argparse.Namespace) -> int:
    """paused → running, after the start checks again."""

    async def body(conn: Connection, config: Config) -> repo.Changed:
        return await repo.resume_campaign(conn, config, await resolve_campaign(conn, args.campaign))

    changed = with_db(args, body)
    _warn(changed.warnings)
    print(f"campaign {changed.name} resumed", file=sys.stderr)
    return 0


def cancel(args: argparse.Namespace) -> int:
    """No new dials; waiting contacts cancelled; completed once live calls end."""

    async def body(conn: Connection, config: Config) -> repo.Cancelled:
        return await repo.cancel_campaign(conn, await resolve_campaign(conn, args.campaign))

    result = with_db(args, body)
    message = (
        f"campaign {result.name} cancelled: {result.contacts_cancelled} waiting "
        f"contact(s) cancelled; "
    )
    if result.state == CampaignState.COMPLETED:
        message += "completed"
    elif result.in_flight:
        message += f"it completes when its {result.in_flight} live call(s) end"
    else:  # an incomplete draft cannot be marked completed (docs/campaigns.md)
        message += f"it stays {result.state} and can no longer be started or edited"
    print(message, file=sys.stderr)
    return 0


def _warn(warnings: Sequence[str]) -> None:
    for warning in warnings:
        print(f"dialler: warning: {warning}", file=sys.stderr)


def _state(state: str, cancelled_at: datetime | None) -> str:
    cancelled = cancelled_at is not None and state != CampaignState.COMPLETED
    return f"{state} (cancelled)" if cancelled else state
