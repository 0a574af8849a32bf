"""The names of states and dispositions, each defined once (`StrEnum`: they compare equal to
the text stored in PostgreSQL, whose CHECK constraints list the same values)."""

from __future__ import annotations

import enum

__all__ = [
    "FINAL",
    "IN_FLIGHT",
    "SYSTEM_DISPOSITIONS",
    "WAITING",
    "AttemptState",
    "CampaignState",
    "ContactState",
    "Disposition",
]


class CampaignState(enum.StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"


class ContactState(enum.StrEnum):
    """DESIGN.md, "Contacts and attempts": waiting, in-flight (working) and final states."""

    PENDING = "pending"
    RETRY_SCHEDULED = "retry_scheduled"
    CALLBACK_SCHEDULED = "callback_scheduled"
    DIALING = "dialing"
    CONNECTED = "connected"
    WRAPPING = "wrapping"
    DONE = "done"
    EXHAUSTED = "exhausted"
    CANCELLED = "cancelled"


class ContactReason(enum.StrEnum):
    """`contacts.state_reason`: why a contact ended without a call (shown in the call list)."""

    #: Its zones never share an open instant of the window (`window.per_contact`).
    NO_COMMON_WINDOW = "no_common_window"


#: Normal waiting states: due at a time, nothing to escalate.
WAITING = frozenset(
    {ContactState.PENDING, ContactState.RETRY_SCHEDULED, ContactState.CALLBACK_SCHEDULED}
)
#: In-flight (working) states: a call is under way or its result is being decided.
IN_FLIGHT = frozenset({ContactState.DIALING, ContactState.CONNECTED, ContactState.WRAPPING})
#: Nothing more happens to the contact.
FINAL = frozenset({ContactState.DONE, ContactState.EXHAUSTED, ContactState.CANCELLED})


class AttemptState(enum.StrEnum):
    DIALING = "dialing"
    CONNECTED = "connected"
    WRAPPING = "wrapping"
    FINAL = "final"


class Disposition(enum.StrEnum):
    """Dispositions the dialler decides itself (a bot may also report custom names, and
    `completed`, which are plain strings)."""

    NO_ANSWER = "no_answer"
    REJECTED = "rejected"
    RNR = "RNR"
    ERROR = "error"
    TIMEOUT = "timeout"
    ABANDONED = "abandoned"
    COMPLETED = "completed"


#: The dispositions `retry.on_system` picks from (CONTRACT.md).
SYSTEM_DISPOSITIONS = frozenset(
    {
        Disposition.NO_ANSWER,
        Disposition.REJECTED,
        Disposition.RNR,
        Disposition.ERROR,
        Disposition.TIMEOUT,
        Disposition.ABANDONED,
    }
)
