"""Test calls refused before anything is dialled, through the real HTTP listener, a real
PostgreSQL and the real engine (`Engine.test_call`).

**Faked: Asterisk** (`FakeTracker`: an AMI link that is up or down and cannot place the call —
every Originate fails as if the link dropped before it went out). These refusals need an
Asterisk that is up and must not be reached. The real thing, with the carrier's count:
tests/e2e/test_test_call.py (test calls on the lab) and tests/e2e/test_security.py (a
suppressed number)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dialler.ami.client import AmiUnavailable, OriginateRequest
from dialler.store import fleet

from ...api_support import Api, serve_api

pytestmark = pytest.mark.stand_in


@dataclass
class FakeAmi:
    """What the engine asks of an AMI connection before dialling."""

    config: Any  # the config's `asterisk[]` entry
    ready: bool = True
    name: str = "pbx"


@dataclass
class FakeTracker:
    """An Asterisk that is up (or not) and cannot place the call: every dial fails as if the
    link dropped before the Originate went out, so the refusals before it can be tested."""

    ami: FakeAmi
    on_stage: Any = None
    dialled: list[str] = field(default_factory=list)
    calls: dict[str, Any] = field(default_factory=dict)  # the calls it follows: none

    async def dial(self, request: OriginateRequest) -> Any:
        self.dialled.append(request.attempt_id)
        raise AmiUnavailable("AMI pbx: not connected")


def tracker(api: Api) -> FakeTracker:
    fake: FakeTracker = api.engine.trackers["pbx"]  # type: ignore[assignment]
    return fake


@pytest.fixture
async def api(db_dsn: str, tmp_path: Path) -> AsyncIterator[Api]:
    make = lambda asterisk: {"pbx": FakeTracker(FakeAmi(asterisk))}  # noqa: E731
    async with serve_api(db_dsn, tmp_path, make) as served:
        yield served


async def _bot(api: Api) -> None:
    await api.execute("INSERT INTO bots (name, prompt) VALUES ('renewals-bot', 'Hello')")


async def _free(api: Api) -> list[tuple[str, int]]:
    async with api.pool.acquire() as conn:
        return [(w.name, w.free) for w in await fleet.fleet_free(conn, 1.0)]


async def test_test_call_of_an_unknown_bot(api: Api) -> None:
    await api.refused(
        "POST", "/v1/test-calls", {"bot": "nobody", "to": "+447700900001"}, 404, "not_found", "bot"
    )


async def test_test_call_without_a_free_worker(api: Api) -> None:
    await _bot(api)
    await api.refused(
        "POST", "/v1/test-calls", {"bot": "renewals-bot", "to": "+447700900001"}, 503, "no_capacity"
    )
    assert tracker(api).dialled == []


async def test_test_call_to_a_number_in_a_call(api: Api) -> None:
    await _bot(api)
    await api.execute("""
        WITH c AS (INSERT INTO campaigns (name, bot_id, state)
                   SELECT 'test-call: renewals-bot', id, 'paused' FROM bots RETURNING id)
        INSERT INTO contacts (campaign_id, phone_number, state, next_due_at)
        SELECT id, '+447700900001', 'dialing', NULL FROM c""")
    await api.refused(
        "POST",
        "/v1/test-calls",
        {"bot": "renewals-bot", "to": "07700 900001"},
        409,
        "in_progress",
        "to",
    )


async def test_test_call_while_ami_is_down(api: Api) -> None:
    await _bot(api)
    tracker(api).ami.ready = False
    await api.refused(
        "POST", "/v1/test-calls", {"bot": "renewals-bot", "to": "+447700900001"}, 503, "unavailable"
    )
    tracker(api).ami.ready = True  # up, but the Originate cannot go out: nothing is left held
    await api.call(
        "POST", "/v1/workers", {"name": "w1", "host": "127.0.0.1", "port": 57001, "capacity": 1}
    )
    await api.refused(
        "POST", "/v1/test-calls", {"bot": "renewals-bot", "to": "+447700900001"}, 503, "unavailable"
    )
    assert len(tracker(api).dialled) == 1
    assert await _free(api) == [("w1", 1)]
