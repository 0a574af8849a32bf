"""The fleet end to end: answered calls reach a bot worker over AudioSocket, audio flows both
ways, pacing never dials past the free slots, and a callee is never left in silence."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import uuid
import wave
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialler.config import load_config
from dialler.fleet.greeting import HEARD_THRESHOLD, detect_greeting
from dialler.lab.lab import DEFAULT_STATE_DIR
from dialler.store.pool import connect

from .campaigns import (
    by_number,
    create_campaign,
    lab_delta,
    max_overlap,
    report,
    running,
    show,
    wait_for,
)
from .lab_helpers import lab_calls, run_coroutine
from .test_campaign_rules import free_port

pytestmark = pytest.mark.e2e


def test_answered_call_reaches_the_worker_and_audio_flows_both_ways(
    lab_config_path: Path, tmp_path: Path
) -> None:
    number = "+447700900006"  # answers, holds 6 s, echoes media
    before = lab_calls()
    campaign = create_campaign(lab_config_path, tmp_path, [number])
    with running(lab_config_path, tmp_path / "daemon.log") as daemon:
        wait_for(lab_config_path, campaign, "completed", 60, daemon)
    assert lab_delta(before, lab_calls()) == {number: 1}  # the carrier's count: dialled once
    [row] = report(lab_config_path, campaign)
    assert (row["outcome"], row["disposition"], row["worker"]) == (
        "answered",
        "completed",
        "lab-worker",
    )
    # What the worker heard: its own greeting, sent to the callee through Asterisk and echoed
    # back by the carrier (G.711 both ways). Checked here on its recording, independently.
    recording = DEFAULT_STATE_DIR / "recordings" / f"{row['attempt_id']}.wav"
    with wave.open(str(recording)) as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (8000, 2, 1)
        heard = wav.readframes(wav.getnframes())
    assert detect_greeting(heard) >= HEARD_THRESHOLD
    assert len(heard) >= 8000 * 2 * 3  # seconds of audio, not a stray frame


def fleet_config(lab_config_path: Path, tmp_path: Path, capacity: int) -> tuple[Path, str, int]:
    """The lab config with a fleet of one worker of `capacity` (the lab's own worker leaves
    rotation while this config's daemon runs) and a short result timeout."""
    config: dict[str, Any] = yaml.safe_load(lab_config_path.read_text())
    name, port = f"test-worker-{uuid.uuid4().hex[:6]}", free_port()
    config["fleet"] = {
        "workers": [{"name": name, "host": "127.0.0.1", "port": port, "capacity": capacity}]
    }
    config["scheduler"] = {"result_timeout": "3s"}
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, name, port


def start_worker(
    config: Path, name: str, port: int, capacity: int, log: Path, *extra: str
) -> subprocess.Popen[bytes]:
    """`dialler worker` (talk 60 s unless `extra` options say otherwise), once it listens."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dialler.cli",
                "--config",
                str(config),
                "worker",
                "--name",
                name,
                "--listen",
                f"127.0.0.1:{port}",
                "--capacity",
                str(capacity),
                "--talk",
                "60s",
                *extra,
            ],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _listening(port):
            return proc
        time.sleep(0.1)
    raise AssertionError(f"worker did not start: {log.read_text()}")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop a reference worker with `sig`; a SIGTERM must end it with status 0 (its drain)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            status = proc.wait(60)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.wait()
            raise AssertionError("the worker was alive 60 s after the signal") from exc
        if sig == signal.SIGTERM:
            assert status == 0, f"the worker exited {status} after SIGTERM"


def test_fleet_capacity_caps_concurrency(lab_config_path: Path, tmp_path: Path) -> None:
    config, name, port = fleet_config(lab_config_path, tmp_path, capacity=5)
    worker = start_worker(config, name, port, 5, tmp_path / "worker.log")
    try:
        numbers = [f"+447700917{n:03d}" for n in range(20)]  # answer, hold 2 s
        before = lab_calls()
        campaign = create_campaign(config, tmp_path, numbers, concurrency=20)
        with running(config, tmp_path / "daemon.log") as daemon:
            deadline = time.monotonic() + 20
            while (data := show(config, campaign))["stats"]["connected"] == 0:
                assert time.monotonic() < deadline, daemon.log_tail()
                time.sleep(0.2)
            assert (data["effective_concurrency"], data["capped_by"]) == (5, "fleet")
            wait_for(config, campaign, "completed", 90, daemon)
    finally:
        stop(worker)
    rows = report(config, campaign)
    assert len(rows) == 20
    assert lab_delta(before, lab_calls()) == dict.fromkeys(numbers, 1)
    assert max_overlap(rows) <= 5  # never more calls than free bot slots
    assert {r["disposition"] for r in rows} == {"completed"}  # none abandoned
    assert {r["worker"] for r in rows} == {name}


def test_worker_killed_mid_call_frees_its_slots(lab_config_path: Path, tmp_path: Path) -> None:
    config, name, port = fleet_config(lab_config_path, tmp_path, capacity=3)
    worker = start_worker(config, name, port, 3, tmp_path / "worker.log")
    numbers = ["+447700900030", "+447700900031", "+447700900032"]  # hold 30 s
    before = lab_calls()
    campaign = create_campaign(config, tmp_path, numbers, concurrency=3)
    try:
        with running(config, tmp_path / "daemon.log") as daemon:
            deadline = time.monotonic() + 20
            while show(config, campaign)["stats"]["connected"] < 3:
                assert time.monotonic() < deadline, daemon.log_tail()
                time.sleep(0.2)
            time.sleep(1)  # attached and talking
            stop(worker, signal.SIGKILL)
            data = wait_for(config, campaign, "completed", 40, daemon)
    finally:
        stop(worker)
    rows = by_number(report(config, campaign))
    for number in numbers:
        [attempt] = rows[number]
        assert (attempt["outcome"], attempt["disposition"]) == ("answered", "timeout")
        assert float(attempt["duration_seconds"]) < 20  # cut when the worker died
    assert data["stats"]["done"] == 3
    assert slots_left(config) == 0
    assert lab_delta(before, lab_calls()) == dict.fromkeys(numbers, 1)  # none re-dialled


def slots_left(config: Path) -> int:
    async def count() -> int:
        conn = await connect(load_config(str(config)).database.dsn)
        try:
            value: int = await conn.fetchval("SELECT count(*) FROM worker_slots")
            return value
        finally:
            await conn.close()

    return run_coroutine(count())


def test_only_worker_gone_while_ringing_callee_hears_message(
    lab_config_path: Path, tmp_path: Path
) -> None:
    config, name, port = fleet_config(lab_config_path, tmp_path, capacity=5)
    worker = start_worker(config, name, port, 5, tmp_path / "worker.log")
    numbers = ["+447700900020", "+447700900021"]  # ring ~1 s, then answer and hold 20 s
    before = lab_calls()
    campaign = create_campaign(config, tmp_path, numbers, concurrency=5)
    try:
        with running(config, tmp_path / "daemon.log") as daemon:
            deadline = time.monotonic() + 20
            while show(config, campaign)["stats"]["dialing"] < 2:
                assert time.monotonic() < deadline, daemon.log_tail()
                time.sleep(0.05)
            stop(worker, signal.SIGKILL)  # gone before the callees answer
            wait_for(config, campaign, "completed", 40, daemon)
            log = daemon.log.read_text()
    finally:
        stop(worker)
    rows = report(config, campaign)
    assert [(r["outcome"], r["disposition"]) for r in rows] == [("answered", "abandoned")] * 2
    for row in rows:
        # The message is played, then the call is hung up: seconds, not the callee's 20 s.
        assert 1.0 <= float(row["duration_seconds"]) < 15
    assert "abandoned" in log
    assert lab_delta(before, lab_calls()) == dict.fromkeys(numbers, 1)
