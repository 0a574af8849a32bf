"""The do-not-call list (`suppressions`): numbers never dialled again, from any campaign.

Adding a number cancels its waiting contacts in every campaign in the same transaction; from
then on an import or a single add takes the number in as `cancelled`, and the scheduler's claim
skips it (contacts.sql, engine.sql). A contact in a call right now finishes that call; any
re-dial it would get is never claimed. Removing a number lets it be dialled in contacts added
afterwards; the contacts it cancelled stay cancelled.

Numbers are normalised to E.164 like every contact number (`phone.normalise_phone`, with the
config's `contacts.default_region`), so `07700 900123` and `+447700900123` are one entry.

Queries: ``dialler/store/sql/suppressions.sql``. Connections are asyncpg connections (`Any`).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..store.queries import load
from ..errors import InvalidInput
from .phone import InvalidNumber, normalise_phone

__all__ = ["MAX_REASON", "AddedSuppression", "NotSuppressed", "Suppression", "add_suppression",
           "list_suppressions", "normalised_number", "remove_suppression"]

#: Longest reason kept with an entry, in characters.
MAX_REASON = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class NotSuppressed(InvalidInput):
    """The number is not on the do-not-call list."""


@dataclass(frozen=True, slots=True)
class Suppression:
    phone_number: str
    reason: str | None
    added_at: datetime


@dataclass(frozen=True, slots=True)
class AddedSuppression:
    entry: Suppression
    #: False when the number was on the list already (its reason updated if one was given).
    new: bool
    #: Waiting contacts cancelled now, across campaigns: (contact id, campaign id).
    cancelled: list[tuple[uuid.UUID, uuid.UUID]]


def normalised_number(phone: str, default_region: str) -> str:
    """`phone` in E.164; `InvalidInput` saying why it cannot be."""
    try:
        return normalise_phone(phone, default_region)
    except InvalidNumber as exc:
        raise InvalidInput(str(exc)) from None


async def add_suppression(conn: Any, phone: str, default_region: str,
                          reason: str | None = None) -> AddedSuppression:
    """Put `phone` on the list and cancel its waiting contacts, in one transaction.

    Idempotent: a number already listed keeps its `added_at`; a `reason` replaces the old one.
    `InvalidInput` for a number that cannot be normalised, or a reason over `MAX_REASON`
    characters or with control characters (it is shown in one table row).
    """
    e164 = normalised_number(phone, default_region)
    reason = _reason(reason)
    queries = load("suppressions.sql")
    async with conn.transaction():
        row = await conn.fetchrow(queries["add_suppression"], e164, reason)
        cancelled = await conn.fetch(queries["cancel_suppressed_contacts"], e164)
    return AddedSuppression(
        entry=Suppression(row["phone_number"], row["reason"], row["added_at"]),
        new=row["inserted"],
        cancelled=[(r["id"], r["campaign_id"]) for r in cancelled])


async def remove_suppression(conn: Any, phone: str, default_region: str) -> str:
    """Take `phone` off the list; its E.164 form. `NotSuppressed` if it was not on it."""
    e164 = normalised_number(phone, default_region)
    removed: str | None = await conn.fetchval(load("suppressions.sql")["remove_suppression"],
                                              e164)
    if removed is None:
        raise NotSuppressed(f"{e164} is not on the do-not-call list")
    return removed


async def list_suppressions(conn: Any) -> list[Suppression]:
    """Every entry, oldest first."""
    return [Suppression(row["phone_number"], row["reason"], row["added_at"])
            for row in await conn.fetch(load("suppressions.sql")["list_suppressions"])]


def _reason(reason: str | None) -> str | None:
    if reason is None or not reason.strip():
        return None
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"reason is {len(reason)} characters long; at most {MAX_REASON}")
    if _CONTROL.search(reason):
        raise InvalidInput("reason must be one line without control characters")
    return reason.strip()
