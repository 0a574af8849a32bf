"""The callee's own calling window: a number's zones, zone keys, and the window read on several
wall clocks at once (domain/zones.py), checked against brute force across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialler.campaigns.checks import (
    StartFacts,
    never_open_warnings,
    never_open_zone_keys,
    start_warnings,
)
from dialler.campaigns.spec import CampaignSpec
from dialler.contacts.csvfile import read_contacts
from dialler.contacts.zones import contact_zone_key, number_zone_key, timezone_problem
from dialler.domain.window import Window
from dialler.domain.zones import (
    CAMPAIGN_ZONE_KEY,
    NEVER_HORIZON,
    ZonedWindow,
    key_zones,
    next_zone_opening,
    open_zone_keys,
    zone_key,
)

MINUTE = timedelta(minutes=1)
EIGHT_DAYS = timedelta(days=8)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def office(zone: str = "UTC", start: str = "09:00", end: str = "18:00") -> Window:
    return Window.parse(start, end, ["mon", "tue", "wed", "thu", "fri"], zone)


# --- a number's zones ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "key"),
    [
        ("+12125550123", "America/New_York"),
        ("+13105550123", "America/Los_Angeles"),
        ("+442079460000", "Europe/London"),
        ("+61291234567", "Australia/Sydney"),
        # Numbers whose zone cannot be told follow the campaign's zone.
        ("+447700900123", CAMPAIGN_ZONE_KEY),
        ("+15555550123", CAMPAIGN_ZONE_KEY),
    ],
)
def test_a_geographic_number_has_its_zone(number: str, key: str) -> None:
    assert number_zone_key(number) == key


def test_a_national_mobile_range_may_be_in_every_zone_of_its_country() -> None:
    zones = key_zones(number_zone_key("+61412345678"), "UTC")
    assert {"Australia/Perth", "Australia/Sydney", "Australia/Lord_Howe"} <= set(zones)
    assert list(zones) == sorted(zones)


def test_the_timezone_variable_overrides_the_number() -> None:
    assert contact_zone_key("+12125550123", {"timezone": "Europe/Paris"}) == "Europe/Paris"
    assert contact_zone_key("+447700900123", {"timezone": " Asia/Tokyo "}) == "Asia/Tokyo"
    # Blank: no override.
    assert contact_zone_key("+12125550123", {"timezone": " "}) == "America/New_York"


@pytest.mark.parametrize("value", ["Europe/Lodnon", "Etc/Unknown", "localtime", "EST5EDT/x"])
def test_a_timezone_that_is_not_an_iana_name_is_a_problem(value: str) -> None:
    problem = timezone_problem(value)
    assert problem is not None
    assert problem.startswith("timezone: ")


def test_a_misspelt_timezone_gets_a_suggestion() -> None:
    assert "did you mean 'Europe/London'" in (timezone_problem("Europe/Lodnon") or "")
    assert timezone_problem("") is None
    assert timezone_problem("America/New_York") is None


# --- zone keys -------------------------------------------------------------------------------


def test_zone_keys_are_canonical() -> None:
    assert zone_key(["Europe/London", "America/New_York", "Europe/London"]) == (
        "America/New_York Europe/London"
    )
    assert zone_key(["Etc/Unknown"]) == CAMPAIGN_ZONE_KEY
    assert zone_key(["Mars/Olympus_Mons", "Asia/Tokyo"]) == "Asia/Tokyo"
    assert key_zones("America/New_York Europe/London", "UTC") == (
        "America/New_York",
        "Europe/London",
    )
    assert key_zones(CAMPAIGN_ZONE_KEY, "Europe/Paris") == ("Europe/Paris",)


def test_open_zone_keys_picks_the_groups_open_now() -> None:
    # Tuesday 2026-03-03 15:00 UTC: 10:00 in New York, 15:00 in London, 02:00 in Sydney.
    at = utc(2026, 3, 3, 15)
    keys = ["America/New_York", "Europe/London", "Australia/Sydney", CAMPAIGN_ZONE_KEY]
    window = office("Asia/Tokyo")  # the campaign's zone: 00:00 there
    assert open_zone_keys(window, keys, at) == ["America/New_York", "Europe/London"]
    both = "America/New_York Europe/London"
    assert open_zone_keys(window, [both], at) == [both]
    assert open_zone_keys(window, ["America/Los_Angeles Europe/London"], at) == []


def test_a_retry_moves_to_the_contacts_own_opening() -> None:
    # Tuesday 2026-03-03 15:00 UTC, Sydney's office hours start at 22:00 UTC (09:00 AEDT).
    opening = next_zone_opening(office(), "Australia/Sydney", utc(2026, 3, 3, 15))
    assert opening == utc(2026, 3, 3, 22)
    # Every zone of Russia's mobiles: no nine-to-five moment is shared, ever.
    russia = number_zone_key("+79161234567")
    assert next_zone_opening(office(), russia, utc(2026, 3, 3, 15)) is None
    assert not ZonedWindow.for_key(office(), russia).shares_open_instant(utc(2026, 3, 3))


def test_zones_that_meet_only_while_their_dst_dates_differ() -> None:
    # 09:00–14:00 in New York and London: 5 h apart, they never overlap, except in the weeks
    # when the US has moved its clocks and Europe has not (4 h apart: 13:00–14:00 London).
    window = office(start="09:00", end="14:00")
    zoned = ZonedWindow(window, ("America/New_York", "Europe/London"))
    assert zoned.next_open(utc(2026, 1, 5), within=EIGHT_DAYS) is None
    assert zoned.next_open(utc(2026, 1, 5)) == utc(2026, 3, 9, 13)
    assert zoned.shares_open_instant(utc(2026, 1, 5))


def test_a_zoned_window_needs_a_zone() -> None:
    with pytest.raises(ValueError, match="at least one zone"):
        ZonedWindow(office(), ())


# --- properties against brute force ----------------------------------------------------------

ZONES = [
    "America/New_York",
    "Europe/London",
    "Australia/Sydney",
    "America/Los_Angeles",
    "Asia/Kolkata",  # +05:30, no DST
    "Australia/Lord_Howe",  # 30-minute DST
    "America/St_Johns",  # -03:30 / -02:30
    "Pacific/Chatham",  # +12:45 / +13:45
]
RANGE_START = utc(2025, 1, 1)
RANGE_END = utc(2027, 1, 1)


@cache
def transitions(zone_name: str) -> tuple[datetime, ...]:
    """The zone's UTC offset changes in 2025–2026, to the minute, found by sampling days."""
    zone = ZoneInfo(zone_name)
    found: list[datetime] = []
    day = RANGE_START
    while day < RANGE_END:
        following = day + timedelta(days=1)
        if day.astimezone(zone).utcoffset() != following.astimezone(zone).utcoffset():
            low, high = day, following
            while high - low > MINUTE:
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == low.astimezone(zone).utcoffset():
                    low = middle
                else:
                    high = middle
            found.append(high.replace(second=0, microsecond=0))
        day = following
    return tuple(found)


def brute_open(window: Window, zones: tuple[str, ...], at: datetime) -> bool:
    """Open on every zone's wall clock, worked out from scratch."""
    for name in zones:
        local = at.astimezone(ZoneInfo(name))
        minute = local.hour * 60 + local.minute
        if local.weekday() not in window.days:
            return False
        if not window.start_minute <= minute < window.end_minute:
            return False
    return True


def brute_next_open(
    window: Window, zones: tuple[str, ...], at: datetime, within: timedelta
) -> datetime | None:
    """The first instant ≥ `at` open everywhere, minute by minute (offsets, transitions and
    window edges all fall on whole minutes in these zones), up to `at + within`."""
    if brute_open(window, zones, at):
        return at
    moment = at.replace(second=0, microsecond=0) + MINUTE
    while moment <= at + within:
        if brute_open(window, zones, moment):
            return moment
        moment += MINUTE
    return None


Case = tuple[Window, tuple[str, ...], datetime]


@st.composite
def cases(draw: st.DrawFn, *, narrow: bool = False) -> Case:
    """A window, one to three zones and an instant, often within days of a DST change of one
    of the zones; `narrow` windows make an empty intersection likely."""
    zones = tuple(draw(st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True)))
    changes = [change for zone in zones for change in transitions(zone)]
    if changes and draw(st.booleans()):
        change = draw(st.sampled_from(changes))
        at = change + timedelta(seconds=draw(st.integers(-4 * 86400, 4 * 86400)))
    else:
        at = draw(
            st.datetimes(
                min_value=datetime(2025, 1, 1),
                max_value=datetime(2026, 12, 20),
                timezones=st.just(UTC),
            )
        )
    edge = st.one_of(st.integers(0, 1440), st.sampled_from([0, 30, 480, 540, 1080, 1260, 1440]))
    start = draw(edge)
    length = draw(st.integers(1, 6 * 60 if narrow else 1440))
    end = min(1440, start + length)
    if end == start:
        start -= 1
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    return Window(start, end, days, "UTC"), zones, at


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(cases())
def test_open_now_agrees_with_brute_force(case: Case) -> None:
    window, zones, at = case
    zoned = ZonedWindow(window, zones)
    for moment in (at, at + timedelta(minutes=37), at + timedelta(hours=5)):
        assert zoned.is_open(moment) == brute_open(window, zones, moment)


@PROPERTY
@given(cases())
def test_next_opening_is_the_first_open_minute(case: Case) -> None:
    window, zones, at = case
    expected = brute_next_open(window, zones, at, EIGHT_DAYS)
    assert ZonedWindow(window, zones).next_open(at, within=EIGHT_DAYS) == expected


@PROPERTY
@given(cases(narrow=True))
def test_intersection_is_empty_iff_brute_force_finds_no_common_minute(case: Case) -> None:
    window, zones, at = case
    found = ZonedWindow(window, zones).next_open(at, within=EIGHT_DAYS)
    expected = brute_next_open(window, zones, at, EIGHT_DAYS)
    assert (found is None) == (expected is None)
    if found is not None:
        assert found == expected
        assert brute_open(window, zones, found)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.sampled_from(ZONES))
def test_open_zone_keys_agrees_with_each_groups_window(case: Case, other: str) -> None:
    window, zones, at = case
    keys = [zone_key(zones), other, CAMPAIGN_ZONE_KEY]
    expected = sorted(
        {key for key in keys if brute_open(window, key_zones(key, window.timezone), at)}
    )
    assert open_zone_keys(window, keys, at) == expected


def test_the_property_ranges_hit_dst_changes() -> None:
    # Guards the properties: they only mean something if they do meet transitions.
    assert len(transitions("Australia/Lord_Howe")) == 4
    assert len(transitions("America/New_York")) == 4
    assert transitions("Asia/Kolkata") == ()


def slow_next_open(window: Window, zones: tuple[str, ...], at: datetime) -> datetime | None:
    """The year-long answer the slow way: leapfrog every zone's openings up to the horizon
    (each zone's own `Window.next_open` is checked against brute force in test_window.py)."""
    windows = [Window(window.start_minute, window.end_minute, window.days, zone) for zone in zones]
    limit = at + NEVER_HORIZON
    moment = at
    while True:
        latest = max(each.next_open(moment) for each in windows)
        if latest > limit:
            return None
        if all(each.is_open(latest) for each in windows):
            return latest
        moment = latest


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(narrow=True))
def test_the_year_long_search_skips_only_what_cannot_open(case: Case) -> None:
    # Jumping from one offset change to the next finds what leapfrogging day by day finds.
    window, zones, at = case
    assert ZonedWindow(window, zones).next_open(at) == slow_next_open(window, zones, at)


# --- the `timezone` column of a contacts file ------------------------------------------------


def test_a_timezone_column_must_hold_iana_names_and_stays_a_variable(tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text(
        "phone_number,name,timezone\n"
        "+12125550101,Ann,Europe/Paris\n"
        "+12125550102,Bob,Europe/Pariss\n"
        "+12125550103,Cy,\n",
        encoding="utf-8",
    )
    with read_contacts(path, "US") as stream:
        rows = list(stream)
    assert [(row.line, row.variables) for row in rows] == [
        (2, {"name": "Ann", "timezone": "Europe/Paris"}),
        (4, {"name": "Cy", "timezone": ""}),
    ]
    [error] = stream.errors
    assert error.line == 3
    assert error.reason == (
        "timezone: unknown time zone 'Europe/Pariss' (did you mean 'Europe/Paris'?)"
    )
    assert contact_zone_key(rows[0].phone, rows[0].variables) == "Europe/Paris"
    assert contact_zone_key(rows[1].phone, rows[1].variables) == "America/New_York"


# --- start checks ----------------------------------------------------------------------------


def test_the_start_check_reports_zone_sets_only_for_per_contact_windows() -> None:
    russia = number_zone_key("+79161234567")
    keys = {russia: 3, "America/New_York": 10, CAMPAIGN_ZONE_KEY: 2}
    spec = CampaignSpec(name="Nationwide", window_per_contact=True)
    facts = StartFacts(spec=spec, bots=["bot"], pool={}, has_contacts=True, zone_keys=keys)
    assert never_open_zone_keys(facts) == [russia]
    [warning] = never_open_warnings(facts)
    assert warning.startswith(
        "3 contact(s) will be cancelled: the calling window 09:00-18:00 is never open at the "
        "same time in all of Asia/Almaty, Asia/Anadyr,"
    )
    assert warning in start_warnings(facts)
    off = StartFacts(spec=CampaignSpec(name="N"), bots=[], pool={}, has_contacts=True)
    assert never_open_zone_keys(off) == []
    broken = CampaignSpec(name="N", window_per_contact=True, window_start="9am")
    assert never_open_zone_keys(StartFacts(broken, [], {}, True, zone_keys=keys)) == []
