"""The guide's Quick triage table, one function per row, each a pure function of the facts.

A row says whether its symptom shows (`applies`), runs its first checks (`Check`: passed or
not, with what was observed), lists what the operator can fix, and decides whether to escalate
— the "Escalate when" column with this campaign's thresholds (docs/triage.md, row by row). The
wording is `text`'s; no I/O here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..campaigns.checks import StartFacts, start_problems
from ..domain.outcomes import Outcome
from ..domain.prompt import format_invalid, missing_variables, placeholders
from ..domain.rules import COMPLETED, NextAction
from ..domain.states import (
    SYSTEM_DISPOSITIONS,
    WAITING,
    AttemptState,
    CampaignState,
    ContactState,
    Disposition,
)
from ..durations import format_duration
from ..store.triage import FinishingDecision, OpenAttempt, RecentAttempt
from . import text
from .facts import RECENT_ATTEMPTS, Facts, prompt_names
from .report import AffectedCall, Check, EscalationSummary, Symptom

__all__ = [
    "BAD_NUMBER_CODES",
    "BAD_NUMBER_SHARE",
    "BUSY_CODES",
    "MANY_UNANSWERED",
    "MIN_PATTERN",
    "MOST",
    "ROWS",
    "SILENT_DISPOSITIONS",
    "SILENT_SHARE",
    "UNANSWERED",
    "Pattern",
    "bot_silent",
    "evaluate",
    "in_rules",
    "no_answer",
    "no_calls",
    "patterns",
    "report_missing",
    "retries",
    "stuck",
    "summary",
    "test_call_observed",
    "will_not_start",
    "window_checks",
    "wrong_details",
]

#: "Most calls": more than this share.
MOST = 0.5
#: "Many no-answer or rejected" applies from this share of recent calls (and MIN_PATTERN).
MANY_UNANSWERED = 0.5
#: "Calls answer but the bot never speaks" applies from this share of recent answered calls.
SILENT_SHARE = 0.1
#: Fewer calls than this are no "pattern", whatever their share.
MIN_PATTERN = 3
#: SIP codes that say the dialled number itself is bad (not found, gone, incomplete, does
#: not exist anywhere), and the share of recent calls from which list quality is in doubt.
BAD_NUMBER_CODES = frozenset({404, 410, 484, 604})
BAD_NUMBER_SHARE = 0.2
#: SIP codes of a callee busy or declining.
BUSY_CODES = frozenset({486, 603})
#: Dispositions of an answered call that reached no bot or no bot result.
SILENT_DISPOSITIONS = frozenset({Disposition.ABANDONED, Disposition.TIMEOUT})
#: Outcomes of a call nobody picked up.
UNANSWERED = frozenset({Outcome.NO_ANSWER, Outcome.REJECTED})

#: Fixes more than one row suggests.
_NO_WORKER_FIX = (
    "no bot worker is in rotation: add workers (fleet.workers in the config) "
    "or start the registered ones"
)


def evaluate(f: Facts) -> list[Symptom]:
    """Every row of the table, in the guide's order."""
    return [row(f) for row in ROWS]


def summary(f: Facts, symptoms: Sequence[Symptom]) -> EscalationSummary:
    """The call to quote: from the first row that escalates, else the first that applies."""
    call = next((s.call for s in symptoms if s.escalate and s.call is not None), None)
    if call is None:
        call = next((s.call for s in symptoms if s.applies and s.call is not None), None)
    checked = [text.checked_line(s.title, c) for s in symptoms if s.applies for c in s.checks]
    quiet = [s.title for s in symptoms if not s.applies]
    if quiet:
        checked.append("not observed: " + "; ".join(quiet))
    return EscalationSummary(f.campaign.id, f.now, call, checked)


# --- Campaign will not start -----------------------------------------------------------------


def will_not_start(f: Facts) -> Symptom:
    c = f.campaign
    enabled = [p for p in f.pool if p.enabled]
    checks = [
        Check(
            "bot_selected",
            c.bot_name is not None,
            f"bot {c.bot_name}"
            if c.bot_name is not None
            else "no bot selected" + ("" if f.bots else ", and no bot exists yet"),
        ),
        Check("number_pool", bool(enabled), text.pool_observed(f.pool)),
        Check("concurrency", c.concurrency >= 1, f"concurrency {c.concurrency}"),
        Check("window_valid", f.window is not None, text.window_text(f)),
        Check(
            "contacts_present",
            f.contacts > 0 or c.always_on,
            text.counted(f.contacts, "contact") + (" (always-on: optional)" if c.always_on else ""),
        ),
    ]
    start = StartFacts(
        spec=c.spec,
        bots=f.bots,
        pool={p.number: p.enabled for p in f.pool},
        has_contacts=f.contacts > 0,
    )
    fix = [text.mask_numbers(problem) for problem in start_problems(start)]
    draft = c.state == CampaignState.DRAFT
    if not draft:
        reason = f"the campaign is {c.state}: it has started"
    elif c.cancelled:
        reason = "the draft was cancelled: it can never start"
        fix.append("create a new campaign with these settings (`dialler campaign create`)")
    elif fix:
        reason = f"{len(fix)} start check(s) fail: fix them, then start it"
    else:
        reason = (
            "every start check passes: `dialler campaign start` should succeed; "
            "escalate if it fails or does nothing"
        )
    return Symptom(
        "will_not_start",
        "Campaign will not start",
        draft,
        checks,
        fix if draft else [],
        escalate=False,
        escalate_when="every start check passes, yet `dialler campaign start` fails or does "
        "nothing (the start itself is not on record: tell engineering what it "
        "printed)",
        reason=reason,
    )


# --- Running but no calls go out -------------------------------------------------------------


def no_calls(f: Facts) -> Symptom:
    left = sum(f.count(state) for state in WAITING)
    due = sum(f.waiting_in(state).due for state in WAITING)
    checks = [
        *window_checks(f),
        Check("contacts_left", left > 0, text.contacts_left_observed(f)),
        Check("contacts_due", due > 0, text.due_observed(f, due)),
        Check("number_pool", any(p.enabled for p in f.pool), text.pool_observed(f.pool)),
        Check(
            "fleet_in_rotation",
            f.fleet_capacity > 0,
            f"{f.fleet_capacity} bot slots in rotation, {f.fleet_free} free",
        ),
        Check("daemon_running", f.daemons > 0, text.daemons_observed(f)),
        Check("last_dial", not f.activity.stalled, text.last_dial_observed(f)),
    ]
    applies = f.running and f.activity.activity != "live"
    escalate = applies and f.activity.stalled
    if escalate:
        reason = (
            "stalled: inside the window with contacts due and a free slot, but "
            f"{text.last_dial_observed(f)}"
        )
        if f.daemons == 0:
            reason += "; no daemon is running"
    elif not applies:
        reason = _calls_going_out(f)
    else:
        failed = [check.observed for check in checks if not check.ok]
        reason = (
            "not a stall: " + "; ".join(failed[:2])
            if failed
            else f"not a stall yet: {text.last_dial_observed(f)}"
        )
    return Symptom(
        "no_calls",
        "Running but no calls go out",
        applies,
        checks,
        _no_calls_fix(f, checks) if applies else [],
        escalate,
        escalate_when="inside the window, contacts due, a free slot, and no dial for longer "
        f"than {format_duration(f.stall_after)} (stall_after)",
        reason=reason,
        call=_last_call(f, "no_calls") if escalate else None,
    )


def _calls_going_out(f: Facts) -> str:
    """Why "no calls" does not apply."""
    if f.campaign.cancelled:
        return "the campaign was cancelled: no new dials, by design"
    if f.campaign.state != CampaignState.RUNNING:
        return f"the campaign is {f.campaign.state}, not running"
    return "calls are going out: a dial in the last 30 s (Live Activity)"


def _no_calls_fix(f: Facts, checks: Sequence[Check]) -> list[str]:
    failed = {check.name for check in checks if not check.ok}
    fix: list[str] = []
    if "window_open" in failed and f.window is not None and f.zones_open is not None:
        fix.append(
            "wait for the window to open in the contacts' own zones (`campaign show`: "
            "waiting_for_local_window), or widen window.start/window.end or window.days "
            "(`dialler campaign edit`)"
        )
    elif "window_open" in failed and f.window is not None:
        fix.append(
            f"wait for the window to open at {text.at(f.window.next_open(f.now))}, or "
            "widen window.start/window.end or window.days (`dialler campaign edit`)"
        )
    if "working_day" in failed:
        fix.append("today is not in window.days: add it if calls should go out today")
    if "contacts_left" in failed and f.campaign.always_on:
        fix.append(
            "always-on: nothing is dialled until contacts arrive (`dialler contacts "
            "add`, or the API trigger)"
        )
    elif "contacts_left" in failed:
        fix.append(
            "nothing is left to dial: import more contacts (`dialler contacts import`)"
            " or raise retry.max_attempts; otherwise the campaign completes"
        )
    elif "contacts_due" in failed:
        fix.append(
            "nothing is due yet: contacts wait for their retry delay or callback "
            "time — normal between passes"
        )
    if "number_pool" in failed:
        fix.append(
            "every caller ID of the pool is disabled or the pool is empty: "
            "`dialler number enable NUMBER`, or add an enabled number to the pool"
        )
    if "fleet_in_rotation" in failed:
        fix.append(_NO_WORKER_FIX)
    if "daemon_running" in failed:
        fix.append(
            "no dialler daemon is running: start it (`systemctl start dialler` or `dialler run`)"
        )
    return fix


def _last_call(f: Facts, symptom: str) -> AffectedCall | None:
    """The campaign's most recent dial, among open attempts and the newest final ones."""
    dials = [(a.dialled_at, a.id) for a in f.open_attempts]
    dials.extend((a.dialled_at, a.id) for a in f.recent)
    if not dials:
        return None
    dialled_at, attempt_id = max(dials, key=lambda d: d[0])
    return AffectedCall(attempt_id, dialled_at, symptom, "the last dial before the stall")


# --- Many no-answer or rejected --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pattern:
    """Recent calls of one carrier that ended with SIP codes of one kind (429, or 5xx)."""

    carrier: str
    label: str  # "429" or "5xx"
    count: int
    total: int
    codes: Counter[int] = field(default_factory=Counter)

    @property
    def share(self) -> float:
        return self.count / self.total if self.total else 0.0

    @property
    def repeats(self) -> bool:
        """The same pattern across most of the carrier's calls."""
        return self.count >= MIN_PATTERN and self.share > MOST

    def text(self) -> str:
        return text.pattern_text(self.carrier, self.label, self.count, self.total, self.codes)


def _carrier(attempt: RecentAttempt) -> str:
    return attempt.carrier or "(none)"


def patterns(
    recent: Sequence[RecentAttempt], label: str, matches: Callable[[int], bool]
) -> list[Pattern]:
    """For each carrier (by name), its recent calls whose SIP code `matches`."""
    by_carrier: dict[str, list[RecentAttempt]] = {}
    for attempt in recent:
        by_carrier.setdefault(_carrier(attempt), []).append(attempt)
    found = []
    for carrier, attempts in sorted(by_carrier.items()):
        codes = Counter(
            a.sip_code for a in attempts if a.sip_code is not None and matches(a.sip_code)
        )
        found.append(Pattern(carrier, label, sum(codes.values()), len(attempts), codes))
    return found


def _pattern_check(name: str, found: Sequence[Pattern], what: str) -> Check:
    if not found:
        return Check(name, True, "no final call yet")
    return Check(
        name, not any(p.repeats for p in found), "; ".join(p.text() for p in found) + f" — {what}"
    )


def no_answer(f: Facts) -> Symptom:
    recent = f.recent
    total = len(recent)
    outcomes = Counter(a.outcome for a in recent)
    unanswered = outcomes[Outcome.NO_ANSWER] + outcomes[Outcome.REJECTED]
    busy = sum(1 for a in recent if a.sip_code in BUSY_CODES)
    bad = sum(1 for a in recent if a.sip_code in BAD_NUMBER_CODES)
    limited = patterns(recent, "429", lambda code: code == 429)
    failing = patterns(recent, "5xx", lambda code: 500 <= code <= 599)
    checks = [
        Check(
            "answer_rate",
            not total or unanswered / total < MANY_UNANSWERED,
            f"{outcomes[Outcome.ANSWERED]} of {total} recent calls answered; "
            f"{outcomes[Outcome.NO_ANSWER]} no answer (408/480, ring timeout), "
            f"{outcomes[Outcome.REJECTED]} rejected"
            if total
            else "no final call yet",
        ),
        Check(
            "busy_or_declined",
            not total or busy / total <= MOST,
            f"{busy} of {total} recent calls busy or declined (486/603)",
        ),
        Check(
            "number_quality",
            not total or bad / total < BAD_NUMBER_SHARE,
            f"{bad} of {total} recent calls failed as unknown or malformed numbers "
            "(404/410/484/604)",
        ),
        Check(
            "time_of_day",
            True,
            text.time_of_day_observed(f, [a.dialled_at for a in recent if a.outcome in UNANSWERED]),
        ),
        Check("carriers", bool(f.pool), text.carriers_observed(f.pool)),
        _pattern_check("sip_429", limited, "rate limited by the carrier"),
        _pattern_check("sip_5xx", failing, "carrier, transport or server-side problem"),
    ]
    repeating = [p for p in (*failing, *limited) if p.repeats]
    many = unanswered >= MIN_PATTERN and unanswered / total >= MANY_UNANSWERED
    applies = many or bool(repeating)
    if repeating:
        reason = "the same SIP pattern repeats across most calls: " + "; ".join(
            p.text() for p in repeating
        )
    elif applies:
        reason = "no SIP 429/5xx pattern: a timing or list-quality issue you can address"
    else:
        reason = "most recent calls are answered" if total else "no final call yet"
    return Symptom(
        "no_answer",
        "Many no-answer or rejected",
        applies,
        checks,
        _no_answer_fix(f, checks, repeating) if applies else [],
        bool(repeating),
        escalate_when=f"the same SIP pattern (429, or 5xx) on more than {MOST:.0%} of a "
        f"carrier's last {RECENT_ATTEMPTS} calls (at least {MIN_PATTERN})",
        reason=reason,
        call=_pattern_call(recent, repeating) if applies else None,
    )


def _no_answer_fix(f: Facts, checks: Sequence[Check], repeating: Sequence[Pattern]) -> list[str]:
    failed = {check.name for check in checks if not check.ok}
    fix = [
        f"until carrier {carrier} is fixed, pause the campaign or move its pool to caller "
        "IDs on another carrier"
        for carrier in dict.fromkeys(p.carrier for p in repeating)
    ]
    if f.window is not None:
        fix.append(
            f"check the calling window ({f.window.start}–{f.window.end} "
            f"{f.window.timezone}) matches when this audience picks up"
        )
    if "number_quality" in failed:
        fix.append(
            "clean the contact list: old, ported or wrong-format numbers fail to "
            "connect (see docs/contacts.md for accepted formats)"
        )
    fix.append(
        "if one caller ID is flagged or throttled by its carrier, swap it out of the "
        "pool (`dialler number disable NUMBER`)"
    )
    return fix


def _pattern_call(
    recent: Sequence[RecentAttempt], repeating: Sequence[Pattern]
) -> AffectedCall | None:
    """The newest call of a repeating pattern, else the newest unanswered call."""
    for a in recent:  # newest first
        for pattern in repeating:
            if _carrier(a) == pattern.carrier and a.sip_code in pattern.codes:
                return AffectedCall(
                    a.id,
                    a.dialled_at,
                    "no_answer",
                    f"SIP {a.sip_code} on carrier {pattern.carrier}",
                )
    for a in recent:
        if a.outcome in UNANSWERED:
            code = f", SIP {a.sip_code}" if a.sip_code is not None else ""
            return AffectedCall(a.id, a.dialled_at, "no_answer", f"{a.outcome}{code}")
    return None


# --- Calls answer but the bot never speaks ---------------------------------------------------


def bot_silent(f: Facts) -> Symptom:
    c = f.campaign
    answered = [a for a in f.recent if a.outcome == Outcome.ANSWERED]
    abandoned = [a for a in answered if a.disposition == Disposition.ABANDONED]
    no_result = [a for a in answered if a.disposition == Disposition.TIMEOUT]
    silent_calls = len(abandoned) + len(no_result)
    silent_share = silent_calls / len(answered) if answered else 0.0
    live = (c.state in (CampaignState.RUNNING, CampaignState.PAUSED)) and not c.cancelled
    fleet_ok = f.fleet_capacity >= c.concurrency
    test_ok, test_text = test_call_observed(f)
    checks = [
        Check("fleet_capacity", fleet_ok, text.fleet_observed(f)),
        Check(
            "abandoned_share",
            not answered or len(abandoned) / len(answered) < SILENT_SHARE,
            f"{len(abandoned)} of {len(answered)} recent answered calls abandoned "
            "(no bot worker could take them)",
        ),
        Check(
            "bot_results",
            not answered or len(no_result) / len(answered) < SILENT_SHARE,
            f"{len(no_result)} of {len(answered)} recent answered calls ended without a "
            "bot result (timeout)",
        ),
        Check("test_call", test_ok, test_text),
    ]
    silent = bool(answered) and silent_share >= SILENT_SHARE
    applies = silent or (live and not fleet_ok)
    # One silent call is an incident; a pattern (MIN_PATTERN) is what engineering needs.
    escalate = silent and silent_calls >= MIN_PATTERN and fleet_ok and test_ok
    if escalate:
        reason = (
            f"{silent_share:.0%} of recent answered calls reached no bot, although the "
            "fleet has room and the bot passed its test call"
        )
    elif silent and (not fleet_ok or not test_ok):
        reason = "fix the failing checks first: " + "; ".join(
            check.name for check in checks if not check.ok
        )
    elif silent:
        reason = f"only {silent_calls} silent calls: fewer than {MIN_PATTERN} make no pattern yet"
    elif applies:
        reason = "concurrency is above what the fleet can serve: lower it or add workers"
    else:
        reason = "answered calls reach the bot"
    return Symptom(
        "bot_silent",
        "Calls answer but the bot never speaks",
        applies,
        checks,
        _bot_silent_fix(f, fleet_ok, test_ok, test_text) if applies else [],
        escalate,
        escalate_when=f"{SILENT_SHARE:.0%} or more of recent answered calls (at least "
        f"{MIN_PATTERN}) abandoned or without a bot result, while the fleet's "
        "slots in rotation cover the concurrency and the bot's latest test call "
        "passed",
        reason=reason,
        call=_silent_call(f.recent) if silent else None,
    )


def _bot_silent_fix(f: Facts, fleet_ok: bool, test_ok: bool, test_text: str) -> list[str]:
    fix = []
    if f.fleet_capacity == 0:
        fix.append(_NO_WORKER_FIX)
    elif not fleet_ok:
        fix.append(
            f"lower the campaign's concurrency to {f.fleet_capacity} (what the fleet "
            "can serve), or add bot workers (fleet.workers, or register more)"
        )
    if not test_ok:
        if f.test_call is None:
            bot = f.campaign.bot_name or "BOT"
            fix.append(
                f"run a test call against the bot: `dialler test-call --bot {bot} --to NUMBER`"
            )
        else:
            fix.append(
                f"{test_text}: if the bot is silent on a test call too, fix its voice "
                "pipeline (speech-to-text, language model, text-to-speech), not the "
                "campaign"
            )
    return fix


def test_call_observed(f: Facts) -> tuple[bool, str]:
    """Whether the bot's latest test call passed, and what it shows."""
    bot = f.campaign.bot_name
    if bot is None:
        return False, "no bot selected"
    call = f.test_call
    if call is None:
        return False, f"no test call of bot {bot} on record"
    when = f"test call of bot {bot} at {text.at(call.dialled_at)}"
    if call.state != AttemptState.FINAL:
        return False, f"{when} is still in progress"
    if call.outcome != Outcome.ANSWERED:
        code = f", SIP {call.sip_code}" if call.sip_code is not None else ""
        return False, f"{when} did not connect ({call.outcome}{code})"
    if call.disposition in SILENT_DISPOSITIONS or call.worker is None:
        return False, f"{when} was answered but reached no bot ({call.disposition})"
    return True, f"{when} passed: worker {call.worker}, result {call.disposition}"


def _silent_call(recent: Sequence[RecentAttempt]) -> AffectedCall | None:
    for a in recent:
        if a.outcome == Outcome.ANSWERED and a.disposition in SILENT_DISPOSITIONS:
            return AffectedCall(a.id, a.dialled_at, "bot_silent", f"answered, {a.disposition}")
    return None


# --- Bot says the wrong customer details -----------------------------------------------------


def wrong_details(f: Facts) -> Symptom:
    escalate_when = (
        "the variable names match in the contacts and the prompt and every "
        "contact has a value, yet calls still render them blank"
    )
    if f.prompt is None:
        return Symptom(
            "wrong_details",
            "Bot says the wrong customer details",
            False,
            [],
            [],
            False,
            escalate_when,
            reason="no bot selected: no prompt to compare",
        )
    missing = missing_variables(f.prompt, f.contact_variables) if f.contacts else []
    invalid = [p for p in placeholders(f.prompt) if not p.valid]
    known = set(f.contact_variables)
    blank = {name: n for name, n in f.lacking.items() if n and name in known}
    checks = [
        Check(
            "prompt_variables",
            not missing,
            text.variables_observed(f, missing, prompt_names(f.prompt)),
        ),
        Check(
            "placeholders",
            not invalid,
            "; ".join(format_invalid(p) for p in invalid)
            if invalid
            else "every placeholder is well-formed ({{NAME}} or {{call.NAME}})",
        ),
        Check(
            "contact_values",
            not blank,
            "; ".join(
                f"{n} of {text.counted(f.contacts, 'contact')} without a value for {name!r}"
                for name, n in sorted(blank.items())
            )
            if blank
            else "every contact has a value for each prompt variable it has a column for",
        ),
    ]
    fix = [text.missing_fix(m.name, m.placeholder, m.suggestion) for m in missing]
    fix.extend(f"fix the malformed placeholder {p.text!r} in the bot's prompt" for p in invalid)
    fix.extend(
        f"fill in {name!r} for the {n} contacts without it (CSV cell or API metadata)"
        for name, n in sorted(blank.items())
    )
    applies = bool(fix)
    answered = next((a for a in f.recent if a.outcome == Outcome.ANSWERED), None)
    call = (
        AffectedCall(
            answered.id,
            answered.dialled_at,
            "wrong_details",
            "answered with the prompt's variables unresolved",
        )
        if applies and missing and answered is not None
        else None
    )
    return Symptom(
        "wrong_details",
        "Bot says the wrong customer details",
        applies,
        checks,
        fix,
        False,
        escalate_when,
        reason=("fix the names first: the bot is given nothing for a variable it cannot resolve")
        if applies
        else "names and values match: escalate only if a call still renders them blank",
        call=call,
    )


# --- Retries are not happening ---------------------------------------------------------------


def in_rules(disposition: str | None, on_system: frozenset[str], on_custom: frozenset[str]) -> bool:
    """Whether a retry rule re-dials `disposition` (a system name in on_system only, any
    other in on_custom only)."""
    if disposition in SYSTEM_DISPOSITIONS:
        return disposition in on_system
    return disposition in on_custom


def retries(f: Facts) -> Symptom:
    retry = f.campaign.retry
    not_covered = [
        r
        for r in f.finishing
        if r.next_action == NextAction.DONE
        and r.disposition != COMPLETED
        and not in_rules(r.disposition, retry.on_system, retry.on_custom)
    ]
    exhausted = sum(r.n for r in f.finishing if r.next_action == NextAction.EXHAUSTED)
    cancelled = sum(r.n for r in f.finishing if r.next_action == NextAction.CANCELLED)
    scheduled = f.waiting_in(ContactState.RETRY_SCHEDULED)
    overdue = scheduled.overdue
    checks = [
        Check("retry_rules", not not_covered, text.rules_observed(f, not_covered)),
        Check(
            "max_attempts",
            exhausted == 0,
            f"{text.counted(exhausted, 'contact')} used all their attempts "
            f"(max {retry.max_attempts}): exhausted"
            if exhausted
            else f"no contact has used all its attempts (max {retry.max_attempts})",
        ),
        Check("retry_delay", scheduled.waiting == 0, text.delay_observed(f, scheduled.waiting)),
        Check(
            "retries_overdue",
            overdue == 0,
            text.overdue_observed(f, ContactState.RETRY_SCHEDULED, "retry", "retries"),
        ),
        Check("redial_rules", True, text.redial_observed(f, cancelled)),
    ]
    escalate = overdue > 0 and f.can_dial
    applies = bool(not_covered) or overdue > 0
    fix = [text.rule_fix(r) for r in not_covered]
    if exhausted:
        fix.append(
            f"raise retry.max_attempts (now {retry.max_attempts}) if exhausted "
            "contacts should be dialled more"
        )
    if escalate:
        reason = (
            f"{text.counted(overdue, 'eligible retry', 'eligible retries')} overdue by "
            f"more than {format_duration(f.stall_after)} while the campaign runs inside "
            "its window with a free slot"
        )
    elif overdue:
        reason = "due retries wait for the campaign to run inside its window with a free slot"
    elif not_covered:
        reason = "the outcomes are not in the retry rules: re-dialling them is your setting"
    else:
        reason = "every contact not retried is explained by its attempts, delay or rules"
    call = _overdue_call(f, ContactState.RETRY_SCHEDULED, "retries") if overdue else None
    if call is None and not_covered:
        call = _not_covered_call(not_covered[0])
    return Symptom(
        "retries",
        "Retries are not happening",
        applies,
        checks,
        fix if applies else [],
        escalate,
        escalate_when="retries are due (attempts left, delay elapsed, outcome in the rules) "
        f"but not dialled for more than {format_duration(f.stall_after)} while "
        "the campaign runs inside its window with a free slot",
        reason=reason,
        call=call,
    )


def _not_covered_call(top: FinishingDecision) -> AffectedCall:
    return AffectedCall(
        top.latest,
        top.latest_dialled_at,
        "retries",
        f"ended done after {top.disposition!r}, not in the retry rules",
    )


# --- Contacts stuck in a working state -------------------------------------------------------


def stuck(f: Facts) -> Symptom:
    c = f.campaign
    past = [a for a in f.open_attempts if a.deadline_at < f.now]
    long_past = [a for a in past if (f.now - a.deadline_at).total_seconds() > f.stall_after]
    callbacks = f.waiting_in(ContactState.CALLBACK_SCHEDULED).overdue if f.can_dial else 0
    orphans = max(0, f.in_flight - len(f.open_attempts))
    paused = c.state == CampaignState.PAUSED
    checks = [
        Check(
            "campaign_running",
            f.running,
            f"state {c.state}"
            + (f", cancelled at {text.at(c.cancelled_at)}" if c.cancelled_at is not None else "")
            + (
                "; waiting contacts hold until it resumes, calls in flight finish" if paused else ""
            ),
        ),
        *window_checks(f)[:1],
        Check("in_flight_past_deadline", not past, text.past_observed(f, past)),
        Check(
            "in_flight_without_attempt",
            orphans == 0,
            f"{text.counted(orphans, 'contact')} in a working state without an open attempt "
            "(nothing recovers them)"
            if orphans
            else f"every in-flight contact has its open attempt ({f.in_flight} in flight)",
        ),
        Check(
            "callbacks_overdue",
            callbacks == 0,
            text.overdue_observed(f, ContactState.CALLBACK_SCHEDULED, "callback", "callbacks"),
        ),
    ]
    applies = bool(past) or callbacks > 0 or orphans > 0
    escalate = bool(long_past) or callbacks > 0 or orphans > 0
    if escalate:
        parts = []
        if long_past:
            parts.append(
                f"{len(long_past)} in-flight attempts are past their deadline by "
                f"more than {format_duration(f.stall_after)}: stale recovery is not "
                "clearing them"
            )
        if orphans:
            parts.append(
                f"{text.counted(orphans, 'contact')} in a working state without an "
                "open attempt: nothing will move them"
            )
        if callbacks:
            parts.append(
                f"{text.counted(callbacks, 'callback')} overdue while the campaign "
                "runs inside its window with a free slot"
            )
        reason = "; ".join(parts)
    elif past:
        reason = (
            "stale recovery reconciles attempts past their deadline every 5 s: run "
            "triage again in a minute"
        )
    else:
        reason = "no contact is stuck: waiting states hold on purpose until their time"
    fix = []
    if paused and not c.cancelled:
        fix.append("resume the campaign (`dialler campaign resume`) to move waiting contacts")
    if f.running and not f.window_open and f.window is not None and f.zones_open is not None:
        fix.append("waiting contacts move when the window opens in their own zones")
    elif f.running and not f.window_open and f.window is not None:
        fix.append(
            f"waiting contacts move when the window opens at {text.at(f.window.next_open(f.now))}"
        )
    call = _overdue_call(f, ContactState.CALLBACK_SCHEDULED, "stuck") if callbacks else None
    if past:
        call = _past_call(min(past, key=lambda a: a.deadline_at))
    return Symptom(
        "stuck",
        "Contacts stuck in a working state",
        applies,
        checks,
        fix if applies else [],
        escalate,
        escalate_when="in-flight attempts past their deadline for more than "
        f"{format_duration(f.stall_after)} (recovery runs every 5 s), an "
        "in-flight contact without an open attempt, or callbacks overdue by more "
        f"than {format_duration(f.stall_after)} while the campaign runs inside "
        "its window with a free slot",
        reason=reason,
        call=call,
    )


def _past_call(oldest: OpenAttempt) -> AffectedCall:
    return AffectedCall(
        oldest.id,
        oldest.dialled_at,
        "stuck",
        f"{oldest.state}, past its deadline since {text.at(oldest.deadline_at)}",
    )


def _overdue_call(f: Facts, state: ContactState, symptom: str) -> AffectedCall | None:
    """The last attempt of the contact in `state` overdue the longest."""
    attempt = f.overdue_calls.get(state)
    if attempt is None:
        return None
    what = "retry" if state == ContactState.RETRY_SCHEDULED else "callback"
    return AffectedCall(
        attempt.id,
        attempt.dialled_at,
        symptom,
        f"last attempt of the contact overdue the longest for its {what}",
    )


# --- Attempt report missing rows -------------------------------------------------------------


def report_missing(f: Facts) -> Symptom:
    result_timeout = f.scheduler.result_timeout
    wait = result_timeout + f.stall_after
    in_progress = f.open_attempts
    ended = [
        a
        for a in in_progress
        if a.ended_at is not None and (f.now - a.ended_at).total_seconds() > wait
    ]
    checks = [
        Check(
            "report_rows",
            True,
            f"{text.counted(f.report_rows, 'final attempt')} in the attempt report",
        ),
        Check(
            "attempts_in_progress",
            not in_progress,
            f"{text.counted(len(in_progress), 'attempt')} in progress ("
            + text.in_flight_counts(in_progress)
            + "): they join the report once final",
        ),
        Check(
            "ended_not_final",
            not ended,
            f"{text.counted(len(ended), 'call')} ended more than {format_duration(wait)} ago "
            "without a final result"
            if ended
            else "every ended call is final or within its result wait "
            f"({format_duration(result_timeout)})",
        ),
    ]
    applies = bool(in_progress)
    call = None
    if ended:
        latest = max(ended, key=_ended_at)
        call = AffectedCall(
            latest.id,
            latest.dialled_at,
            "report_missing",
            f"ended at {text.at(latest.ended_at)}, still {latest.state}",
        )
    elif in_progress:
        latest = in_progress[-1]
        call = AffectedCall(latest.id, latest.dialled_at, "report_missing", f"still {latest.state}")
    return Symptom(
        "report_missing",
        "Attempt report missing rows",
        applies,
        checks,
        ["let live calls finish, then download the report again (`dialler report attempts ID`)"]
        if in_progress
        else [],
        bool(ended),
        escalate_when=f"a call that ended more than {format_duration(wait)} ago (result_timeout"
        " + stall_after) still has no final result, so it never reaches the "
        "report",
        reason=(
            "finished calls never became final: they will not reach the report"
            if ended
            else "live calls are still in progress: let them finish"
            if in_progress
            else "every finished attempt is in the report"
        ),
        call=call if applies else None,
    )


def _ended_at(attempt: OpenAttempt) -> float:
    return attempt.ended_at.timestamp() if attempt.ended_at is not None else float("-inf")


# --- shared pieces ---------------------------------------------------------------------------


def window_checks(f: Facts) -> list[Check]:
    """`window_open` and `working_day`, on the campaign's wall clock."""
    window = f.window
    if window is None:
        observed = text.window_text(f)
        return [Check("window_open", False, observed), Check("working_day", False, observed)]
    is_open = f.window_open  # a per-contact window: some contacts' own zones open
    working = f.now.astimezone(window.zone).weekday() in window.days
    observed = (
        text.zones_open_observed(is_open)
        if f.zones_open is not None
        else text.window_open_observed(f, window, is_open)
    )
    return [
        Check("window_open", is_open, observed),
        Check("working_day", working, text.working_day_observed(f, window, working)),
    ]


ROWS: tuple[Callable[[Facts], Symptom], ...] = (
    will_not_start,
    no_calls,
    no_answer,
    bot_silent,
    wrong_details,
    retries,
    stuck,
    report_missing,
)
