"""The daemon's HTTP listener for tests: the real `make_app` on a loopback port, over a real
PostgreSQL, with the real engine behind `/v1/…/result` and `/v1/test-calls`. The caller picks
the engine's Asterisk side (none at all, or a stand-in named in the caller's docstring)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from dialler.api.server import make_app, start
from dialler.config import AsteriskConfig
from dialler.engine.engine import Engine
from dialler.store.pool import create_pool

from .support import daemon_config, free_port

TOKEN = "t" * 24
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CALLER_ID = "+441632960001"


@dataclass
class Api:
    url: str
    pool: Any
    engine: Engine
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


@asynccontextmanager
async def serve_api(
    db_dsn: str,
    tmp_path: Path,
    trackers: Callable[[AsteriskConfig], Mapping[str, Any]] = lambda _asterisk: {},
) -> AsyncIterator[Api]:
    """The listener with one worker token, heartbeats lapsing after 1 s, one Asterisk `pbx`
    in the config; `trackers` builds the engine's trackers from that Asterisk's config."""
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# workers\n{TOKEN}\n")
    config = daemon_config(
        db_dsn,
        numbers=[{"number": CALLER_ID, "carrier": "lab"}],
        api={"tokens_file": str(tokens)},
        fleet={"heartbeat_timeout": "1s"},
    )
    pool = await create_pool(db_dsn)
    engine = Engine(config, pool, dict(trackers(config.asterisk[0])), "api-test")
    port = free_port()
    runner = await start(
        make_app(config, pool, engine.record_result, engine.test_call), "127.0.0.1", port
    )
    try:
        async with aiohttp.ClientSession() as http:
            yield Api(f"http://127.0.0.1:{port}", pool, engine, http)
    finally:
        await runner.cleanup()
        await pool.close()
