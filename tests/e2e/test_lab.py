"""`dialler lab up` is idempotent; `dialler lab down` leaves nothing running or mounted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dialler.lab.lab import DEFAULT_STATE_DIR, LabPorts

from .lab_helpers import dialler

pytestmark = pytest.mark.e2e


def lab_processes(state_dir: Path) -> list[str]:
    """Command lines of live processes that belong to the lab."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        try:
            root = os.readlink(proc / "root")  # Asterisk runs chrooted into the state dir
        except OSError:
            root = "/"
        if state != "Z" and (str(state_dir) in cmd or root.startswith(str(state_dir))):
            found.append(cmd)
    return found


def lab_mounts(state_dir: Path) -> list[str]:
    return [
        line for line in Path("/proc/mounts").read_text().splitlines() if str(state_dir) in line
    ]


def test_up_is_idempotent_and_down_leaves_nothing(lab_config_path: Path) -> None:
    state = json.loads((DEFAULT_STATE_DIR / "state.json").read_text())
    second = dialler("lab", "up")
    assert Path(second.stdout.strip().splitlines()[-1]) == lab_config_path
    assert json.loads((DEFAULT_STATE_DIR / "state.json").read_text()) == state  # no restart

    status = json.loads(dialler("lab", "status", "--json").stdout)
    assert status["up"] is True
    assert status["asterisk"]["version"].startswith("22.")
    assert status["asterisk"]["ami_port"] == LabPorts().ami

    dialler("lab", "down")
    try:
        assert lab_processes(DEFAULT_STATE_DIR) == []
        assert lab_mounts(DEFAULT_STATE_DIR) == []
        for pid in state.values():
            assert (
                not Path(f"/proc/{pid}/cmdline").exists()
                or Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
            )
        down = dialler("lab", "status", "--json", check=False)
        assert down.returncode == 1
        assert json.loads(down.stdout)["up"] is False
    finally:
        again = dialler("lab", "up")  # leave the lab up for the rest of the session
    assert Path(again.stdout.strip().splitlines()[-1]) == lab_config_path
