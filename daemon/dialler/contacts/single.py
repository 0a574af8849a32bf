"""One contact at a time: `dialler contacts add` / `cancel` (and the API trigger).

Adding works in every campaign that still takes contacts — draft, running, paused, always-on —
and is refused for a completed or cancelled one. Cancelling takes a *waiting* contact out of
the queue; a contact in a call now cannot be cancelled (the call is under way and its result
still decides what happens), and a final one has nothing left to cancel.

An added contact is checked against the campaign's bot prompt: every prompt variable it lacks
is a warning (`AddedContact.warnings`), never a refusal.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..store.queries import load
from ..domain.prompt import prompt_warnings
from ..errors import InvalidInput
from .csvfile import MAX_FIELD_BYTES, PHONE_COLUMN
from .importer import campaign_prompt, check_campaign_accepts_contacts
from .phone import InvalidNumber, normalise_phone

__all__ = ["AddedContact", "CancelledContact", "add_contact", "cancel_contact"]

_IN_FLIGHT = frozenset({"dialing", "connected", "wrapping"})
_FINAL = frozenset({"done", "exhausted", "cancelled"})


@dataclass(frozen=True, slots=True)
class AddedContact:
    id: uuid.UUID
    phone: str
    #: On the do-not-call list: added as cancelled, never dialled.
    suppressed: bool
    #: One line per prompt variable the contact's variables lack (with a suggestion when one
    #: looks meant for it), then per malformed placeholder; see `prompt_warnings`.
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CancelledContact:
    id: uuid.UUID
    phone: str
    #: The contact was final already (its state); nothing was changed. None: cancelled now.
    already_final: str | None


async def add_contact(conn: Any, campaign_id: uuid.UUID, phone: str,
                      variables: Mapping[str, str], default_region: str) -> AddedContact:
    """Add one contact to the campaign, due now; `InvalidInput` naming the field when the
    number is unusable or already in the campaign, a variable is invalid, or the campaign
    takes no more contacts. A number on the do-not-call list is added as cancelled. The
    result's `warnings` compare the variables with those of the campaign's bot prompt."""
    e164 = _normalised(phone, default_region)
    _check_variables(variables)
    queries = load("contacts.sql")
    async with conn.transaction():
        campaign = check_campaign_accepts_contacts(
            await conn.fetchrow(queries["campaign_for_contacts_locked"], campaign_id),
            str(campaign_id))
        row = await conn.fetchrow(queries["add_contact"], campaign_id, e164,
                                  json.dumps(dict(variables), ensure_ascii=False))
        if row is None:
            existing = await conn.fetchrow(queries["contact_by_phone"], campaign_id, e164)
            raise InvalidInput(f"phone_number {e164} is already in campaign {campaign!r} "
                               f"(contact {existing['id']}, {existing['state']})")
        prompt = await campaign_prompt(conn, campaign_id)
    warnings = [] if prompt is None else prompt_warnings(
        prompt, variables, lacking="is not among this contact's variables")
    return AddedContact(row["id"], e164, suppressed=row["state"] == "cancelled",
                        warnings=warnings)


async def cancel_contact(conn: Any, campaign_id: uuid.UUID, phone: str,
                         default_region: str) -> CancelledContact:
    """Cancel the campaign's waiting contact with this number (it will not be dialled).

    Idempotent for final contacts (`already_final` says which state). `InvalidInput` when
    there is no such contact, or when it is in a call right now.
    """
    e164 = _normalised(phone, default_region)
    queries = load("contacts.sql")
    # Twice at most: a contact found waiting by the second statement was in a call during
    # the first one and has just been given a retry or callback.
    for _ in range(2):
        contact_id = await conn.fetchval(queries["cancel_waiting_contact"], campaign_id, e164)
        if contact_id is not None:
            return CancelledContact(contact_id, e164, already_final=None)
        row = await conn.fetchrow(queries["contact_by_phone"], campaign_id, e164)
        if row is None:
            raise InvalidInput(f"phone_number {e164}: no such contact in this campaign")
        state: str = row["state"]
        if state in _FINAL:
            return CancelledContact(row["id"], e164, already_final=state)
        if state in _IN_FLIGHT:
            raise InvalidInput(
                f"phone_number {e164}: contact {row['id']} is in a call now ({state}) and "
                "cannot be cancelled; the call's result decides whether it is dialled again, "
                "so cancel it once the call has ended")
    raise InvalidInput(f"phone_number {e164}: the contact kept changing state while being "
                       "cancelled; run the command again")


def _normalised(phone: str, default_region: str) -> str:
    try:
        return normalise_phone(phone, default_region)
    except InvalidNumber as exc:
        raise InvalidInput(str(exc)) from None


def _check_variables(variables: Mapping[str, str]) -> None:
    for name, value in variables.items():
        if not name.strip():
            raise InvalidInput("variables: a variable has an empty name")
        if name == PHONE_COLUMN:
            raise InvalidInput(f"variables: {PHONE_COLUMN!r} is the number itself, not a "
                               "variable")
        if len(value.encode("utf-8")) > MAX_FIELD_BYTES:
            raise InvalidInput(f"variables: {name!r} is over {MAX_FIELD_BYTES} bytes (64 KiB)")
