"""The systemd unit files: `systemd-analyze verify` accepts them, and they say what the design
asks (Type=notify, watchdog, SIGHUP reload, a stop timeout above the drain, hardening).

`systemd-analyze verify` checks that ExecStart's binary exists; /opt/dialler is the install
path, absent here, so each unit is verified as a copy whose ExecStart binary is /bin/true.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dialler.app import DRAIN_TIMEOUT

UNITS = Path(__file__).resolve().parents[2] / "systemd"
INSTALLED = "/opt/dialler/.venv/bin/dialler"

HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallFilter": "@system-service",
    "CapabilityBoundingSet": "",
}


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections of a unit file: key → every value it is given (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def verify(unit: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is not installed (Debian: package systemd)")
    text = unit.read_text()
    assert INSTALLED in text
    copy = tmp_path / unit.name
    copy.write_text(text.replace(INSTALLED, "/bin/true"))
    return subprocess.run(
        [analyze, "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("name", ["dialler.service", "dialler-worker.service"])
def test_systemd_analyze_verify_passes(name: str, tmp_path: Path) -> None:
    proc = verify(UNITS / name, tmp_path)
    # Unrelated system units may draw warnings on some machines: only ours must be clean.
    ours = [line for line in proc.stderr.splitlines() if name in line]
    assert proc.returncode == 0 and not ours, proc.stderr


def test_daemon_unit_is_notify_with_watchdog_and_reload() -> None:
    service = parse_unit(UNITS / "dialler.service")["Service"]
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert service["ExecStart"] == [f"{INSTALLED} run"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["WatchdogSec"] == ["30s"]
    assert service["Restart"] == ["on-failure"]
    assert service["User"] == ["dialler"]
    assert "DIALLER_CONFIG=/etc/dialler/dialler.yaml" in service["Environment"]


def test_daemon_unit_stop_timeout_covers_the_drain() -> None:
    service = parse_unit(UNITS / "dialler.service")["Service"]
    assert service["KillMode"] == ["mixed"]
    assert service["KillSignal"] == ["SIGTERM"]
    assert int(service["TimeoutStopSec"][0]) == 150
    assert int(service["TimeoutStopSec"][0]) > DRAIN_TIMEOUT


@pytest.mark.parametrize("name", ["dialler.service", "dialler-worker.service"])
def test_units_are_hardened(name: str) -> None:
    service = parse_unit(UNITS / name)["Service"]
    for key, value in HARDENING.items():
        assert service.get(key) == [value], f"{name}: {key}"
    # No writable path but, for the daemon, its own state directory (the results journal,
    # docs/reliability.md), private to its user; the worker writes nothing.
    assert "ReadWritePaths" not in service
    if name == "dialler.service":
        assert (service["StateDirectory"], service["StateDirectoryMode"]) == (["dialler"], ["0700"])
    else:
        assert "StateDirectory" not in service


def test_units_document_the_install_path() -> None:
    for name in ("dialler.service", "dialler-worker.service"):
        assert re.search(r"^#.*/opt/dialler", (UNITS / name).read_text(), re.MULTILINE), name
    docs = (UNITS.parent / "docs" / "operations.md").read_text()
    assert INSTALLED in docs and "systemd-analyze verify" in docs
