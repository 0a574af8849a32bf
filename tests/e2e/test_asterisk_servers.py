"""Several Asterisk servers (issue 12): one campaign dials through both of the lab's servers;
one is killed mid-campaign — new dials go to the other at once, its calls are closed, nothing is
dialled twice — and once it is back it is dealt to again. Counted by the carrier itself
(`lab calls --json`: `by_number`, `by_asterisk`) and checked against the attempt report's
`asterisk` column. The lab goes back to one server afterwards, whatever happened."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialler.lab.lab import DEFAULT_STATE_DIR

from .campaigns import by_number, create_campaign, report, running, wait_for
from .lab_helpers import dialler

pytestmark = pytest.mark.e2e

#: Lab numbers outside every special range: answered after about 1 s, held 2 s.
NUMBERS = [f"+447700914{n:03d}" for n in range(150)]
SECOND = "lab-2"


def carrier() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(dialler("lab", "calls", "--json").stdout)
    return data


def delta(before: dict[str, int], after: dict[str, int]) -> Counter[str]:
    return Counter({k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)})


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    """The daemon's `/readyz`: status and body."""
    url = f"http://127.0.0.1:{port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def server_state(body: dict[str, Any], name: str) -> dict[str, Any]:
    servers = {s["name"]: s for s in body.get("asterisk_servers", [])}
    state: dict[str, Any] = servers[name]
    return state


def poll(what: str, check: Callable[[], Any], timeout: float) -> Any:
    """`check()` until it returns something true; a timeout says what was last seen."""
    deadline = time.monotonic() + timeout
    while True:
        seen = check()
        if seen:
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout}s")
        time.sleep(0.2)


@pytest.fixture
def two_servers(lab_config_path: Path) -> Iterator[Path]:
    """The lab with two Asterisk servers; back to one afterwards (other tests share the lab)."""
    try:
        dialler("lab", "up", "--asterisk-servers", "2")
        yield lab_config_path
    finally:
        dialler("lab", "up", "--asterisk-servers", "1")


def quick_config(lab_config_path: Path, tmp_path: Path) -> Path:
    """The lab config with short bounds for calls a dead server can no longer report:
    unanswered ones end `ring_timeout + dial_margin` after their Originate."""
    data = yaml.safe_load(lab_config_path.read_text())
    assert [s["name"] for s in data["asterisk"]] == ["lab", SECOND]
    data["scheduler"] = {**data.get("scheduler", {}), "dial_margin": "5s", "max_call_length": "30s"}
    path = tmp_path / "two-servers.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.timeout(240)
def test_calls_spread_over_both_servers_and_fail_over_when_one_dies(
    two_servers: Path, tmp_path: Path
) -> None:
    config = quick_config(two_servers, tmp_path)
    http_port = yaml.safe_load(config.read_text())["listeners"]["http"]["port"]
    before = carrier()
    campaign = create_campaign(
        config,
        tmp_path,
        NUMBERS,
        concurrency=6,
        retry={"max_attempts": 2, "delay": "1s", "on_system": ["timeout"], "on_custom": []},
    )

    def through_both() -> bool:
        servers = delta(before["by_asterisk"], carrier()["by_asterisk"])
        return len(servers) == 2 and min(servers.values()) >= 10

    def second_down() -> tuple[int, dict[str, Any]] | None:
        status, body = readyz(http_port)
        return None if server_state(body, SECOND)["up"] else (status, body)

    with running(config, tmp_path / "daemon.log") as daemon:
        # Both servers carry calls: dealt least loaded first.
        poll("calls through both servers", through_both, 60)
        poll(
            "a call up on lab-2",
            lambda: server_state(readyz(http_port)[1], SECOND)["in_flight"] > 0,
            30,
        )
        pid = json.loads((DEFAULT_STATE_DIR / "state.json").read_text())[f"asterisk-{SECOND}"]
        os.kill(pid, signal.SIGKILL)
        killed_at = datetime.now(UTC)
        at_kill = carrier()["by_asterisk"]

        # Still ready (the other server is up), and /readyz says which one is down.
        status, body = poll("readyz showing lab-2 down", second_down, 15)
        assert status == 200 and body["ready"] and body["checks"]["asterisk"], body
        assert server_state(body, "lab")["up"], body

        # New dials go through the survivor.
        poll(
            "ten more calls through lab",
            lambda: carrier()["by_asterisk"].get("lab", 0) - at_kill.get("lab", 0) >= 10,
            60,
        )
        assert carrier()["by_asterisk"].get(SECOND, 0) == at_kill.get(SECOND, 0)

        # Back: dealt to again.
        restarted_at = datetime.now(UTC)
        dialler("lab", "up", "--asterisk-servers", "2")
        poll(
            "calls through lab-2 after its restart",
            lambda: carrier()["by_asterisk"].get(SECOND, 0) > at_kill.get(SECOND, 0),
            60,
        )
        wait_for(config, campaign, "completed", 150, daemon)

    rows = report(config, campaign)
    after = carrier()
    calls = delta(before["by_number"], after["by_number"])
    attempts = by_number(rows)
    # 0 double dials: the carrier never saw more calls for a number than it has attempts.
    doubled = {
        n: (c, len(attempts.get(n, []))) for n, c in calls.items() if c > len(attempts.get(n, []))
    }
    assert not doubled, doubled
    assert set(calls) <= set(NUMBERS)

    # The report's `asterisk` column matches the carrier's per-server count; on the killed
    # server, only calls lost with it may have reached no carrier (closed as `timeout`).
    servers = delta(before["by_asterisk"], after["by_asterisk"])
    reported = Counter(row["asterisk"] for row in rows)
    assert set(reported) == {"lab", SECOND} and set(servers) == {"lab", SECOND}, (reported, servers)
    assert reported["lab"] == servers["lab"], (reported, servers)
    lost = [r for r in rows if r["asterisk"] == SECOND and r["disposition"] == "timeout"]
    assert servers[SECOND] <= reported[SECOND] <= servers[SECOND] + len(lost), (reported, servers)

    # While lab-2 was down (from just after the kill to its restart) every dial went to lab.
    grace = timedelta(seconds=1)
    during = [
        r
        for r in rows
        if killed_at + grace < datetime.fromisoformat(r["dialled_at"]) < restarted_at
    ]
    assert during and {r["asterisk"] for r in during} == {"lab"}, Counter(
        r["asterisk"] for r in during
    )
    assert any(
        r["asterisk"] == SECOND and datetime.fromisoformat(r["dialled_at"]) > restarted_at
        for r in rows
    )
