"""The chaos suite's short run (bench/chaos.py): a campaign over every lab behaviour while the
daemon is killed three times, PostgreSQL is stopped once and Asterisk is killed once — judged
from the carrier's own count and the report. The daemons' logs land in tmp_path, so the e2e
log check (no task that died unseen) covers a PostgreSQL outage too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

CHAOS = Path(__file__).resolve().parents[2] / "bench" / "chaos.py"


@pytest.mark.timeout(300)
def test_a_campaign_survives_daemon_database_and_asterisk_faults(
    lab_config_path: Path, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(CHAOS),
            "daemon-kill=3",
            "pg-stop=1",
            "asterisk-kill=1",
            "--contacts",
            "100",
            "--every",
            "4",
            "--down",
            "3",
            "--complete-within",
            "120",
            "--json",
            "--work",
            str(tmp_path / "chaos"),
        ],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    output = proc.stdout[proc.stdout.find("{") :] if "{" in proc.stdout else ""
    assert output, f"chaos run printed no verdict (exit {proc.returncode}): {proc.stderr[-3000:]}"
    verdict = json.loads(output)
    assert verdict["double_dials"] == 0, verdict["double_dialled_numbers"]
    assert verdict["attempts_over_max"] == 0, verdict
    assert verdict["contacts_not_final"] == 0, verdict
    assert verdict["campaign_state"] == "completed", verdict
    assert verdict["task_errors"] == 0, verdict
    assert verdict["daemon_exit_statuses"] == [0], verdict
    again = verdict["dialling_again_s"]
    assert again["max"] is not None and again["max"] <= 5.0, again
