"""The calling window: the local times of day and days of the week a campaign may dial.

A window is evaluated on the wall clock of its IANA time zone: an instant is inside it when its
local weekday is one of the window's days and its local minute of the day is in
``[start, end)``. ``24:00`` is allowed as an end; overnight windows (end before start) are not.

Daylight saving time falls out of that rule (docs/rules.md has the operator's view):

* spring forward: a local time inside the gap never shows on the clock, so a window that starts in
  the gap opens at the first instant after it (the transition itself, e.g. 03:00 local);
* fall back: a repeated local time is inside the window on both passes, so a window opens at the
  first occurrence of its start; and, since the wall clock is all that counts, a window that ends
  inside the repeated hour opens a second time when the clock goes back into it.

`Window.next_open` and `Window.next_close` do not scan: within a stretch of constant UTC offset the
answer is a few date sums (at most eight day steps); when the offset changes before that answer, a
binary search finds the transition and the computation starts again from there.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from .messages import describe as _describe
from .messages import shown as _shown

__all__ = ["DAYS", "Window", "WindowError", "zone_problem"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_MINUTES_PER_DAY = 1440
_DAY = timedelta(days=1)
# Two ASCII digits each (`\d` would also take other scripts' digits); fullmatch, so no "\n".
_HHMM = re.compile(r"([0-9]{2}):([0-9]{2})")
# Names zoneinfo accepts that are not a fixed zone: `localtime` follows the host's setting, and
# the `right/` zones count leap seconds, so their clock is 27 s off the civil one.
_HOST_DEPENDENT = frozenset({"localtime", "posixrules"})
# More offset changes than any real zone has in the ~8 days one computation looks ahead.
_MAX_TRANSITIONS = 16


class WindowError(ValueError):
    """The calling window is invalid; `problems` names each field at fault. (A plain
    `ValueError`: the domain imports nothing of the package; the services that accept
    windows from users report these problems as their own refusals.)"""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True, slots=True)
class Window:
    """When a campaign may dial: `start_minute` ≤ local minute of the day < `end_minute`, on
    `days` (0 = Monday … 6 = Sunday), on the wall clock of `timezone` (an IANA name)."""

    start_minute: int
    end_minute: int
    days: frozenset[int]
    timezone: str

    def __post_init__(self) -> None:
        # `parse` reports problems in the file's terms; this guards direct construction.
        problems: list[str] = []
        if not 0 <= self.start_minute < _MINUTES_PER_DAY:
            problems.append(f"start_minute: {self.start_minute} is not in 0..1439")
        if not 0 < self.end_minute <= _MINUTES_PER_DAY:
            problems.append(f"end_minute: {self.end_minute} is not in 1..1440")
        if self.start_minute >= self.end_minute:
            problems.append("end_minute: must be after start_minute (no overnight windows)")
        if not self.days or not self.days <= frozenset(range(7)):
            problems.append(f"days: {sorted(self.days)} must be a non-empty subset of 0..6")
        zone_problem = _zone_problem(self.timezone)
        if zone_problem is not None:
            problems.append(f"timezone: {zone_problem}")
        if problems:
            raise WindowError(problems)

    @classmethod
    def parse(cls, start: object, end: object, days: object, timezone: object) -> Window:
        """Build a window from a campaign file's ``window`` values.

        Every problem is collected before one `WindowError` is raised; each names its field
        (``window.start: '9:00' is not HH:MM ...``). Times are ``HH:MM``, 24-hour, two digits each;
        ``24:00`` only as the end. Days are names from `DAYS` (at least one; repeats are fine).
        The time zone must be an IANA name that zoneinfo knows.
        """
        problems: list[str] = []
        start_minute = _parse_time(start, "window.start", problems, as_end=False)
        end_minute = _parse_time(end, "window.end", problems, as_end=True)
        if start_minute is not None and end_minute is not None and end_minute <= start_minute:
            problems.append(
                f"window.end: {end!r} is not after window.start {start!r} (overnight windows "
                "are not supported; use '24:00' for midnight)"
            )
        day_numbers = _parse_days(days, problems)
        if not isinstance(timezone, str):
            problems.append(
                "window.timezone: expected an IANA time zone name such as "
                f"'Europe/London', got {_describe(timezone)}"
            )
        else:
            zone_problem = _zone_problem(timezone)
            if zone_problem is not None:
                problems.append(f"window.timezone: {zone_problem}")
        if problems:
            raise WindowError(problems)
        assert start_minute is not None and end_minute is not None and isinstance(timezone, str)
        return cls(start_minute, end_minute, day_numbers, timezone)

    @property
    def zone(self) -> ZoneInfo:
        """The window's time zone (zoneinfo caches instances, so this is cheap)."""
        return ZoneInfo(self.timezone)

    @property
    def start(self) -> str:
        """The start as written in a campaign file, ``HH:MM``."""
        return _format_minute(self.start_minute)

    @property
    def end(self) -> str:
        """The end as written in a campaign file, ``HH:MM`` (``24:00`` for midnight)."""
        return _format_minute(self.end_minute)

    @property
    def day_names(self) -> tuple[str, ...]:
        """The days as written in a campaign file, Monday first."""
        return tuple(DAYS[day] for day in sorted(self.days))

    @property
    def always_open(self) -> bool:
        """True for 00:00–24:00 on all seven days: then there is never a close to wait for."""
        return (
            self.start_minute == 0 and self.end_minute == _MINUTES_PER_DAY and len(self.days) == 7
        )

    def is_open(self, at: datetime) -> bool:
        """Whether `at` (tz-aware) is inside the window, read on the window zone's wall clock."""
        return self._is_open_local(_aware(at).astimezone(self.zone).replace(tzinfo=None))

    def next_open(self, at: datetime) -> datetime:
        """The earliest instant ≥ `at` inside the window, in UTC (`at` itself if open).

        A start inside a spring-forward gap gives the first instant after the gap; a start on
        a fall-back repeat gives its first occurrence.
        """
        moment = _aware(at).astimezone(UTC)
        for _ in range(_MAX_TRANSITIONS):
            offset = self._offset(moment)
            local = _naive(moment) + offset
            opening = self._next_open_local(local)
            candidate = moment + (opening - local)
            # The answer holds only if the offset did not change on the way there.
            transition = self._first_transition(moment, candidate, offset)
            if transition is None:
                return candidate
            moment = transition
        raise RuntimeError(f"{self.timezone}: too many UTC offset changes after {at.isoformat()}")

    def next_close(self, at: datetime) -> datetime | None:
        """When the open period containing `at` ends (UTC): the first instant after `at` outside
        the window. None when `at` is outside the window, or when the window never closes
        (`always_open`)."""
        if not self.is_open(at):
            return None
        if self.always_open:
            return None
        moment = _aware(at).astimezone(UTC)
        for _ in range(_MAX_TRANSITIONS):
            offset = self._offset(moment)
            local = _naive(moment) + offset
            closing = self._close_local(local)
            candidate = moment + (closing - local)
            transition = self._first_transition(moment, candidate, offset)
            if transition is None:
                return candidate
            if not self.is_open(transition):
                return transition
            moment = transition
        raise RuntimeError(f"{self.timezone}: too many UTC offset changes after {at.isoformat()}")

    def offset_changes(self, after: datetime, until: datetime) -> list[datetime]:
        """The instants in (`after`, `until`] at which the window zone's UTC offset changes,
        in order (UTC). Between two of them the window repeats week after week."""
        changes: list[datetime] = []
        moment = _aware(after).astimezone(UTC)
        end = _aware(until).astimezone(UTC)
        # Real zones change their offset at most twice in a day.
        for _ in range(2 * ((end - moment).days + 2)):
            change = self._first_transition(moment, end, self._offset(moment))
            if change is None:
                break
            changes.append(change)
            moment = change
        return changes

    # -- wall-clock arithmetic: exact while the UTC offset stays the same --

    def _is_open_local(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        return local.weekday() in self.days and self.start_minute <= minute < self.end_minute

    def _bounds(self, day: date) -> tuple[datetime, datetime]:
        midnight = datetime(day.year, day.month, day.day)
        return (
            midnight + timedelta(minutes=self.start_minute),
            midnight + timedelta(minutes=self.end_minute),
        )

    def _next_open_local(self, local: datetime) -> datetime:
        """The first naive local time ≥ `local` inside the window (one of the next 8 days)."""
        for step in range(8):
            day = local.date() + step * _DAY
            if day.weekday() not in self.days:
                continue
            opening, closing = self._bounds(day)
            if step == 0:
                if local >= closing:
                    continue
                return max(local, opening)
            return opening
        raise AssertionError("a window always has at least one day")  # pragma: no cover

    def _close_local(self, local: datetime) -> datetime:
        """The naive local end of the open period containing `local`; a 24:00 end runs on into
        the next day when that day opens at 00:00."""
        closing = self._bounds(local.date())[1]
        while (
            self.end_minute == _MINUTES_PER_DAY
            and self.start_minute == 0
            and closing.weekday() in self.days
        ):
            closing += _DAY  # terminates: not `always_open`, so some day is missing
        return closing

    # -- UTC offset changes --

    def _offset(self, moment: datetime) -> timedelta:
        offset = moment.astimezone(self.zone).utcoffset()
        assert offset is not None  # a ZoneInfo always has one
        return offset

    def _first_transition(
        self, after: datetime, until: datetime, offset: timedelta
    ) -> datetime | None:
        """The first instant in (`after`, `until`] whose UTC offset is not `offset`, or None.

        Sampled a day apart (real zones never change twice within a day), then the first
        changed day is bisected to the second: tzdata transitions fall on whole seconds.
        """
        if until <= after:
            return None
        previous = after
        while previous < until:
            sample = min(previous + _DAY, until)
            if self._offset(sample) != offset:
                return self._bisect(previous, sample, offset)
            previous = sample
        return None

    def _bisect(self, low: datetime, high: datetime, offset: timedelta) -> datetime:
        """Narrow `low` (offset == `offset`) and `high` (offset differs) to the transition."""
        low_second = math.floor(low.timestamp())
        high_second = math.ceil(high.timestamp())
        while high_second - low_second > 1:
            middle = (low_second + high_second) // 2
            if self._offset(datetime.fromtimestamp(middle, UTC)) == offset:
                low_second = middle
            else:
                high_second = middle
        return datetime.fromtimestamp(high_second, UTC)


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"a time-zone-aware datetime is required, got {at.isoformat()}")
    return at


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _format_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _parse_time(value: object, key: str, problems: list[str], *, as_end: bool) -> int | None:
    if isinstance(value, bool) or not isinstance(value, str):
        hint = ""
        if isinstance(value, int | float) and not isinstance(value, bool):
            # YAML 1.1 reads an unquoted 18:00 as the base-60 integer 1080.
            hint = " (put times in quotes: YAML reads an unquoted 18:00 as a number)"
        problems.append(f"{key}: expected a time such as '09:00', got {_describe(value)}{hint}")
        return None
    match = _HHMM.fullmatch(value)
    if match is None:
        problems.append(
            f"{key}: {_shown(value)} is not HH:MM (24-hour, two digits each, e.g. '09:00')"
        )
        return None
    hour, minute = int(match.group(1)), int(match.group(2))
    if (hour, minute) == (24, 0):
        if as_end:
            return _MINUTES_PER_DAY
        problems.append(f"{key}: '24:00' is allowed only as window.end; use '00:00' for midnight")
        return None
    if hour > 23 or minute > 59:
        upper = "24:00" if as_end else "23:59"
        problems.append(f"{key}: {_shown(value)} is not a time of day (00:00 to {upper})")
        return None
    return hour * 60 + minute


def _parse_days(value: object, problems: list[str]) -> frozenset[int]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        problems.append(
            f"window.days: expected a list of days such as [mon, tue, wed], got {_describe(value)}"
        )
        return frozenset()
    if not value:
        problems.append("window.days: at least one day is required")
        return frozenset()
    numbers: set[int] = set()
    for index, item in enumerate(value):
        key = f"window.days[{index}]"
        if not isinstance(item, str):
            problems.append(f"{key}: expected a day name, got {_describe(item)}")
        elif item in DAYS:
            numbers.add(DAYS.index(item))
        else:
            hint = f"; did you mean {item.lower()[:3]!r}?" if item.lower()[:3] in DAYS else ""
            problems.append(
                f"{key}: unknown day {_shown(item)} (expected one of: {', '.join(DAYS)}{hint})"
            )
    return frozenset(numbers)


def zone_problem(name: str) -> str | None:
    """What is wrong with `name` as a time zone (``unknown time zone 'Europe/Lodnon' (did you
    mean 'Europe/London'?)``), or None when zoneinfo knows it as a fixed IANA zone."""
    return _zone_problem(name)


def _zone_problem(name: str) -> str | None:
    """What is wrong with `name` as a time zone, or None when zoneinfo knows it."""
    if not name.strip():
        return "must not be empty; use an IANA name such as 'Europe/London'"
    if name in _HOST_DEPENDENT or name.startswith("right/"):
        return f"{_shown(name)} is not a fixed time zone; use an IANA name such as 'Europe/London'"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {_shown(name)}{_zone_suggestion(name)}"
    return None


@functools.cache
def _known_zones() -> list[str]:
    # Only on the error path, once: listing the zones reads the whole tz database (~50 ms), and
    # a contacts file may name a bad zone on many rows.
    return sorted(available_timezones())


def _zone_suggestion(name: str) -> str:
    close = difflib.get_close_matches(name, _known_zones(), n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return " (use an IANA name such as 'Europe/London')"
