"""The start checks: what must hold before a campaign may dial (the guide's "Campaign will not
start"), and what deserves a warning.

Pure functions over `StartFacts`: the campaign's settings plus the few facts from other tables
they depend on (the bots, the pool's enabled flags, whether contacts exist, the bot's prompt and
the contacts' variable names). `campaign start`,
`campaign resume` and editing a paused campaign run them; each problem is one line that says
what is wrong and how to fix it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..domain.prompt import format_invalid, placeholders, prompt_warnings
from ..domain.window import Window, WindowError
from ..domain.zones import ZonedWindow, key_zones
from ..durations import format_duration
from ..errors import StartChecksFailed
from .spec import CampaignSpec

__all__ = [
    "StartFacts",
    "cancelled_warnings",
    "checks_failed",
    "never_open_zone_keys",
    "prompt_variable_warnings",
    "start_problem_fields",
    "start_problems",
    "start_warnings",
]

# How many names a message lists before it says "...".
_LISTED = 5


@dataclass(frozen=True, slots=True)
class StartFacts:
    spec: CampaignSpec
    bots: Sequence[str]  # every bot's name, for the hint when none is selected
    pool: Mapping[str, bool]  # the campaign's caller IDs → enabled
    has_contacts: bool
    prompt: str | None = None  # the prompt of the bot `spec.bot` names; None: no bot
    #: Every variable name some contact has (may be left empty when the prompt uses none).
    contact_variables: Collection[str] = ()
    #: Waiting contacts per zone key (store.zones.campaign_zone_keys), for a window read per
    #: contact; empty otherwise.
    zone_keys: Mapping[str, int] = field(default_factory=dict)


def start_problems(facts: StartFacts) -> list[str]:
    """Every reason the campaign cannot dial, one line each, in the guide's order."""
    return [message for _, message in start_problem_fields(facts)]


def start_problem_fields(facts: StartFacts, *, contacts: bool = True) -> list[tuple[str, str]]:
    """`start_problems` with the key path of the field at fault beside each (``bot``,
    ``numbers``, ``concurrency``, ``window.start``, ...; ``contacts`` for "no contacts").
    `contacts=False` leaves the contacts check out (the console checks the CSV step apart)."""
    spec = facts.spec
    problems: list[tuple[str, str]] = []
    if spec.bot is None:
        problems.append(("bot", _no_bot(facts.bots)))
    if not facts.pool:
        problems.append(("numbers", "number pool is empty: add caller IDs under `numbers:`"))
    elif not any(facts.pool.values()):
        problems.append(
            (
                "numbers",
                f"every number in the pool is disabled: {_listed(sorted(facts.pool))} "
                "(enable one with `dialler number enable NUMBER`, or add an enabled "
                "number under `numbers:`)",
            )
        )
    if spec.concurrency < 1:
        problems.append(("concurrency", f"concurrency must be at least 1 (got {spec.concurrency})"))
    problems.extend((_field_of(problem), problem) for problem in window_problems(spec))
    if contacts and not facts.has_contacts and not spec.always_on:
        problems.append(
            (
                "contacts",
                "no contacts: import a CSV with `dialler contacts import` "
                "(or make the campaign always_on)",
            )
        )
    return problems


def _field_of(problem: str) -> str:
    """The key path a window problem starts with (``window.days[2]: ...`` → ``window.days``:
    the field of the form, not the list item)."""
    path, _, _ = problem.partition(": ")
    return path.split("[", 1)[0]


def window_problems(spec: CampaignSpec) -> list[str]:
    """What is wrong with the calling window, each naming its field (``window.start: ...``)."""
    try:
        Window.parse(spec.window_start, spec.window_end, spec.window_days, spec.timezone)
    except WindowError as exc:
        return list(exc.problems)
    return []


def start_warnings(facts: StartFacts) -> list[str]:
    """Settings that work but may not do what was meant."""
    warnings: list[str] = []
    redial = facts.spec.redial
    stop = redial.stop_after_connect_longer_than
    short = redial.redial_after_connect_shorter_than
    if redial.overlaps() and stop is not None and short is not None:
        warnings.append(
            f"redial rules overlap: a connect between {format_duration(stop)} and "
            f"{format_duration(short)} matches both; the stop rule wins"
        )
    disabled = sorted(number for number, enabled in facts.pool.items() if not enabled)
    if disabled and len(disabled) < len(facts.pool):
        warnings.append(
            f"{len(disabled)} of {len(facts.pool)} numbers in the pool are "
            f"disabled ({_listed(disabled)}); calls go out from the others"
        )
    warnings.extend(prompt_variable_warnings(facts))
    warnings.extend(never_open_warnings(facts))
    return warnings


def never_open_zone_keys(facts: StartFacts, now: datetime | None = None) -> list[str]:
    """The zone keys of waiting contacts whose zones never share an open instant of the
    campaign's window (read per contact): those contacts are cancelled at start (CONTRACT,
    "Campaign window per contact"). Empty without `window.per_contact` or with an invalid
    window (a problem of its own)."""
    spec = facts.spec
    if not spec.window_per_contact or not facts.zone_keys:
        return []
    try:
        window = Window.parse(spec.window_start, spec.window_end, spec.window_days, spec.timezone)
    except WindowError:
        return []
    at = now or datetime.now(UTC)
    return sorted(
        key
        for key in facts.zone_keys
        if not ZonedWindow.for_key(window, key).shares_open_instant(at)
    )


def never_open_warnings(facts: StartFacts, now: datetime | None = None) -> list[str]:
    """One line per zone set whose waiting contacts can never be dialled (and are cancelled
    when the campaign starts or resumes)."""
    return [
        _never_open(facts.spec, key, facts.zone_keys[key], "will be cancelled")
        for key in never_open_zone_keys(facts, now)
    ]


def cancelled_warnings(spec: CampaignSpec, cancelled: Mapping[str, int]) -> list[str]:
    """One line per zone set whose waiting contacts the start (or resume) just cancelled
    (`cancelled`: zone key → how many), in key order."""
    return [
        _never_open(spec, key, n, "were cancelled") for key, n in sorted(cancelled.items()) if n
    ]


def _never_open(spec: CampaignSpec, key: str, n: int, what: str) -> str:
    return (
        f"{n} contact(s) {what}: the calling window {spec.window_start}-{spec.window_end} is "
        f"never open at the same time in all of {_listed(key_zones(key, spec.timezone))} (the "
        "zones their number may be in; give each its own with a `timezone` column)"
    )


def prompt_variable_warnings(facts: StartFacts) -> list[str]:
    """The guide's "Bot says the wrong customer details", checked before dialling: a prompt
    variable that no contact has (it would come through blank), with the near miss among the
    contacts' variables; a malformed placeholder. Without contacts yet (always-on) only the
    malformed placeholders: there is nothing to compare with."""
    if facts.prompt is None:
        return []
    if not facts.has_contacts:
        return [
            format_invalid(placeholder)
            for placeholder in placeholders(facts.prompt)
            if not placeholder.valid
        ]
    return prompt_warnings(
        facts.prompt, sorted(facts.contact_variables), lacking="is not a variable of any contact"
    )


def checks_failed(name: str, verb: str, problems: Sequence[str]) -> StartChecksFailed:
    """The refusal of `verb` (start, resume, take new settings while paused): the problems
    as a typed list, the message as `refusal` words it (naming the verb)."""
    return StartChecksFailed(name, problems, verb)


def _no_bot(bots: Sequence[str]) -> str:
    if not bots:
        return (
            "no bot selected, and no bot exists yet: create one with "
            "`dialler bot create FILE`, then set `bot:` to its name"
        )
    return (
        f"no bot selected: set `bot:` to one of {_listed(sorted(bots))} "
        "(create one with `dialler bot create`)"
    )


def _listed(names: Sequence[str]) -> str:
    if len(names) <= _LISTED:
        return ", ".join(names)
    return ", ".join(names[:_LISTED]) + f", ... ({len(names)} in all)"
