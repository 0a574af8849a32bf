"""The callee's own calling window in the engine's rules: which zone groups the claim may take
(`open_zone_keys`, the scheduler's gate) and where a retry or callback of a per-contact contact
goes (`decide` with a `ZonedWindow`) — checked against the wall clocks themselves (zoneinfo,
minute by minute), across the DST changes of March and November."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialler.domain.rules import (
    AttemptFacts,
    Decision,
    NextAction,
    RedialPolicy,
    RetryPolicy,
    decide,
)
from dialler.domain.window import DAYS, Window
from dialler.domain.zones import ZonedWindow, open_zone_keys

MINUTE = timedelta(minutes=1)
#: The US rule (TCPA): 8am to 9pm in the called party's time; the campaign's own zone is far
#: away on purpose (it must play no part for contacts with zones of their own).
TCPA = Window.parse("08:00", "21:00", list(DAYS), "Asia/Tokyo")
OFFICE = Window.parse("09:00", "17:00", ["mon", "tue", "wed", "thu", "fri"], "Asia/Tokyo")
US_KEYS = [
    "America/New_York",
    "America/Los_Angeles",
    "America/Chicago America/New_York",  # a range that may be in either zone
]
OTHER_KEYS = ["Europe/London", "Australia/Sydney"]
#: Every zone a Russian mobile number may be in: no 09:00-17:00 moment in common.
RUSSIA = (
    "Asia/Anadyr Asia/Chita Asia/Irkutsk Asia/Kamchatka Asia/Krasnoyarsk Asia/Magadan "
    "Asia/Novosibirsk Asia/Omsk Asia/Sakhalin Asia/Srednekolymsk Asia/Vladivostok "
    "Asia/Yakutsk Asia/Yekaterinburg Europe/Kaliningrad Europe/Moscow Europe/Samara"
)
NO_REDIAL = RedialPolicy(None, None)


def wall_clock_open(window: Window, key: str, at: datetime) -> bool:
    """The window read by hand on each zone's clock (not through `Window`)."""
    zones = key.split(" ") if key else [window.timezone]
    for zone in zones:
        local = at.astimezone(ZoneInfo(zone))
        minute = local.hour * 60 + local.minute
        if local.weekday() not in window.days:
            return False
        if not window.start_minute <= minute < window.end_minute:
            return False
    return True


def first_open_by_brute_force(window: Window, key: str, at: datetime, days: int) -> datetime:
    """The first instant ≥ `at` open on every clock, minute by minute (`at` when open)."""
    if wall_clock_open(window, key, at):
        return at
    moment = at.replace(second=0, microsecond=0) + MINUTE
    for _ in range(days * 1440):
        if wall_clock_open(window, key, moment):
            return moment
        moment += MINUTE
    raise AssertionError(f"{key}: nothing open within {days} days of {at}")


def local(zone: str, year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone))


# --- the gate: which zone groups the claim may take -------------------------------------------

#: Days around the 2026 US DST changes (8 March, 1 November) and the UK ones (29 March,
#: 25 October) in between: the weeks where the US and Europe are an hour off their usual gap.
DST_DAYS = [(2026, 3, day) for day in (6, 7, 8, 9, 10, 27, 28, 29, 30)] + [
    (2026, m, day) for m, days in ((10, (24, 25, 26)), (11, (1, 2, 3))) for day in days
]


@pytest.mark.parametrize("day", DST_DAYS, ids=lambda d: f"{d[1]:02d}-{d[2]:02d}")
@pytest.mark.parametrize("zone", ["America/New_York", "America/Los_Angeles"])
def test_a_us_contact_is_never_claimable_at_half_past_nine_its_time(
    zone: str, day: tuple[int, int, int]
) -> None:
    late = local(zone, *day, 21, 30)
    early = local(zone, *day, 7, 59)
    last = local(zone, *day, 20, 59)
    first = local(zone, *day, 8, 0)
    assert zone not in open_zone_keys(TCPA, [zone], late)
    assert zone not in open_zone_keys(TCPA, [zone], early)
    assert open_zone_keys(TCPA, [zone], last) == [zone]
    assert open_zone_keys(TCPA, [zone], first) == [zone]


@settings(max_examples=400, deadline=None)
@given(
    at=st.datetimes(
        min_value=datetime(2026, 3, 1),
        max_value=datetime(2026, 11, 10),
        timezones=st.just(UTC),
    ).filter(lambda t: t.month in (3, 4, 10, 11)),
)
def test_the_open_groups_are_those_open_on_every_clock(at: datetime) -> None:
    keys = [*US_KEYS, *OTHER_KEYS, ""]
    expected = sorted(key for key in keys if wall_clock_open(TCPA, key, at))
    assert open_zone_keys(TCPA, keys, at) == expected


def test_the_campaign_zone_decides_only_for_contacts_without_zones() -> None:
    # 12:00 in New York (16:00 UTC) is 01:00 in Tokyo, the campaign's zone.
    at = datetime(2026, 3, 10, 16, tzinfo=UTC)
    assert open_zone_keys(TCPA, ["America/New_York", ""], at) == ["America/New_York"]
    # 02:00 UTC: 11:00 in Tokyo, 22:00 in New York.
    assert open_zone_keys(TCPA, ["America/New_York", ""], at.replace(hour=2)) == [""]


# --- settle: retries and callbacks move into the contact's own window -------------------------


def facts(
    ended_at: datetime, *, callback_at: datetime | None = None, attempts_used: int = 1
) -> AttemptFacts:
    return AttemptFacts(
        outcome="no_answer",
        disposition="no_answer",
        talk_seconds=0.0,
        ended_at=ended_at,
        callback_at=callback_at,
        attempts_used=attempts_used,
    )


def retry_after(seconds: float) -> RetryPolicy:
    return RetryPolicy(3, seconds, frozenset({"no_answer"}), frozenset())


@settings(max_examples=120, deadline=None)
@given(
    ended=st.datetimes(
        min_value=datetime(2026, 3, 5),
        max_value=datetime(2026, 11, 5),
        timezones=st.just(UTC),
    ).filter(lambda t: t.month in (3, 10, 11)),
    delay=st.integers(min_value=0, max_value=6 * 3600),
    key=st.sampled_from([*US_KEYS, *OTHER_KEYS, "America/New_York Europe/London"]),
)
def test_a_retry_goes_to_the_first_opening_of_the_contacts_zones(
    ended: datetime, delay: int, key: str
) -> None:
    decision = decide(facts(ended), retry_after(delay), NO_REDIAL, ZonedWindow.for_key(TCPA, key))
    due = ended + timedelta(seconds=delay)
    assert decision.action is NextAction.RETRY
    assert decision.contact_state == "retry_scheduled" and decision.reason is None
    # New York and London share 08:00-21:00 moments every day (eight or nine hours of them).
    assert decision.next_at == first_open_by_brute_force(TCPA, key, due, days=3)


@settings(max_examples=80, deadline=None)
@given(
    asked=st.datetimes(
        min_value=datetime(2026, 3, 5),
        max_value=datetime(2026, 11, 5),
        timezones=st.just(UTC),
    ).filter(lambda t: t.month in (3, 10, 11)),
    key=st.sampled_from(["America/New_York", "Australia/Sydney", "America/Los_Angeles"]),
)
def test_a_callback_goes_to_the_first_opening_of_the_contacts_zones(
    asked: datetime, key: str
) -> None:
    ended = asked - timedelta(hours=1)
    decision = decide(
        facts(ended, callback_at=asked), retry_after(60), NO_REDIAL, ZonedWindow.for_key(TCPA, key)
    )
    assert decision.action is NextAction.CALLBACK
    assert decision.next_at == first_open_by_brute_force(TCPA, key, asked, days=2)


def test_a_callback_asked_for_late_evening_moves_to_the_next_morning_there() -> None:
    # Sunday 1 November 2026, 21:30 in Los Angeles, the first evening after the clocks went
    # back: the callback is due at 08:00 Pacific (UTC-8) on Monday, not in Tokyo's window.
    asked = local("America/Los_Angeles", 2026, 11, 1, 21, 30)
    decision = decide(
        facts(asked - timedelta(minutes=5), callback_at=asked),
        retry_after(60),
        NO_REDIAL,
        ZonedWindow.for_key(TCPA, "America/Los_Angeles"),
    )
    assert decision.next_at == datetime(2026, 11, 2, 16, tzinfo=UTC)


def test_zones_that_never_open_together_cancel_the_contact_with_a_reason() -> None:
    never = ZonedWindow.for_key(OFFICE, RUSSIA)
    ended = datetime(2026, 3, 10, 9, tzinfo=UTC)
    cancelled = Decision(NextAction.CANCELLED, None, "cancelled", "no_common_window")
    assert decide(facts(ended), retry_after(60), NO_REDIAL, never) == cancelled
    callback = facts(ended, callback_at=ended + timedelta(days=1))
    assert decide(callback, retry_after(60), NO_REDIAL, never) == cancelled
    # Attempts used up: exhausted, as ever (no window is looked at).
    used_up = decide(facts(ended, attempts_used=3), retry_after(60), NO_REDIAL, never)
    assert (used_up.action, used_up.reason) == (NextAction.EXHAUSTED, None)


def test_on_the_campaigns_own_window_a_retry_still_waits_for_the_scheduler() -> None:
    ended = datetime(2026, 3, 10, 2, tzinfo=UTC)  # 11:00 in Tokyo; 12 h later, 23:00: closed
    decision = decide(facts(ended), retry_after(12 * 3600), NO_REDIAL, TCPA)
    assert decision.next_at == ended + timedelta(hours=12)
