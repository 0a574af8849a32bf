"""The wording of the triage report: what each check observed, the fixes it suggests, times,
durations and counts as text — and caller IDs masked, so the report never shows a dialable
number. Pure: facts in, text out; what to say is decided by `rules`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..campaigns.checks import window_problems
from ..domain.numbers import E164
from ..domain.prompt import Missing, format_missing
from ..domain.states import SYSTEM_DISPOSITIONS, AttemptState, ContactState
from ..domain.window import Window
from ..durations import format_duration
from ..store.triage import FinishingDecision, OpenAttempt, PoolNumber
from .facts import Facts
from .report import Check

#: The in-flight states in the order the report lists them.
_IN_FLIGHT_ORDER = (AttemptState.DIALING, AttemptState.CONNECTED, AttemptState.WRAPPING)


# --- times, durations, counts, numbers --------------------------------------------------------


def at(moment: datetime | None) -> str:
    """RFC 3339 UTC to the second, for text."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(now: datetime, moment: datetime) -> str:
    """How long before `now` `moment` was: ``3m ago``."""
    return format_duration(max(0, round((now - moment).total_seconds()))) + " ago"


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`count` and `noun`, plural unless it is one: ``1 contact``, ``3 contacts``."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def mask(number: str) -> str:
    """A caller ID as the report shows it: enough to recognise, never a dialable number."""
    return "…" + number[-4:]


def mask_numbers(text: str) -> str:
    """`text` with every E.164 number in it masked."""
    return E164.sub(lambda match: mask(match.group(0)), text)


def checked_line(title: str, check: Check) -> str:
    """One line of the escalation summary's "checked"."""
    return f"{title}: {check.name} {'passed' if check.ok else 'FAILED'} ({check.observed})"


# --- the window and the pool -------------------------------------------------------------------


def window_text(f: Facts) -> str:
    """The window as set, or what is wrong with it."""
    c = f.campaign
    if f.window is None:
        return "; ".join(window_problems(c.spec))
    return f"{c.window_start}–{c.window_end} on {', '.join(c.window_days)}, {c.timezone}"


def window_open_observed(f: Facts, window: Window, is_open: bool) -> str:
    """The campaign's wall clock against its window, and when it next opens or closes."""
    local = f.now.astimezone(window.zone)
    text = (
        f"{local:%a %H:%M} in {window.timezone}, window {window.start}–{window.end} on "
        f"{', '.join(window.day_names)}"
    )
    if is_open:
        closes = window.next_close(f.now)
        return f"open now: {text}" + (f"; closes {at(closes)}" if closes else "")
    return f"closed now: {text}; opens {at(window.next_open(f.now))}"


def zones_open_observed(is_open: bool) -> str:
    """A per-contact window: whether some contacts' own zones are inside it now."""
    if is_open:
        return "open now for some contacts: their own zones are inside the window"
    return "closed now in every contact's own zones (window.per_contact)"


def working_day_observed(f: Facts, window: Window, working: bool) -> str:
    local = f.now.astimezone(window.zone)
    return (
        f"{local:%A} in {window.timezone} is {'' if working else 'not '}a working "
        f"day ({', '.join(window.day_names)})"
    )


def pool_observed(pool: Sequence[PoolNumber]) -> str:
    if not pool:
        return "the number pool is empty"
    enabled = [p for p in pool if p.enabled]
    if not enabled:
        return (
            f"all {len(pool)} caller IDs of the pool are disabled ("
            + ", ".join(mask(p.number) for p in pool)
            + ")"
        )
    return f"{len(enabled)} of {len(pool)} caller IDs enabled"


def carriers_observed(pool: Sequence[PoolNumber]) -> str:
    if not pool:
        return "the number pool is empty"
    carriers = Counter(p.carrier for p in pool if p.enabled)
    if not carriers:
        return "every caller ID of the pool is disabled"
    return "caller IDs on " + ", ".join(
        f"carrier {name} ({n} enabled)" for name, n in sorted(carriers.items())
    )


# --- dialling ----------------------------------------------------------------------------------


def due_observed(f: Facts, due: int) -> str:
    if due:
        return f"{counted(due, 'contact')} due now"
    upcoming = [row.next_due_at for row in f.waiting.values() if row.next_due_at is not None]
    if upcoming:
        return f"no contact due now; the next is due at {at(min(upcoming))}"
    return "no contact due now, none waiting"


def last_dial_observed(f: Facts) -> str:
    last = f.campaign.last_dial_at
    threshold = format_duration(f.stall_after)
    if last is None:
        since = f.campaign.started_at
        start = f" since the start at {at(since)}" if since is not None else ""
        return f"no dial yet{start} (stall after {threshold})"
    return f"last dial {ago(f.now, last)} at {at(last)} (stall after {threshold})"


def contacts_left_observed(f: Facts) -> str:
    return (
        f"pending {f.count(ContactState.PENDING)}, retries scheduled "
        f"{f.count(ContactState.RETRY_SCHEDULED)}, callbacks "
        f"{f.count(ContactState.CALLBACK_SCHEDULED)}; retries left "
        f"{f.activity.retries_left}"
        + (" (always-on: waits for contacts from the API)" if f.campaign.always_on else "")
    )


def daemons_observed(f: Facts) -> str:
    if f.daemons:
        return f"{counted(f.daemons, 'daemon')} heart-beating"
    return (
        "no daemon has heart-beaten in the last "
        f"{format_duration(3 * f.scheduler.heartbeat_interval)}"
    )


def fleet_observed(f: Facts) -> str:
    return (
        f"{f.fleet_capacity} bot slots in rotation ({f.fleet_free} free) for "
        f"concurrency {f.campaign.concurrency}"
    )


# --- answers -----------------------------------------------------------------------------------


def pattern_text(carrier: str, label: str, count: int, total: int, codes: Mapping[int, int]) -> str:
    """A carrier's SIP pattern among its recent calls: ``carrier lab: 4 of 5 … SIP 5xx``."""
    share = count / total if total else 0.0
    listed = ", ".join(f"{code} ×{n}" for code, n in sorted(codes.items()))
    return f"carrier {carrier}: {count} of {total} recent calls ({share:.0%}) SIP {label}" + (
        f" ({listed})" if listed else ""
    )


def time_of_day_observed(f: Facts, unanswered: Sequence[datetime]) -> str:
    """When the calls were placed, and the local hour with the most unanswered ones (dialled
    at `unanswered`)."""
    c = f.campaign
    try:
        zone = ZoneInfo(c.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return f"time zone {c.timezone!r} is invalid"
    hours = Counter(moment.astimezone(zone).hour for moment in unanswered)
    text = f"window {c.window_start}–{c.window_end} {c.timezone}"
    if hours:
        hour, count = hours.most_common(1)[0]
        text += (
            f"; most unanswered calls at {hour:02d}:00–{(hour + 1) % 24:02d}:00 local "
            f"({count} of {sum(hours.values())})"
        )
    return text


# --- prompt variables --------------------------------------------------------------------------


def variables_observed(f: Facts, missing: Sequence[Missing], used: Sequence[str]) -> str:
    if not used:
        return "the prompt uses no variables"
    if not f.contacts:
        return f"no contacts yet to compare with the prompt's variables ({', '.join(used)})"
    if missing:
        return "; ".join(
            format_missing(m, lacking="is not a variable of any contact") for m in missing
        )
    return f"every prompt variable is a contact variable ({', '.join(used)})"


def missing_fix(name: str, placeholder: str, suggestion: str | None) -> str:
    if suggestion is not None:
        return (
            f"rename the CSV column (or API metadata key) {suggestion!r} to {name!r}, or "
            f"change {placeholder} in the bot's prompt to use {suggestion!r} — the "
            "spelling must match exactly, case included"
        )
    return (
        f"add a {name!r} column to the contacts (or metadata key for API contacts), or "
        f"remove {placeholder} from the bot's prompt"
    )


# --- retries -----------------------------------------------------------------------------------


def rule_list(disposition: str | None) -> str:
    """The retry list a disposition belongs in."""
    return "on_system" if disposition in SYSTEM_DISPOSITIONS else "on_custom"


def rules_observed(f: Facts, not_covered: Sequence[FinishingDecision]) -> str:
    retry = f.campaign.retry
    if not_covered:
        return "; ".join(
            f"{counted(r.n, 'contact')} ended done after {r.disposition!r}, which is not in "
            f"retry.{rule_list(r.disposition)}"
            for r in not_covered
        )
    rules = (
        f"retry.on_system [{', '.join(sorted(retry.on_system))}], retry.on_custom "
        f"[{', '.join(sorted(retry.on_custom))}]"
    )
    if not f.finishing:
        return f"no contact has finished yet; {rules}"
    return f"every finished contact's last outcome is covered or completed; {rules}"


def rule_fix(row: FinishingDecision) -> str:
    name = row.disposition
    return (
        f"add {name!r} to retry.{rule_list(name)} to re-dial such outcomes "
        f"({counted(row.n, 'contact')} ended done after it; the rule applies to attempts "
        "decided after the change: pause, `dialler campaign edit`, resume)"
    )


def delay_observed(f: Facts, waiting: int) -> str:
    delay = format_duration(f.campaign.retry.delay)
    next_due = f.waiting_in(ContactState.RETRY_SCHEDULED).next_due_at
    if not waiting or next_due is None:
        return f"no retry is waiting for its delay ({delay})"
    return (
        f"{counted(waiting, 'retry', 'retries')} waiting for the {delay} delay; the next "
        f"is due at {at(next_due)} "
        f"({format_duration(max(0.0, (next_due - f.now).total_seconds()))} from now)"
    )


def overdue_observed(f: Facts, state: ContactState, noun: str, plural: str) -> str:
    row = f.waiting_in(state)
    if not row.overdue or row.oldest_overdue_at is None:
        return f"no {plural} overdue by more than {format_duration(f.stall_after)}"
    oldest = row.oldest_overdue_at
    where = (
        ""
        if f.can_dial
        else ("; they wait: the campaign is not running inside its window with a free slot")
    )
    return (
        f"{counted(row.overdue, noun, plural)} due since {at(oldest)} ({ago(f.now, oldest)}) "
        f"not dialled{where}"
    )


def redial_observed(f: Facts, cancelled: int) -> str:
    redial = f.campaign.redial
    stop = redial.stop_after_connect_longer_than
    short = redial.redial_after_connect_shorter_than
    rules = (
        f"stop rule {'after ' + format_duration(stop) if stop is not None else 'off'}, "
        f"short-connect rule "
        f"{'under ' + format_duration(short) if short is not None else 'off'}"
    )
    if cancelled:
        why = "the campaign's cancel or " if f.campaign.cancelled else ""
        return (
            f"redials of {counted(cancelled, 'contact')} cancelled on purpose ({why}the "
            f"stop rule after a meaningful connect); {rules}"
        )
    return rules


# --- attempts in flight ------------------------------------------------------------------------


def in_flight_counts(attempts: Sequence[OpenAttempt]) -> str:
    """``dialing 1, connected 0, wrapping 0``."""
    states = Counter(a.state for a in attempts)
    return ", ".join(f"{state} {states[state]}" for state in _IN_FLIGHT_ORDER)


def past_observed(f: Facts, past: Sequence[OpenAttempt]) -> str:
    if not past:
        return (
            f"{len(f.open_attempts)} attempts in flight ({in_flight_counts(f.open_attempts)})"
            ", none past its deadline"
        )
    oldest = min(past, key=lambda a: a.deadline_at)
    return (
        f"{len(past)} of {counted(len(f.open_attempts), 'in-flight attempt')} past the "
        f"deadline; the oldest ({oldest.state}) since {at(oldest.deadline_at)} "
        f"({ago(f.now, oldest.deadline_at)})"
    )
