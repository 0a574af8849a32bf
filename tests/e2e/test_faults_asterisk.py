"""Asterisk refusing an Originate (the endpoint not there: what a just-restarted or reloading
Asterisk answers) is our side's failure: the contact is requeued and uses no attempt, up to
`MAX_REQUEUES` times in a row; the carrier never sees a call."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import yaml

from dialler.engine.engine import MAX_REQUEUES

from .campaigns import ALL_DAYS, cli, create_campaign, running, show, wait_for
from .lab_helpers import lab_calls

pytestmark = pytest.mark.e2e

GHOST_CALLER_ID = "+441632960099"


def config_with_a_ghost_carrier(lab_config_path: Path, tmp_path: Path) -> Path:
    """The lab config plus a carrier whose PJSIP endpoint Asterisk does not have."""
    data = yaml.safe_load(lab_config_path.read_text())
    data["carriers"].append(
        {"name": "ghost", "endpoint": "ghost", "max_channels": 5, "calls_per_second": 5}
    )
    data["numbers"].append({"number": GHOST_CALLER_ID, "carrier": "ghost", "enabled": True})
    path = tmp_path / "ghost.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.timeout(180)
def test_an_originate_asterisk_refuses_is_requeued_without_using_an_attempt(
    lab_config_path: Path, tmp_path: Path
) -> None:
    config = config_with_a_ghost_carrier(lab_config_path, tmp_path)
    number = "+447700912901"
    before = lab_calls()
    campaign = create_campaign(
        config,
        tmp_path,
        [number],
        start=False,
        retry={"max_attempts": 1, "delay": "1s", "on_system": [], "on_custom": []},
    )
    name = show(config, campaign)["name"]
    spec = tmp_path / "ghost-numbers.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": name,
                "bot": name,
                "numbers": [GHOST_CALLER_ID],
                "concurrency": 5,
                "window": {"start": "00:00", "end": "24:00", "days": ALL_DAYS, "timezone": "UTC"},
                "ring_timeout": "3s",
                "retry": {"max_attempts": 1, "delay": "1s", "on_system": [], "on_custom": []},
            }
        )
    )
    cli(config, "campaign", "edit", campaign, str(spec))
    # A daemon on the plain lab config disables numbers it does not have (and a disabled
    # number stays so until enabled): enable this one, as an operator would.
    cli(config, "number", "enable", GHOST_CALLER_ID)
    cli(config, "campaign", "start", campaign)
    with running(config, tmp_path / "daemon.log"):
        wait_for(config, campaign, "completed", 120)
    text = cli(config, "report", "attempts", campaign).stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    actions = [row["next_action"] for row in rows]
    # Refused MAX_REQUEUES times without using the contact's one attempt, then the refusal is
    # an ordinary `error` attempt (an endpoint refused for good must not spin).
    assert actions == ["requeue"] * MAX_REQUEUES + ["done"], rows
    assert {(row["outcome"], row["sip_code"]) for row in rows} == {("error", "")}
    assert lab_calls().get(number, 0) == before.get(number, 0)  # the carrier saw nothing
