"""Find a campaign by id or by its unique name (CONTRACT: commands accept either)."""

from __future__ import annotations

import uuid

from ..errors import UnknownCampaign
from ..store import Connection
from ..store import campaigns as store


async def resolve_campaign(conn: Connection, ref: str) -> uuid.UUID:
    """The campaign's id for `ref` (a UUID or a name); `UnknownCampaign` if there is none."""
    try:
        as_id = uuid.UUID(ref)
    except ValueError:
        found = await store.campaign_id_by_name(conn, ref)
    else:
        found = await store.campaign_id(conn, as_id)
    if found is None:
        raise UnknownCampaign(ref)
    return found
