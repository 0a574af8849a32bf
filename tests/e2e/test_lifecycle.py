"""What an operator notices when a campaign or the daemon is stopped while calls are live, when
SIGHUP changes pacing, when the carrier's limits pace the dials, and when a bot asks for a
callback — each counted per number by the lab carrier.

CONTRACT.md: `pause` — no new dials, live calls finish normally; `cancel` — no new dials,
waiting contacts become `cancelled`, the campaign ends `completed` once live calls finish;
callbacks do not use up `max_attempts`. docs (app.py): the first SIGTERM drains (no new dials,
live calls finish) and exits 0; a second exits at once.
"""

from __future__ import annotations

import itertools
import json
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from .campaigns import (
    Daemon,
    by_number,
    cli,
    create_campaign,
    lab_delta,
    max_overlap,
    report,
    running,
    show,
    wait_for,
    wait_until,
)
from .lab_helpers import lab_calls
from .test_fleet import fleet_config, start_worker, stop

pytestmark = pytest.mark.e2e


def lab_copy(lab_config_path: Path, tmp_path: Path, **carrier: Any) -> Path:
    """The lab config (same listeners: attaches come to this daemon) with the `lab` carrier's
    settings changed."""
    data: dict[str, Any] = yaml.safe_load(lab_config_path.read_text())
    data["carriers"][0].update(carrier)
    path = tmp_path / "dialler.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def calls_of(config: Path, campaign: str) -> dict[str, dict[str, Any]]:
    items = json.loads(cli(config, "calls", campaign, "--json").stdout)
    return {c["phone_number"]: c for c in items}


def dial_times(rows: list[dict[str, str]]) -> list[float]:
    return sorted(datetime.fromisoformat(r["dialled_at"]).timestamp() for r in rows)


def wait_carrier(before: dict[str, int], want: dict[str, int], timeout: float) -> dict[str, int]:
    """Until the carrier received at least `want` calls per number (since `before`)."""
    deadline = time.monotonic() + timeout
    while True:
        got = lab_delta(before, lab_calls())
        if all(got.get(n, 0) >= c for n, c in want.items()):
            return got
        assert time.monotonic() < deadline, f"carrier saw {got}, wanted at least {want}"
        time.sleep(0.3)


# --- pause and cancel with live calls ---------------------------------------------------------

LIVE = ["+447700900010", "+447700900011"]  # answer, hold 10–11 s
WAITING = ["+447700921001", "+447700921002"]  # never reached: concurrency 2


@pytest.mark.parametrize("action", ["pause", "cancel"])
def test_pause_or_cancel_lets_live_calls_finish_and_dials_nothing_new(
    lab_config_path: Path, tmp_path: Path, action: str
) -> None:
    before = lab_calls()
    campaign = create_campaign(lab_config_path, tmp_path, LIVE + WAITING, concurrency=2)
    with running(lab_config_path, tmp_path / "daemon.log") as daemon:
        wait_until(lab_config_path, campaign, lambda d: d["stats"]["connected"] == 2, 30, daemon)
        cli(lab_config_path, "campaign", action, campaign)
        if action == "pause":
            data = wait_until(
                lab_config_path,
                campaign,
                lambda d: d["stats"]["done"] == 2,
                40,
                daemon,
                "both live calls done",
            )
            assert (data["state"], data["activity"]) == ("paused", "paused")
            assert data["stats"]["pending"] == 2
        else:
            data = wait_for(lab_config_path, campaign, "completed", 40, daemon)
            assert data["stats"]["cancelled"] == 2
    rows = by_number(report(lab_config_path, campaign))
    assert set(rows) == set(LIVE)
    for number in LIVE:  # talked to the end: the bot's result, the callee's full hold
        [row] = rows[number]
        assert (row["outcome"], row["disposition"]) == ("answered", "completed")
        assert float(row["duration_seconds"]) >= 9
    assert lab_delta(before, lab_calls()) == dict.fromkeys(LIVE, 1)
    states = {n: c["state"] for n, c in calls_of(lab_config_path, campaign).items()}
    waiting_state = "pending" if action == "pause" else "cancelled"
    assert states == {**dict.fromkeys(LIVE, "done"), **dict.fromkeys(WAITING, waiting_state)}


# --- SIGTERM: drain, and the second signal ----------------------------------------------------


def test_first_sigterm_drains_live_calls_then_exits_0(
    lab_config_path: Path, tmp_path: Path
) -> None:
    live = ["+447700900008", "+447700900009"]  # answer, hold 8–9 s
    waiting = ["+447700921011", "+447700921012"]
    before = lab_calls()
    campaign = create_campaign(lab_config_path, tmp_path, live + waiting, concurrency=2)
    daemon = Daemon(lab_config_path, tmp_path / "daemon.log").start()
    try:
        wait_until(lab_config_path, campaign, lambda d: d["stats"]["connected"] == 2, 30, daemon)
        assert daemon.proc is not None
        signalled = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        status = daemon.proc.wait(90)
        took = time.monotonic() - signalled
    finally:
        daemon.stop()
    assert status == 0, daemon.log_tail()
    daemon.check_log()
    assert took >= 4, f"exited {took:.1f}s after SIGTERM: the live calls were not waited for"
    data = show(lab_config_path, campaign)
    assert (data["state"], data["stats"]["pending"]) == ("running", 2)  # no new dial
    assert lab_delta(before, lab_calls()) == dict.fromkeys(live, 1)
    rows = by_number(report(lab_config_path, campaign))
    for number in rows:  # every call talked to the callee's hang-up, with the bot's result
        [row] = rows[number]
        assert (row["outcome"], row["disposition"]) == ("answered", "completed")
        assert float(row["duration_seconds"]) >= 7
    # The drain also waits for the worker's result of the last calls to hang up (they were
    # `wrapping` when the calls ended): every live call is in the report, decided by its bot.
    assert sorted(rows) == sorted(live), f"not final after the drain: {set(live) - set(rows)}"


def test_second_sigterm_exits_at_once_and_the_next_start_reconciles(
    lab_config_path: Path, tmp_path: Path
) -> None:
    live = ["+447700900025", "+447700900026"]  # answer, hold 25–26 s
    before = lab_calls()
    campaign = create_campaign(lab_config_path, tmp_path, live, concurrency=2)
    daemon = Daemon(lab_config_path, tmp_path / "daemon1.log").start()
    try:
        wait_until(lab_config_path, campaign, lambda d: d["stats"]["connected"] == 2, 30, daemon)
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        while "draining" not in daemon.log.read_text(errors="replace"):
            assert time.monotonic() < deadline, daemon.log_tail()
            time.sleep(0.1)
        signalled = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        status = daemon.proc.wait(30)
        took = time.monotonic() - signalled
    finally:
        daemon.stop()
    assert status == 0, daemon.log_tail()
    daemon.check_log()
    assert took < 10, f"a second SIGTERM took {took:.1f}s"
    assert "exiting with live calls" in daemon.log.read_text()

    # The calls cut from the daemon are reconciled by the next start, never dialled again.
    with running(lab_config_path, tmp_path / "daemon2.log") as second:
        wait_for(lab_config_path, campaign, "completed", 90, second)
    rows = by_number(report(lab_config_path, campaign))
    assert {n: len(a) for n, a in rows.items()} == dict.fromkeys(live, 1)
    assert lab_delta(before, lab_calls()) == dict.fromkeys(live, 1)


# --- pacing: the carrier's limits, and SIGHUP --------------------------------------------------


def test_carrier_max_channels_caps_the_calls_in_flight(
    lab_config_path: Path, tmp_path: Path
) -> None:
    config = lab_copy(lab_config_path, tmp_path, max_channels=3)
    numbers = [f"+447700922{n:03d}" for n in range(9)]  # answer, hold 2 s
    before = lab_calls()
    campaign = create_campaign(config, tmp_path, numbers, concurrency=10)
    with running(config, tmp_path / "daemon.log") as daemon:
        data = wait_until(config, campaign, lambda d: d["stats"]["connected"] >= 1, 30, daemon)
        assert (data["effective_concurrency"], data["capped_by"]) == (3, "carrier")
        wait_for(config, campaign, "completed", 90, daemon)
    rows = report(config, campaign)
    assert 2 <= max_overlap(rows) <= 3
    assert lab_delta(before, lab_calls()) == dict.fromkeys(numbers, 1)


def test_carrier_calls_per_second_paces_the_dials(lab_config_path: Path, tmp_path: Path) -> None:
    config = lab_copy(lab_config_path, tmp_path, calls_per_second=2)
    numbers = [f"+447700923{n:03d}" for n in range(10)]  # answer, hold 2 s
    before = lab_calls()
    campaign = create_campaign(config, tmp_path, numbers, concurrency=10)
    with running(config, tmp_path / "daemon.log") as daemon:
        wait_for(config, campaign, "completed", 90, daemon)
    times = dial_times(report(config, campaign))
    # 2/s with a burst of 2: 10 dials take at least 4 s; no second holds more than 4.
    assert times[-1] - times[0] >= 3.5, times
    assert max(sum(1 for t in times if s <= t < s + 1) for s in times) <= 4, times
    assert lab_delta(before, lab_calls()) == dict.fromkeys(numbers, 1)


def test_sighup_changes_the_pacing_of_a_running_campaign(
    lab_config_path: Path, tmp_path: Path
) -> None:
    config = lab_copy(lab_config_path, tmp_path, calls_per_second=1)
    numbers = [f"+447700924{n:03d}" for n in range(24)]  # answer, hold 2 s
    before = lab_calls()
    campaign = create_campaign(config, tmp_path, numbers, concurrency=30)
    with running(config, tmp_path / "daemon.log") as daemon:
        # At 1/s, three dials take over two seconds; then the limit is lifted by SIGHUP.
        wait_until(config, campaign, lambda d: d["stats"]["pending"] <= 21, 30, daemon)
        data: dict[str, Any] = yaml.safe_load(config.read_text())
        data["carriers"][0]["calls_per_second"] = 100
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGHUP)
        reloaded = time.time()
        wait_for(config, campaign, "completed", 90, daemon)
    times = dial_times(report(config, campaign))
    slow = [t for t in times if t < reloaded]
    fast = [t for t in times if t >= reloaded]
    assert len(slow) >= 3, times
    assert all(b - a >= 0.8 for a, b in itertools.pairwise(slow)), slow  # 1/s
    # After the reload the rest (about 20) go out at once, not at 1/s (which takes 20 s).
    assert len(fast) >= 15, times
    assert fast[-1] - fast[0] < 8, fast
    assert lab_delta(before, lab_calls()) == dict.fromkeys(numbers, 1)


# --- a bot's callback -------------------------------------------------------------------------


def test_a_callback_redials_through_the_engine_without_using_an_attempt(
    lab_config_path: Path, tmp_path: Path
) -> None:
    config, name, port = fleet_config(lab_config_path, tmp_path, capacity=2)
    worker = start_worker(
        config, name, port, 2, tmp_path / "worker.log", "--talk", "1s", "--callback-in", "2s"
    )
    number = "+447700925001"  # answers; the worker asks to be called back 2 s after the call
    before = lab_calls()
    try:
        campaign = create_campaign(
            config,
            tmp_path,
            [number],
            retry={"max_attempts": 1, "delay": "1s", "on_system": [], "on_custom": []},
        )
        with running(config, tmp_path / "daemon.log"):
            # Attempt 1 used the only attempt (1/1); the callback still re-dials.
            wait_carrier(before, {number: 2}, 60)
            cli(config, "campaign", "cancel", campaign)  # every call asks again: stop here
            wait_for(config, campaign, "completed", 30)
    finally:
        stop(worker)
    rows = by_number(report(config, campaign))[number]
    assert len(rows) >= 2
    first, second = rows[0], rows[1]
    assert (first["outcome"], first["disposition"], first["next_action"]) == (
        "answered",
        "completed",
        "callback",
    )
    due = datetime.fromisoformat(first["next_at"]) - datetime.fromisoformat(first["ended_at"])
    assert 1 <= due.total_seconds() <= 5, (first["ended_at"], first["next_at"])
    assert datetime.fromisoformat(second["dialled_at"]) >= datetime.fromisoformat(first["next_at"])
    assert calls_of(config, campaign)[number]["attempts"] == "1/1"  # no attempt used up
    assert lab_delta(before, lab_calls()) == {number: len(rows)}
