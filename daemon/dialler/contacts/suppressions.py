"""The do-not-call list (`suppressions`): numbers never dialled again, from any campaign.

Adding a number cancels its waiting contacts in every campaign in the same transaction; from
then on an import or a single add takes the number in as `cancelled`, and the scheduler's claim
skips it (contacts.sql, engine.sql). A contact in a call right now finishes that call; any
re-dial it would get is never claimed. Removing a number lets it be dialled in contacts added
afterwards; the contacts it cancelled stay cancelled.

Numbers are normalised to E.164 like every contact number (`phone.normalise_phone`, with the
config's `contacts.default_region`), so `07700 900123` and `+447700900123` are one entry.

Queries: `dialler.store.suppressions` (``sql/suppressions.sql``).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from ..errors import InvalidField, NotSuppressed
from ..store import Connection
from ..store import suppressions as store
from ..store.suppressions import Suppression
from .phone import normalise_phone

__all__ = [
    "MAX_REASON",
    "AddedSuppression",
    "NotSuppressed",
    "Suppression",
    "add_suppression",
    "list_suppressions",
    "normalised_number",
    "remove_suppression",
]

#: Longest reason kept with an entry, in characters.
MAX_REASON = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class AddedSuppression:
    entry: Suppression
    #: False when the number was on the list already (its reason updated if one was given).
    new: bool
    #: Waiting contacts cancelled now, across campaigns: (contact id, campaign id).
    cancelled: list[tuple[uuid.UUID, uuid.UUID]]


def normalised_number(phone: str, default_region: str) -> str:
    """`phone` in E.164; `InvalidNumber` saying why it cannot be."""
    return normalise_phone(phone, default_region)


async def add_suppression(
    conn: Connection, phone: str, default_region: str, reason: str | None = None
) -> AddedSuppression:
    """Put `phone` on the list and cancel its waiting contacts, in one transaction.

    Idempotent: a number already listed keeps its `added_at`; a `reason` replaces the old one.
    `InvalidNumber` for a number that cannot be normalised, `InvalidField` (`reason`) for a
    reason over `MAX_REASON` characters or with control characters (it is shown in one table
    row).
    """
    e164 = normalised_number(phone, default_region)
    reason = _reason(reason)
    async with conn.transaction():
        row = await store.add_suppression(conn, e164, reason)
        cancelled = await store.cancel_suppressed_contacts(conn, e164)
    return AddedSuppression(
        entry=Suppression(row.phone_number, row.reason, row.added_at),
        new=row.inserted,
        cancelled=[(contact.id, contact.campaign_id) for contact in cancelled],
    )


async def remove_suppression(conn: Connection, phone: str, default_region: str) -> str:
    """Take `phone` off the list; its E.164 form. `NotSuppressed` if it was not on it."""
    e164 = normalised_number(phone, default_region)
    removed = await store.remove_suppression(conn, e164)
    if removed is None:
        raise NotSuppressed(e164)
    return removed


async def list_suppressions(conn: Connection) -> list[Suppression]:
    """Every entry, oldest first."""
    return await store.list_suppressions(conn)


def _reason(reason: str | None) -> str | None:
    if reason is None or not reason.strip():
        return None
    if len(reason) > MAX_REASON:
        raise InvalidField(
            "reason", f"reason is {len(reason)} characters long; at most {MAX_REASON}"
        )
    if _CONTROL.search(reason):
        raise InvalidField("reason", "reason must be one line without control characters")
    return reason.strip()
