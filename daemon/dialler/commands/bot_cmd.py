"""`dialler bot create|list`."""

from __future__ import annotations

import argparse
import uuid

from ..campaigns import repo
from ..campaigns.spec import parse_bot, read_document
from ..config import Config
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
