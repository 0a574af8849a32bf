"""A carrier that throttles (SIP 429) on the lab: the daemon backs off by itself (AIMD, shared
pacing in PostgreSQL), keeps the refused contacts (requeued, no attempt used) and says so in
`campaign show` — issue 13's Done-when, measured on the carrier's own INVITE timestamps."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialler.lab.lab import Lab
from dialler.lab.numberplan import THROTTLE_PREFIX
from dialler.store.pool import connect

from .campaigns import (
    ALL_DAYS,
    E2E_PREFIX,
    cli,
    lab_delta,
    report,
    running,
    show,
    wait_until,
)
from .lab_helpers import lab_calls, run_coroutine

pytestmark = pytest.mark.e2e

#: A carrier of its own (the lab's trunk, its own caller IDs): its shared pacing row starts
#: fresh here and its throttling never slows another test's `lab` carrier.
CARRIER = "lab-throttle"
CALLER_IDS = ["+441632960091", "+441632960092"]


def throttling_config(lab_config_path: Path, tmp_path: Path) -> Path:
    data: dict[str, Any] = yaml.safe_load(lab_config_path.read_text())
    data["carriers"].append(
        {"name": CARRIER, "endpoint": "lab", "max_channels": 100, "calls_per_second": 100}
    )
    data["numbers"] += [{"number": n, "carrier": CARRIER, "enabled": True} for n in CALLER_IDS]
    path = tmp_path / "dialler.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def forget_pacing(dsn: str, carrier: str) -> None:
    """The carrier's shared pacing starts fresh (an earlier run may have left it throttled)."""

    async def delete() -> None:
        conn = await connect(dsn)
        try:
            await conn.execute("DELETE FROM carrier_pacing WHERE carrier = $1", carrier)
        finally:
            await conn.close()

    run_coroutine(delete())


def campaign_on(
    config: Path, tmp: Path, contacts: list[str], caller_ids: list[str], concurrency: int
) -> str:
    """A started campaign (`max_attempts: 1`) dialling `contacts` from `caller_ids`, through
    the CLI (campaigns.create_campaign fixes the lab carrier's caller IDs)."""
    name = f"{E2E_PREFIX}{uuid.uuid4().hex[:8]}"
    bot = tmp / f"{name}-bot.yaml"
    bot.write_text(yaml.safe_dump({"name": name, "prompt": "Hello"}))
    cli(config, "bot", "create", str(bot))
    spec = {
        "name": name,
        "bot": name,
        "numbers": caller_ids,
        "concurrency": concurrency,
        "window": {"start": "00:00", "end": "24:00", "days": ALL_DAYS, "timezone": "UTC"},
        "ring_timeout": "5s",
        "retry": {"max_attempts": 1, "delay": "1s", "on_system": [], "on_custom": []},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    campaign_id = cli(config, "campaign", "create", str(path)).stdout.strip()
    for number in caller_ids:
        # Another daemon on the lab database disabled them (they are not in its config).
        cli(config, "number", "enable", number)
    rows = tmp / f"{name}.csv"
    rows.write_text("phone_number\n" + "".join(f"{n}\n" for n in contacts))
    cli(config, "contacts", "import", campaign_id, str(rows))
    cli(config, "campaign", "start", campaign_id)
    return campaign_id


def most_in_window(times: list[float], seconds: float) -> tuple[int, float]:
    """The most INVITEs in any `seconds`-long window [t, t + seconds), and where it starts."""
    times = sorted(times)
    best, start, hi = 0, 0.0, 0
    for lo, t in enumerate(times):
        while hi < len(times) and times[hi] < t + seconds:
            hi += 1
        if hi - lo > best:
            best, start = hi - lo, t
    return best, start


def test_a_throttling_carrier_is_backed_off_and_no_contact_is_lost(
    lab_config_path: Path, tmp_path: Path
) -> None:
    config = throttling_config(lab_config_path, tmp_path)
    dsn = yaml.safe_load(lab_config_path.read_text())["database"]["dsn"]
    forget_pacing(dsn, CARRIER)
    numbers = [f"{THROTTLE_PREFIX}{n:02d}" for n in range(60)]
    lab = Lab()
    seen = {call.call_id for call in lab.invites()}
    before = lab_calls()
    campaign = campaign_on(config, tmp_path, numbers, CALLER_IDS, concurrency=30)
    capped: set[str | None] = set()

    def finished(shown: dict[str, Any]) -> bool:
        capped.add(shown["capped_by"])
        return bool(shown["state"] == "completed")

    with running(config, tmp_path / "daemon.log") as daemon:
        wait_until(config, campaign, finished, 110, daemon, what="campaign completed")

    # Every contact ends answered: none exhausted by 429s, whatever its max_attempts of 1.
    shown = show(config, campaign)
    assert shown["stats"]["done"] == 60 and shown["stats"]["exhausted"] == 0, shown["stats"]
    rows = report(config, campaign)
    answered = {r["phone_number"] for r in rows if r["outcome"] == "answered"}
    assert answered == set(numbers)
    refused = [r for r in rows if r["sip_code"] == "429"]
    assert refused, "the carrier never throttled: the test proves nothing"
    # The 429s stay in the report as they were, each requeued (no attempt used).
    assert {(r["outcome"], r["disposition"], r["next_action"]) for r in refused} == {
        ("rejected", "rejected", "requeue")
    }
    assert "carrier_throttle" in capped, capped

    # The rate the daemon offered, as the carrier saw it (refused INVITEs included): from 10 s
    # after the first 429 on, at most 10 calls/s in every 5-second window.
    ours = set(numbers)
    invites = [c for c in lab.invites() if c.call_id not in seen and c.number in ours]
    assert all(c.at is not None for c in invites)
    first_refusal = min(c.at for c in invites if c.throttle == "refused" and c.at is not None)
    settled = [c.at for c in invites if c.at is not None and c.at >= first_refusal + 10]
    most, at = most_in_window(settled, 5.0)
    assert most <= 50, (
        f"{most} INVITEs in the 5 s from {at - first_refusal:.1f} s after the first 429"
    )
    # Each INVITE the carrier got is an attempt of the report: nothing dialled unrecorded.
    assert sum(lab_delta(before, lab_calls()).values()) == len(rows) == len(invites)
