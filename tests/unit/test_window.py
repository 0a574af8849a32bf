from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialler.domain.window import DAYS, Window, WindowError
from dialler.errors import InvalidInput

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
ALL_DAYS = list(DAYS)
MICROSECOND = timedelta(microseconds=1)


def utc(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    microsecond: int = 0,
) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


def window(start: str, end: str, days: list[str], zone: str = "UTC") -> Window:
    return Window.parse(start, end, days, zone)


# --- parsing ---------------------------------------------------------------------------------


def test_parse_gives_minutes_days_and_zone() -> None:
    parsed = window("09:00", "18:30", ["mon", "fri", "mon"], "Europe/London")
    assert parsed == Window(540, 1110, frozenset({0, 4}), "Europe/London")
    assert (parsed.start, parsed.end, parsed.day_names) == ("09:00", "18:30", ("mon", "fri"))


def test_parse_accepts_midnight_start_and_24_00_end() -> None:
    parsed = window("00:00", "24:00", ["sun"])
    assert (parsed.start_minute, parsed.end_minute, parsed.end) == (0, 1440, "24:00")


def test_window_error_is_a_value_error_listing_every_problem() -> None:
    # The domain raises a plain ValueError (it imports nothing of the package); the services
    # that take windows from users turn `problems` into their own typed refusals.
    with pytest.raises(WindowError) as info:
        window("9:00", "18:00", WEEKDAYS)
    assert isinstance(info.value, ValueError)
    assert not isinstance(info.value, InvalidInput)
    assert str(info.value) == "; ".join(info.value.problems)


@pytest.mark.parametrize(
    ("start", "end", "days", "zone", "problem"),
    [
        pytest.param(
            "9:00",
            "18:00",
            WEEKDAYS,
            "UTC",
            "window.start: '9:00' is not HH:MM (24-hour, two digits each, e.g. '09:00')",
            id="one-digit-hour",
        ),
        pytest.param(
            "9:5",
            "18:00",
            WEEKDAYS,
            "UTC",
            "window.start: '9:5' is not HH:MM",
            id="one-digit-hour-and-minute",
        ),
        pytest.param(
            "0900", "18:00", WEEKDAYS, "UTC", "window.start: '0900' is not HH:MM", id="no-colon"
        ),
        pytest.param(
            "09:00:00",
            "18:00",
            WEEKDAYS,
            "UTC",
            "window.start: '09:00:00' is not HH:MM",
            id="seconds",
        ),
        pytest.param(
            " 09:00",
            "18:00",
            WEEKDAYS,
            "UTC",
            "window.start: ' 09:00' is not HH:MM",
            id="leading-space",
        ),
        pytest.param(
            "09:00\n",
            "18:00",
            WEEKDAYS,
            "UTC",
            "window.start: '09:00\\n' is not HH:MM",
            id="trailing-newline",
        ),
        pytest.param(
            "\u0660\u0669:00",
            "18:00",
            WEEKDAYS,
            "UTC",
            "window.start: '\u0660\u0669:00' is not HH:MM",
            id="non-ascii-digits",
        ),
        pytest.param(
            "9am", "18:00", WEEKDAYS, "UTC", "window.start: '9am' is not HH:MM", id="am-pm"
        ),
        pytest.param(
            "25:00",
            "18:00",
            WEEKDAYS,
            "UTC",
            "window.start: '25:00' is not a time of day (00:00 to 23:59)",
            id="hour-25",
        ),
        pytest.param(
            "09:60",
            "18:00",
            WEEKDAYS,
            "UTC",
            "window.start: '09:60' is not a time of day (00:00 to 23:59)",
            id="minute-60",
        ),
        pytest.param(
            "09:00",
            "24:01",
            WEEKDAYS,
            "UTC",
            "window.end: '24:01' is not a time of day (00:00 to 24:00)",
            id="end-past-24:00",
        ),
        pytest.param(
            "24:00",
            "24:00",
            WEEKDAYS,
            "UTC",
            "window.start: '24:00' is allowed only as window.end; use '00:00'",
            id="start-24:00",
        ),
        pytest.param(
            540,
            "18:00",
            WEEKDAYS,
            "UTC",
            "window.start: expected a time such as '09:00', got int 540 (put times in "
            "quotes: YAML reads an unquoted 18:00 as a number)",
            id="yaml-sexagesimal-int",
        ),
        pytest.param(
            None,
            "18:00",
            WEEKDAYS,
            "UTC",
            "window.start: expected a time such as '09:00', got null",
            id="start-null",
        ),
        pytest.param(
            "09:00",
            True,
            WEEKDAYS,
            "UTC",
            "window.end: expected a time such as '09:00', got bool true",
            id="end-bool",
        ),
        pytest.param(
            "09:00",
            "08:00",
            WEEKDAYS,
            "UTC",
            "window.end: '08:00' is not after window.start '09:00' (overnight windows "
            "are not supported; use '24:00' for midnight)",
            id="end-before-start",
        ),
        pytest.param(
            "09:00",
            "09:00",
            WEEKDAYS,
            "UTC",
            "window.end: '09:00' is not after window.start '09:00'",
            id="end-equals-start",
        ),
        pytest.param(
            "09:00",
            "00:00",
            WEEKDAYS,
            "UTC",
            "window.end: '00:00' is not after window.start '09:00'",
            id="end-midnight",
        ),
        pytest.param(
            "09:00", "18:00", [], "UTC", "window.days: at least one day is required", id="no-days"
        ),
        pytest.param(
            "09:00",
            "18:00",
            "mon",
            "UTC",
            "window.days: expected a list of days such as [mon, tue, wed], got str 'mon'",
            id="days-string",
        ),
        pytest.param(
            "09:00",
            "18:00",
            None,
            "UTC",
            "window.days: expected a list of days such as [mon, tue, wed], got null",
            id="days-null",
        ),
        pytest.param(
            "09:00",
            "18:00",
            {"mon": 1},
            "UTC",
            "window.days: expected a list of days such as [mon, tue, wed], got mapping",
            id="days-mapping",
        ),
        pytest.param(
            "09:00",
            "18:00",
            ["mon", "Tue"],
            "UTC",
            "window.days[1]: unknown day 'Tue' (expected one of: mon, tue, wed, thu, "
            "fri, sat, sun; did you mean 'tue'?)",
            id="day-capitalised",
        ),
        pytest.param(
            "09:00",
            "18:00",
            ["monday"],
            "UTC",
            "window.days[0]: unknown day 'monday' (expected one of: mon, tue, wed, thu, "
            "fri, sat, sun; did you mean 'mon'?)",
            id="day-long-name",
        ),
        pytest.param(
            "09:00",
            "18:00",
            ["mon", "xyz"],
            "UTC",
            "window.days[1]: unknown day 'xyz' (expected one of: mon, tue, wed, thu, "
            "fri, sat, sun)",
            id="day-unknown",
        ),
        pytest.param(
            "09:00",
            "18:00",
            [True],
            "UTC",
            "window.days[0]: expected a day name, got bool true",
            id="day-yaml-bool",
        ),
        pytest.param(
            "09:00",
            "18:00",
            [1],
            "UTC",
            "window.days[0]: expected a day name, got int 1",
            id="day-number",
        ),
        pytest.param(
            "09:00",
            "18:00",
            WEEKDAYS,
            "Europe/Londn",
            "window.timezone: unknown time zone 'Europe/Londn' (did you mean 'Europe/London'?)",
            id="zone-typo",
        ),
        pytest.param(
            "09:00",
            "18:00",
            WEEKDAYS,
            "Mars/Olympus_Mons",
            "window.timezone: unknown time zone 'Mars/Olympus_Mons'",
            id="zone-unknown",
        ),
        pytest.param(
            "09:00",
            "18:00",
            WEEKDAYS,
            "America/",
            "window.timezone: unknown time zone 'America/'",
            id="zone-not-normalised",
        ),
        pytest.param(
            "09:00",
            "18:00",
            WEEKDAYS,
            "../../etc/passwd",
            "window.timezone: unknown time zone '../../etc/passwd'",
            id="zone-path",
        ),
        pytest.param(
            "09:00",
            "18:00",
            WEEKDAYS,
            "/usr/share/zoneinfo/UTC",
            "window.timezone: unknown time zone '/usr/share/zoneinfo/UTC'",
            id="zone-absolute-path",
        ),
        pytest.param(
            "09:00",
            "18:00",
            WEEKDAYS,
            "",
            "window.timezone: must not be empty; use an IANA name such as 'Europe/London'",
            id="zone-empty",
        ),
        pytest.param(
            "09:00",
            "18:00",
            WEEKDAYS,
            "localtime",
            "window.timezone: 'localtime' is not a fixed time zone",
            id="zone-localtime",
        ),
        pytest.param(
            "09:00",
            "18:00",
            WEEKDAYS,
            "right/UTC",
            "window.timezone: 'right/UTC' is not a fixed time zone",
            id="zone-leap-seconds",
        ),
        pytest.param(
            "09:00",
            "18:00",
            WEEKDAYS,
            0,
            "window.timezone: expected an IANA time zone name such as 'Europe/London', got int 0",
            id="zone-int",
        ),
        pytest.param(
            "09:00",
            "18:00",
            WEEKDAYS,
            None,
            "window.timezone: expected an IANA time zone name such as 'Europe/London', got null",
            id="zone-null",
        ),
    ],
)
def test_parse_refuses_with_field_and_reason(
    start: object, end: object, days: object, zone: object, problem: str
) -> None:
    with pytest.raises(WindowError) as info:
        Window.parse(start, end, days, zone)
    assert len(info.value.problems) == 1, info.value.problems
    assert info.value.problems[0].startswith(problem)


def test_parse_reports_every_problem_in_field_order() -> None:
    with pytest.raises(WindowError) as info:
        Window.parse("9:00", "25:00", ["mon", "funday", 3], "Nowhere/Special")
    assert [problem.split(":")[0] for problem in info.value.problems] == [
        "window.start",
        "window.end",
        "window.days[1]",
        "window.days[2]",
        "window.timezone",
    ]


def test_no_overnight_check_when_a_time_is_already_wrong() -> None:
    with pytest.raises(WindowError) as info:
        Window.parse("18:00", "7:00", WEEKDAYS, "UTC")
    assert len(info.value.problems) == 1


@pytest.mark.parametrize(
    ("start", "end", "days", "zone"),
    [
        pytest.param(-1, 60, frozenset({0}), "UTC", id="start-negative"),
        pytest.param(1440, 1440, frozenset({0}), "UTC", id="start-1440"),
        pytest.param(0, 1441, frozenset({0}), "UTC", id="end-past-midnight"),
        pytest.param(600, 540, frozenset({0}), "UTC", id="overnight"),
        pytest.param(540, 600, frozenset(), "UTC", id="no-days"),
        pytest.param(540, 600, frozenset({7}), "UTC", id="day-7"),
        pytest.param(540, 600, frozenset({0}), "Nowhere/Special", id="unknown-zone"),
    ],
)
def test_direct_construction_is_checked(
    start: int, end: int, days: frozenset[int], zone: str
) -> None:
    with pytest.raises(WindowError):
        Window(start, end, days, zone)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="time-zone-aware"):
        window("09:00", "18:00", WEEKDAYS).is_open(datetime(2025, 1, 6, 10))


# --- examples --------------------------------------------------------------------------------

OFFICE = window("09:00", "18:00", WEEKDAYS)  # UTC; 2025-01-06 is a Monday


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        pytest.param(utc(2025, 1, 6, 9, 0), True, id="mon-at-start"),
        pytest.param(utc(2025, 1, 6, 8, 59, 59, 999999), False, id="mon-just-before-start"),
        pytest.param(utc(2025, 1, 6, 17, 59, 59, 999999), True, id="mon-just-before-end"),
        pytest.param(utc(2025, 1, 6, 18, 0), False, id="mon-at-end"),
        pytest.param(utc(2025, 1, 10, 12, 0), True, id="fri-noon"),
        pytest.param(utc(2025, 1, 11, 12, 0), False, id="sat-noon"),
        pytest.param(utc(2025, 1, 12, 12, 0), False, id="sun-noon"),
        pytest.param(
            datetime(2025, 1, 6, 18, 30, tzinfo=ZoneInfo("Asia/Tokyo")), True, id="other-zone-input"
        ),
    ],
)
def test_is_open_office_hours(at: datetime, expected: bool) -> None:
    assert OFFICE.is_open(at) is expected


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        pytest.param(
            utc(2025, 1, 6, 10, 15, 30, 5), utc(2025, 1, 6, 10, 15, 30, 5), id="open-is-itself"
        ),
        pytest.param(utc(2025, 1, 6, 7, 0), utc(2025, 1, 6, 9, 0), id="mon-morning"),
        pytest.param(utc(2025, 1, 6, 18, 0), utc(2025, 1, 7, 9, 0), id="mon-evening"),
        pytest.param(utc(2025, 1, 10, 18, 0), utc(2025, 1, 13, 9, 0), id="fri-evening-to-mon"),
        pytest.param(utc(2025, 1, 11, 12, 0), utc(2025, 1, 13, 9, 0), id="sat-to-mon"),
        pytest.param(utc(2025, 1, 12, 23, 59), utc(2025, 1, 13, 9, 0), id="sun-late-to-mon"),
    ],
)
def test_next_open_office_hours(at: datetime, expected: datetime) -> None:
    assert OFFICE.next_open(at) == expected


def test_next_open_and_close_are_in_utc() -> None:
    at = datetime(2025, 1, 6, 3, 0, tzinfo=ZoneInfo("America/New_York"))
    opened = OFFICE.next_open(at)
    assert opened.utcoffset() == timedelta(0)
    closed = OFFICE.next_close(opened)
    assert closed is not None and closed.utcoffset() == timedelta(0)


def test_next_close_office_hours() -> None:
    assert OFFICE.next_close(utc(2025, 1, 6, 9, 0)) == utc(2025, 1, 6, 18, 0)
    assert OFFICE.next_close(utc(2025, 1, 6, 17, 59)) == utc(2025, 1, 6, 18, 0)
    assert OFFICE.next_close(utc(2025, 1, 6, 18, 0)) is None
    assert OFFICE.next_close(utc(2025, 1, 11, 12, 0)) is None


def test_only_day_already_over_opens_a_week_later() -> None:
    monday_hour = window("09:00", "10:00", ["mon"])
    assert monday_hour.next_open(utc(2025, 1, 6, 10, 0)) == utc(2025, 1, 13, 9, 0)


def test_weekend_window() -> None:
    weekend = window("10:00", "16:00", ["sat", "sun"])
    assert weekend.next_open(utc(2025, 1, 10, 12, 0)) == utc(2025, 1, 11, 10, 0)
    assert weekend.next_open(utc(2025, 1, 12, 15, 0)) == utc(2025, 1, 12, 15, 0)
    assert weekend.next_open(utc(2025, 1, 12, 16, 0)) == utc(2025, 1, 18, 10, 0)
    assert not weekend.is_open(utc(2025, 1, 13, 12, 0))


def test_24_00_end_closes_at_midnight() -> None:
    evening = window("20:00", "24:00", ["sat"])
    assert evening.is_open(utc(2025, 1, 11, 23, 59, 59, 999999))
    assert not evening.is_open(utc(2025, 1, 12, 0, 0))
    assert evening.next_close(utc(2025, 1, 11, 21, 0)) == utc(2025, 1, 12, 0, 0)


def test_whole_days_run_on_across_midnight() -> None:
    weekdays = window("00:00", "24:00", WEEKDAYS)
    assert weekdays.next_close(utc(2025, 1, 6, 10, 0)) == utc(2025, 1, 11, 0, 0)
    assert weekdays.next_open(utc(2025, 1, 11, 10, 0)) == utc(2025, 1, 13, 0, 0)
    alternate = window("00:00", "24:00", ["mon", "wed"])
    assert alternate.next_close(utc(2025, 1, 6, 10, 0)) == utc(2025, 1, 7, 0, 0)


def test_always_open_window_never_closes() -> None:
    always = window("00:00", "24:00", ALL_DAYS, "Europe/London")
    assert always.always_open
    assert always.next_open(utc(2025, 3, 30, 1, 0)) == utc(2025, 3, 30, 1, 0)
    assert always.next_close(utc(2025, 3, 30, 1, 0)) is None
    assert not window("00:00", "23:59", ALL_DAYS).always_open


@pytest.mark.parametrize(
    ("win", "at", "opens", "closes"),
    [
        # Europe/London 2025-03-30: 01:00 GMT -> 02:00 BST at 01:00 UTC.
        pytest.param(
            window("01:30", "03:00", ["sun"], "Europe/London"),
            utc(2025, 3, 29, 12),
            utc(2025, 3, 30, 1, 0),
            utc(2025, 3, 30, 2, 0),
            id="london-spring-start-in-gap-opens-at-02:00-BST",
        ),
        pytest.param(
            window("01:00", "01:45", ["sun"], "Europe/London"),
            utc(2025, 3, 29, 12),
            utc(2025, 4, 6, 0, 0),
            utc(2025, 4, 6, 0, 45),
            id="london-spring-window-inside-gap-skips-the-day",
        ),
        pytest.param(
            window("09:00", "17:00", ALL_DAYS, "Europe/London"),
            utc(2025, 3, 30, 0),
            utc(2025, 3, 30, 8, 0),
            utc(2025, 3, 30, 16, 0),
            id="london-spring-office-hours-in-bst",
        ),
        pytest.param(
            window("00:30", "03:00", ["sun"], "Europe/London"),
            utc(2025, 3, 30, 0, 45),
            utc(2025, 3, 30, 0, 45),
            utc(2025, 3, 30, 2, 0),
            id="london-spring-open-across-the-gap",
        ),
        # Europe/London 2025-10-26: 02:00 BST -> 01:00 GMT at 01:00 UTC.
        pytest.param(
            window("01:30", "02:00", ["sun"], "Europe/London"),
            utc(2025, 10, 25, 12),
            utc(2025, 10, 26, 0, 30),
            utc(2025, 10, 26, 1, 0),
            id="london-fall-first-occurrence-then-clock-goes-back",
        ),
        pytest.param(
            window("01:30", "02:00", ["sun"], "Europe/London"),
            utc(2025, 10, 26, 1, 0),
            utc(2025, 10, 26, 1, 30),
            utc(2025, 10, 26, 2, 0),
            id="london-fall-second-pass",
        ),
        pytest.param(
            window("01:00", "02:00", ["sun"], "Europe/London"),
            utc(2025, 10, 25, 12),
            utc(2025, 10, 26, 0, 0),
            utc(2025, 10, 26, 2, 0),
            id="london-fall-repeated-hour-is-open-twice",
        ),
        # America/New_York 2024-03-10: 02:00 EST -> 03:00 EDT at 07:00 UTC.
        pytest.param(
            window("02:30", "05:00", ["sun"], "America/New_York"),
            utc(2024, 3, 9, 12),
            utc(2024, 3, 10, 7, 0),
            utc(2024, 3, 10, 9, 0),
            id="new-york-spring-start-in-gap-opens-at-03:00-EDT",
        ),
        pytest.param(
            window("02:00", "02:30", ["sun"], "America/New_York"),
            utc(2024, 3, 9, 12),
            utc(2024, 3, 17, 6, 0),
            utc(2024, 3, 17, 6, 30),
            id="new-york-spring-window-inside-gap-skips-the-day",
        ),
        pytest.param(
            window("09:00", "18:00", WEEKDAYS, "America/New_York"),
            utc(2024, 3, 8, 23, 0),
            utc(2024, 3, 11, 13, 0),
            utc(2024, 3, 11, 22, 0),
            id="new-york-spring-friday-est-to-monday-edt",
        ),
        # America/New_York 2024-11-03: 02:00 EDT -> 01:00 EST at 06:00 UTC.
        pytest.param(
            window("01:00", "01:30", ["sun"], "America/New_York"),
            utc(2024, 11, 2, 12),
            utc(2024, 11, 3, 5, 0),
            utc(2024, 11, 3, 5, 30),
            id="new-york-fall-first-occurrence",
        ),
        pytest.param(
            window("01:00", "01:30", ["sun"], "America/New_York"),
            utc(2024, 11, 3, 5, 30),
            utc(2024, 11, 3, 6, 0),
            utc(2024, 11, 3, 6, 30),
            id="new-york-fall-second-pass",
        ),
        pytest.param(
            window("00:30", "01:30", ["sun"], "America/New_York"),
            utc(2024, 11, 3, 5, 45),
            utc(2024, 11, 3, 6, 0),
            utc(2024, 11, 3, 6, 30),
            id="new-york-fall-end-inside-repeat-reopens",
        ),
        # Australia/Lord_Howe, 30-minute DST. 2024-10-06 02:00 +10:30 -> 02:30 +11 at 15:30 UTC
        # the day before; 2025-04-06 02:00 +11 -> 01:30 +10:30 at 15:00 UTC the day before.
        pytest.param(
            window("02:00", "03:00", ["sun"], "Australia/Lord_Howe"),
            utc(2024, 10, 5, 0),
            utc(2024, 10, 5, 15, 30),
            utc(2024, 10, 5, 16, 0),
            id="lord-howe-spring-start-in-half-hour-gap",
        ),
        pytest.param(
            window("01:30", "02:00", ["sun"], "Australia/Lord_Howe"),
            utc(2025, 4, 5, 0),
            utc(2025, 4, 5, 14, 30),
            utc(2025, 4, 5, 15, 30),
            id="lord-howe-fall-stays-open-through-the-repeat",
        ),
        # Pacific/Kiritimati is UTC+14: Monday 09:00 there is Sunday 19:00 UTC.
        pytest.param(
            window("09:00", "17:00", ["mon"], "Pacific/Kiritimati"),
            utc(2025, 1, 5, 12),
            utc(2025, 1, 5, 19, 0),
            utc(2025, 1, 6, 3, 0),
            id="kiritimati-monday-starts-on-utc-sunday",
        ),
        pytest.param(
            window("09:00", "17:00", ["mon"], "Pacific/Kiritimati"),
            utc(2025, 1, 6, 3, 0),
            utc(2025, 1, 12, 19, 0),
            utc(2025, 1, 13, 3, 0),
            id="kiritimati-closed-on-utc-monday-afternoon",
        ),
        # Pacific/Pago_Pago is UTC-11: Monday 20:00 there is Tuesday 07:00 UTC.
        pytest.param(
            window("20:00", "24:00", ["mon"], "Pacific/Pago_Pago"),
            utc(2025, 1, 6, 12),
            utc(2025, 1, 7, 7, 0),
            utc(2025, 1, 7, 11, 0),
            id="pago-pago-monday-evening-is-utc-tuesday",
        ),
    ],
)
def test_dst_and_far_zones(win: Window, at: datetime, opens: datetime, closes: datetime) -> None:
    assert win.next_open(at) == opens
    assert win.is_open(opens)
    assert win.next_close(opens) == closes
    assert not win.is_open(closes)


def test_gap_start_is_the_first_instant_after_the_gap() -> None:
    win = window("02:30", "05:00", ["sun"], "America/New_York")
    opened = win.next_open(utc(2024, 3, 9, 12))
    assert opened.astimezone(win.zone).strftime("%H:%M %Z") == "03:00 EDT"
    assert not win.is_open(opened - MICROSECOND)


def test_ambiguous_start_is_the_first_occurrence() -> None:
    win = window("01:30", "02:00", ["sun"], "America/New_York")
    opened = win.next_open(utc(2024, 11, 2, 12))
    assert opened.astimezone(win.zone).strftime("%H:%M %Z") == "01:30 EDT"


# --- properties ------------------------------------------------------------------------------

ZONES = [
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",  # -03:30 / -02:30
    "America/Santiago",  # transitions at local midnight
    "America/Havana",  # transitions at local midnight
    "America/Sao_Paulo",
    "Australia/Sydney",
    "Australia/Lord_Howe",  # 30-minute DST
    "Pacific/Chatham",  # +12:45 / +13:45
    "Pacific/Kiritimati",  # +14
    "Pacific/Pago_Pago",  # -11
    "Asia/Kathmandu",  # +05:45
    "Africa/Casablanca",  # moves its clock back for Ramadan
]
RANGE_START = utc(2024, 1, 1)
RANGE_END = utc(2028, 1, 1)


@cache
def transitions(zone_name: str) -> tuple[datetime, ...]:
    """The zone's UTC offset changes across 2024–2027, found independently of the module."""
    zone = ZoneInfo(zone_name)
    found: list[datetime] = []
    day = RANGE_START
    while day < RANGE_END:
        following = day + timedelta(days=1)
        if day.astimezone(zone).utcoffset() != following.astimezone(zone).utcoffset():
            low, high = day, following
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == low.astimezone(zone).utcoffset():
                    low = middle
                else:
                    high = middle
            found.append(high.replace(second=0, microsecond=0))
        day = following
    return tuple(found)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Window, datetime]:
    """A window and an instant, often hugging one of the zone's DST transitions."""
    zone_name = draw(st.sampled_from(ZONES))
    zone = ZoneInfo(zone_name)
    changes = transitions(zone_name)
    near_change = bool(changes) and draw(st.booleans())
    if near_change:
        change = draw(st.sampled_from(changes))
        at = change + timedelta(seconds=draw(st.integers(-3 * 86400, 3 * 86400)))
        # Window edges at or near the wall-clock times on either side of the change.
        before = (change - timedelta(minutes=1)).astimezone(zone)
        after = change.astimezone(zone)
        anchors = [before.hour * 60 + before.minute + 1, after.hour * 60 + after.minute]
        edge = st.builds(
            lambda anchor, shift: max(0, min(1440, anchor + shift)),
            st.sampled_from(anchors),
            st.integers(-90, 90),
        )
    else:
        at = draw(
            st.datetimes(
                min_value=datetime(2024, 1, 1),
                max_value=datetime(2027, 12, 31),
                timezones=st.just(UTC),
            )
        )
        edge = st.one_of(st.integers(0, 1440), st.sampled_from([0, 60, 120, 180, 1380, 1440]))
    first, second = draw(edge), draw(edge)
    if first == second:
        second = first + 1 if first < 1440 else first - 1
    start, end = sorted((first, second))
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    return Window(start, end, days, zone_name), at


PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(cases())
def test_next_open_is_the_first_open_instant(case: tuple[Window, datetime]) -> None:
    win, at = case
    opened = win.next_open(at)
    assert opened.utcoffset() == timedelta(0)
    assert opened >= at
    assert win.is_open(opened)
    if win.is_open(at):
        assert opened == at
        return
    # Nothing between `at` and the opening is open: sampled points, and just before it.
    for eighth in range(8):
        assert not win.is_open(at + (opened - at) * eighth / 8)
    assert not win.is_open(opened - MICROSECOND)
    if opened - timedelta(minutes=1) > at:
        assert not win.is_open(opened - timedelta(minutes=1))


@PROPERTY_SETTINGS
@given(cases())
def test_next_close_ends_the_open_period(case: tuple[Window, datetime]) -> None:
    win, at = case
    closed = win.next_close(at)
    if not win.is_open(at) or win.always_open:
        assert closed is None
        return
    assert closed is not None
    assert closed.utcoffset() == timedelta(0)
    assert closed > at
    assert not win.is_open(closed)
    assert win.is_open(closed - MICROSECOND)
    for eighth in range(8):
        assert win.is_open(at + (closed - at) * eighth / 8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_next_open_matches_a_minute_by_minute_scan(case: tuple[Window, datetime]) -> None:
    # In these zones offsets and window edges are whole minutes, so the state only changes on
    # a minute boundary: scanning minutes from `at` finds the same opening.
    win, at = case
    expected = at
    if not win.is_open(at):
        expected = at.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while not win.is_open(expected):
            expected += timedelta(minutes=1)
    assert win.next_open(at) == expected


def test_transition_table_covers_the_dst_zones() -> None:
    # Guards the property tests: they are only meaningful if they do hit transitions.
    assert len(transitions("Europe/London")) == 8
    assert len(transitions("Australia/Lord_Howe")) == 8
    assert transitions("UTC") == ()


# --- for per-contact windows (domain/zones.py) -----------------------------------------------


def test_zone_problem_names_what_is_wrong() -> None:
    from dialler.domain.window import zone_problem

    assert zone_problem("Europe/London") is None
    assert zone_problem("Asia/Calcutta") is None  # a backward link is still a fixed zone
    assert "did you mean 'Europe/London'" in (zone_problem("Europe/Londn") or "")
    assert "not a fixed time zone" in (zone_problem("localtime") or "")
    assert "must not be empty" in (zone_problem(" ") or "")


def test_offset_changes_lists_the_dst_changes_in_order() -> None:
    win = window("09:00", "18:00", WEEKDAYS, "Europe/London")
    assert win.offset_changes(utc(2026, 1, 1), utc(2027, 1, 1)) == [
        utc(2026, 3, 29, 1),
        utc(2026, 10, 25, 1),
    ]
    # (after, until]: a change at `after` itself is not listed; one at `until` is.
    assert win.offset_changes(utc(2026, 3, 29, 1), utc(2026, 10, 25, 1)) == [utc(2026, 10, 25, 1)]
    assert (
        window("09:00", "18:00", WEEKDAYS, "Asia/Kolkata").offset_changes(
            utc(2026, 1, 1), utc(2027, 1, 1)
        )
        == []
    )
    lord_howe = window("09:00", "18:00", WEEKDAYS, "Australia/Lord_Howe")
    assert lord_howe.offset_changes(utc(2026, 1, 1), utc(2027, 1, 1)) == [
        utc(2026, 4, 4, 15),  # 02:00 LHDT → 01:30 LHST
        utc(2026, 10, 3, 15, 30),  # 02:00 LHST → 02:30 LHDT
    ]
