"""End-to-end fixtures: the real lab (PostgreSQL 15, Asterisk 22, SIPp carrier) on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dialler.ami.calls import CallTracker
from dialler.ami.client import AmiClient
from dialler.config import Config, load_config

from .lab_helpers import dialler

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
