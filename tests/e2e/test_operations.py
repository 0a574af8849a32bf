"""Operations end to end: the always-on trigger path and the do-not-call list, through the
daemon's HTTP API and the lab."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialler.config import load_config
from dialler.store.pool import connect

from .campaigns import E2E_PREFIX, cli, create_campaign, running, show, wait_for
from .lab_helpers import lab_calls, run_coroutine

pytestmark = pytest.mark.e2e


def api(
    config: Path, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    loaded = load_config(str(config))
    url = f"http://127.0.0.1:{loaded.listeners.http.port}{path}"
    request = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Authorization": f"Bearer {loaded.api.tokens[0]}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def wait_api(config: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if api(config, "GET", "/healthz")[0] == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, "the daemon's HTTP API did not come up"
        time.sleep(0.1)


def notes_of(config: Path, campaign: str) -> list[str]:
    async def fetch() -> list[str]:
        conn = await connect(load_config(str(config)).database.dsn)
        try:
            rows = await conn.fetch(
                "SELECT notes FROM attempts WHERE campaign_id = $1 AND state = 'final'",
                uuid.UUID(campaign),
            )
            return [r["notes"] or "" for r in rows]
        finally:
            await conn.close()

    return run_coroutine(fetch())


def test_always_on_campaign_fed_by_the_trigger(lab_config_path: Path, tmp_path: Path) -> None:
    name = f"{E2E_PREFIX}always-{uuid.uuid4().hex[:6]}"
    bot = tmp_path / "bot.yaml"
    bot.write_text(yaml.safe_dump({"name": name, "prompt": "Hi {{Name}}, {{call.Plan}}"}))
    cli(lab_config_path, "bot", "create", str(bot))
    spec = tmp_path / "c.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": name,
                "bot": name,
                "numbers": ["+441632960001"],
                "always_on": True,
                "ring_timeout": "3s",
                "window": {
                    "start": "00:00",
                    "end": "24:00",
                    "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                },
            }
        )
    )
    campaign = cli(lab_config_path, "campaign", "create", str(spec)).stdout.strip()
    cli(lab_config_path, "campaign", "start", campaign)  # no CSV: always-on
    numbers = ["+447700900002", "+447700920501"]
    before = lab_calls()
    with running(lab_config_path, tmp_path / "daemon.log") as daemon:
        wait_api(lab_config_path)
        for i, number in enumerate(numbers):
            status, _ = api(
                lab_config_path,
                "POST",
                f"/v1/campaigns/{campaign}/contacts",
                {"phone_number": number, "metadata": {"Name": f"Zed {i}", "Plan": "gold"}},
            )
            assert status in (200, 201)
        deadline = time.monotonic() + 40
        while show(lab_config_path, campaign)["stats"]["done"] < 2:
            assert time.monotonic() < deadline, daemon.log_tail()
            time.sleep(0.5)
        time.sleep(3)
        data = show(lab_config_path, campaign)
    assert data["state"] == "running"  # always-on campaigns never complete
    after = lab_calls()
    assert {n: after.get(n, 0) - before.get(n, 0) for n in numbers} == dict.fromkeys(numbers, 1)
    notes = notes_of(lab_config_path, campaign)
    assert len(notes) == 2
    for note in notes:  # the worker got the variables and nothing was left unresolved
        assert "variables Name,Plan" in note and "unresolved none" in note


def test_suppressed_number_is_never_dialled(lab_config_path: Path, tmp_path: Path) -> None:
    keep, block = "+447700920601", "+447700920602"
    cli(lab_config_path, "suppress", "remove", block, check=False)  # left by an aborted run
    try:
        before = lab_calls()
        # Started with no daemon running: both contacts are due before the number is suppressed.
        campaign = create_campaign(lab_config_path, tmp_path, [keep, block])
        assert show(lab_config_path, campaign)["stats"]["pending"] == 2
        cli(lab_config_path, "suppress", "add", block, "--reason", "asked not to be called")
        with running(lab_config_path, tmp_path / "daemon.log") as daemon:
            wait_for(lab_config_path, campaign, "completed", 40, daemon)
        after = lab_calls()
        assert after.get(block, 0) == before.get(block, 0)  # never dialled
        assert after.get(keep, 0) == before.get(keep, 0) + 1
        calls = {
            c["phone_number"]: c
            for c in json.loads(cli(lab_config_path, "calls", campaign, "--json").stdout)
        }
        assert calls[block]["state"] == "cancelled"
    finally:
        cli(lab_config_path, "suppress", "remove", block, check=False)
