"""The next action after an attempt: callback, retry, cancel, exhaust, done — or requeue.

Decided once per attempt, when it becomes final, in CONTRACT.md's order ("Outcome, disposition,
next action"); docs/rules.md has the full decision table:

1. the bot asked for a callback → `callback` at that time, moved into the next window opening;
2. the stop rule matches (talk time > its threshold) → `cancelled` if a re-dial would otherwise
   happen, else `done`;
3. the attempt is retryable (its disposition is in the retry rules, or the short-connect rule
   matches) → `retry` after the delay while attempts are left, else `exhausted`;
4. otherwise `done`.

An attempt that failed on our side before the call was placed is not decided here: `requeue`
puts the contact back without using up an attempt.

The callee's own window (CONTRACT, "Campaign window per contact"): when `decide` gets a
`ZonedWindow` — the window on the zones of the contact's number — a callback **and** a retry
move to its next opening (a retry on the campaign's own window waits for the scheduler
instead, as before), and a contact whose zones never open together again is `cancelled` with
the reason `no_common_window` rather than left waiting forever.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

from .states import SYSTEM_DISPOSITIONS, ContactReason, ContactState, Disposition
from .window import Window
from .zones import ZonedWindow

__all__ = [
    "COMPLETED",
    "CONTACT_STATE",
    "SYSTEM_DISPOSITIONS",
    "AttemptFacts",
    "Decision",
    "NextAction",
    "RedialPolicy",
    "RetryPolicy",
    "decide",
    "is_retryable",
    "requeue",
]

#: The bot's "conversation finished" disposition: neither a system nor a custom name, so no retry
#: rule can match it (only the short-connect rule can re-dial such a call).
COMPLETED = Disposition.COMPLETED


class NextAction(enum.StrEnum):
    RETRY = "retry"
    CALLBACK = "callback"
    CANCELLED = "cancelled"
    EXHAUSTED = "exhausted"
    DONE = "done"
    REQUEUE = "requeue"


#: The contact's state after each action.
CONTACT_STATE: Mapping[NextAction, ContactState] = MappingProxyType(
    {
        NextAction.RETRY: ContactState.RETRY_SCHEDULED,
        NextAction.CALLBACK: ContactState.CALLBACK_SCHEDULED,
        NextAction.CANCELLED: ContactState.CANCELLED,
        NextAction.EXHAUSTED: ContactState.EXHAUSTED,
        NextAction.DONE: ContactState.DONE,
        NextAction.REQUEUE: ContactState.PENDING,
    }
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A campaign's ``retry`` settings: which dispositions re-dial, how often and how soon."""

    max_attempts: int  # attempts per contact, the first included; at least 1
    delay: float  # seconds from the end of one attempt to the next dial
    on_system: frozenset[str]  # a subset of SYSTEM_DISPOSITIONS
    on_custom: frozenset[str]  # custom dispositions the bot reports

    def __post_init__(self) -> None:
        # The campaign file parser reports these in the file's terms; this guards the invariant.
        if self.max_attempts < 1:
            raise ValueError(f"retry.max_attempts: {self.max_attempts} is less than 1")
        if not (math.isfinite(self.delay) and self.delay >= 0):
            raise ValueError(f"retry.delay: {self.delay!r} is not a duration >= 0")
        unknown = sorted(self.on_system - SYSTEM_DISPOSITIONS)
        if unknown:
            raise ValueError(
                f"retry.on_system: {', '.join(unknown)} not in "
                f"{', '.join(sorted(SYSTEM_DISPOSITIONS))}"
            )
        reserved = sorted(self.on_custom & (SYSTEM_DISPOSITIONS | {COMPLETED}))
        if reserved:
            raise ValueError(f"retry.on_custom: {', '.join(reserved)} not a custom disposition")


@dataclass(frozen=True, slots=True)
class RedialPolicy:
    """A campaign's ``redial`` settings, in seconds of talk time; None disables a rule."""

    stop_after_connect_longer_than: float | None
    redial_after_connect_shorter_than: float | None

    def __post_init__(self) -> None:
        for name in ("stop_after_connect_longer_than", "redial_after_connect_shorter_than"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"redial.{name}: {value!r} is not a duration >= 0")

    def overlaps(self) -> bool:
        """Whether some talk time matches both rules (short threshold > stop threshold).

        The campaign start shows a warning; `decide` lets the stop rule win, because a caller
        who talked that long was reached, and re-dialling them is what the stop rule is for.
        Equal thresholds do not overlap: no talk time is both > T and < T.
        """
        stop = self.stop_after_connect_longer_than
        short = self.redial_after_connect_shorter_than
        return stop is not None and short is not None and short > stop

    def stops(self, talk_seconds: float) -> bool:
        """The stop rule matches: talk time strictly longer than its threshold."""
        stop = self.stop_after_connect_longer_than
        return stop is not None and talk_seconds > stop

    def short_connect(self, outcome: str, talk_seconds: float) -> bool:
        """The short-connect rule matches: answered, talk time strictly shorter than its
        threshold (whatever the disposition: a 3-second "completed" call reached no one)."""
        short = self.redial_after_connect_shorter_than
        return short is not None and outcome == "answered" and talk_seconds < short


@dataclass(frozen=True, slots=True)
class AttemptFacts:
    """What `decide` needs to know about one final attempt.

    `disposition` equals `outcome` when unanswered; when answered (or stale) it is what the bot
    reported (``completed``, ``RNR``, a custom name), ``abandoned`` or ``timeout``.
    `attempts_used` counts this contact's attempts toward max_attempts, this one included if it
    counts.
    """

    outcome: str  # answered | no_answer | rejected | error
    disposition: str
    talk_seconds: float  # 0 when unanswered
    ended_at: datetime  # tz-aware
    callback_at: datetime | None  # the bot asked to be called back at this time
    attempts_used: int


@dataclass(frozen=True, slots=True)
class Decision:
    """The next action, when it is due (None for final actions) and the contact's new state;
    `reason` says why a contact ends with no call to come (`no_common_window`), else None."""

    action: NextAction
    next_at: datetime | None
    contact_state: str
    reason: str | None = None


def _decision(action: NextAction, next_at: datetime | None = None) -> Decision:
    return Decision(action, next_at, CONTACT_STATE[action])


def _in_window(action: NextAction, at: datetime, window: Window | ZonedWindow) -> Decision:
    """`action` at the first instant ≥ `at` inside `window`; on a contact's own window that
    never opens again, `cancelled` (`no_common_window`)."""
    opening = window.next_open(at)
    if opening is None:
        return Decision(
            NextAction.CANCELLED,
            None,
            CONTACT_STATE[NextAction.CANCELLED],
            ContactReason.NO_COMMON_WINDOW,
        )
    return _decision(action, opening)


def is_retryable(facts: AttemptFacts, retry: RetryPolicy, redial: RedialPolicy) -> bool:
    """Whether the attempt asks for a re-dial (step 3), before attempts and the stop rule count.

    A system disposition is matched against `on_system` only and any other name against
    `on_custom` only, so a custom list can never re-enable a system disposition; ``completed``
    matches neither. The short-connect rule re-dials an answered call that was too short to
    have reached anyone, whatever its disposition.
    """
    if facts.disposition in SYSTEM_DISPOSITIONS:
        by_rule = facts.disposition in retry.on_system
    else:
        by_rule = facts.disposition != COMPLETED and facts.disposition in retry.on_custom
    return by_rule or redial.short_connect(facts.outcome, facts.talk_seconds)


def decide(
    facts: AttemptFacts, retry: RetryPolicy, redial: RedialPolicy, window: Window | ZonedWindow
) -> Decision:
    """The next action for a final attempt, in CONTRACT.md's order (module docstring).

    `window` is the campaign's window, or a `ZonedWindow`: the window on the contact's own
    zones (a per-contact campaign), into which retries move too."""
    if facts.callback_at is not None:
        # The customer chose the time: it beats the stop rule and, being their request rather
        # than our retry, does not consume an attempt (so there is no exhausted check).
        return _in_window(NextAction.CALLBACK, facts.callback_at, window)
    retryable = is_retryable(facts, retry, redial)
    would_retry = retryable and facts.attempts_used < retry.max_attempts
    if redial.stops(facts.talk_seconds):
        # A long connect reached the person: stop, saying so only when a re-dial was cancelled.
        return _decision(NextAction.CANCELLED if would_retry else NextAction.DONE)
    if would_retry:
        # The delay counts from the end of the attempt; the scheduler waits for the campaign's
        # window. A contact's own window moves the retry into it: its due time (the report's
        # `next_at`) then says when it can really be dialled.
        due = facts.ended_at + timedelta(seconds=retry.delay)
        if isinstance(window, ZonedWindow):
            return _in_window(NextAction.RETRY, due, window)
        return _decision(NextAction.RETRY, due)
    if retryable:
        return _decision(NextAction.EXHAUSTED)
    return _decision(NextAction.DONE)


def requeue(at: datetime) -> Decision:
    """Our side failed before the call was placed (AMI lost, Asterisk out of resources): the
    contact goes back to pending at `at` and the attempt does not count toward max_attempts."""
    return _decision(NextAction.REQUEUE, at)
