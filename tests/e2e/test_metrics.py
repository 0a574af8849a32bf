"""/metrics during a lab campaign: the series exist with sane values, a forced stall raises the
stall gauge, and no label value is a phone number."""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from .campaigns import create_campaign, running, wait_for
from .test_campaign_rules import free_port

pytestmark = pytest.mark.e2e
SAMPLE = re.compile(r"^(dialler_[a-z_]+)(\{[^}]*\})? (\S+)$")


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    series: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
            series.setdefault(match[1], []).append((labels, float(match[3])))
    assert not re.search(r'="\+?\d{8,}"', text), "a label value looks like a phone number"
    return series


def value(series: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for lab, v in series.get(name, []) if labels.items() <= lab.items())


def test_metrics_during_a_lab_campaign(lab_config_path: Path, tmp_path: Path) -> None:
    port = yaml.safe_load(lab_config_path.read_text())["listeners"]["metrics"]["port"]
    # …900015 holds 15 s: a call is surely in flight at a gauge refresh (every 5 s).
    numbers = ["+447700900015", "+447700900486", "+447700900503"] + [
        f"+447700918{n:03d}" for n in range(6)
    ]
    campaign = create_campaign(lab_config_path, tmp_path, numbers, concurrency=9)
    with running(lab_config_path, tmp_path / "daemon.log") as daemon:
        # Waited for on the scrape itself: the database gauges show the call in flight.
        deadline = time.monotonic() + 30
        while True:
            try:
                during = scrape(port)
            except OSError:  # the daemon is still starting its listeners
                during = {}
            if value(during, "dialler_calls_in_flight", campaign=campaign) >= 1 and (
                value(during, "dialler_contacts", campaign=campaign) == len(numbers)
            ):
                break
            assert time.monotonic() < deadline, (
                {
                    name: during.get(name)
                    for name in ("dialler_calls_in_flight", "dialler_contacts")
                },
                daemon.log_tail(),
            )
            time.sleep(0.5)
        wait_for(lab_config_path, campaign, "completed", 60, daemon)
        after = scrape(port)
    assert value(during, "dialler_campaign_running", campaign=campaign) == 1
    assert value(during, "dialler_campaign_window_open", campaign=campaign) == 1
    assert value(during, "dialler_campaign_stalled", campaign=campaign) == 0
    assert value(during, "dialler_calls_in_flight", campaign=campaign) >= 1
    assert value(during, "dialler_contacts", campaign=campaign) == len(numbers)
    assert (
        value(during, "dialler_campaign_last_dial_timestamp_seconds", campaign=campaign)
        > time.time() - 120
    )
    assert value(during, "dialler_fleet_slots", state="total") >= 1
    assert value(during, "dialler_ami_connected", asterisk="lab") == 1
    assert value(after, "dialler_originations_total", campaign=campaign) == len(numbers)
    assert value(after, "dialler_attempt_outcomes_total", campaign=campaign) == len(numbers)
    assert (
        value(after, "dialler_attempt_outcomes_total", campaign=campaign, outcome="rejected") == 2
    )
    assert value(after, "dialler_sip_responses_total", code="486") >= 1
    assert value(after, "dialler_originate_to_answer_seconds_count", carrier="lab") >= 7
    assert value(after, "dialler_answer_to_attach_seconds_count") >= 7
    assert value(after, "dialler_claim_duration_seconds_count") >= 1


def test_forced_stall_raises_the_stall_gauge(lab_config_path: Path, tmp_path: Path) -> None:
    config = yaml.safe_load(lab_config_path.read_text())
    config["asterisk"][0]["ami"]["port"] = free_port()  # AMI unreachable: nothing is dialled
    config["scheduler"] = {"stall_after": "2s"}
    metrics_port = config["listeners"]["metrics"]["port"]
    blocked = tmp_path / "blocked.yaml"
    blocked.write_text(yaml.safe_dump(config))
    campaign = create_campaign(blocked, tmp_path, ["+447700919001"])
    with running(blocked, tmp_path / "daemon.log") as daemon:
        deadline = time.monotonic() + 20
        while True:
            try:
                series = scrape(metrics_port)
            except OSError:
                series = {}
            if value(series, "dialler_campaign_stalled", campaign=campaign) == 1:
                break
            assert time.monotonic() < deadline, daemon.log_tail()
            time.sleep(0.5)
        assert value(series, "dialler_ami_connected", asterisk="lab") == 0
        assert value(series, "dialler_campaign_contacts_due", campaign=campaign) == 1
