"""Contacts of a campaign: CSV import, single add, cancel (`sql/contacts.sql`).

An import runs in `import_transaction`: every database failure inside it becomes one
`OperationalError` ("import failed, nothing imported"), the transaction rolled back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ..errors import OperationalError
from .conn import Connection
from .queries import load

__all__ = [
    "AddedRow",
    "CampaignForContacts",
    "ContactRow",
    "StagedChunk",
    "StagedDuplicate",
    "add_contact",
    "campaign_for_contacts",
    "cancel_waiting_contact",
    "contact_by_phone",
    "create_import_staging",
    "import_staged",
    "import_transaction",
    "stage_rows",
    "truncate_import_staging",
]

_Q = load("contacts.sql")
_STAGING_TABLE = "contacts_import"
_STAGING_COLUMNS = ("line", "phone", "raw_phone", "variables", "zone_key")

#: One valid row to stage: line, E.164 number, the number as written (None: the same),
#: the variables as a JSON object, the contact's zone key ('' : the campaign's zone).
StagingRecord = tuple[int, str, str | None, str, str]


@dataclass(frozen=True, slots=True)
class CampaignForContacts:
    """Whether contacts may be added (not completed, not cancelled), and the name."""

    name: str
    state: str
    cancelled_at: datetime | None


@dataclass(frozen=True, slots=True)
class StagedDuplicate:
    """A staged row whose number the campaign already has."""

    line: int
    phone: str
    raw_phone: str | None
    variables: dict[str, str]


@dataclass(frozen=True, slots=True)
class StagedChunk:
    """What moving one staged chunk into the campaign did."""

    imported: int
    suppressed: int
    duplicates: list[StagedDuplicate]


@dataclass(frozen=True, slots=True)
class AddedRow:
    id: uuid.UUID
    state: str


@dataclass(frozen=True, slots=True)
class ContactRow:
    id: uuid.UUID
    state: str


async def campaign_for_contacts(
    conn: Connection, campaign_id: uuid.UUID, *, lock: bool = False
) -> CampaignForContacts | None:
    """The campaign's name and state, or None. `lock`: under a share lock held until the
    transaction commits (see `campaign_for_contacts_locked`)."""
    query = "campaign_for_contacts_locked" if lock else "campaign_for_contacts"
    row = await conn.fetchrow(_Q[query], campaign_id)
    if row is None:
        return None
    return CampaignForContacts(
        name=row["name"], state=row["state"], cancelled_at=row["cancelled_at"]
    )


@asynccontextmanager
async def import_transaction(conn: Connection) -> AsyncIterator[None]:
    """The import's one transaction; a database failure in it is `OperationalError`."""
    try:
        async with conn.transaction():
            yield
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise OperationalError(f"import failed, nothing imported: {exc}") from None


async def create_import_staging(conn: Connection) -> None:
    """The temporary staging table (dropped at commit)."""
    await conn.execute(_Q["create_import_staging"])


async def stage_rows(conn: Connection, records: Sequence[StagingRecord]) -> None:
    """COPY a chunk of valid rows into the staging table."""
    await conn.copy_records_to_table(_STAGING_TABLE, columns=_STAGING_COLUMNS, records=records)


async def import_staged(conn: Connection, campaign_id: uuid.UUID) -> StagedChunk:
    """Move the staged chunk into the campaign (see the query)."""
    row = await conn.fetchrow(_Q["import_staged"], campaign_id)
    assert row is not None  # aggregates: always one row
    duplicates = [
        StagedDuplicate(
            line=item["line"],
            phone=item["phone"],
            raw_phone=item["raw_phone"],
            variables=item["variables"],
        )
        for item in json.loads(row["duplicates"] or "[]")
    ]
    return StagedChunk(
        imported=row["imported"], suppressed=row["suppressed"], duplicates=duplicates
    )


async def truncate_import_staging(conn: Connection) -> None:
    """Empty the staging table for the next chunk."""
    await conn.execute(_Q["truncate_import_staging"])


async def add_contact(
    conn: Connection,
    campaign_id: uuid.UUID,
    phone: str,
    variables: Mapping[str, str],
    zone_key: str = "",
) -> AddedRow | None:
    """Add one contact with its zone key ('' : the campaign's zone), due now (cancelled when
    suppressed); None when the campaign has the number already."""
    row = await conn.fetchrow(
        _Q["add_contact"],
        campaign_id,
        phone,
        json.dumps(dict(variables), ensure_ascii=False),
        zone_key,
    )
    return None if row is None else AddedRow(id=row["id"], state=row["state"])


async def contact_by_phone(
    conn: Connection, campaign_id: uuid.UUID, phone: str
) -> ContactRow | None:
    """The campaign's contact with this number, or None."""
    row = await conn.fetchrow(_Q["contact_by_phone"], campaign_id, phone)
    return None if row is None else ContactRow(id=row["id"], state=row["state"])


async def cancel_waiting_contact(
    conn: Connection, campaign_id: uuid.UUID, phone: str
) -> uuid.UUID | None:
    """Cancel the contact with this number if it is waiting; its id, else None."""
    contact_id: uuid.UUID | None = await conn.fetchval(
        _Q["cancel_waiting_contact"], campaign_id, phone
    )
    return contact_id
