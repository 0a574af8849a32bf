"""Two daemons on one database share a carrier's calls per second (issue 12, item 2): the rate
the carrier observed — its own INVITE timestamps — stays within the limit over every sliding
second, and no contact is dialled twice."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialler.lab.lab import Lab
from dialler.store.pool import connect

from .campaigns import lab_delta, report, running, wait_for
from .lab_helpers import lab_calls, run_coroutine
from .test_throttling import campaign_on, forget_pacing

pytestmark = pytest.mark.e2e

CARRIER = "lab-paced"
CALLER_IDS = ["+441632960081", "+441632960082"]
RATE = 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def paced_configs(lab_config_path: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The lab config with a carrier of its own at 10 calls/s (the lab's trunk), and a copy for
    a second daemon: the same database and Asterisk, listeners of its own (attaches go to the
    first; either serves any attempt from the database)."""
    data: dict[str, Any] = yaml.safe_load(lab_config_path.read_text())
    data["carriers"].append(
        {"name": CARRIER, "endpoint": "lab", "max_channels": 100, "calls_per_second": RATE}
    )
    data["numbers"] += [{"number": n, "carrier": CARRIER, "enabled": True} for n in CALLER_IDS]
    first = tmp_path / "first.yaml"
    first.write_text(yaml.safe_dump(data, sort_keys=False))
    for name in ("agi", "http", "metrics"):
        data["listeners"][name]["port"] = free_port()
    second = tmp_path / "second.yaml"
    second.write_text(yaml.safe_dump(data, sort_keys=False))
    return first, second


def dialled_by(dsn: str, campaign: str) -> dict[str, int]:
    """Attempts of the campaign per daemon that claimed them."""

    async def count() -> dict[str, int]:
        conn = await connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT daemon_id, count(*) AS n FROM attempts WHERE campaign_id = $1 "
                "GROUP BY daemon_id",
                uuid.UUID(campaign),
            )
        finally:
            await conn.close()
        return {str(r["daemon_id"]): int(r["n"]) for r in rows}

    return run_coroutine(count())


def most_in_a_second(times: list[float]) -> tuple[int, float]:
    """The most INVITEs in any 1-second window [t, t + 1), and where it starts."""
    times = sorted(times)
    best, start, hi = 0, 0.0, 0
    for lo, t in enumerate(times):
        while hi < len(times) and times[hi] < t + 1.0:
            hi += 1
        if hi - lo > best:
            best, start = hi - lo, t
    return best, start


def test_two_daemons_together_keep_the_carriers_calls_per_second(
    lab_config_path: Path, tmp_path: Path
) -> None:
    first, second = paced_configs(lab_config_path, tmp_path)
    dsn = yaml.safe_load(first.read_text())["database"]["dsn"]
    forget_pacing(dsn, CARRIER)
    numbers = [f"+447700937{n:03d}" for n in range(100)]  # answered after ~1 s, held 2 s
    lab = Lab()
    seen = {call.call_id for call in lab.invites()}
    before = lab_calls()
    campaign = campaign_on(first, tmp_path, numbers, CALLER_IDS, concurrency=45)
    with running(first, tmp_path / "a.log") as a, running(second, tmp_path / "b.log"):
        wait_for(first, campaign, "completed", 100, a)

    rows = report(first, campaign)
    assert sorted(r["phone_number"] for r in rows) == sorted(numbers)  # one attempt each
    # Both daemons dialled: the attempts' owners.
    per_daemon = dialled_by(dsn, campaign)
    assert len(per_daemon) == 2, per_daemon
    # No double dial: the carrier's own count, per number.
    assert lab_delta(before, lab_calls()) == dict.fromkeys(numbers, 1)
    # The carrier's clock: at most 10 (+1) INVITEs in every sliding second.
    ours = set(numbers)
    stamps = [c.at for c in lab.invites() if c.call_id not in seen and c.number in ours]
    assert len(stamps) == len(numbers) and None not in stamps
    times = [t for t in stamps if t is not None]
    most, at = most_in_a_second(times)
    assert most <= RATE + 1, f"{most} INVITEs in the second from {at - min(times):.2f} s"
    # And the pace was held, not starved: 100 calls at about 10/s.
    assert max(times) - min(times) >= (len(times) - RATE - 1) / RATE
    assert max(times) - min(times) <= 2.0 * len(times) / RATE, max(times) - min(times)
