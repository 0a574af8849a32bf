"""Issue 11 through a real HTTP listener (`api.http.serve`: its timeouts and connection cap)
and a real PostgreSQL: scoped tokens (operator, viewer, worker), a worker the config defines,
worker hosts that would inject into the AGI line, bodies that are not clean JSON, connections
held open."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dialler.api.http import serve
from dialler.api.server import make_app
from dialler.config import Config, parse_config
from dialler.engine.engine import Engine
from dialler.store.conn import Pool
from dialler.store.pool import create_pool

pytestmark = pytest.mark.integration

OPERATOR = "operator-token-0123456789"
VIEWER = "viewer-token-0123456789"
WORKER_1 = "worker-one-token-0123456789"
WORKER_2 = "worker-two-token-0123456789"
STATIC = "static-token-0123456789"
CALLER_ID = "+441632960001"
IDLE = 1.0  # the listener's idle/header timeout in these tests
CAP = 8  # its connection cap


def _private(path: Path, text: str) -> str:
    path.write_text(text)
    os.chmod(path, 0o600)
    return str(path)


@dataclass
class Listener:
    url: str
    port: int
    http: aiohttp.ClientSession
    config: Config
    pool: Pool

    async def disposition(self, attempt: uuid.UUID) -> str | None:
        """The worker's result stored on the attempt (None: none)."""
        async with self.pool.acquire() as conn:
            found: str | None = await conn.fetchval(
                "SELECT disposition FROM attempts WHERE id = $1", attempt
            )
            return found

    async def call(
        self,
        method: str,
        path: str,
        token: str | None,
        body: Any = None,
        *,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if raw is not None:
            headers["Content-Type"] = "application/json"
        async with self.http.request(
            method, self.url + path, json=body if raw is None else None, data=raw, headers=headers
        ) as answer:
            if answer.content_type == "application/json":
                return answer.status, await answer.json()
            return answer.status, await answer.text()

    async def code(
        self, method: str, path: str, token: str | None, body: Any = None
    ) -> tuple[int, str]:
        status, data = await self.call(method, path, token, body)
        return status, data["error"]["code"] if isinstance(data, dict) and "error" in data else ""


@pytest.fixture
async def listener(db_dsn: str, tmp_path: Path) -> AsyncIterator[Listener]:
    config = parse_config(
        {
            "database": {"dsn": db_dsn},
            "asterisk": [{"name": "pbx", "ami": {"username": "u", "secret_env": "S"}}],
            "listeners": {"agi": {"secret_env": "A"}},
            "carriers": [{"name": "lab"}],
            "numbers": [{"number": CALLER_ID, "carrier": "lab"}],
            "api": {
                "tokens_file": _private(tmp_path / "api-tokens", f"{OPERATOR}\n"),
                "viewer_tokens_file": _private(tmp_path / "viewer-tokens", f"{VIEWER}\n"),
                "worker_tokens_file": _private(
                    tmp_path / "worker-tokens",
                    f"{WORKER_1} w1\n{WORKER_2} w2\n{STATIC} static-worker\n",
                ),
            },
            "fleet": {
                "workers": [
                    {"name": "static-worker", "host": "127.0.0.1", "port": 57010, "capacity": 2}
                ]
            },
        },
        "test",
        env={"S": "secret", "A": "agi-secret-0123456789"},
    )
    pool = await create_pool(db_dsn)

    # The real engine behind the result route (no Asterisk: results need none).
    engine = Engine(config, pool, {}, "security-test")
    runner, port = await serve(
        make_app(config, pool, engine.record_result),
        "127.0.0.1",
        0,
        idle_timeout=IDLE,
        max_connections=CAP,
    )
    async with aiohttp.ClientSession() as http:
        yield Listener(f"http://127.0.0.1:{port}", port, http, config, pool)
    await runner.cleanup()
    await pool.close()


def _worker(
    name: str, host: str = "127.0.0.1", port: int = 57001, capacity: int = 2
) -> dict[str, Any]:
    return {"name": name, "host": host, "port": port, "capacity": capacity}


# --- scoped tokens ------------------------------------------------------------------------------


async def test_no_token_or_a_wrong_one_is_401(listener: Listener) -> None:
    assert await listener.code("GET", "/v1/campaigns", None) == (401, "unauthorized")
    assert await listener.code("GET", "/v1/campaigns", "x" * 30) == (401, "unauthorized")
    # Paths outside /v1 are the console's (its own session check), not the bearer's.
    assert (await listener.code("GET", "/no-such-page", None))[0] == 404


async def test_a_viewer_reads_and_changes_nothing(listener: Listener) -> None:
    assert (await listener.call("GET", "/v1/campaigns", VIEWER))[0] == 200
    assert await listener.code("POST", "/v1/campaigns", VIEWER, {"name": "x"}) == (
        403,
        "forbidden",
    )
    assert await listener.code("POST", "/v1/workers", VIEWER, _worker("w9")) == (403, "forbidden")


async def test_a_worker_token_only_for_its_own_worker(listener: Listener) -> None:
    assert (await listener.call("POST", "/v1/workers", WORKER_1, _worker("w1")))[0] == 200
    assert (await listener.call("POST", "/v1/workers/w1/heartbeat", WORKER_1))[0] == 204
    # Another worker's name: neither registered over nor heart-beaten.
    assert await listener.code("POST", "/v1/workers", WORKER_2, _worker("w1", port=6666)) == (
        403,
        "forbidden",
    )
    assert await listener.code("POST", "/v1/workers/w1/heartbeat", WORKER_2) == (403, "forbidden")
    # Nor the operator routes.
    assert await listener.code("GET", "/v1/campaigns", WORKER_1) == (403, "forbidden")


async def test_a_bound_name_cannot_be_taken_by_an_operator_token(listener: Listener) -> None:
    assert await listener.code("POST", "/v1/workers", OPERATOR, _worker("w2")) == (
        403,
        "forbidden",
    )
    # A name no worker token is bound to: an operator token may still register it.
    assert (await listener.call("POST", "/v1/workers", OPERATOR, _worker("free-name")))[0] == 200


async def test_a_worker_the_config_defines_is_never_changed(listener: Listener) -> None:
    moved = _worker("static-worker", host="10.9.9.9", port=57010, capacity=2)
    assert await listener.code("POST", "/v1/workers", OPERATOR, moved) == (403, "forbidden")
    assert await listener.code("POST", "/v1/workers", STATIC, moved) == (403, "forbidden")
    same = _worker("static-worker", port=57010, capacity=2)
    assert (await listener.call("POST", "/v1/workers", STATIC, same))[0] == 200
    assert (await listener.call("POST", "/v1/workers/static-worker/heartbeat", STATIC))[0] == 204
    assert await listener.code("POST", "/v1/workers/static-worker/heartbeat", OPERATOR) == (
        403,
        "forbidden",
    )


@pytest.mark.parametrize(
    "host",
    ['127.0.0.1" ,EXEC Dial', "127.0.0.1,extra", "host\nSET VARIABLE X 1", "a b", "h\x00", ""],
)
async def test_a_worker_host_that_could_inject_is_refused(listener: Listener, host: str) -> None:
    status, data = await listener.call("POST", "/v1/workers", WORKER_1, _worker("w1", host=host))
    assert status == 422, data
    assert data["error"]["field"] == "host"


async def _attached_call(listener: Listener, worker: str) -> uuid.UUID:
    """An answered attempt of a running campaign, attached to `worker`."""
    attempt = uuid.uuid4()
    async with listener.pool.acquire() as conn:
        bot = await conn.fetchval(
            "INSERT INTO bots (name, prompt) VALUES ($1, 'Hello') RETURNING id", f"b-{attempt}"
        )
        campaign = await conn.fetchval(
            "INSERT INTO campaigns (name, bot_id, state, started_at) "
            "VALUES ($1, $2, 'running', now()) RETURNING id",
            f"c-{attempt}",
            bot,
        )
        contact = await conn.fetchval(
            "INSERT INTO contacts (campaign_id, phone_number, state, attempts_used) "
            "VALUES ($1, '+447700900001', 'connected', 1) RETURNING id",
            campaign,
        )
        await conn.execute(
            "INSERT INTO attempts (id, contact_id, campaign_id, attempt_number, daemon_id, "
            "deadline_at, state, answered_at, worker, attached_at) VALUES ($1, $2, $3, 1, "
            "'t', now() + interval '1 min', 'connected', now(), $4, now())",
            attempt,
            contact,
            campaign,
            worker,
        )
    return attempt


async def test_a_worker_token_reads_and_reports_only_its_own_calls(listener: Listener) -> None:
    for token, name in ((WORKER_1, "w1"), (WORKER_2, "w2")):
        assert (await listener.call("POST", "/v1/workers", token, _worker(name)))[0] == 200
    call = await _attached_call(listener, "w2")
    context, result = f"/v1/calls/{call}/context", f"/v1/calls/{call}/result"
    done = {"disposition": "completed"}
    # w1's token: neither the call's context (contact variables) nor its result.
    assert await listener.code("GET", context, WORKER_1) == (403, "forbidden")
    assert await listener.code("POST", result, WORKER_1, done) == (403, "forbidden")
    assert await listener.disposition(call) is None
    # w2's token, the call's own worker: both.
    status, body = await listener.call("GET", context, WORKER_2)
    assert (status, body["attempt_id"]) == (200, str(call))
    assert (await listener.call("POST", result, WORKER_2, done))[0] == 204
    assert await listener.disposition(call) == "completed"  # stored on the attempt
    # An unknown call is 404 for a worker token too (no existence oracle beyond that).
    unknown = f"/v1/calls/{uuid.uuid4()}/context"
    assert (await listener.code("GET", unknown, WORKER_1))[0] == 404


# --- bodies -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "\\ud800", "host": "127.0.0.1", "port": 1, "capacity": 1}',
        b'{"name": "\xff\xfe"}',
        b"[" * 20_000 + b"]" * 20_000,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
    ],
    ids=["lone-surrogate", "not-utf8", "deep-array", "deep-object"],
)
async def test_bodies_that_are_not_clean_json_are_400_and_not_logged(
    listener: Listener, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    status, data = await listener.call("POST", "/v1/workers", WORKER_1, raw=raw)
    assert (status, data["error"]["code"]) == (400, "bad_json"), data
    assert "ud800" not in caplog.text and "host" not in caplog.text


# --- connections --------------------------------------------------------------------------------


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(1024):
                pass
    except TimeoutError:
        return False
    return True


async def test_a_silent_or_trickling_connection_is_closed(listener: Listener) -> None:
    silent = await asyncio.open_connection("127.0.0.1", listener.port)
    trickle = await asyncio.open_connection("127.0.0.1", listener.port)
    trickle[1].write(b"GET /v1/campaigns HTTP/1.1\r\nHost: x\r\n")  # headers never end
    started = time.monotonic()
    assert await _closed_within(silent[0], IDLE + 5)
    assert await _closed_within(trickle[0], IDLE + 5)
    assert time.monotonic() - started < IDLE + 5
    for _reader, writer in (silent, trickle):
        writer.close()


async def test_connections_over_the_cap_are_closed_at_once(listener: Listener) -> None:
    held = [await asyncio.open_connection("127.0.0.1", listener.port) for _ in range(CAP)]
    extra_reader, extra_writer = await asyncio.open_connection("127.0.0.1", listener.port)
    assert await _closed_within(extra_reader, 2)
    extra_writer.close()
    for _reader, writer in held:
        writer.close()
    # Once they are gone, requests are served again.
    deadline = time.monotonic() + 5
    while True:
        try:
            status, _ = await listener.call("GET", "/healthz", None)
            break
        except aiohttp.ClientError:
            assert time.monotonic() < deadline, "the listener never served again"
            await asyncio.sleep(0.05)
    assert status == 200


async def test_an_overlong_header_line_is_refused(listener: Listener) -> None:
    status, _ = await listener.call("GET", "/healthz?" + "a" * 20_000, None)
    assert status in (400, 414)
