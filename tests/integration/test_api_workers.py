"""The daemon's worker endpoints through a real HTTP listener, a real PostgreSQL and the real
engine (`Engine.record_result`): registration, heartbeats, the call's context, results; a test
call's bad fields. No Asterisk behind the engine: the test calls' refusals that need one up (with
a stand-in) are in tests/unit/stand_ins/test_api_test_calls.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dialler.fleet.worker import CallStats, ControlClient
from dialler.store import fleet

from ..api_support import AUTH, CALLER_ID, TOKEN, Api, serve_api

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(db_dsn: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with serve_api(db_dsn, tmp_path) as served:
        yield served


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


async def test_a_worker_that_leaves_is_out_of_rotation_at_once(api: Api) -> None:
    await api.call(
        "POST", "/v1/workers", {"name": "w1", "host": "127.0.0.1", "port": 57001, "capacity": 4}
    )
    assert await _free(api) == [("w1", 4)]
    assert (await api.call("POST", "/v1/workers/w1/leave"))[0] == 204
    assert await _free(api) == []  # no call reserved for it any more, before its port closes
    assert (await api.call("POST", "/v1/workers/w1/heartbeat"))[0] == 204
    assert await _free(api) == [("w1", 4)]  # a heartbeat brings it back
    await api.refused("POST", "/v1/workers/nobody/leave", None, 404, "not_found", "name")


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
