"""How the console words and colours what the services return (pure functions, no I/O).

The texts and colours are the triage guide's, verbatim ("Running but no calls go out"): the
Live Activity panel's status text and colour for each `activity` of `campaign show --json`, and
the Last Dial age ("4 min ago"). Colour is never the only signal: every coloured element also
carries its text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from ..domain.states import ContactState
from ..stats import IN_FLIGHT

__all__ = [
    "ACTIVITY",
    "Activity",
    "StatCell",
    "activity_of",
    "age",
    "contact_kind",
    "parse_time",
    "percent",
    "stat_cells",
]


@dataclass(frozen=True, slots=True)
class Activity:
    """The Live Activity panel: its status text, colour and what it means (the guide's)."""

    text: str
    colour: str
    meaning: str


ACTIVITY: Mapping[str, Activity] = {
    "live": Activity("Live Activity", "green", "The dialler is actively placing calls."),
    "idle_waiting_for_retries": Activity(
        "Idle — Waiting for retries",
        "amber",
        "No dials in the last 30 seconds; the campaign is waiting for retry delays to elapse "
        "or for eligible contacts.",
    ),
    "paused_outside_window": Activity(
        "Paused — Outside time window",
        "orange",
        "The current time is outside the calling window, or today is not a working day.",
    ),
    "draft": Activity("Draft", "grey", "Not started yet."),
    "paused": Activity("Paused", "grey", "Paused by an operator: no new dials."),
    "completed": Activity("Completed", "grey", "Finished: nothing left to dial."),
}

#: The contact states the guide calls normal waiting states (do not escalate).
_WAITING = frozenset(
    {ContactState.PENDING, ContactState.RETRY_SCHEDULED, ContactState.CALLBACK_SCHEDULED}
)


def activity_of(activity: str) -> Activity:
    """The panel for an `activity` value; an unknown one is shown as it is, in grey."""
    return ACTIVITY.get(activity, Activity(activity, "grey", ""))


def contact_kind(state: str) -> str:
    """`waiting`, `in-flight` or `final`: the guide's "Contacts stuck in a working state"."""
    if state in _WAITING:
        return "waiting"
    if state in IN_FLIGHT:
        return "in-flight"
    return "final"


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 time of the JSON (`...Z`), or None."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago, relative and short: `12 s ago`, `4 min ago`, `3 h ago`, `2 d ago`;
    `never` without a moment."""
    if moment is None:
        return "never"
    seconds = max(0.0, ((now or datetime.now(UTC)) - moment).total_seconds())
    if seconds < 60:
        return f"{int(seconds)} s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


def percent(fraction: float) -> str:
    """A fraction as a percentage with one decimal: `0.1234` → `12.3 %`."""
    if not math.isfinite(fraction):
        return "–"
    return f"{fraction * 100:.1f} %"


@dataclass(frozen=True, slots=True)
class StatCell:
    """One cell of the stats grid: its label, the JSON path it shows and the value."""

    key: str  # the data-testid suffix: stat-<key>
    label: str
    path: str  # the key path in `campaign show --json`
    value: object


#: The stats grid, in the guide's order: (test id suffix, label, key path in the JSON).
_GRID: tuple[tuple[str, str, str], ...] = (
    ("pending", "Pending", "stats.pending"),
    ("dialing", "Dialing", "stats.dialing"),
    ("connected", "Connected", "stats.connected"),
    ("wrapping", "Wrapping up", "stats.wrapping"),
    ("retry-scheduled", "Retry scheduled", "stats.retry_scheduled"),
    ("callback-scheduled", "Callback scheduled", "stats.callback_scheduled"),
    ("retries-left", "Retries left", "stats.retries_left"),
    ("done", "Done", "stats.done"),
    ("exhausted", "Exhausted", "stats.exhausted"),
    ("cancelled", "Cancelled", "stats.cancelled"),
    ("answered", "Answered", "outcomes.answered"),
    ("no-answer", "No answer", "outcomes.no_answer"),
    ("rejected", "Rejected", "outcomes.rejected"),
    ("error", "Error", "outcomes.error"),
)


def _at(data: Mapping[str, object], path: str) -> object:
    value: object = data
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def stat_cells(show: Mapping[str, object]) -> list[StatCell]:
    """The stats grid's cells from `campaign show --json` (a key missing shows as `–`)."""
    return [StatCell(key, label, path, _at(show, path)) for key, label, path in _GRID]
