"""`dialler demo` — the README's main job — runs a campaign to completion on the lab."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from .campaigns import lab_delta
from .lab_helpers import dialler, lab_calls

pytestmark = pytest.mark.e2e


def test_demo_runs_a_campaign_and_writes_the_report(lab_config_path: Path) -> None:
    before = lab_calls()
    proc = dialler("demo")
    out = proc.stdout.splitlines()
    assert out[0].startswith("campaign ")
    report = Path(out[-1].removeprefix("report: "))
    with report.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    attempts = next(line for line in out if "attempts to" in line)
    assert attempts.startswith(f"{len(rows)} attempts to 36 contacts")
    assert f"carrier received {len(rows)} calls" in proc.stdout
    outcomes = {r["outcome"] for r in rows}
    assert outcomes == {"answered", "no_answer", "rejected"}
    assert "completed" in proc.stderr  # the live progress reached the end
    # The carrier's count per number: exactly the attempts in the report, none dialled twice.
    per_number = Counter(r["phone_number"] for r in rows)
    assert lab_delta(before, lab_calls()) == dict(per_number)
