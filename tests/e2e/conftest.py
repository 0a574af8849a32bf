"""End-to-end fixtures: the real lab (PostgreSQL 15, Asterisk 22, SIPp carrier) on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dialler.ami.calls import CallTracker
from dialler.ami.client import AmiClient
from dialler.config import Config, load_config
from dialler.store.pool import connect

from .campaigns import CREATED, E2E_PREFIX, cancel_campaign
from .lab_helpers import assert_no_task_errors, dialler, run_coroutine

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def lab_config_path() -> Path:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    proc = dialler("lab", "up")
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def lab_config(lab_config_path: Path) -> Config:
    return load_config(str(lab_config_path))


@pytest.fixture
async def tracker(lab_config: Config) -> AsyncIterator[CallTracker]:
    ami = AmiClient(lab_config.asterisk[0])
    await ami.start()
    await ami.wait_ready(15)
    yield CallTracker(ami)
    await ami.close()


@pytest.fixture(scope="session")
def cancel_our_leftovers(lab_config_path: Path, lab_config: Config) -> None:
    """Campaigns an earlier, interrupted e2e session left running or paused (named with the
    e2e prefix) would be dialled by this session's daemons: cancel them once. Nobody else's
    campaign is touched — but one that is running with contacts to dial would be dialled by
    the tests' daemons (and its calls counted by the carrier), so the session stops, naming it."""

    async def scan() -> tuple[list[str], list[str]]:
        conn = await connect(lab_config.database.dsn)
        try:
            ours = await conn.fetch(
                "SELECT id FROM campaigns WHERE state IN ('running', 'paused') "
                "AND cancelled_at IS NULL AND name LIKE $1 || '%'",
                E2E_PREFIX,
            )
            others = await conn.fetch(
                "SELECT c.name FROM campaigns c WHERE c.state = 'running' "
                "AND c.cancelled_at IS NULL AND c.name NOT LIKE $1 || '%' AND EXISTS ("
                "SELECT 1 FROM contacts ct WHERE ct.campaign_id = c.id AND ct.state IN "
                "('pending', 'retry_scheduled', 'callback_scheduled', 'dialing', 'connected'))",
                E2E_PREFIX,
            )
        finally:
            await conn.close()
        return [str(r["id"]) for r in ours], [str(r["name"]) for r in others]

    ours, others = run_coroutine(scan())
    for campaign_id in ours:
        cancel_campaign(str(lab_config_path), campaign_id)
    if others:
        pytest.fail(
            "the lab database holds running campaigns these tests did not create, which their "
            f"daemons would dial: {sorted(others)}; pause or cancel them, then run again",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def cancel_campaigns_of_the_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each lab test, the campaigns it created that still run (an always-on one, one a
    failed test left behind) are cancelled through the CLI, as an operator would: the next
    test's daemon must not dial them. Only this test's campaigns are touched."""
    if "lab_config_path" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("cancel_our_leftovers")
    config_path: Path = request.getfixturevalue("lab_config_path")
    CREATED.clear()
    yield
    for campaign_id in sorted(CREATED):
        cancel_campaign(str(config_path), campaign_id)
    CREATED.clear()


@pytest.fixture(autouse=True)
def daemon_logs_clean(tmp_path: Path) -> Iterator[None]:
    """Every daemon an e2e test runs logs to a `*.log` file under its tmp_path: after the test,
    none may show a task that died unseen ("Task exception was never retrieved", "Task was
    destroyed but it is pending") — whichever helper started the daemon."""
    yield
    for log in sorted(tmp_path.rglob("*.log")):
        assert_no_task_errors(log.read_text(errors="replace"), f"daemon log {log}")
