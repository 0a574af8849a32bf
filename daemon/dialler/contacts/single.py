"""One contact at a time: `dialler contacts add` / `cancel` (and the API trigger).

Adding works in every campaign that still takes contacts — draft, running, paused, always-on —
and is refused for a completed or cancelled one. Cancelling takes a *waiting* contact out of
the queue; a contact in a call now cannot be cancelled (the call is under way and its result
still decides what happens), and a final one has nothing left to cancel.

A `timezone` metadata field overrides the zones of the number for a per-contact window
(contacts/zones.py): it must be an IANA name (`InvalidField` otherwise) and stays a variable.
A contact whose zones never share an open instant of a per-contact window is added as
cancelled, with a warning that says why.

An added contact is checked against the campaign's bot prompt: every prompt variable it lacks
is a warning (`AddedContact.warnings`), never a refusal.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..domain.prompt import prompt_warnings
from ..domain.states import FINAL, IN_FLIGHT, ContactState
from ..errors import ContactBusy, ContactNotFound, DuplicateContact, InvalidField, TryAgain
from ..store import Connection
from ..store import contacts as store
from ..store.prompts import campaign_prompt
from .csvfile import MAX_FIELD_BYTES, PHONE_COLUMN
from .importer import cancel_never_open, check_accepts_contacts, never_open_warning
from .phone import normalise_phone
from .zones import TIMEZONE_VARIABLE, contact_zone_key, timezone_problem

__all__ = ["AddedContact", "CancelledContact", "add_contact", "cancel_contact"]


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
    already_final: ContactState | None


async def add_contact(
    conn: Connection,
    campaign_id: uuid.UUID,
    phone: str,
    variables: Mapping[str, str],
    default_region: str,
) -> AddedContact:
    """Add one contact to the campaign, due now. Refused with `InvalidNumber` (the number is
    unusable), `InvalidField` (a variable), `DuplicateContact` (the campaign has the number),
    `UnknownCampaign` / `WrongState` (the campaign takes no more contacts). A number on the
    do-not-call list is added as cancelled. The result's `warnings` compare the variables
    with those of the campaign's bot prompt."""
    e164 = normalise_phone(phone, default_region)
    _check_variables(variables)
    async with conn.transaction():
        campaign = await check_accepts_contacts(conn, campaign_id, lock=True)
        key = contact_zone_key(e164, variables)
        added = await store.add_contact(conn, campaign_id, e164, variables, key)
        if added is None:
            existing = await store.contact_by_phone(conn, campaign_id, e164)
            assert existing is not None  # the insert conflicted with it, in this transaction
            raise DuplicateContact(e164, campaign, existing.id, existing.state)
        never = await cancel_never_open(conn, campaign_id, {key})
        prompt = await campaign_prompt(conn, campaign_id)
    warnings = (
        []
        if prompt is None
        else prompt_warnings(prompt, variables, lacking="is not among this contact's variables")
    )
    warnings.extend(never_open_warning(never))
    return AddedContact(
        added.id, e164, suppressed=added.state == ContactState.CANCELLED, warnings=warnings
    )


async def cancel_contact(
    conn: Connection, campaign_id: uuid.UUID, phone: str, default_region: str
) -> CancelledContact:
    """Cancel the campaign's waiting contact with this number (it will not be dialled).

    Idempotent for final contacts (`already_final` says which state). `ContactNotFound` when
    there is no such contact, `ContactBusy` when it is in a call right now, `TryAgain` when
    it kept changing state meanwhile.
    """
    e164 = normalise_phone(phone, default_region)
    # Twice at most: a contact found waiting by the second statement was in a call during
    # the first one and has just been given a retry or callback.
    for _ in range(2):
        contact_id = await store.cancel_waiting_contact(conn, campaign_id, e164)
        if contact_id is not None:
            return CancelledContact(contact_id, e164, already_final=None)
        row = await store.contact_by_phone(conn, campaign_id, e164)
        if row is None:
            raise ContactNotFound(e164)
        state = ContactState(row.state)
        if state in FINAL:
            return CancelledContact(row.id, e164, already_final=state)
        if state in IN_FLIGHT:
            raise ContactBusy(e164, row.id, state)
    raise TryAgain(
        f"phone_number {e164}: the contact kept changing state while being "
        "cancelled; run the command again"
    )


def _check_variables(variables: Mapping[str, str]) -> None:
    for name, value in variables.items():
        if not name.strip():
            raise InvalidField("metadata", "variables: a variable has an empty name")
        if name == PHONE_COLUMN:
            raise InvalidField(
                f"metadata.{name}",
                f"variables: {PHONE_COLUMN!r} is the number itself, not a variable",
            )
        if name == TIMEZONE_VARIABLE:
            problem = timezone_problem(value)
            if problem is not None:
                raise InvalidField(f"metadata.{name}", problem)
        if len(value.encode("utf-8")) > MAX_FIELD_BYTES:
            raise InvalidField(
                f"metadata.{name}", f"variables: {name!r} is over {MAX_FIELD_BYTES} bytes (64 KiB)"
            )
