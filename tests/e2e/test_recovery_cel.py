"""Calls that end while no daemon watches them (issue 10, item 2): the daemon is SIGKILLed with
calls live, the calls end in Asterisk, and the next daemon settles them from Asterisk's own
record — the CEL rows its `cel_pgsql` wrote into PostgreSQL — instead of calling them `timeout`.

Numbers (CONTRACT, "The lab"): `…9002xx` ring and never answer (our 4 s ring timeout ends
them: `no_answer`), `…9003xx` never respond (also our ring timeout), `…9000NN` answer after
about 1 s and hold NN s (`answered`; the talk time is Asterisk's, not the time of recovery).
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialler.config import Config
from dialler.store.pool import connect

from .campaigns import (
    Daemon,
    by_number,
    create_campaign,
    lab_delta,
    report,
    running,
    show,
    wait_for,
    wait_until,
)
from .lab_helpers import lab_calls, run_coroutine

pytestmark = pytest.mark.e2e

RING = ["+447700900211", "+447700900212"]
SILENT = ["+447700900311"]
HOLD = ["+447700900005", "+447700900006"]  # answer ~1 s, hold 5–6 s
NUMBERS = RING + SILENT + HOLD


def short_results(lab_config_path: Path, tmp_path: Path) -> Path:
    """The lab config with `result_timeout` 5 s: an answered call whose bot result died with
    the killed daemon's listener waits 5 s for it, not a minute."""
    data: dict[str, Any] = yaml.safe_load(lab_config_path.read_text())
    data.setdefault("scheduler", {})["result_timeout"] = "5s"
    path = tmp_path / "dialler.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


async def _hangups_recorded(config: Config, campaign_id: str) -> int:
    """How many of the campaign's attempts Asterisk recorded a HANGUP for (CEL)."""
    conn = await connect(config.database.dsn)
    try:
        found: int = await conn.fetchval(
            "SELECT count(DISTINCT a.id) FROM attempts a JOIN asterisk_cel c "
            "ON c.uniqueid = a.id::text AND c.server = a.asterisk AND c.eventtype = 'HANGUP' "
            "WHERE a.campaign_id = $1::uuid",
            campaign_id,
        )
        return found
    finally:
        await conn.close()


def test_calls_that_end_while_no_daemon_watches_get_their_real_outcome(
    lab_config_path: Path, lab_config: Config, tmp_path: Path
) -> None:
    config = short_results(lab_config_path, tmp_path)
    before = lab_calls()
    killed = Daemon(config, tmp_path / "killed.log").start()
    try:
        campaign = create_campaign(config, tmp_path, NUMBERS, concurrency=10, ring_timeout="4s")
        # Every call placed and both answered ones up: then the crash.
        wait_until(
            config,
            campaign,
            lambda s: s["stats"]["connected"] == len(HOLD) and s["stats"]["dialing"] == 3,
            timeout=30,
            daemon=killed,
            what="3 calls ringing and 2 answered",
        )
    finally:
        killed.kill()
    killed_at = time.time()
    # The calls end in Asterisk with no daemon: wait for Asterisk's record of every hang-up.
    deadline = time.monotonic() + 30
    while (recorded := run_coroutine(_hangups_recorded(lab_config, campaign))) < len(NUMBERS):
        assert time.monotonic() < deadline, f"Asterisk recorded {recorded} hang-ups of 5"
        time.sleep(0.3)
    assert show(config, campaign)["state"] == "running"  # nobody has settled them yet

    with running(config, tmp_path / "next.log") as daemon:
        wait_for(config, campaign, "completed", timeout=60, daemon=daemon)

    rows = by_number(report(config, campaign))
    carrier = lab_delta(before, lab_calls())
    # The carrier's count: one call per number, none re-dialled.
    assert {n: carrier.get(n, 0) for n in NUMBERS} == {n: 1 for n in NUMBERS}
    assert {n: len(rows[n]) for n in NUMBERS} == {n: 1 for n in NUMBERS}
    for number in RING + SILENT:
        (row,) = rows[number]
        # Our ring timeout, as Asterisk recorded it: no answer, and no SIP code invented.
        assert (row["outcome"], row["disposition"], row["sip_code"]) == (
            "no_answer",
            "no_answer",
            "",
        ), row
        assert float(row["duration_seconds"]) == 0
    for number in HOLD:
        (row,) = rows[number]
        assert row["outcome"] == "answered", row
        # Talk time from Asterisk's answer and hang-up (hold 5–6 s), not up to the recovery.
        hold = int(number[-2:])
        assert hold - 1.5 <= float(row["duration_seconds"]) <= hold + 1.5, row
        # It ended within its hold time of the crash, long before the next daemon looked.
        assert datetime.fromisoformat(row["ended_at"]).timestamp() < killed_at + hold + 1, row
