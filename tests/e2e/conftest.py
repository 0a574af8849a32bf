"""End-to-end fixtures: the real lab (PostgreSQL 15, Asterisk 22, SIPp carrier) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dialler.ami.calls import CallTracker
from dialler.ami.client import AmiClient
from dialler.config import Config, load_config
from dialler.store.pool import connect

from .lab_helpers import assert_no_task_errors, dialler

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


@pytest.fixture(autouse=True)
def no_leftover_campaigns(request: pytest.FixtureRequest) -> None:
    """A campaign left running by an earlier (failed) test would be dialled by this test's
    daemon: cancel whatever still runs in the lab before each test."""
    if "lab_config_path" not in request.fixturenames:
        return
    config: Config = request.getfixturevalue("lab_config")

    async def cancel_all() -> None:
        conn = await connect(config.database.dsn)
        try:
            async with conn.transaction():
                await conn.execute(
                    "UPDATE contacts SET state = 'cancelled' WHERE state IN "
                    "('pending', 'retry_scheduled', 'callback_scheduled') AND campaign_id IN "
                    "(SELECT id FROM campaigns WHERE state IN ('running', 'paused'))"
                )
                await conn.execute(
                    "UPDATE campaigns SET cancelled_at = coalesce(cancelled_at, now()) "
                    "WHERE state IN ('running', 'paused')"
                )
        finally:
            await conn.close()

    asyncio.run(cancel_all())


@pytest.fixture(autouse=True)
def daemon_logs_clean(tmp_path: Path) -> Iterator[None]:
    """Every daemon an e2e test runs logs to a `*.log` file under its tmp_path: after the test,
    none may show a task that died unseen ("Task exception was never retrieved", "Task was
    destroyed but it is pending") — whichever helper started the daemon."""
    yield
    for log in sorted(tmp_path.rglob("*.log")):
        assert_no_task_errors(log.read_text(errors="replace"), f"daemon log {log}")
