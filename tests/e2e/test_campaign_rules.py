"""Calling window, redial rules, crash recovery, several daemons, AMI outage — end to end."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from .campaigns import (
    Daemon,
    by_number,
    cli,
    create_campaign,
    lab_delta,
    report,
    running,
    show,
    wait_for,
    wait_until,
)
from .lab_helpers import lab_calls
from .tcpproxy import FaultyLink

pytestmark = pytest.mark.e2e
ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def closed_window_now() -> dict[str, object]:
    """A one-hour window twelve hours away from now, every day (UTC): closed now."""
    start = (datetime.now(UTC) + timedelta(hours=12)).replace(minute=0)
    end = start + timedelta(hours=1)
    if end.hour == 0:
        return {"start": f"{start:%H}:00", "end": "24:00", "days": ALL_DAYS, "timezone": "UTC"}
    return {"start": f"{start:%H}:00", "end": f"{end:%H}:00", "days": ALL_DAYS, "timezone": "UTC"}


def test_outside_window_dials_nothing_then_inside_dials(
    lab_config_path: Path, tmp_path: Path
) -> None:
    numbers = ["+447700912001", "+447700912002"]
    before = lab_calls()
    campaign = create_campaign(lab_config_path, tmp_path, numbers, window=closed_window_now())
    with running(lab_config_path, tmp_path / "daemon.log"):
        time.sleep(4)
        data = show(lab_config_path, campaign)
        assert data["state"] == "running"
        assert data["activity"] == "paused_outside_window"
        assert data["stats"]["pending"] == 2
        assert lab_delta(before, lab_calls()) == {}

        cli(lab_config_path, "campaign", "pause", campaign)
        spec = tmp_path / "open.yaml"
        spec.write_text(
            yaml.safe_dump(
                {
                    "name": data["name"],
                    "bot": data["name"],
                    "numbers": ["+441632960001"],
                    "ring_timeout": "3s",
                    "window": {
                        "start": "00:00",
                        "end": "24:00",
                        "days": ALL_DAYS,
                        "timezone": "Pacific/Kiritimati",
                    },
                }
            )
        )
        cli(lab_config_path, "campaign", "edit", campaign, str(spec))
        cli(lab_config_path, "campaign", "resume", campaign)
        wait_for(lab_config_path, campaign, "completed", 60)
    assert lab_delta(before, lab_calls()) == dict.fromkeys(numbers, 1)


def test_meaningful_connect_stops_redials_short_connect_redials(
    lab_config_path: Path, tmp_path: Path
) -> None:
    long_talk, short_talk = "+447700900005", "+447700900001"  # hold 5 s, 1 s
    campaign = create_campaign(
        lab_config_path,
        tmp_path,
        [long_talk, short_talk],
        retry={"max_attempts": 3, "delay": "1s", "on_system": [], "on_custom": []},
        redial={"stop_after_connect_longer_than": "3s", "redial_after_connect_shorter_than": "10s"},
    )  # overlap: the stop rule wins
    with running(lab_config_path, tmp_path / "daemon.log") as daemon:
        wait_for(lab_config_path, campaign, "completed", 90, daemon)
    attempts = by_number(report(lab_config_path, campaign))
    assert [a["next_action"] for a in attempts[long_talk]] == ["cancelled"]
    assert float(attempts[long_talk][0]["duration_seconds"]) > 3
    assert [a["next_action"] for a in attempts[short_talk]] == ["retry", "retry", "exhausted"]
    calls = {
        c["phone_number"]: c
        for c in json.loads(cli(lab_config_path, "calls", campaign, "--json").stdout)
    }
    assert calls[long_talk]["state"] == "cancelled"
    assert calls[short_talk]["state"] == "exhausted"
    assert calls[short_talk]["attempts"] == "3/3"


def test_kill_9_and_restart_recovers_without_double_dial(
    lab_config_path: Path, tmp_path: Path
) -> None:
    # Every contact is claimed in the first second (concurrency > contacts), so the kill
    # lands while calls are up and no claim is in progress.
    numbers = [f"+4477009000{n:02d}" for n in (4, 5, 6)]  # answered, 4–6 s
    numbers += [f"+4477009002{n:02d}" for n in range(70, 75)]  # ringing
    numbers += [f"+447700913{n:03d}" for n in range(10)]  # answered, 2 s
    before = lab_calls()
    campaign = create_campaign(
        lab_config_path,
        tmp_path,
        numbers,
        concurrency=30,
        ring_timeout="6s",
        retry={
            "max_attempts": 2,
            "delay": "3s",
            "on_system": ["no_answer", "timeout"],
            "on_custom": [],
        },
    )
    daemon = Daemon(lab_config_path, tmp_path / "daemon1.log").start()
    deadline = time.monotonic() + 20
    while show(lab_config_path, campaign)["stats"]["connected"] < 3:
        assert time.monotonic() < deadline, daemon.log_tail()
        time.sleep(0.2)
    daemon.kill()
    in_flight = show(lab_config_path, campaign)["stats"]
    assert in_flight["dialing"] + in_flight["connected"] > 0  # calls were cut from the daemon

    with running(lab_config_path, tmp_path / "daemon2.log") as second:
        wait_for(lab_config_path, campaign, "completed", 120, second)
        log = second.log.read_text()
    rows = report(lab_config_path, campaign)
    per_number = by_number(rows)
    assert set(per_number) == set(numbers)
    # No attempt dialled twice: the carrier saw exactly the attempts in the report.
    assert lab_delta(before, lab_calls()) == {n: len(a) for n, a in per_number.items()}
    # In-flight attempts were recovered: adopted (result exact) or finalised as timeout.
    assert "adopted a live call" in log or "stale attempt finalised" in log
    for number in numbers[:3]:
        assert per_number[number][0]["outcome"] == "answered"


def test_two_daemons_never_claim_the_same_contact(lab_config_path: Path, tmp_path: Path) -> None:
    numbers = [f"+447700914{n:03d}" for n in range(60)]  # answered, 2 s
    # The second daemon shares the database and Asterisk, not the listening ports (the
    # dialplan's attach goes to the first; either can serve any attempt from the database).
    config = yaml.safe_load(lab_config_path.read_text())
    for name in ("agi", "http", "metrics"):
        config["listeners"][name]["port"] = free_port()
    second = tmp_path / "second.yaml"
    second.write_text(yaml.safe_dump(config))
    before = lab_calls()
    campaign = create_campaign(lab_config_path, tmp_path, numbers, concurrency=12)
    with running(lab_config_path, tmp_path / "a.log") as a, running(second, tmp_path / "b.log"):
        wait_for(lab_config_path, campaign, "completed", 120, a)
    rows = report(lab_config_path, campaign)
    assert sorted(r["phone_number"] for r in rows) == sorted(numbers)  # one attempt each
    assert {r["disposition"] for r in rows} == {"completed"}
    assert lab_delta(before, lab_calls()) == dict.fromkeys(numbers, 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ThreadedRelay:
    """A FaultyLink on a fixed port, served from its own thread and event loop."""

    def __init__(self, target: tuple[str, int], port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.link = FaultyLink(*target)
        self.port = port
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

        async def serve() -> None:
            self.link.server = await asyncio.start_server(self.link._handle, "127.0.0.1", self.port)

        asyncio.run_coroutine_threadsafe(serve(), self.loop).result(5)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.link.stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def test_ami_down_claims_nothing_and_uses_no_attempt(lab_config_path: Path, tmp_path: Path) -> None:
    config = yaml.safe_load(lab_config_path.read_text())
    target = (config["asterisk"][0]["ami"]["host"], config["asterisk"][0]["ami"]["port"])
    port = free_port()  # nothing listens here: the daemon's AMI connection cannot come up
    config["asterisk"][0]["ami"]["port"] = port
    config["scheduler"] = {"stall_after": "2s"}
    blocked = tmp_path / "blocked.yaml"
    blocked.write_text(yaml.safe_dump(config))

    numbers = ["+447700915001", "+447700915002", "+447700915003"]
    before = lab_calls()
    campaign = create_campaign(blocked, tmp_path, numbers)
    with running(blocked, tmp_path / "daemon.log") as daemon:
        # Running, in window, contacts due, no dial past stall_after (2 s): a stall.
        data = wait_until(blocked, campaign, lambda d: d["stalled"] is True, 30, daemon)
        assert data["stats"]["pending"] == 3 and data["stats"]["dialing"] == 0
        assert report(blocked, campaign) == []
        assert lab_delta(before, lab_calls()) == {}

        relay = ThreadedRelay(target, port)  # AMI reachable again
        relay.start()
        try:
            wait_for(blocked, campaign, "completed", 60, daemon)
        finally:
            relay.stop()
    rows = report(blocked, campaign)
    assert [r["attempt_number"] for r in rows] == ["1", "1", "1"]  # no attempt used up
    assert lab_delta(before, lab_calls()) == dict.fromkeys(numbers, 1)
