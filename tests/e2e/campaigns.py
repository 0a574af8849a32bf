"""Helpers to drive campaigns end to end exactly as an operator does: files and the CLI, and
`dialler run` as a separate process."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from .lab_helpers import assert_no_task_errors, dialler

ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
#: Every campaign an e2e test creates is named with this prefix (conftest cancels leftovers of
#: an interrupted session by it, and touches no other campaign).
E2E_PREFIX = "e2e-"
#: Ids of the campaigns the current test created (`campaign create` through `cli`): the
#: conftest cancels those still running after the test, and only those.
CREATED: set[str] = set()


def cli(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`dialler --config CONFIG ARGS...`; a campaign it creates is remembered in `CREATED`."""
    proc = dialler("--config", str(config), *args, check=check)
    if args[:2] == ("campaign", "create") and proc.returncode == 0:
        CREATED.add(proc.stdout.strip())
    return proc


def cancel_campaign(config: str, campaign_id: str) -> None:
    """`campaign cancel` when the campaign still runs or is paused (a finished or already
    cancelled one is left alone; an unknown id — a lab rebuilt since — is nothing to cancel)."""
    shown = dialler("--config", config, "campaign", "show", campaign_id, "--json", check=False)
    if shown.returncode == 0 and json.loads(shown.stdout)["state"] in ("running", "paused"):
        # Exit 2: refused because it is already cancelled (its live calls cut by a killed
        # daemon keep it running until the next daemon reconciles them) — nothing to do.
        done = dialler("--config", config, "campaign", "cancel", campaign_id, check=False)
        assert done.returncode in (0, 2), done.stderr


def create_campaign(
    config: Path,
    tmp: Path,
    numbers: Sequence[str],
    *,
    variables: dict[str, Sequence[str]] | None = None,
    start: bool = True,
    **settings: Any,
) -> str:
    """Bot + campaign + contacts CSV through the CLI; returns the campaign id."""
    name = f"{E2E_PREFIX}{uuid.uuid4().hex[:8]}"
    bot = tmp / f"{name}-bot.yaml"
    bot.write_text(yaml.safe_dump({"name": name, "prompt": "Hello {{Name}}"}))
    cli(config, "bot", "create", str(bot))
    spec: dict[str, Any] = {
        "name": name,
        "bot": name,
        "numbers": ["+441632960001", "+441632960002"],
        "concurrency": 10,
        "window": {"start": "00:00", "end": "24:00", "days": ALL_DAYS, "timezone": "UTC"},
        "ring_timeout": "3s",
        "retry": {"max_attempts": 1, "delay": "1s", "on_system": [], "on_custom": []},
    }
    spec.update(settings)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    campaign_id = cli(config, "campaign", "create", str(path)).stdout.strip()
    rows = tmp / f"{name}.csv"
    columns = variables or {}
    with rows.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["phone_number", *columns])
        for i, number in enumerate(numbers):
            writer.writerow([number, *(values[i] for values in columns.values())])
    cli(config, "contacts", "import", campaign_id, str(rows))
    if start:
        cli(config, "campaign", "start", campaign_id)
    return campaign_id


def show(config: Path, campaign_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(cli(config, "campaign", "show", campaign_id, "--json").stdout)
    return data


def wait_for(
    config: Path, campaign_id: str, state: str, timeout: float, daemon: Daemon | None = None
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        data = show(config, campaign_id)
        if data["state"] == state:
            return data
        if daemon is not None and daemon.proc is not None and daemon.proc.poll() is not None:
            raise AssertionError(f"daemon exited {daemon.proc.returncode}: {daemon.log_tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"campaign not {state} after {timeout}s: {data}")
        time.sleep(0.5)


def wait_until(
    config: Path,
    campaign_id: str,
    condition: Callable[[dict[str, Any]], bool],
    timeout: float,
    daemon: Daemon | None = None,
    what: str = "the condition",
) -> dict[str, Any]:
    """`campaign show --json` polled until `condition` holds; a timeout reports what was last
    shown, a daemon that exited meanwhile its log."""
    deadline = time.monotonic() + timeout
    while True:
        data = show(config, campaign_id)
        if condition(data):
            return data
        if daemon is not None and daemon.proc is not None and daemon.proc.poll() is not None:
            raise AssertionError(f"daemon exited {daemon.proc.returncode}: {daemon.log_tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met after {timeout}s; last shown: {data}")
        time.sleep(0.2)


def report(config: Path, campaign_id: str) -> list[dict[str, str]]:
    text = cli(config, "report", "attempts", campaign_id).stdout
    return list(csv.DictReader(io.StringIO(text)))


def by_number(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for row in sorted(rows, key=lambda r: (r["phone_number"], int(r["attempt_number"]))):
        out.setdefault(row["phone_number"], []).append(row)
    return out


def max_overlap(rows: list[dict[str, str]]) -> int:
    """The most calls that were in flight at once, measured from the report's timestamps."""
    edges: list[tuple[datetime, int]] = []
    for row in rows:
        start = datetime.fromisoformat(row["dialled_at"])
        end = datetime.fromisoformat(row["ended_at"])
        edges += [(start, 1), (end, -1)]
    edges.sort(key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    live = peak = 0
    for _t, step in edges:
        live += step
        peak = max(peak, live)
    return peak


class Daemon:
    """`dialler run` in a subprocess, stopped (SIGTERM) or killed (SIGKILL) on purpose."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.drained = False

    def start(self) -> Daemon:
        with self.log.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dialler.cli", "--config", str(self.config), "run"],
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                env=os.environ.copy(),
            )
        return self

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (drain) and wait; SIGKILL after `timeout`. The exit status; `drained` says
        whether this SIGTERM ended it (not an earlier exit, not the SIGKILL)."""
        assert self.proc is not None
        self.drained = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
                self.drained = True
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def check_log(self) -> None:
        """The daemon's log shows no task that died unseen (lab_helpers.TASK_ERRORS)."""
        assert_no_task_errors(self.log.read_text(errors="replace"), f"daemon log {self.log}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no drain, no cleanup — a crash
        self.proc.wait()

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@contextlib.contextmanager
def running(config: Path, log: Path, stop_timeout: float = 60) -> Iterator[Daemon]:
    """The daemon up for the block; then SIGTERM: the daemon must drain and exit 0 within
    `stop_timeout` (one that fails, or hangs and needs the SIGKILL, fails the test), and its log
    shows no task that died unseen (checked when the block itself passed)."""
    daemon = Daemon(config, log).start()
    try:
        yield daemon
    except BaseException:
        daemon.stop(stop_timeout)
        raise
    assert daemon.proc is not None
    early = daemon.proc.poll()
    assert early is None, f"daemon exited {early} before it was stopped: {daemon.log_tail()}"
    status = daemon.stop(stop_timeout)
    assert daemon.drained, f"daemon alive {stop_timeout}s after SIGTERM: {daemon.log_tail()}"
    assert status == 0, f"daemon exited {status} after SIGTERM: {daemon.log_tail()}"
    daemon.check_log()


def lab_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        n: after.get(n, 0) - before.get(n, 0)
        for n in set(after) | set(before)
        if after.get(n, 0) != before.get(n, 0)
    }
