"""`dialler test-call` through the running daemon, the lab and the reference worker."""

from __future__ import annotations

import contextlib
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from .campaigns import cli, lab_delta, running
from .lab_helpers import lab_calls

pytestmark = pytest.mark.e2e
STAGE = re.compile(r"^\s*(\d+\.\d{3})s  (\S+)")


@contextlib.contextmanager
def daemon_up(config: Path, log: Path) -> Iterator[None]:
    """`dialler run`, once its HTTP listener answers (the test call goes through it)."""
    port = yaml.safe_load(config.read_text())["listeners"]["http"]["port"]
    with running(config, log) as daemon:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, daemon.log_tail()
                time.sleep(0.1)
        yield


def stages(output: str) -> list[tuple[str, float]]:
    return [(m[2], float(m[1])) for m in map(STAGE.match, output.splitlines()) if m]


@pytest.fixture
def bot(lab_config_path: Path, tmp_path: Path) -> str:
    name = f"tc-{uuid.uuid4().hex[:6]}"
    path = tmp_path / "bot.yaml"
    path.write_text(yaml.safe_dump({"name": name, "prompt": "Hi {{Name}}"}))
    cli(lab_config_path, "bot", "create", str(path))
    return name


def test_test_call_prints_every_stage(lab_config_path: Path, tmp_path: Path, bot: str) -> None:
    before = lab_calls()
    with daemon_up(lab_config_path, tmp_path / "daemon.log"):
        proc = cli(lab_config_path, "test-call", "--bot", bot, "--to", "+447700900003")
    got = stages(proc.stdout)
    assert [s for s, _t in got] == [
        "originated",
        "ringing",
        "answered",
        "attached",
        "audio",
        "result",
    ]
    times = [t for _s, t in got]
    assert times == sorted(times)
    assert "worker lab-worker" in proc.stdout
    assert "disposition completed" in proc.stdout
    frames = re.search(r"frames sent (\d+), received (\d+)", proc.stdout)
    assert frames and int(frames[1]) > 50 and int(frames[2]) > 50
    assert lab_delta(before, lab_calls()) == {"+447700900003": 1}  # one call, by the carrier


def test_test_call_to_a_rejecting_number_names_the_failed_stage(
    lab_config_path: Path, tmp_path: Path, bot: str
) -> None:
    before = lab_calls()
    with daemon_up(lab_config_path, tmp_path / "daemon.log"):
        proc = cli(lab_config_path, "test-call", "--bot", bot, "--to", "+447700900486", check=False)
    assert proc.returncode == 1
    assert [s for s, _t in stages(proc.stdout)] == ["originated", "failed"]
    assert "rejected: SIP 486" in proc.stdout
    assert lab_delta(before, lab_calls()) == {"+447700900486": 1}


def test_test_call_without_a_daemon_says_so(lab_config_path: Path, bot: str) -> None:
    before = lab_calls()
    proc = cli(lab_config_path, "test-call", "--bot", bot, "--to", "+447700900003", check=False)
    assert proc.returncode == 1
    assert "no daemon is running" in proc.stderr
    assert lab_delta(before, lab_calls()) == {}  # nothing dialled


def test_test_call_unknown_bot_is_refused(lab_config_path: Path, tmp_path: Path) -> None:
    before = lab_calls()
    with daemon_up(lab_config_path, tmp_path / "daemon.log"):
        proc = cli(
            lab_config_path,
            "test-call",
            "--bot",
            "no-such-bot",
            "--to",
            "+447700900003",
            check=False,
        )
    assert proc.returncode == 2
    assert "no bot named 'no-such-bot'" in proc.stderr
    assert lab_delta(before, lab_calls()) == {}
