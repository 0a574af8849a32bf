"""Prompt variables against the contacts' variables (`sql/prompts.sql`): what the warnings of
`contacts import`, `contacts add` and the start checks compare."""

from __future__ import annotations

import uuid

from .conn import Connection
from .queries import load

__all__ = ["bot_prompt", "campaign_prompt", "contact_variable_names"]

_Q = load("prompts.sql")


async def campaign_prompt(conn: Connection, campaign_id: uuid.UUID) -> str | None:
    """The prompt of the campaign's bot; None when the campaign has no bot (or no such
    campaign)."""
    prompt: str | None = await conn.fetchval(_Q["campaign_prompt"], campaign_id)
    return prompt


async def bot_prompt(conn: Connection, bot_name: str) -> str | None:
    """The prompt of the bot named `bot_name`; None when there is no such bot."""
    prompt: str | None = await conn.fetchval(_Q["bot_prompt"], bot_name)
    return prompt


async def contact_variable_names(conn: Connection, campaign_id: uuid.UUID) -> list[str]:
    """Every variable name some contact of the campaign has (one pass over its contacts)."""
    return [row["name"] for row in await conn.fetch(_Q["contact_variable_names"], campaign_id)]
