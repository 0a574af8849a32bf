"""`dialler run` under a stand-in systemd: a datagram socket this test owns is NOTIFY_SOCKET.

READY=1 only once the daemon serves (database, AMI and listeners up), WATCHDOG=1 from the
event loop, STATUS= lines, SIGHUP reload (a bad file refused, the daemon running on; a good
one: RELOADING=1 then READY=1), SIGTERM: STOPPING=1 and exit 0.

The daemon runs on a copy of the lab config in tmp_path (so the test can rewrite it) with its
own listener ports, so it never clashes with another daemon on the lab.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.e2e

Fields = dict[str, str]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Systemd:
    """The notification socket's owner: every datagram received, with its arrival time."""

    sock: socket.socket
    path: Path
    received: list[tuple[float, Fields]] = field(default_factory=list)

    def _receive(self, timeout: float) -> Fields | None:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536).decode()
        except TimeoutError:
            return None
        fields = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
        self.received.append((time.monotonic(), fields))
        return fields

    def wait_for(self, match: Callable[[Fields], bool], timeout: float, what: str) -> Fields:
        """The next message `match` accepts (messages before it are kept in `received`)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            fields = self._receive(left)
            if fields is not None and match(fields):
                return fields
        raise AssertionError(
            f"no {what} within {timeout} s; received: {[f for _t, f in self.received]}"
        )

    def wait_for_count(
        self, match: Callable[[Fields], bool], count: int, timeout: float, what: str
    ) -> list[float]:
        """Until `count` messages `match` accepts arrived (earlier ones included); their
        arrival times."""
        deadline = time.monotonic() + timeout
        while True:
            times = [t for t, f in self.received if match(f)]
            if len(times) >= count:
                return times[:count]
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no {what} within {timeout} s; received: {[f for _t, f in self.received]}"
                )
            self._receive(left)

    def collect(self, seconds: float) -> list[Fields]:
        """Every message arriving during the next `seconds`."""
        got: list[Fields] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            fields = self._receive(left)
            if fields is not None:
                got.append(fields)
        return got


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    config: Path
    http_port: int
    log: Path

    def healthz(self) -> int:
        url = f"http://127.0.0.1:{self.http_port}/healthz"
        with urllib.request.urlopen(url, timeout=2) as response:
            status: int = response.status
            return status

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[Systemd]:
    path = tmp_path / "notify"  # short: AF_UNIX paths end at 108 bytes
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        yield Systemd(sock, path)
    finally:
        sock.close()


def lab_copy(lab_config_path: Path, tmp_path: Path) -> tuple[Path, dict[str, Any], int]:
    """A copy of the lab config with listener ports of its own: (path, its data, http port)."""
    data: dict[str, Any] = yaml.safe_load(lab_config_path.read_text())
    ports = {name: free_port() for name in ("agi", "http", "metrics")}
    for name, port in ports.items():
        data["listeners"][name]["port"] = port
    path = tmp_path / "dialler.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, data, ports["http"]


@pytest.fixture
def daemon(lab_config_path: Path, tmp_path: Path, systemd: Systemd) -> Iterator[Daemon]:
    config, _data, http_port = lab_copy(lab_config_path, tmp_path)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
    }
    env.update(NOTIFY_SOCKET=str(systemd.path), WATCHDOG_USEC="2000000")
    log = tmp_path / "daemon.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dialler.cli", "--config", str(config), "run"],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    running = Daemon(proc, config, http_port, log)
    try:
        yield running
    finally:
        # A test that failed early leaves the daemon up: it must still stop cleanly on SIGTERM.
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                status = proc.wait(60)
            except subprocess.TimeoutExpired as exc:
                proc.kill()
                proc.wait()
                raise AssertionError(
                    f"daemon alive 60 s after SIGTERM: {running.log_tail()}"
                ) from exc
            assert status == 0, f"daemon exited {status} after SIGTERM: {running.log_tail()}"


def ready(fields: Fields) -> bool:
    return fields.get("READY") == "1"


def is_ping(fields: Fields) -> bool:
    return fields.get("WATCHDOG") == "1"


def test_ready_after_serving_then_watchdog_status_and_stop(
    daemon: Daemon, systemd: Systemd
) -> None:
    systemd.wait_for(ready, 60, "READY=1")
    # READY=1 means serving: /healthz answers at once, no retry.
    assert daemon.healthz() == 200, daemon.log_tail()

    # WATCHDOG_USEC=2 s: a ping every second, sent from the event loop — waited for by count,
    # not by a time window; each gap must stay under the 2 s systemd would kill at.
    pings = systemd.wait_for_count(is_ping, 4, 15, "4 WATCHDOG=1")
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps) < 2.0, gaps
    statuses = [f["STATUS"] for _t, f in systemd.received if f.get("STATUS")]
    assert statuses, systemd.received

    daemon.proc.send_signal(signal.SIGTERM)
    systemd.wait_for(lambda f: f.get("STOPPING") == "1", 30, "STOPPING=1")
    assert daemon.proc.wait(150) == 0, daemon.log_tail()
    systemd.collect(0.2)  # anything sent just before the exit
    # READY=1 came once over the daemon's whole life (every message it sent was received).
    readies = [f for _t, f in systemd.received if ready(f)]
    assert len(readies) == 1, systemd.received


def test_sighup_refuses_a_bad_file_and_applies_a_good_one(
    daemon: Daemon,
    systemd: Systemd,
) -> None:
    systemd.wait_for(ready, 60, "READY=1")
    good: dict[str, Any] = yaml.safe_load(daemon.config.read_text())

    # A bad file: refused, said in STATUS (naming the key), and the daemon runs on.
    bad = yaml.safe_load(daemon.config.read_text())
    bad["carriers"][0]["max_channels"] = 0
    daemon.config.write_text(yaml.safe_dump(bad, sort_keys=False))
    daemon.proc.send_signal(signal.SIGHUP)
    refused = systemd.wait_for(
        lambda f: "refused" in f.get("STATUS", "").lower(),
        15,
        "a STATUS saying the reload was refused",
    )
    assert "max_channels" in refused["STATUS"], refused
    # Runs on: its event loop keeps pinging the watchdog after the refusal, and it serves.
    pings = len([f for _t, f in systemd.received if is_ping(f)])
    systemd.wait_for_count(is_ping, pings + 2, 10, "WATCHDOG=1 after the refused reload")
    assert daemon.proc.poll() is None, daemon.log_tail()
    assert daemon.healthz() == 200

    # A good change (live: a carrier's limit): RELOADING=1 (with MONOTONIC_USEC), then READY=1.
    good["carriers"][0]["max_channels"] = int(good["carriers"][0].get("max_channels", 100)) - 1
    daemon.config.write_text(yaml.safe_dump(good, sort_keys=False))
    daemon.proc.send_signal(signal.SIGHUP)
    reloading = systemd.wait_for(lambda f: f.get("RELOADING") == "1", 15, "RELOADING=1")
    assert int(reloading["MONOTONIC_USEC"]) > 0
    systemd.wait_for(ready, 15, "READY=1 after the reload")
    assert daemon.proc.poll() is None, daemon.log_tail()
    assert daemon.healthz() == 200

    daemon.proc.send_signal(signal.SIGTERM)
    systemd.wait_for(lambda f: f.get("STOPPING") == "1", 30, "STOPPING=1")
    assert daemon.proc.wait(150) == 0, daemon.log_tail()
