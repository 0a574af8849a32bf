"""The daemon's worker endpoints and test calls through a real HTTP listener, a real PostgreSQL
and the real engine (`Engine.record_result`, `Engine.test_call`), with an Asterisk stand-in
that is up or down and never dials."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from dialler.ami.client import AmiUnavailable, OriginateRequest
from dialler.api.server import make_app, start
from dialler.config import parse_config
from dialler.engine.engine import Engine
from dialler.fleet.worker import CallStats, ControlClient
from dialler.store import fleet
from dialler.store.pool import create_pool

from .conftest import free_port

pytestmark = pytest.mark.integration
TOKEN = "t" * 24
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CALLER_ID = "+441632960001"


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


@dataclass
class Api:
    url: str
    pool: Any
    tracker: FakeTracker
    http: aiohttp.ClientSession

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(method, self.url + path, json=body, headers=AUTH) as r:
            data = await r.json() if r.content_type == "application/json" else await r.text()
            return r.status, data

    async def refused(
        self, method: str, path: str, body: Any, status: int, code: str, field: str | None = None
    ) -> dict[str, Any]:
        got, data = await self.call(method, path, body)
        assert (got, data["error"]["code"]) == (status, code), data
        error: dict[str, Any] = data["error"]
        assert error.get("field") == field, error
        return error

    async def fetchrow(self, query: str, *args: Any) -> Any:
        async with self.pool.acquire() as conn:
            return await conn.fetchrow(query, *args)

    async def execute(self, query: str, *args: Any) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(query, *args)


@pytest.fixture
async def api(db_dsn: str, tmp_path: Any) -> AsyncIterator[Api]:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# workers\n{TOKEN}\n")
    config = parse_config(
        {
            "database": {"dsn": db_dsn},
            "asterisk": [{"name": "pbx", "ami": {"username": "u", "secret_env": "S"}}],
            "listeners": {"agi": {"secret_env": "A"}},
            "carriers": [{"name": "lab"}],
            "numbers": [{"number": CALLER_ID, "carrier": "lab"}],
            "api": {"tokens_file": str(tokens)},
            "fleet": {"heartbeat_timeout": "1s"},
        },
        "test",
        env={"S": "secret", "A": "agi-secret-0123456789"},
    )
    pool = await create_pool(db_dsn)
    tracker = FakeTracker(FakeAmi(config.asterisk[0]))
    engine = Engine(config, pool, {"pbx": tracker}, "api-test")  # type: ignore[dict-item]
    port = free_port()
    runner = await start(
        make_app(config, pool, engine.record_result, engine.test_call), "127.0.0.1", port
    )
    async with aiohttp.ClientSession() as http:
        yield Api(f"http://127.0.0.1:{port}", pool, tracker, http)
    await runner.cleanup()
    await pool.close()


async def _free(api: Api) -> list[tuple[str, int]]:
    async with api.pool.acquire() as conn:
        return [(w.name, w.free) for w in await fleet.fleet_free(conn, 1.0)]


async def test_register_heartbeat_and_lapse(api: Api) -> None:
    status, data = await api.call(
        "POST", "/v1/workers", {"name": "w1", "host": "127.0.0.1", "port": 57001, "capacity": 4}
    )
    assert (status, data) == (200, {"name": "w1", "heartbeat_timeout": 1.0})
    assert await _free(api) == [("w1", 4)]
    await asyncio.sleep(1.2)  # heartbeat lapsed: out of rotation
    assert await _free(api) == []
    assert (await api.call("POST", "/v1/workers/w1/heartbeat"))[0] == 204
    assert await _free(api) == [("w1", 4)]  # back in rotation
    error = await api.refused(
        "POST", "/v1/workers/nobody/heartbeat", None, 404, "not_found", "name"
    )
    assert "register first" in error["message"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-token-wrong-token"}, 401),
        ({"Authorization": TOKEN}, 401),
        (AUTH, 200),
    ],
)
async def test_token_required(api: Api, headers: dict[str, str], status: int) -> None:
    async with api.http.post(
        f"{api.url}/v1/workers",
        headers=headers,
        json={"name": "w", "host": "127.0.0.1", "port": 1, "capacity": 1},
    ) as r:
        assert r.status == status
    async with api.http.get(f"{api.url}/healthz") as r:
        assert r.status == 200


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"name": "w", "host": "h", "port": "1", "capacity": 1}, "bad_field", "port"),
        ({"name": "w", "host": "h", "port": 1, "capacity": 1, "x": 1}, "unknown_field", "x"),
        ({"name": "w", "host": "h", "port": 1}, "missing_field", "capacity"),
        ({"name": "", "host": "h", "port": 1, "capacity": 1}, "bad_field", "name"),
    ],
)
async def test_bad_registration_names_the_field(
    api: Api, body: dict[str, Any], code: str, field: str
) -> None:
    await api.refused("POST", "/v1/workers", body, 422, code, field)


async def _attempt(api: Api, *, state: str = "dialing") -> uuid.UUID:
    """A campaign with a bot, one contact and one attempt of it in `state`."""
    attempt = uuid.uuid4()
    async with api.pool.acquire() as conn:
        bot = await conn.fetchval(
            "INSERT INTO bots (name, prompt) VALUES ('b', "
            "'Hello {{Name}}, {{call.Plan}} {{Missing}}') RETURNING id"
        )
        campaign = await conn.fetchval(
            "INSERT INTO campaigns (name, bot_id, state, started_at) "
            "VALUES ('c', $1, 'running', now()) RETURNING id",
            bot,
        )
        contact = await conn.fetchval(
            "INSERT INTO contacts (campaign_id, phone_number, variables, state, attempts_used, "
            "next_due_at) VALUES ($1, '+447700900001', "
            '\'{"Name": "Ann {{x}}", "Plan": "gold"}\', \'connected\', 1, NULL) '
            "RETURNING id",
            campaign,
        )
        await conn.execute(
            "INSERT INTO attempts (id, contact_id, campaign_id, attempt_number, daemon_id, "
            "deadline_at, caller_id, state, answered_at) "
            "VALUES ($1, $2, $3, 1, 'api-test', now() + interval '1 min', $4, $5, now())",
            attempt,
            contact,
            campaign,
            CALLER_ID,
            state,
        )
    return attempt


async def test_context_renders_the_prompt(api: Api) -> None:
    attempt = await _attempt(api)
    status, context = await api.call("GET", f"/v1/calls/{attempt}/context")
    assert status == 200
    assert context["prompt"] == "Hello Ann {{x}}, gold "
    assert context["unresolved"] == ["Missing"]
    assert context["variables"] == {"Name": "Ann {{x}}", "Plan": "gold"}
    assert (context["attempt_id"], context["caller_id"]) == (str(attempt), CALLER_ID)
    await api.refused("GET", f"/v1/calls/{uuid.uuid4()}/context", None, 404, "not_found")
    await api.refused("GET", "/v1/calls/not-a-uuid/context", None, 404, "not_found")


async def test_result_of_a_live_call_is_stored_with_its_audio(api: Api) -> None:
    attempt = await _attempt(api)
    path = f"/v1/calls/{attempt}/result"
    status, _ = await api.call(
        "POST",
        path,
        {
            "disposition": "call_me_later",
            "callback_at": "2030-01-01T10:00:00Z",
            "notes": "frames sent 1, received 2 (text, never parsed)",
            "audio": {"frames_sent": 150, "frames_received": 148},
        },
    )
    assert status == 204
    row = await api.fetchrow(
        "SELECT state, disposition, callback_at, notes, "
        "audio_frames_sent, audio_frames_received FROM attempts "
        "WHERE id = $1",
        attempt,
    )
    assert row["state"] == "dialing"  # the call is up: the result decides it at hang-up
    assert (row["disposition"], row["callback_at"]) == (
        "call_me_later",
        datetime(2030, 1, 1, 10, tzinfo=UTC),
    )
    assert row["notes"] == "frames sent 1, received 2 (text, never parsed)"
    assert (row["audio_frames_sent"], row["audio_frames_received"]) == (150, 148)

    status, _ = await api.call("POST", path, {"disposition": "completed"})  # no audio: NULL
    assert status == 204
    row = await api.fetchrow(
        "SELECT disposition, notes, audio_frames_sent FROM attempts WHERE id = $1", attempt
    )
    assert tuple(row) == ("completed", None, None)


async def test_result_after_the_hang_up_decides_the_attempt(api: Api) -> None:
    attempt = await _attempt(api, state="wrapping")
    await api.execute(
        "UPDATE attempts SET ended_at = now(), duration_ms = 3000, "
        "outcome = 'answered', sip_code = 200 WHERE id = $1",
        attempt,
    )
    await api.execute("UPDATE contacts SET state = 'wrapping'")
    path = f"/v1/calls/{attempt}/result"
    status, _ = await api.call("POST", path, {"disposition": "completed"})
    assert status == 204
    row = await api.fetchrow(
        "SELECT a.state, a.disposition, a.next_action, c.state AS contact "
        "FROM attempts a JOIN contacts c ON c.id = a.contact_id "
        "WHERE a.id = $1",
        attempt,
    )
    assert tuple(row) == ("final", "completed", "done", "done")
    error = await api.refused("POST", path, {"disposition": "completed"}, 409, "already_final")
    assert error["message"] == "this call's result is already final"


async def test_result_of_an_unknown_call(api: Api) -> None:
    for ref in (str(uuid.uuid4()), "not-a-uuid"):
        await api.refused(
            "POST", f"/v1/calls/{ref}/result", {"disposition": "completed"}, 404, "not_found"
        )


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"disposition": "abandoned"}, "bad_field", "disposition"),
        ({"disposition": ""}, "bad_field", "disposition"),
        ({"disposition": "x", "callback_at": "tomorrow"}, "bad_field", "callback_at"),
        ({"disposition": "x", "callback_at": "2030-01-01T10:00:00"}, "bad_field", "callback_at"),
        ({"disposition": "x", "notes": 5}, "bad_field", "notes"),
        ({"disposition": "x", "audio": [1, 2]}, "bad_field", "audio"),
        (
            {"disposition": "x", "audio": {"frames_sent": 1}},
            "missing_field",
            "audio.frames_received",
        ),
        (
            {"disposition": "x", "audio": {"frames_sent": -1, "frames_received": 0}},
            "bad_field",
            "audio.frames_sent",
        ),
        (
            {"disposition": "x", "audio": {"frames_sent": 1, "frames_received": "2"}},
            "bad_field",
            "audio.frames_received",
        ),
        (
            {"disposition": "x", "audio": {"frames_sent": 1, "frames_received": 2, "lost": 0}},
            "unknown_field",
            "audio.lost",
        ),
        ({"disposition": "x", "frames": 1}, "unknown_field", "frames"),
    ],
)
async def test_bad_result_names_the_field(
    api: Api, body: dict[str, Any], code: str, field: str
) -> None:
    attempt = await _attempt(api)
    await api.refused("POST", f"/v1/calls/{attempt}/result", body, 422, code, field)
    row = await api.fetchrow("SELECT disposition FROM attempts WHERE id = $1", attempt)
    assert row["disposition"] is None


async def test_the_reference_workers_result_is_accepted(api: Api) -> None:
    attempt = await _attempt(api)
    stats = CallStats(
        str(attempt),
        datetime.now(UTC),
        frames_sent=150,
        frames_received=148,
        ended_by="talk_time",
        duration=3.0,
    )
    control = ControlClient(api.url, TOKEN)
    try:
        await control.post_result(
            str(attempt),
            {"disposition": "completed", "notes": stats.notes(), "audio": stats.audio()},
        )
    finally:
        await control.close()
    row = await api.fetchrow(
        "SELECT notes, audio_frames_sent, audio_frames_received FROM attempts WHERE id = $1",
        attempt,
    )
    assert (row["audio_frames_sent"], row["audio_frames_received"]) == (150, 148)
    assert row["notes"] == stats.notes()


# --- test calls: the refusals before anything is dialled ------------------------------------


async def _bot(api: Api) -> None:
    await api.execute("INSERT INTO bots (name, prompt) VALUES ('renewals-bot', 'Hello')")


async def test_test_call_of_an_unknown_bot(api: Api) -> None:
    await api.refused(
        "POST", "/v1/test-calls", {"bot": "nobody", "to": "+447700900001"}, 404, "not_found", "bot"
    )


async def test_test_call_without_a_free_worker(api: Api) -> None:
    await _bot(api)
    await api.refused(
        "POST", "/v1/test-calls", {"bot": "renewals-bot", "to": "+447700900001"}, 503, "no_capacity"
    )
    assert api.tracker.dialled == []


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
    api.tracker.ami.ready = False
    await api.refused(
        "POST", "/v1/test-calls", {"bot": "renewals-bot", "to": "+447700900001"}, 503, "unavailable"
    )
    api.tracker.ami.ready = True  # up, but the Originate cannot go out: nothing is left held
    await api.call(
        "POST", "/v1/workers", {"name": "w1", "host": "127.0.0.1", "port": 57001, "capacity": 1}
    )
    await api.refused(
        "POST", "/v1/test-calls", {"bot": "renewals-bot", "to": "+447700900001"}, 503, "unavailable"
    )
    assert len(api.tracker.dialled) == 1
    assert await _free(api) == [("w1", 1)]


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"bot": "renewals-bot", "to": "12"}, "bad_field", "to"),
        (
            {"bot": "renewals-bot", "to": "+447700900001", "from": "+441632960999"},
            "bad_field",
            "from",
        ),
        (
            {"bot": "renewals-bot", "to": "+447700900001", "ring_timeout": 0},
            "bad_field",
            "ring_timeout",
        ),
        ({"bot": "renewals-bot"}, "missing_field", "to"),
    ],
)
async def test_bad_test_call_names_the_field(
    api: Api, body: dict[str, Any], code: str, field: str
) -> None:
    await api.refused("POST", "/v1/test-calls", body, 422, code, field)
