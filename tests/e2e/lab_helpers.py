"""Helpers for end-to-end tests: the CLI as a user runs it, and the lab carrier's count."""

from __future__ import annotations

import json
import subprocess
import sys


def dialler(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the `dialler` CLI as a user would."""
    proc = subprocess.run([sys.executable, "-m", "dialler.cli", *args], capture_output=True,
                          text=True, timeout=600, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"dialler {' '.join(args)} exited {proc.returncode}: "
                             f"{proc.stderr[-2000:]}")
    return proc


def lab_calls() -> dict[str, int]:
    """Calls the lab carrier received, per dialled number (the independent count)."""
    data = json.loads(dialler("lab", "calls", "--json").stdout)
    by_number: dict[str, int] = data["by_number"]
    return by_number
