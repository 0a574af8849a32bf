"""`dialler bot create|list|show|edit`."""

from __future__ import annotations

import argparse
import json
import sys
import uuid

from ..campaigns import repo
from ..campaigns.spec import parse_bot, read_document
from ..config import Config
from ..domain.prompt import placeholders
from ..errors import NameTaken
from ..store import Connection
from .common import display_time, format_table, with_db


def create(args: argparse.Namespace) -> int:
    """Store the file's bot; print its id alone on stdout."""
    document = read_document(args.file)
    bot = parse_bot(document)

    async def body(conn: Connection, config: Config) -> uuid.UUID:
        try:
            return await repo.create_bot(conn, bot)
        except NameTaken as exc:
            raise document.error([("name", str(exc))]) from None

    print(with_db(args, body))
    return 0


def list_bots(args: argparse.Namespace) -> int:
    """A table of every bot on stdout."""

    async def body(conn: Connection, config: Config) -> list[repo.Bot]:
        return await repo.list_bots(conn)

    rows = [
        (str(bot.id), bot.name, str(bot.campaigns), display_time(bot.created_at))
        for bot in with_db(args, body)
    ]
    print(format_table(("ID", "NAME", "CAMPAIGNS", "CREATED"), rows))
    return 0


def show(args: argparse.Namespace) -> int:
    """The bot's prompt and pipeline on stdout (`--json`: `GET /v1/bots/{name}`'s JSON)."""

    async def body(conn: Connection, config: Config) -> repo.BotView:
        return await repo.get_bot(conn, args.name)

    bot = with_db(args, body)
    if args.json:
        print(json.dumps(bot.to_json(), indent=2))
        return 0
    print(f"name       {bot.name}")
    print(f"campaigns  {bot.campaigns}")
    print(f"created    {display_time(bot.created_at)}")
    variables = sorted({p.name for p in placeholders(bot.prompt) if p.name is not None})
    print(f"variables  {', '.join(variables) or '-'}")
    print("pipeline   " + (json.dumps(bot.pipeline, sort_keys=True) if bot.pipeline else "-"))
    print("prompt")
    for line in bot.prompt.splitlines() or [""]:
        print(f"  {line}")
    return 0


def edit(args: argparse.Namespace) -> int:
    """Replace the bot NAME with the file's bot (a new `name:` renames it)."""
    document = read_document(args.file)
    bot = parse_bot(document)

    async def body(conn: Connection, config: Config) -> None:
        try:
            await repo.edit_bot(conn, args.name, bot)
        except NameTaken as exc:
            raise document.error([("name", str(exc))]) from None

    with_db(args, body)
    print(f"bot {bot.name} saved", file=sys.stderr)
    return 0
