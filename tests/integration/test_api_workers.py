"""The daemon's worker endpoints through a real HTTP listener and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiohttp
import pytest

from dialler.api.server import make_app, start
from dialler.config import parse_config
from dialler.store.pool import create_pool
from dialler.store.queries import load

from .conftest import free_port

pytestmark = pytest.mark.integration
TOKEN = "t" * 24
F = load("fleet.sql")


@pytest.fixture
async def api(db_dsn: str, tmp_path: Any) -> AsyncIterator[tuple[str, Any, list[Any]]]:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# workers\n{TOKEN}\n")
    config = parse_config({
        "database": {"dsn": db_dsn},
        "asterisk": [{"name": "pbx", "ami": {"username": "u", "secret_env": "S"}}],
        "carriers": [{"name": "lab"}],
        "api": {"tokens_file": str(tokens)},
        "fleet": {"heartbeat_timeout": "1s"},
    }, "test", env={"S": "secret"})
    pool = await create_pool(db_dsn)
    results: list[Any] = []

    async def on_result(attempt_id: uuid.UUID, disposition: str, callback_at: datetime | None,
                        notes: str | None) -> str:
        results.append((attempt_id, disposition, callback_at, notes))
        return "final"

    port = free_port()
    runner = await start(make_app(config, pool, on_result), "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}", pool, results
    await runner.cleanup()
    await pool.close()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_register_heartbeat_and_lapse(api: tuple[str, Any, list[Any]]) -> None:
    url, pool, _ = api
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/v1/workers", headers=AUTH, json={
                "name": "w1", "host": "127.0.0.1", "port": 57001, "capacity": 4}) as r:
            assert r.status == 200
            assert (await r.json())["name"] == "w1"
        async with pool.acquire() as conn:
            assert [(r["name"], r["free"]) for r in await conn.fetch(F["fleet_free"], 1.0)] == [
                ("w1", 4)]
        await asyncio.sleep(1.2)  # heartbeat lapsed: out of rotation
        async with pool.acquire() as conn:
            assert await conn.fetch(F["fleet_free"], 1.0) == []
        async with http.post(f"{url}/v1/workers/w1/heartbeat", headers=AUTH) as r:
            assert r.status == 204
        async with pool.acquire() as conn:
            assert len(await conn.fetch(F["fleet_free"], 1.0)) == 1  # back in rotation
        async with http.post(f"{url}/v1/workers/nobody/heartbeat", headers=AUTH) as r:
            assert r.status == 404


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401), ({"Authorization": "Bearer wrong-token-wrong-token"}, 401),
    ({"Authorization": TOKEN}, 401), (AUTH, 200)])
async def test_token_required(api: tuple[str, Any, list[Any]], headers: dict[str, str],
                              status: int) -> None:
    url, _, _ = api
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/v1/workers", headers=headers, json={
                "name": "w", "host": "127.0.0.1", "port": 1, "capacity": 1}) as r:
            assert r.status == status
        async with http.get(f"{url}/healthz") as r:
            assert r.status == 200


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "w", "host": "h", "port": "1", "capacity": 1}, "port"),
    ({"name": "w", "host": "h", "port": 1, "capacity": 1, "x": 1}, "x"),
    ({"name": "w", "host": "h", "port": 1}, "capacity"),
    ({"name": "", "host": "h", "port": 1, "capacity": 1}, "name")])
async def test_bad_registration_names_the_field(api: tuple[str, Any, list[Any]],
                                                body: dict[str, Any], field: str) -> None:
    url, _, _ = api
    async with aiohttp.ClientSession() as http, \
            http.post(f"{url}/v1/workers", headers=AUTH, json=body) as r:
        assert r.status == 422
        assert (await r.json())["error"]["field"] == field


async def test_context_renders_the_prompt_and_result_is_checked(
        api: tuple[str, Any, list[Any]]) -> None:
    url, pool, results = api
    async with pool.acquire() as conn:
        bot = await conn.fetchval("INSERT INTO bots (name, prompt) VALUES ('b', "
                                  "'Hello {{Name}}, {{call.Plan}} {{Missing}}') RETURNING id")
        campaign = await conn.fetchval("INSERT INTO campaigns (name, bot_id) VALUES ('c', $1) "
                                       "RETURNING id", bot)
        contact = await conn.fetchval(
            "INSERT INTO contacts (campaign_id, phone_number, variables) VALUES "
            "($1, '+447700900001', '{\"Name\": \"Ann {{x}}\", \"Plan\": \"gold\"}') RETURNING id",
            campaign)
        attempt = uuid.uuid4()
        await conn.execute(
            "INSERT INTO attempts (id, contact_id, campaign_id, attempt_number, daemon_id, "
            "deadline_at, caller_id) VALUES ($1, $2, $3, 1, 'd', now(), '+441632960001')",
            attempt, contact, campaign)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/v1/calls/{attempt}/context", headers=AUTH) as r:
            context = await r.json()
        assert context["prompt"] == "Hello Ann {{x}}, gold "
        assert context["unresolved"] == ["Missing"]
        assert context["variables"] == {"Name": "Ann {{x}}", "Plan": "gold"}
        async with http.get(f"{url}/v1/calls/{uuid.uuid4()}/context", headers=AUTH) as r:
            assert r.status == 404
        async with http.post(f"{url}/v1/calls/{attempt}/result", headers=AUTH, json={
                "disposition": "call_me_later", "callback_at": "2030-01-01T10:00:00Z"}) as r:
            assert r.status == 204
        async with http.post(f"{url}/v1/calls/{attempt}/result", headers=AUTH,
                             json={"disposition": "abandoned"}) as r:
            assert r.status == 422  # decided by the dialler, not reported by a bot
        async with http.post(f"{url}/v1/calls/{attempt}/result", headers=AUTH,
                             json={"disposition": "x", "callback_at": "tomorrow"}) as r:
            assert (await r.json())["error"]["field"] == "callback_at"
    assert results[0][1] == "call_me_later"
    assert results[0][2] is not None and results[0][2].year == 2030
