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
from dataclasses import dataclass

from ..domain.prompt import format_invalid, placeholders, prompt_warnings
from ..domain.window import Window, WindowError
from ..durations import format_duration
from ..errors import StartChecksFailed
from .spec import CampaignSpec

__all__ = [
    "StartFacts",
    "checks_failed",
    "prompt_variable_warnings",
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


def start_problems(facts: StartFacts) -> list[str]:
    """Every reason the campaign cannot dial, one line each, in the guide's order."""
    spec = facts.spec
    problems: list[str] = []
    if spec.bot is None:
        problems.append(_no_bot(facts.bots))
    if not facts.pool:
        problems.append("number pool is empty: add caller IDs under `numbers:`")
    elif not any(facts.pool.values()):
        problems.append(
            f"every number in the pool is disabled: {_listed(sorted(facts.pool))} "
            "(enable one with `dialler number enable NUMBER`, or add an enabled "
            "number under `numbers:`)"
        )
    if spec.concurrency < 1:
        problems.append(f"concurrency must be at least 1 (got {spec.concurrency})")
    problems.extend(window_problems(spec))
    if not facts.has_contacts and not spec.always_on:
        problems.append(
            "no contacts: import a CSV with `dialler contacts import` "
            "(or make the campaign always_on)"
        )
    return problems


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
    return warnings


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
