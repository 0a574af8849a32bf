"""The start checks (the guide's "Campaign will not start") and the start warnings."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest

from dialler.campaigns.checks import (
    StartFacts,
    cancelled_warnings,
    checks_failed,
    start_problems,
    start_warnings,
)
from dialler.campaigns.spec import CampaignSpec
from dialler.domain.rules import RedialPolicy

GOOD = CampaignSpec(name="Renewals", bot="renewals-bot", numbers=("+441632960001",))
POOL = {"+441632960001": True}


def facts(
    *,
    spec: CampaignSpec = GOOD,
    bots: tuple[str, ...] = ("renewals-bot",),
    pool: Mapping[str, bool] = POOL,
    has_contacts: bool = True,
) -> StartFacts:
    return StartFacts(spec=spec, bots=bots, pool=pool, has_contacts=has_contacts)


def with_(**changes: Any) -> StartFacts:
    return facts(spec=dataclasses.replace(GOOD, **changes))


def test_a_complete_campaign_has_no_problem_and_no_warning() -> None:
    assert start_problems(facts()) == []
    assert start_warnings(facts()) == []


def test_no_bot_lists_the_bots_to_choose_from() -> None:
    assert start_problems(facts(spec=dataclasses.replace(GOOD, bot=None), bots=("b2", "a1"))) == [
        "no bot selected: set `bot:` to one of a1, b2 (create one with `dialler bot create`)"
    ]


def test_no_bot_and_none_exists() -> None:
    assert start_problems(facts(spec=dataclasses.replace(GOOD, bot=None), bots=())) == [
        "no bot selected, and no bot exists yet: create one with `dialler bot create FILE`, "
        "then set `bot:` to its name"
    ]


def test_empty_pool() -> None:
    assert start_problems(facts(pool={})) == [
        "number pool is empty: add caller IDs under `numbers:`"
    ]


def test_every_number_disabled() -> None:
    assert start_problems(facts(pool={"+441632960002": False, "+441632960001": False})) == [
        "every number in the pool is disabled: +441632960001, +441632960002 (enable one with "
        "`dialler number enable NUMBER`, or add an enabled number under `numbers:`)"
    ]


@pytest.mark.parametrize("concurrency", [0, -3])
def test_concurrency_below_one(concurrency: int) -> None:
    assert start_problems(with_(concurrency=concurrency)) == [
        f"concurrency must be at least 1 (got {concurrency})"
    ]


def test_window_start_not_hh_mm() -> None:
    assert start_problems(with_(window_start="9am")) == [
        "window.start: '9am' is not HH:MM (24-hour, two digits each, e.g. '09:00')"
    ]


def test_window_end_before_start() -> None:
    [problem] = start_problems(with_(window_start="18:00", window_end="09:00"))
    assert problem.startswith("window.end: '09:00' is not after window.start '18:00'")


def test_no_working_day() -> None:
    assert start_problems(with_(window_days=())) == ["window.days: at least one day is required"]


def test_unknown_day() -> None:
    [problem] = start_problems(with_(window_days=("mon", "funday")))
    assert problem.startswith("window.days[1]: unknown day 'funday'")


def test_unknown_timezone() -> None:
    [problem] = start_problems(with_(timezone="Mars/Olympus"))
    assert problem.startswith("window.timezone: unknown time zone 'Mars/Olympus'")


def test_no_contacts() -> None:
    assert start_problems(facts(has_contacts=False)) == [
        "no contacts: import a CSV with `dialler contacts import` (or make the campaign always_on)"
    ]


def test_always_on_needs_no_contacts() -> None:
    spec = dataclasses.replace(GOOD, always_on=True)
    assert start_problems(facts(spec=spec, has_contacts=False)) == []


def test_every_problem_at_once_in_the_guides_order() -> None:
    spec = CampaignSpec(name="x", concurrency=0, window_start="25:00", window_days=())
    problems = start_problems(facts(spec=spec, bots=("b",), pool={}, has_contacts=False))
    assert [problem.split(":")[0] for problem in problems] == [
        "no bot selected",
        "number pool is empty",
        "concurrency must be at least 1 (got 0)",
        "window.start",
        "window.days",
        "no contacts",
    ]


def test_refusal_is_typed_and_puts_each_problem_on_its_own_line() -> None:
    refused = checks_failed("Renewals", "resume", ["a", "b"])
    assert refused.problems == ("a", "b")
    assert (refused.campaign, refused.verb) == ("Renewals", "resume")
    assert str(refused) == "campaign Renewals cannot resume:\n  - a\n  - b"


def test_overlapping_redial_rules_warn_that_the_stop_rule_wins() -> None:
    redial = RedialPolicy(
        stop_after_connect_longer_than=20.0, redial_after_connect_shorter_than=90.0
    )
    assert start_problems(with_(redial=redial)) == []
    assert start_warnings(with_(redial=redial)) == [
        "redial rules overlap: a connect between 20s and 1m30s matches both; the stop rule wins"
    ]


@pytest.mark.parametrize(("stop", "short"), [(20.0, 5.0), (20.0, 20.0), (None, 90.0), (20.0, None)])
def test_redial_rules_that_do_not_overlap(stop: float | None, short: float | None) -> None:
    redial = RedialPolicy(
        stop_after_connect_longer_than=stop, redial_after_connect_shorter_than=short
    )
    assert start_warnings(with_(redial=redial)) == []


def test_some_numbers_disabled_is_a_warning() -> None:
    pool = {"+441632960001": True, "+441632960002": False, "+441632960003": False}
    assert start_problems(facts(pool=pool)) == []
    assert start_warnings(facts(pool=pool)) == [
        "2 of 3 numbers in the pool are disabled (+441632960002, +441632960003); calls go out "
        "from the others"
    ]


# --- the callee's own window: contacts cancelled at start -------------------------------------


def test_contacts_cancelled_at_start_are_reported_in_the_past_tense_per_zone_set() -> None:
    spec = dataclasses.replace(GOOD, window_per_contact=True, timezone="Europe/London")
    lines = cancelled_warnings(spec, {"Asia/Tokyo America/New_York": 4, "": 0})
    assert lines == [
        "4 contact(s) were cancelled: the calling window 09:00-18:00 is never open at the same "
        "time in all of Asia/Tokyo, America/New_York (the zones their number may be in; give "
        "each its own with a `timezone` column)"
    ]
    assert cancelled_warnings(spec, {}) == []


def test_zone_keys_are_ignored_unless_the_window_is_read_per_contact() -> None:
    keys = {"Asia/Tokyo America/New_York": 4}
    assert start_warnings(StartFacts(GOOD, ("renewals-bot",), POOL, True, zone_keys=keys)) == []
    per_contact = dataclasses.replace(GOOD, window_per_contact=True)
    [warning] = start_warnings(
        StartFacts(per_contact, ("renewals-bot",), POOL, True, zone_keys=keys)
    )
    assert warning.startswith("4 contact(s) will be cancelled: ")
