"""`dialler triage CAMPAIGN`: the triage guide's Quick triage table, evaluated from the data.

For each row of the table (spec/triage-guide.txt) the report says whether the symptom shows in
the campaign's data (`Symptom.applies`), runs the row's first checks against the database and
the config (`Check`: passed or not, with the value observed), lists what the operator can fix,
and says whether to escalate — the "Escalate when" column made concrete with this campaign's
thresholds. It ends with what an escalation must carry: the campaign id, the time and attempt
id of one affected call (never a phone number) and what was checked. docs/triage.md has the
checks and the escalation rules row by row.

Read-only. The facts are gathered first (`_gather`, queries in store/sql/triage.sql plus the live
activity of `dialler.stats.campaign_show`, so "stalled" means the same everywhere); each row is
then a pure function of them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .campaigns.checks import StartFacts, start_problems, window_problems
from .campaigns.repo import Campaign, bot_names, get_campaign
from .config import Config
from .store.queries import load
from .domain.prompt import format_invalid, format_missing, missing_variables, placeholders
from .domain.rules import COMPLETED, SYSTEM_DISPOSITIONS
from .domain.window import Window, WindowError
from .durations import format_duration
from .stats import IN_FLIGHT, STATES, campaign_show, rfc3339

__all__ = ["AffectedCall", "Check", "EscalationSummary", "Report", "Symptom", "triage"]

Q = load("triage.sql")
_PROMPTS = load("prompts.sql")
_FLEET = load("fleet.sql")
_STATS = load("stats.sql")

#: Final attempts looked at for outcome and SIP patterns (the newest ones).
RECENT_ATTEMPTS = 200
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
#: Dispositions of an answered call that reached no bot or no bot result.
SILENT_DISPOSITIONS = ("abandoned", "timeout")
WAITING = ("pending", "retry_scheduled", "callback_scheduled")

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")

Row = Mapping[str, Any]


# --- the report ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Check:
    """One first check of a row: passed or not, and what was observed."""

    name: str
    ok: bool
    observed: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "observed": self.observed}


@dataclass(frozen=True, slots=True)
class AffectedCall:
    """One call an escalation can point at: its attempt id and when it was dialled."""

    attempt_id: UUID
    at: datetime
    symptom: str        # the key of the row it illustrates
    detail: str         # what is wrong with it, without a phone number

    def to_json(self) -> dict[str, Any]:
        return {"attempt_id": str(self.attempt_id), "at": rfc3339(self.at),
                "symptom": self.symptom, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Symptom:
    """One row of the Quick triage table, evaluated.

    `applies`: the symptom (or a cause the row names) shows in the data. `escalate_when` is
    the row's "Escalate when" with this campaign's thresholds; `reason` says why `escalate` is
    what it is; `call` is the most recent attempt that shows the symptom, if any.
    """

    key: str
    title: str
    applies: bool
    checks: list[Check]
    fix: list[str]
    escalate: bool
    escalate_when: str
    reason: str = ""
    call: AffectedCall | None = None

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "applies": self.applies,
                "checks": [check.to_json() for check in self.checks], "fix": self.fix,
                "escalate": self.escalate, "escalate_when": self.escalate_when,
                "reason": self.reason,
                "call": self.call.to_json() if self.call is not None else None}


@dataclass(frozen=True, slots=True)
class EscalationSummary:
    """What the guide asks an escalation to carry."""

    campaign_id: UUID
    checked_at: datetime
    call: AffectedCall | None   # a specific affected call, from the row that escalates
    checked: list[str]          # what was checked, one line each

    def to_json(self) -> dict[str, Any]:
        return {"campaign_id": str(self.campaign_id), "checked_at": rfc3339(self.checked_at),
                "call": self.call.to_json() if self.call is not None else None,
                "checked": self.checked}


@dataclass(frozen=True, slots=True)
class Report:
    campaign_id: UUID
    name: str
    state: str
    symptoms: list[Symptom]
    escalate: bool              # some row says escalate
    summary: EscalationSummary

    def symptom(self, key: str) -> Symptom:
        """The row called `key`; `KeyError` if there is none."""
        for symptom in self.symptoms:
            if symptom.key == key:
                return symptom
        raise KeyError(key)

    def to_json(self) -> dict[str, Any]:
        return {"campaign_id": str(self.campaign_id), "name": self.name, "state": self.state,
                "escalate": self.escalate,
                "symptoms": [symptom.to_json() for symptom in self.symptoms],
                "summary": self.summary.to_json()}


# --- the facts -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Facts:
    """Everything the rows look at, read once."""

    now: datetime
    config: Config
    campaign: Campaign
    show: dict[str, Any]                # campaign_show: activity, stalled, stats
    window: Window | None               # None when invalid (a draft)
    bots: list[str]
    pool: list[Row]                     # number, enabled, carrier
    prompt: str | None
    contact_variables: list[str]
    lacking: dict[str, int]             # prompt variable -> contacts without a value
    fleet_capacity: int
    fleet_free: int
    daemons: int
    recent: list[Row]                   # the newest final attempts, newest first
    open_attempts: list[Row]
    finishing: list[Row]
    waiting: dict[str, Row]             # waiting state -> counts
    overdue_calls: dict[str, Row | None]   # waiting state -> last attempt, longest overdue
    test_call: Row | None
    report_rows: int

    @property
    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.show["stats"]
        return stats

    @property
    def contacts(self) -> int:
        return sum(int(self.stats[state]) for state in STATES)

    @property
    def running(self) -> bool:
        return self.campaign.state == "running" and not self.campaign.cancelled

    @property
    def window_open(self) -> bool:
        return self.window is not None and self.window.is_open(self.now)

    @property
    def in_flight(self) -> int:
        return sum(int(self.stats[state]) for state in IN_FLIGHT)

    @property
    def can_dial(self) -> bool:
        """Running inside the window with a free slot (campaign and fleet): a due contact
        is claimed within a poll, oldest due first."""
        return (self.running and self.window_open and self.fleet_free > 0
                and self.in_flight < int(self.show["effective_concurrency"]))

    @property
    def stall_after(self) -> float:
        return self.config.scheduler.stall_after

    def waiting_count(self, state: str, column: str) -> int:
        row = self.waiting.get(state)
        return 0 if row is None else int(row[column])


async def _gather(conn: Any, config: Config, campaign_id: UUID, now: datetime) -> _Facts:
    campaign = await get_campaign(conn, campaign_id)
    show = await campaign_show(conn, config, campaign_id, now)
    try:
        window: Window | None = campaign.window()
    except WindowError:
        window = None
    contacts = sum(int(show["stats"][state]) for state in STATES)
    prompt: str | None = None
    if campaign.bot_name is not None:
        prompt = await conn.fetchval(_PROMPTS["bot_prompt"], campaign.bot_name)
    used = _prompt_names(prompt)
    variables: list[str] = []
    lacking: dict[str, int] = {}
    if used and contacts:
        variables = [r["name"] for r in
                     await conn.fetch(_PROMPTS["contact_variable_names"], campaign_id)]
        lacking = {r["name"]: r["lacking"] for r in
                   await conn.fetch(Q["variable_coverage"], campaign_id, used)}
    stall = now - timedelta(seconds=config.scheduler.stall_after)
    alive_since = now - timedelta(seconds=3 * config.scheduler.heartbeat_interval)
    timeout = config.fleet.heartbeat_timeout
    return _Facts(
        now=now, config=config, campaign=campaign, show=show, window=window,
        bots=await bot_names(conn),
        pool=list(await conn.fetch(Q["pool"], campaign_id)),
        prompt=prompt, contact_variables=variables, lacking=lacking,
        fleet_capacity=await conn.fetchval(_FLEET["fleet_capacity"], timeout),
        fleet_free=sum(r["free"] for r in await conn.fetch(_FLEET["fleet_free"], timeout)),
        daemons=(await conn.fetchrow(Q["live_daemons"], alive_since))["n"],
        recent=list(await conn.fetch(Q["recent_attempts"], campaign_id, RECENT_ATTEMPTS)),
        open_attempts=list(await conn.fetch(Q["open_attempts"], campaign_id)),
        finishing=list(await conn.fetch(Q["finishing_decisions"], campaign_id)),
        waiting={r["state"]: r for r in
                 await conn.fetch(Q["waiting_contacts"], campaign_id, now, stall)},
        overdue_calls={state: await conn.fetchrow(Q["overdue_attempt"], campaign_id, state,
                                                  stall)
                       for state in ("retry_scheduled", "callback_scheduled")},
        test_call=(None if campaign.bot_name is None
                   else await conn.fetchrow(Q["last_test_call"], campaign.bot_name)),
        report_rows=(await conn.fetchrow(_STATS["attempt_rates"], campaign_id))["attempts"],
    )


def _prompt_names(prompt: str | None) -> list[str]:
    """The variables `prompt` uses, once each, in order."""
    if prompt is None:
        return []
    return list(dict.fromkeys(p.name for p in placeholders(prompt) if p.name is not None))


# --- entry point -----------------------------------------------------------------------------

async def triage(conn: Any, config: Config, campaign_id: UUID,
                 now: datetime | None = None) -> Report:
    """Walk the guide's Quick triage table for the campaign; `InvalidInput` if unknown.

    The facts are read in one read-only repeatable-read transaction (unless the caller holds
    one already): counts from one query and rows from another must describe the same moment,
    or a call ending in between would look like a contact stuck without its attempt.
    """
    moment = now or datetime.now(UTC)
    if conn.is_in_transaction():
        facts = await _gather(conn, config, campaign_id, moment)
    else:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            facts = await _gather(conn, config, campaign_id, moment)
    symptoms = [row(facts) for row in _ROWS]
    return Report(campaign_id=facts.campaign.id, name=facts.campaign.name,
                  state=facts.campaign.state, symptoms=symptoms,
                  escalate=any(s.escalate for s in symptoms),
                  summary=_summary(facts, symptoms))


def _summary(facts: _Facts, symptoms: Sequence[Symptom]) -> EscalationSummary:
    """The call to quote: from the first row that escalates, else the first that applies."""
    call = next((s.call for s in symptoms if s.escalate and s.call is not None), None)
    if call is None:
        call = next((s.call for s in symptoms if s.applies and s.call is not None), None)
    checked: list[str] = []
    for symptom in symptoms:
        if not symptom.applies:
            continue
        checked.extend(f"{symptom.title}: {c.name} {'passed' if c.ok else 'FAILED'} "
                       f"({c.observed})" for c in symptom.checks)
    quiet = [s.title for s in symptoms if not s.applies]
    if quiet:
        checked.append("not observed: " + "; ".join(quiet))
    return EscalationSummary(facts.campaign.id, facts.now, call, checked)


# --- Campaign will not start -----------------------------------------------------------------

def _will_not_start(f: _Facts) -> Symptom:
    c = f.campaign
    enabled = [r for r in f.pool if r["enabled"]]
    checks = [
        Check("bot_selected", c.bot_name is not None,
              f"bot {c.bot_name}" if c.bot_name is not None
              else "no bot selected" + ("" if f.bots else ", and no bot exists yet")),
        Check("number_pool", bool(enabled), _pool_observed(f.pool)),
        Check("concurrency", c.concurrency >= 1, f"concurrency {c.concurrency}"),
        Check("window_valid", f.window is not None, _window_text(f)),
        Check("contacts_present", f.contacts > 0 or c.always_on,
              f"{_n(f.contacts, 'contact')}" + (" (always-on: optional)" if c.always_on else "")),
    ]
    facts = StartFacts(spec=c.spec, bots=f.bots,
                       pool={r["number"]: r["enabled"] for r in f.pool},
                       has_contacts=f.contacts > 0)
    fix = [_mask_numbers(problem) for problem in start_problems(facts)]
    draft = c.state == "draft"
    if not draft:
        reason = f"the campaign is {c.state}: it has started"
    elif c.cancelled:
        reason = "the draft was cancelled: it can never start"
        fix.append("create a new campaign with these settings (`dialler campaign create`)")
    elif fix:
        reason = f"{len(fix)} start check(s) fail: fix them, then start it"
    else:
        reason = ("every start check passes: `dialler campaign start` should succeed; "
                  "escalate if it fails or does nothing")
    return Symptom(
        "will_not_start", "Campaign will not start", draft, checks, fix if draft else [],
        escalate=False,
        escalate_when="every start check passes, yet `dialler campaign start` fails or does "
                      "nothing (the start itself is not on record: tell engineering what it "
                      "printed)",
        reason=reason)


# --- Running but no calls go out -------------------------------------------------------------

def _no_calls(f: _Facts) -> Symptom:
    c, stats = f.campaign, f.stats
    left = stats["pending"] + stats["retry_scheduled"] + stats["callback_scheduled"]
    due = sum(f.waiting_count(state, "due") for state in WAITING)
    checks = [
        *_window_checks(f),
        Check("contacts_left", left > 0,
              f"pending {stats['pending']}, retries scheduled {stats['retry_scheduled']}, "
              f"callbacks {stats['callback_scheduled']}; retries left {stats['retries_left']}"
              + (" (always-on: waits for contacts from the API)" if c.always_on else "")),
        Check("contacts_due", due > 0, _due_observed(f, due)),
        Check("number_pool", any(r["enabled"] for r in f.pool), _pool_observed(f.pool)),
        Check("fleet_in_rotation", f.fleet_capacity > 0,
              f"{f.fleet_capacity} bot slots in rotation, {f.fleet_free} free"),
        Check("daemon_running", f.daemons > 0,
              f"{_n(f.daemons, 'daemon')} heart-beating" if f.daemons
              else "no daemon has heart-beaten in the last "
                   f"{format_duration(3 * f.config.scheduler.heartbeat_interval)}"),
        Check("last_dial", not f.show["stalled"], _last_dial_observed(f)),
    ]
    applies = f.running and f.show["activity"] != "live"
    stalled = bool(f.show["stalled"])
    escalate = applies and stalled
    if escalate:
        reason = ("stalled: inside the window with contacts due and a free slot, but "
                  f"{_last_dial_observed(f)}")
        if f.daemons == 0:
            reason += "; no daemon is running"
    elif not applies:
        reason = _not_applying_no_calls(f)
    else:
        failed = [check.observed for check in checks if not check.ok]
        reason = ("not a stall: " + "; ".join(failed[:2]) if failed
                  else f"not a stall yet: {_last_dial_observed(f)}")
    return Symptom(
        "no_calls", "Running but no calls go out", applies, checks,
        _no_calls_fix(f, checks) if applies else [], escalate,
        escalate_when="inside the window, contacts due, a free slot, and no dial for longer "
                      f"than {format_duration(f.stall_after)} (stall_after)",
        reason=reason, call=_last_call(f, "no_calls") if escalate else None)


def _not_applying_no_calls(f: _Facts) -> str:
    if f.campaign.cancelled:
        return "the campaign was cancelled: no new dials, by design"
    if f.campaign.state != "running":
        return f"the campaign is {f.campaign.state}, not running"
    return "calls are going out: a dial in the last 30 s (Live Activity)"


def _no_calls_fix(f: _Facts, checks: Sequence[Check]) -> list[str]:
    failed = {check.name for check in checks if not check.ok}
    fix: list[str] = []
    if "window_open" in failed and f.window is not None:
        fix.append(f"wait for the window to open at {_at(f.window.next_open(f.now))}, or "
                   "widen window.start/window.end or window.days (`dialler campaign edit`)")
    if "working_day" in failed:
        fix.append("today is not in window.days: add it if calls should go out today")
    if "contacts_left" in failed and f.campaign.always_on:
        fix.append("always-on: nothing is dialled until contacts arrive (`dialler contacts "
                   "add`, or the API trigger)")
    elif "contacts_left" in failed:
        fix.append("nothing is left to dial: import more contacts (`dialler contacts import`)"
                   " or raise retry.max_attempts; otherwise the campaign completes")
    elif "contacts_due" in failed:
        fix.append("nothing is due yet: contacts wait for their retry delay or callback "
                   "time — normal between passes")
    if "number_pool" in failed:
        fix.append("every caller ID of the pool is disabled or the pool is empty: "
                   "`dialler number enable NUMBER`, or add an enabled number to the pool")
    if "fleet_in_rotation" in failed:
        fix.append("no bot worker is in rotation: add workers (fleet.workers in the config) "
                   "or start the registered ones")
    if "daemon_running" in failed:
        fix.append("no dialler daemon is running: start it (`systemctl start dialler` or "
                   "`dialler run`)")
    return fix


# --- Many no-answer or rejected --------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Pattern:
    carrier: str
    label: str          # "429" or "5xx"
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
        codes = ", ".join(f"{code} ×{n}" for code, n in sorted(self.codes.items()))
        return (f"carrier {self.carrier}: {self.count} of {self.total} recent calls "
                f"({self.share:.0%}) SIP {self.label}" + (f" ({codes})" if codes else ""))


def _patterns(recent: Sequence[Row], label: str,
              matches: Callable[[int], bool]) -> list[_Pattern]:
    by_carrier: dict[str, list[Row]] = {}
    for row in recent:
        by_carrier.setdefault(row["carrier"] or "(none)", []).append(row)
    patterns = []
    for carrier, rows in sorted(by_carrier.items()):
        codes = Counter(r["sip_code"] for r in rows
                        if r["sip_code"] is not None and matches(r["sip_code"]))
        patterns.append(_Pattern(carrier, label, sum(codes.values()), len(rows), codes))
    return patterns


def _pattern_check(name: str, patterns: Sequence[_Pattern], what: str) -> Check:
    if not patterns:
        return Check(name, True, "no final call yet")
    return Check(name, not any(p.repeats for p in patterns),
                 "; ".join(p.text() for p in patterns) + f" — {what}")


def _no_answer(f: _Facts) -> Symptom:
    recent = f.recent
    total = len(recent)
    outcomes = Counter(r["outcome"] for r in recent)
    unanswered = outcomes["no_answer"] + outcomes["rejected"]
    busy = sum(1 for r in recent if r["sip_code"] in (486, 603))
    bad = sum(1 for r in recent if r["sip_code"] in BAD_NUMBER_CODES)
    limited = _patterns(recent, "429", lambda code: code == 429)
    failing = _patterns(recent, "5xx", lambda code: 500 <= code <= 599)
    checks = [
        Check("answer_rate", not total or unanswered / total < MANY_UNANSWERED,
              f"{outcomes['answered']} of {total} recent calls answered; "
              f"{outcomes['no_answer']} no answer (408/480, ring timeout), "
              f"{outcomes['rejected']} rejected" if total else "no final call yet"),
        Check("busy_or_declined", not total or busy / total <= MOST,
              f"{busy} of {total} recent calls busy or declined (486/603)"),
        Check("number_quality", not total or bad / total < BAD_NUMBER_SHARE,
              f"{bad} of {total} recent calls failed as unknown or malformed numbers "
              "(404/410/484/604)"),
        Check("time_of_day", True, _time_of_day(f)),
        Check("carriers", bool(f.pool), _carriers_observed(f)),
        _pattern_check("sip_429", limited, "rate limited by the carrier"),
        _pattern_check("sip_5xx", failing, "carrier, transport or server-side problem"),
    ]
    repeating = [p for p in (*failing, *limited) if p.repeats]
    many = unanswered >= MIN_PATTERN and unanswered / total >= MANY_UNANSWERED
    applies = many or bool(repeating)
    if repeating:
        reason = ("the same SIP pattern repeats across most calls: "
                  + "; ".join(p.text() for p in repeating))
    elif applies:
        reason = "no SIP 429/5xx pattern: a timing or list-quality issue you can address"
    else:
        reason = "most recent calls are answered" if total else "no final call yet"
    return Symptom(
        "no_answer", "Many no-answer or rejected", applies, checks,
        _no_answer_fix(f, checks, repeating) if applies else [], bool(repeating),
        escalate_when=f"the same SIP pattern (429, or 5xx) on more than {MOST:.0%} of a "
                      f"carrier's last {RECENT_ATTEMPTS} calls (at least {MIN_PATTERN})",
        reason=reason, call=_pattern_call(recent, repeating) if applies else None)


def _no_answer_fix(f: _Facts, checks: Sequence[Check],
                   repeating: Sequence[_Pattern]) -> list[str]:
    failed = {check.name for check in checks if not check.ok}
    fix = [f"until carrier {carrier} is fixed, pause the campaign or move its pool to caller "
           "IDs on another carrier" for carrier in dict.fromkeys(p.carrier for p in repeating)]
    if f.window is not None:
        fix.append(f"check the calling window ({f.window.start}–{f.window.end} "
                   f"{f.window.timezone}) matches when this audience picks up")
    if "number_quality" in failed:
        fix.append("clean the contact list: old, ported or wrong-format numbers fail to "
                   "connect (see docs/contacts.md for accepted formats)")
    fix.append("if one caller ID is flagged or throttled by its carrier, swap it out of the "
               "pool (`dialler number disable NUMBER`)")
    return fix


def _pattern_call(recent: Sequence[Row], repeating: Sequence[_Pattern]) -> AffectedCall | None:
    """The newest call of a repeating pattern, else the newest unanswered call."""
    for row in recent:  # newest first
        for pattern in repeating:
            if ((row["carrier"] or "(none)") == pattern.carrier
                    and row["sip_code"] in pattern.codes):
                return AffectedCall(row["id"], row["dialled_at"], "no_answer",
                                    f"SIP {row['sip_code']} on carrier {pattern.carrier}")
    for row in recent:
        if row["outcome"] in ("no_answer", "rejected"):
            code = f", SIP {row['sip_code']}" if row["sip_code"] is not None else ""
            return AffectedCall(row["id"], row["dialled_at"], "no_answer",
                                f"{row['outcome']}{code}")
    return None


def _time_of_day(f: _Facts) -> str:
    """When the calls were placed, and the local hour with the most unanswered ones."""
    try:
        zone = ZoneInfo(f.campaign.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return f"time zone {f.campaign.timezone!r} is invalid"
    hours = Counter(r["dialled_at"].astimezone(zone).hour for r in f.recent
                    if r["outcome"] in ("no_answer", "rejected") and r["dialled_at"])
    text = (f"window {f.campaign.window_start}–{f.campaign.window_end} "
            f"{f.campaign.timezone}")
    if hours:
        hour, count = hours.most_common(1)[0]
        text += (f"; most unanswered calls at {hour:02d}:00–{(hour + 1) % 24:02d}:00 local "
                 f"({count} of {sum(hours.values())})")
    return text


def _carriers_observed(f: _Facts) -> str:
    if not f.pool:
        return "the number pool is empty"
    carriers = Counter(r["carrier"] for r in f.pool if r["enabled"])
    if not carriers:
        return "every caller ID of the pool is disabled"
    return "caller IDs on " + ", ".join(f"carrier {name} ({n} enabled)"
                                        for name, n in sorted(carriers.items()))


# --- Calls answer but the bot never speaks ---------------------------------------------------

def _bot_silent(f: _Facts) -> Symptom:
    c = f.campaign
    answered = [r for r in f.recent if r["outcome"] == "answered"]
    abandoned = [r for r in answered if r["disposition"] == "abandoned"]
    no_result = [r for r in answered if r["disposition"] == "timeout"]
    silent_share = (len(abandoned) + len(no_result)) / len(answered) if answered else 0.0
    live = c.state in ("running", "paused") and not c.cancelled
    fleet_ok = f.fleet_capacity >= c.concurrency
    test_ok, test_text = _test_call_observed(f)
    checks = [
        Check("fleet_capacity", fleet_ok, _fleet_observed(f)),
        Check("abandoned_share", not answered or len(abandoned) / len(answered) < SILENT_SHARE,
              f"{len(abandoned)} of {len(answered)} recent answered calls abandoned "
              "(no bot worker could take them)"),
        Check("bot_results", not answered or len(no_result) / len(answered) < SILENT_SHARE,
              f"{len(no_result)} of {len(answered)} recent answered calls ended without a "
              "bot result (timeout)"),
        Check("test_call", test_ok, test_text),
    ]
    silent = bool(answered) and silent_share >= SILENT_SHARE
    applies = silent or (live and not fleet_ok)
    # One silent call is an incident; a pattern (MIN_PATTERN) is what engineering needs.
    escalate = (silent and len(abandoned) + len(no_result) >= MIN_PATTERN and fleet_ok
                and test_ok)
    if escalate:
        reason = (f"{silent_share:.0%} of recent answered calls reached no bot, although the "
                  "fleet has room and the bot passed its test call")
    elif silent and (not fleet_ok or not test_ok):
        reason = "fix the failing checks first: " + "; ".join(
            check.name for check in checks if not check.ok)
    elif silent:
        reason = (f"only {len(abandoned) + len(no_result)} silent calls: fewer than "
                  f"{MIN_PATTERN} make no pattern yet")
    elif applies:
        reason = "concurrency is above what the fleet can serve: lower it or add workers"
    else:
        reason = "answered calls reach the bot"
    return Symptom(
        "bot_silent", "Calls answer but the bot never speaks", applies, checks,
        _bot_silent_fix(f, fleet_ok, test_ok, test_text) if applies else [], escalate,
        escalate_when=f"{SILENT_SHARE:.0%} or more of recent answered calls (at least "
                      f"{MIN_PATTERN}) abandoned or without a bot result, while the fleet's "
                      "slots in rotation cover the concurrency and the bot's latest test call "
                      "passed",
        reason=reason, call=_silent_call(f.recent) if silent else None)


def _bot_silent_fix(f: _Facts, fleet_ok: bool, test_ok: bool, test_text: str) -> list[str]:
    fix = []
    if f.fleet_capacity == 0:
        fix.append("no bot worker is in rotation: add workers (fleet.workers in the config) "
                   "or start the registered ones")
    elif not fleet_ok:
        fix.append(f"lower the campaign's concurrency to {f.fleet_capacity} (what the fleet "
                   "can serve), or add bot workers (fleet.workers, or register more)")
    if not test_ok:
        if f.test_call is None:
            bot = f.campaign.bot_name or "BOT"
            fix.append(f"run a test call against the bot: `dialler test-call --bot {bot} "
                       "--to NUMBER`")
        else:
            fix.append(f"{test_text}: if the bot is silent on a test call too, fix its voice "
                       "pipeline (speech-to-text, language model, text-to-speech), not the "
                       "campaign")
    return fix


def _test_call_observed(f: _Facts) -> tuple[bool, str]:
    bot = f.campaign.bot_name
    if bot is None:
        return False, "no bot selected"
    row = f.test_call
    if row is None:
        return False, f"no test call of bot {bot} on record"
    when = f"test call of bot {bot} at {_at(row['dialled_at'])}"
    if row["state"] != "final":
        return False, f"{when} is still in progress"
    if row["outcome"] != "answered":
        code = f", SIP {row['sip_code']}" if row["sip_code"] is not None else ""
        return False, f"{when} did not connect ({row['outcome']}{code})"
    if row["disposition"] in SILENT_DISPOSITIONS or row["worker"] is None:
        return False, f"{when} was answered but reached no bot ({row['disposition']})"
    return True, f"{when} passed: worker {row['worker']}, result {row['disposition']}"


def _fleet_observed(f: _Facts) -> str:
    return (f"{f.fleet_capacity} bot slots in rotation ({f.fleet_free} free) for "
            f"concurrency {f.campaign.concurrency}")


def _silent_call(recent: Sequence[Row]) -> AffectedCall | None:
    for row in recent:
        if row["outcome"] == "answered" and row["disposition"] in SILENT_DISPOSITIONS:
            return AffectedCall(row["id"], row["dialled_at"], "bot_silent",
                                f"answered, {row['disposition']}")
    return None


# --- Bot says the wrong customer details -----------------------------------------------------

def _wrong_details(f: _Facts) -> Symptom:
    escalate_when = ("the variable names match in the contacts and the prompt and every "
                     "contact has a value, yet calls still render them blank")
    if f.prompt is None:
        return Symptom("wrong_details", "Bot says the wrong customer details", False, [], [],
                       False, escalate_when, reason="no bot selected: no prompt to compare")
    missing = missing_variables(f.prompt, f.contact_variables) if f.contacts else []
    invalid = [p for p in placeholders(f.prompt) if not p.valid]
    blank = {name: n for name, n in f.lacking.items()
             if n and name in set(f.contact_variables)}
    used = _prompt_names(f.prompt)
    checks = [
        Check("prompt_variables", not missing, _variables_observed(f, missing, used)),
        Check("placeholders", not invalid,
              "; ".join(format_invalid(p) for p in invalid) if invalid
              else "every placeholder is well-formed ({{NAME}} or {{call.NAME}})"),
        Check("contact_values", not blank,
              "; ".join(f"{n} of {_n(f.contacts, 'contact')} without a value for {name!r}"
                        for name, n in sorted(blank.items())) if blank
              else "every contact has a value for each prompt variable it has a column for"),
    ]
    fix = [_missing_fix(m.name, m.placeholder, m.suggestion) for m in missing]
    fix.extend(f"fix the malformed placeholder {p.text!r} in the bot's prompt" for p in invalid)
    fix.extend(f"fill in {name!r} for the {n} contacts without it (CSV cell or API metadata)"
               for name, n in sorted(blank.items()))
    applies = bool(fix)
    answered = next((r for r in f.recent if r["outcome"] == "answered"), None)
    call = (AffectedCall(answered["id"], answered["dialled_at"], "wrong_details",
                         "answered with the prompt's variables unresolved")
            if applies and missing and answered is not None else None)
    return Symptom(
        "wrong_details", "Bot says the wrong customer details", applies, checks, fix, False,
        escalate_when,
        reason=("fix the names first: the bot is given nothing for a variable it cannot "
                "resolve") if applies else
               "names and values match: escalate only if a call still renders them blank",
        call=call)


def _variables_observed(f: _Facts, missing: Sequence[Any], used: Sequence[str]) -> str:
    if not used:
        return "the prompt uses no variables"
    if not f.contacts:
        return f"no contacts yet to compare with the prompt's variables ({', '.join(used)})"
    if missing:
        return "; ".join(format_missing(m, lacking="is not a variable of any contact")
                         for m in missing)
    return f"every prompt variable is a contact variable ({', '.join(used)})"


def _missing_fix(name: str, placeholder: str, suggestion: str | None) -> str:
    if suggestion is not None:
        return (f"rename the CSV column (or API metadata key) {suggestion!r} to {name!r}, or "
                f"change {placeholder} in the bot's prompt to use {suggestion!r} — the "
                "spelling must match exactly, case included")
    return (f"add a {name!r} column to the contacts (or metadata key for API contacts), or "
            f"remove {placeholder} from the bot's prompt")


# --- Retries are not happening ---------------------------------------------------------------

def _retries(f: _Facts) -> Symptom:
    retry = f.campaign.retry
    not_covered = [r for r in f.finishing
                   if r["next_action"] == "done" and r["disposition"] != COMPLETED
                   and not _in_rules(r["disposition"], retry.on_system, retry.on_custom)]
    exhausted = sum(r["n"] for r in f.finishing if r["next_action"] == "exhausted")
    cancelled = sum(r["n"] for r in f.finishing if r["next_action"] == "cancelled")
    waiting = f.waiting_count("retry_scheduled", "waiting")
    overdue = f.waiting_count("retry_scheduled", "overdue")
    checks = [
        Check("retry_rules", not not_covered, _rules_observed(f, not_covered)),
        Check("max_attempts", exhausted == 0,
              f"{_n(exhausted, 'contact')} used all their attempts (max {retry.max_attempts}): "
              "exhausted" if exhausted
              else f"no contact has used all its attempts (max {retry.max_attempts})"),
        Check("retry_delay", waiting == 0, _delay_observed(f, waiting)),
        Check("retries_overdue", overdue == 0,
              _overdue_observed(f, "retry_scheduled", "retry", "retries")),
        Check("redial_rules", True, _redial_observed(f, cancelled)),
    ]
    escalate = overdue > 0 and f.can_dial
    applies = bool(not_covered) or overdue > 0
    fix = [_rule_fix(r) for r in not_covered]
    if exhausted:
        fix.append(f"raise retry.max_attempts (now {retry.max_attempts}) if exhausted "
                   "contacts should be dialled more")
    if escalate:
        reason = (f"{_n(overdue, 'eligible retry', 'eligible retries')} overdue by more than "
                  f"{format_duration(f.stall_after)} while the campaign runs inside its window "
                  "with a free slot")
    elif overdue:
        reason = ("due retries wait for the campaign to run inside its window with a free "
                  "slot")
    elif not_covered:
        reason = "the outcomes are not in the retry rules: re-dialling them is your setting"
    else:
        reason = "every contact not retried is explained by its attempts, delay or rules"
    call = _overdue_call(f, "retry_scheduled", "retries") if overdue else None
    if call is None and not_covered:
        top = not_covered[0]
        call = AffectedCall(top["latest"], top["latest_dialled_at"], "retries",
                            f"ended done after {top['disposition']!r}, not in the retry rules")
    return Symptom(
        "retries", "Retries are not happening", applies, checks, fix if applies else [],
        escalate,
        escalate_when="retries are due (attempts left, delay elapsed, outcome in the rules) "
                      f"but not dialled for more than {format_duration(f.stall_after)} while "
                      "the campaign runs inside its window with a free slot",
        reason=reason, call=call)


def _in_rules(disposition: str, on_system: frozenset[str], on_custom: frozenset[str]) -> bool:
    if disposition in SYSTEM_DISPOSITIONS:
        return disposition in on_system
    return disposition in on_custom


def _rules_observed(f: _Facts, not_covered: Sequence[Row]) -> str:
    retry = f.campaign.retry
    if not_covered:
        return "; ".join(
            f"{_n(r['n'], 'contact')} ended done after {r['disposition']!r}, which is not in "
            f"retry.{_rule_list(r['disposition'])}" for r in not_covered)
    rules = (f"retry.on_system [{', '.join(sorted(retry.on_system))}], retry.on_custom "
             f"[{', '.join(sorted(retry.on_custom))}]")
    if not f.finishing:
        return f"no contact has finished yet; {rules}"
    return f"every finished contact's last outcome is covered or completed; {rules}"


def _rule_list(disposition: str) -> str:
    return "on_system" if disposition in SYSTEM_DISPOSITIONS else "on_custom"


def _rule_fix(row: Row) -> str:
    name = row["disposition"]
    return (f"add {name!r} to retry.{_rule_list(name)} to re-dial such outcomes "
            f"({_n(row['n'], 'contact')} ended done after it; the rule applies to attempts decided "
            "after the change: pause, `dialler campaign edit`, resume)")


def _delay_observed(f: _Facts, waiting: int) -> str:
    delay = format_duration(f.campaign.retry.delay)
    if not waiting:
        return f"no retry is waiting for its delay ({delay})"
    next_due = f.waiting["retry_scheduled"]["next_due_at"]
    return (f"{_n(waiting, 'retry', 'retries')} waiting for the {delay} delay; the next is due at "
            f"{_at(next_due)} ({format_duration(max(0.0, (next_due - f.now).total_seconds()))}"
            " from now)")


def _overdue_observed(f: _Facts, state: str, noun: str, plural: str) -> str:
    overdue = f.waiting_count(state, "overdue")
    if not overdue:
        return f"no {plural} overdue by more than {format_duration(f.stall_after)}"
    oldest = f.waiting[state]["oldest_overdue_at"]
    where = "" if f.can_dial else (
        "; they wait: the campaign is not running inside its window with a free slot")
    return (f"{_n(overdue, noun, plural)} due since {_at(oldest)} ({_ago(f.now, oldest)}) "
            f"not dialled{where}")


def _redial_observed(f: _Facts, cancelled: int) -> str:
    redial = f.campaign.redial
    stop = redial.stop_after_connect_longer_than
    short = redial.redial_after_connect_shorter_than
    rules = (f"stop rule {'after ' + format_duration(stop) if stop is not None else 'off'}, "
             f"short-connect rule "
             f"{'under ' + format_duration(short) if short is not None else 'off'}")
    if cancelled:
        why = "the campaign's cancel or " if f.campaign.cancelled else ""
        return (f"redials of {_n(cancelled, 'contact')} cancelled on purpose ({why}the stop rule "
                f"after a meaningful connect); {rules}")
    return rules


# --- Contacts stuck in a working state -------------------------------------------------------

def _stuck(f: _Facts) -> Symptom:
    c = f.campaign
    past = [r for r in f.open_attempts if r["deadline_at"] < f.now]
    long_past = [r for r in past
                 if (f.now - r["deadline_at"]).total_seconds() > f.stall_after]
    callbacks = f.waiting_count("callback_scheduled", "overdue") if f.can_dial else 0
    orphans = max(0, f.in_flight - len(f.open_attempts))
    checks = [
        Check("campaign_running", f.running,
              f"state {c.state}" + (f", cancelled at {_at(c.cancelled_at)}"
                                    if c.cancelled_at is not None else "")
              + ("; waiting contacts hold until it resumes, calls in flight finish"
                 if c.state == "paused" else "")),
        *_window_checks(f)[:1],
        Check("in_flight_past_deadline", not past, _past_observed(f, past)),
        Check("in_flight_without_attempt", orphans == 0,
              f"{_n(orphans, 'contact')} in a working state without an open attempt (nothing "
              "recovers them)" if orphans else
              f"every in-flight contact has its open attempt ({f.in_flight} in flight)"),
        Check("callbacks_overdue", callbacks == 0,
              _overdue_observed(f, "callback_scheduled", "callback", "callbacks")),
    ]
    applies = bool(past) or callbacks > 0 or orphans > 0
    escalate = bool(long_past) or callbacks > 0 or orphans > 0
    if escalate:
        parts = []
        if long_past:
            parts.append(f"{len(long_past)} in-flight attempts are past their deadline by "
                         f"more than {format_duration(f.stall_after)}: stale recovery is not "
                         "clearing them")
        if orphans:
            parts.append(f"{_n(orphans, 'contact')} in a working state without an open "
                         "attempt: nothing will move them")
        if callbacks:
            parts.append(f"{_n(callbacks, 'callback')} overdue while the campaign runs inside "
                         "its window with a free slot")
        reason = "; ".join(parts)
    elif past:
        reason = ("stale recovery reconciles attempts past their deadline every 5 s: run "
                  "triage again in a minute")
    else:
        reason = "no contact is stuck: waiting states hold on purpose until their time"
    fix = []
    if c.state == "paused" and not c.cancelled:
        fix.append("resume the campaign (`dialler campaign resume`) to move waiting contacts")
    if f.running and not f.window_open and f.window is not None:
        fix.append(f"waiting contacts move when the window opens at "
                   f"{_at(f.window.next_open(f.now))}")
    call = _overdue_call(f, "callback_scheduled", "stuck") if callbacks else None
    if past:
        oldest = min(past, key=lambda r: r["deadline_at"])
        call = AffectedCall(oldest["id"], oldest["dialled_at"], "stuck",
                            f"{oldest['state']}, past its deadline since "
                            f"{_at(oldest['deadline_at'])}")
    return Symptom(
        "stuck", "Contacts stuck in a working state", applies, checks,
        fix if applies else [], escalate,
        escalate_when="in-flight attempts past their deadline for more than "
                      f"{format_duration(f.stall_after)} (recovery runs every 5 s), an "
                      "in-flight contact without an open attempt, or callbacks overdue by more "
                      f"than {format_duration(f.stall_after)} while the campaign runs inside "
                      "its window with a free slot",
        reason=reason, call=call)


def _past_observed(f: _Facts, past: Sequence[Row]) -> str:
    states = Counter(r["state"] for r in f.open_attempts)
    in_flight = ", ".join(f"{state} {states[state]}" for state in IN_FLIGHT)
    if not past:
        return f"{len(f.open_attempts)} attempts in flight ({in_flight}), none past its deadline"
    oldest = min(past, key=lambda r: r["deadline_at"])
    return (f"{len(past)} of {_n(len(f.open_attempts), 'in-flight attempt')} past the deadline; "
            f"the oldest ({oldest['state']}) since {_at(oldest['deadline_at'])} "
            f"({_ago(f.now, oldest['deadline_at'])})")


def _overdue_call(f: _Facts, state: str, symptom: str) -> AffectedCall | None:
    """The last attempt of the contact in `state` overdue the longest."""
    row = f.overdue_calls.get(state)
    if row is None:
        return None
    what = "retry" if state == "retry_scheduled" else "callback"
    return AffectedCall(row["id"], row["dialled_at"], symptom,
                        f"last attempt of the contact overdue the longest for its {what}")


# --- Attempt report missing rows -------------------------------------------------------------

def _report_missing(f: _Facts) -> Symptom:
    wait = f.config.scheduler.result_timeout + f.stall_after
    in_progress = f.open_attempts
    ended = [r for r in in_progress if r["ended_at"] is not None
             and (f.now - r["ended_at"]).total_seconds() > wait]
    states = Counter(r["state"] for r in in_progress)
    checks = [
        Check("report_rows", True,
              f"{_n(f.report_rows, 'final attempt')} in the attempt report"),
        Check("attempts_in_progress", not in_progress,
              f"{_n(len(in_progress), 'attempt')} in progress ("
              + ", ".join(f"{state} {states[state]}" for state in IN_FLIGHT)
              + "): they join the report once final"),
        Check("ended_not_final", not ended,
              f"{_n(len(ended), 'call')} ended more than {format_duration(wait)} ago without a "
              "final result" if ended else
              "every ended call is final or within its result wait "
              f"({format_duration(f.config.scheduler.result_timeout)})"),
    ]
    applies = bool(in_progress)
    call = None
    if ended:
        row = max(ended, key=lambda r: r["ended_at"])
        call = AffectedCall(row["id"], row["dialled_at"], "report_missing",
                            f"ended at {_at(row['ended_at'])}, still {row['state']}")
    elif in_progress:
        row = in_progress[-1]
        call = AffectedCall(row["id"], row["dialled_at"], "report_missing",
                            f"still {row['state']}")
    return Symptom(
        "report_missing", "Attempt report missing rows", applies, checks,
        ["let live calls finish, then download the report again "
         "(`dialler report attempts ID`)"] if in_progress else [],
        bool(ended),
        escalate_when=f"a call that ended more than {format_duration(wait)} ago (result_timeout"
                      " + stall_after) still has no final result, so it never reaches the "
                      "report",
        reason=("finished calls never became final: they will not reach the report"
                if ended else "live calls are still in progress: let them finish"
                if in_progress else "every finished attempt is in the report"),
        call=call if applies else None)


# --- shared pieces ---------------------------------------------------------------------------

def _window_checks(f: _Facts) -> list[Check]:
    """`window_open` and `working_day`, on the campaign's wall clock."""
    window = f.window
    if window is None:
        text = _window_text(f)
        return [Check("window_open", False, text), Check("working_day", False, text)]
    local = f.now.astimezone(window.zone)
    is_open = window.is_open(f.now)
    text = (f"{local:%a %H:%M} in {window.timezone}, window {window.start}–{window.end} on "
            f"{', '.join(window.day_names)}")
    if is_open:
        closes = window.next_close(f.now)
        text = f"open now: {text}" + (f"; closes {_at(closes)}" if closes else "")
    else:
        text = f"closed now: {text}; opens {_at(window.next_open(f.now))}"
    working = local.weekday() in window.days
    return [Check("window_open", is_open, text),
            Check("working_day", working,
                  f"{local:%A} in {window.timezone} is {'' if working else 'not '}a working "
                  f"day ({', '.join(window.day_names)})")]


def _window_text(f: _Facts) -> str:
    c = f.campaign
    if f.window is None:
        return "; ".join(window_problems(c.spec))
    return (f"{c.window_start}–{c.window_end} on {', '.join(c.window_days)}, "
            f"{c.timezone}")


def _pool_observed(pool: Sequence[Row]) -> str:
    if not pool:
        return "the number pool is empty"
    enabled = [r for r in pool if r["enabled"]]
    if not enabled:
        return (f"all {len(pool)} caller IDs of the pool are disabled ("
                + ", ".join(_mask(r["number"]) for r in pool) + ")")
    return f"{len(enabled)} of {len(pool)} caller IDs enabled"


def _due_observed(f: _Facts, due: int) -> str:
    if due:
        return f"{_n(due, 'contact')} due now"
    upcoming = [row["next_due_at"] for row in f.waiting.values()
                if row["next_due_at"] is not None]
    if upcoming:
        return f"no contact due now; the next is due at {_at(min(upcoming))}"
    return "no contact due now, none waiting"


def _last_dial_observed(f: _Facts) -> str:
    last = f.campaign.last_dial_at
    threshold = format_duration(f.stall_after)
    if last is None:
        since = f.campaign.started_at
        start = f" since the start at {_at(since)}" if since is not None else ""
        return f"no dial yet{start} (stall after {threshold})"
    return f"last dial {_ago(f.now, last)} at {_at(last)} (stall after {threshold})"


def _last_call(f: _Facts, symptom: str) -> AffectedCall | None:
    """The campaign's most recent dial, among open attempts and the newest final ones."""
    rows = [*f.open_attempts, *f.recent]
    if not rows:
        return None
    row = max(rows, key=lambda r: r["dialled_at"])
    return AffectedCall(row["id"], row["dialled_at"], symptom, "the last dial before the stall")


def _at(moment: datetime | None) -> str:
    """RFC 3339 UTC to the second, for text."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ago(now: datetime, moment: datetime) -> str:
    return format_duration(max(0, round((now - moment).total_seconds()))) + " ago"


def _n(count: int, noun: str, plural: str | None = None) -> str:
    """`count` and `noun`, plural unless it is one: ``1 contact``, ``3 contacts``."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def _mask(number: str) -> str:
    """A caller ID as the report shows it: enough to recognise, never a dialable number."""
    return "…" + number[-4:]


def _mask_numbers(text: str) -> str:
    return _E164.sub(lambda match: _mask(match.group(0)), text)


_ROWS: tuple[Callable[[_Facts], Symptom], ...] = (
    _will_not_start, _no_calls, _no_answer, _bot_silent, _wrong_details, _retries, _stuck,
    _report_missing)
