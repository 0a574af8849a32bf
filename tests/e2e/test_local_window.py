"""The callee's own calling window on the lab (issue 13, Done when): a per-contact campaign with
numbers from New York, Los Angeles, London and Sydney, its window chosen from the current time
so that only some of those zones are open — and its own zone closed. The carrier sees calls to
exactly the open zones' numbers within a minute and none to the others; `campaign show` counts
the others in `waiting_for_local_window` and, once only they are left, says the campaign is
outside its window."""

from __future__ import annotations

import itertools
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from .campaigns import ALL_DAYS, create_campaign, lab_delta, running, show, wait_until
from .lab_helpers import lab_calls

pytestmark = pytest.mark.e2e

#: Two numbers per zone, each mapped to that zone alone by the number's time-zone data (the
#: lab's carrier answers every number outside its own ranges: ring 1 s, answer, hold 2 s).
NUMBERS = {
    "America/New_York": ["+12125550181", "+12125550182"],
    "America/Los_Angeles": ["+13105550183", "+13105550184"],
    "Europe/London": ["+442079460185", "+442079460186"],
    "Australia/Sydney": ["+61291230187", "+61291230188"],
}
#: A zone's clock stays this far (minutes) from the window's edges: the test's few minutes
#: never see a zone open or close.
MARGIN = 45
DIAL_WAIT = 60.0  # the Done-when: the carrier sees the open zones' calls within a minute


def minute_of_day(zone: str, now: datetime) -> int:
    local = now.astimezone(ZoneInfo(zone))
    return local.hour * 60 + local.minute


def choose_window(now: datetime) -> tuple[str, str, list[str]]:
    """A window (start, end, HH:MM) open now on the clocks of some of the zones and closed on
    the others', each at least MARGIN minutes from an edge; the open zones (two if possible)."""
    clock = {zone: minute_of_day(zone, now) for zone in NUMBERS}
    zones = list(NUMBERS)
    for size in (2, 1, 3):
        for chosen in itertools.combinations(zones, size):
            inside = [clock[z] for z in chosen]
            start = (min(inside) - MARGIN) // 15 * 15
            end = math.ceil((max(inside) + MARGIN) / 15) * 15
            if start < 0 or end > 1440:
                continue  # a window cannot span midnight
            outside = [clock[z] for z in zones if z not in chosen]
            if all(m < start - MARGIN or m >= end + MARGIN for m in outside):
                return _hhmm(start), _hhmm(end), sorted(chosen)
    raise AssertionError(f"no window opens only some of the zones at {now}: {clock}")


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@pytest.mark.timeout(300)
def test_only_numbers_whose_local_window_is_open_are_called(
    lab_config_path: Path, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    start, end, open_zones = choose_window(now)
    closed_zones = [zone for zone in NUMBERS if zone not in open_zones]
    called = sorted(n for zone in open_zones for n in NUMBERS[zone])
    waiting = sorted(n for zone in closed_zones for n in NUMBERS[zone])
    everyone = called + waiting
    before = lab_calls()
    campaign = create_campaign(
        lab_config_path,
        tmp_path,
        everyone,
        concurrency=10,
        # The campaign's own zone is one of the closed ones: only the contacts' clocks open it.
        window={
            "start": start,
            "end": end,
            "days": ALL_DAYS,
            "timezone": closed_zones[0],
            "per_contact": True,
        },
    )
    shown = show(lab_config_path, campaign)
    assert shown["settings"]["window"]["per_contact"] is True
    assert shown["waiting_for_local_window"] == len(waiting), (open_zones, shown)

    with running(lab_config_path, tmp_path / "daemon.log") as daemon:
        deadline = time.monotonic() + DIAL_WAIT
        seen: dict[str, int] = {}
        while not set(called) <= set(seen):
            assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log_tail()
            assert time.monotonic() < deadline, (
                f"after {DIAL_WAIT}s the carrier saw {seen}, not every one of {called} "
                f"(window {start}-{end}, open in {open_zones})"
            )
            time.sleep(0.5)
            seen = lab_delta(before, lab_calls())
        # Their calls end; the others stay waiting while the scheduler goes on ticking.
        final = wait_until(
            lab_config_path,
            campaign,
            lambda s: s["stats"]["done"] == len(called),
            120,
            daemon,
            "the open zones' calls done",
        )
        carrier = lab_delta(before, lab_calls())

    assert carrier == {number: 1 for number in called}, (open_zones, carrier)
    assert final["stats"]["pending"] == len(waiting)
    assert final["waiting_for_local_window"] == len(waiting)
    # No contact is callable now: the Live Activity says "Paused — Outside time window".
    assert final["activity"] == "paused_outside_window", final
    assert final["stalled"] is False
