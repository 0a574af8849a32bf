"""The callee's own calling window (CONTRACT.md, "Campaign window per contact"): pure rules.

With `window.per_contact: true` a contact is callable when the campaign's window is open on the
wall clock of **every** zone its number may be in. The zones a number may be in come from its
time-zone data (contacts/zones.py, with `phonenumbers`); they are kept on the contact as a
*zone key*: the zone names, sorted, without repeats, joined by spaces (IANA names hold no
space). Many contacts share a key — a national list has a handful — so the scheduler works
out which keys are open now (`open_zone_keys`, a few zones to check, not one per contact) and
the claim keeps the contacts whose key is one of them.

The empty key, `CAMPAIGN_ZONE_KEY`, stands for "the campaign's own zone": the numbers whose
zone cannot be told (and every contact of a campaign without per-contact windows). It is
resolved when the window is evaluated, not at import, so a draft's time zone may still change.

Zones that never share an open instant (a nine-to-five window over all of Russia's zones, say)
make the contact uncallable for good: `shares_open_instant` says so, looking a year ahead, since
time-zone rules repeat every year; such contacts are reported and cancelled.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from .window import Window, zone_problem

__all__ = [
    "CAMPAIGN_ZONE_KEY",
    "NEVER_HORIZON",
    "UNKNOWN_ZONE",
    "ZonedWindow",
    "key_zones",
    "next_zone_opening",
    "open_zone_keys",
    "zone_key",
]

#: The key of contacts that follow the campaign's own zone.
CAMPAIGN_ZONE_KEY = ""
#: What `phonenumbers` answers for a number whose zone it cannot tell.
UNKNOWN_ZONE = "Etc/Unknown"
#: How far ahead "never share an open instant" looks: DST rules repeat yearly, so two zones
#: that share no open minute in a year (plus a week for the window's own cycle) never will.
NEVER_HORIZON = timedelta(days=366 + 8)
_SEPARATOR = " "
# A week repeats itself while offsets stay put; the extra day covers `at` falling mid-day.
_WEEK_AND_A_DAY = timedelta(days=8)
_WEEK = timedelta(days=7)


def zone_key(zones: Iterable[str]) -> str:
    """The canonical key of a set of zones: sorted, without repeats, space-separated.

    `UNKNOWN_ZONE` and names zoneinfo does not know are left out (the time-zone data of the
    number library may be newer than the system's); nothing left gives `CAMPAIGN_ZONE_KEY`.
    """
    known = {zone for zone in zones if zone != UNKNOWN_ZONE and zone_problem(zone) is None}
    return _SEPARATOR.join(sorted(known))


def key_zones(key: str, fallback: str) -> tuple[str, ...]:
    """The zones of `key`; `(fallback,)` — the campaign's zone — for `CAMPAIGN_ZONE_KEY`."""
    if key == CAMPAIGN_ZONE_KEY:
        return (fallback,)
    return tuple(key.split(_SEPARATOR))


@dataclass(frozen=True, slots=True)
class ZonedWindow:
    """A calling window read on several wall clocks at once: open when it is open in each.

    `window` gives the times and days (its own zone is not used); `zones` is not empty.
    """

    window: Window
    zones: tuple[str, ...]
    _windows: tuple[Window, ...] = dataclasses.field(init=False, repr=False, compare=False)
    # Strong references: zoneinfo keeps only a few zones loaded otherwise, and a national
    # list's keys name dozens — each `Window.is_open` would read its zone file again.
    _zones: tuple[ZoneInfo, ...] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.zones:
            raise ValueError("a zoned window needs at least one zone")
        windows = tuple(dataclasses.replace(self.window, timezone=zone) for zone in self.zones)
        object.__setattr__(self, "_windows", windows)
        object.__setattr__(self, "_zones", tuple(ZoneInfo(zone) for zone in self.zones))

    @classmethod
    def for_key(cls, window: Window, key: str) -> ZonedWindow:
        """The window on the zones of `key` (the window's own zone for `CAMPAIGN_ZONE_KEY`);
        the same instance for the same window and key while it is in use (the scheduler asks
        for every key of every per-contact campaign on each pass)."""
        return _zoned_window(window, key)

    def is_open(self, at: datetime) -> bool:
        """Whether `at` (tz-aware) is inside the window on every zone's wall clock."""
        return all(window.is_open(at) for window in self._windows)

    def next_open(self, at: datetime, within: timedelta = NEVER_HORIZON) -> datetime | None:
        """The earliest instant ≥ `at` open on every zone's clock (UTC; `at` itself when open
        now), or None when there is none up to `at + within`.

        While no zone changes its UTC offset, the instants open everywhere repeat week after
        week: if a week and a day from some instant hold none, none come before the next offset
        change. So the search looks eight days ahead, then jumps to the next change of any
        zone (a few a year), never scanning a whole year of openings.
        """
        limit = at.astimezone(UTC) + within
        moment = at.astimezone(UTC)
        changes: list[datetime] | None = None
        while True:
            step = min(limit, moment + _WEEK_AND_A_DAY)
            found = self._search(moment, step)
            if found is not None or step >= limit:
                return found
            if changes is None:  # only now: most searches end in the first eight days
                changes = sorted(
                    {
                        change
                        for window in self._windows
                        for change in window.offset_changes(moment, limit)
                    }
                )
            # [at, step] holds nothing. If the offsets have stood still for a whole week up
            # to `step`, nothing comes before their next change; else search on from `step`.
            since = max([at, *(change for change in changes if change <= step)])
            if step - since < _WEEK:
                moment = step
                continue
            later = [change for change in changes if change > step]
            if not later:
                return None
            moment = later[0]

    def _search(self, at: datetime, limit: datetime) -> datetime | None:
        """The first instant in [`at`, `limit`] open everywhere, or None.

        Each round takes the latest of the zones' next openings: no earlier instant can be
        open everywhere, since that zone is closed until then. If every zone is open there, it
        is the answer; else some zone is closed there, its next opening is later, and the next
        round starts from there. Every round lands on an opening of some zone: two a day at
        most per zone (a fall-back repeat) over the stretch bound the rounds.
        """
        moment = at
        for _ in range(len(self._windows) * (2 * ((limit - at).days + 2) + 1)):
            latest = max(window.next_open(moment) for window in self._windows)
            if latest > limit:
                return None
            if all(window.is_open(latest) for window in self._windows):
                return latest
            moment = latest
        return None  # pragma: no cover - the bound above is never reached

    def shares_open_instant(self, at: datetime) -> bool:
        """Whether the zones are ever open together from `at` on (looking `NEVER_HORIZON`
        ahead: time-zone rules repeat every year)."""
        return self.next_open(at) is not None


@functools.lru_cache(maxsize=4096)
def _zoned_window(window: Window, key: str) -> ZonedWindow:
    return ZonedWindow(window, key_zones(key, window.timezone))


def open_zone_keys(window: Window, keys: Iterable[str], at: datetime) -> list[str]:
    """The keys among `keys` whose contacts may be dialled at `at`: those open on every zone's
    wall clock (`CAMPAIGN_ZONE_KEY` on the window's own zone). Sorted, for a stable query."""
    return sorted({key for key in keys if ZonedWindow.for_key(window, key).is_open(at)})


def next_zone_opening(window: Window, key: str, at: datetime) -> datetime | None:
    """When a retry or callback of a contact with zone key `key` may be dialled: the first
    instant ≥ `at` open on every one of its zones; None when they never share one."""
    return ZonedWindow.for_key(window, key).next_open(at)
