"""Find a campaign by id or by its unique name (CONTRACT: commands accept either)."""

from __future__ import annotations

import uuid
from typing import Any

from ..errors import InvalidInput


async def resolve_campaign(conn: Any, ref: str) -> uuid.UUID:
    """The campaign's id for `ref` (a UUID or a name); `InvalidInput` (exit 2) if unknown."""
    try:
        as_id = uuid.UUID(ref)
    except ValueError:
        as_id = None
    if as_id is not None:
        found = await conn.fetchval("SELECT id FROM campaigns WHERE id = $1", as_id)
    else:
        found = await conn.fetchval("SELECT id FROM campaigns WHERE name = $1", ref)
    if found is None:
        raise InvalidInput(f"unknown campaign: {ref!r}")
    result: uuid.UUID = found
    return result
