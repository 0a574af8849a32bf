"""The daemon's HTTP listener (aiohttp), assembled: probes (here), the bot workers' routes
(`workers`), test calls (`testcalls`), the operator API (`operators`) and the OpenAPI
document (`openapi`), behind one middleware (`answers`: the token, every error as JSON).
docs/api.md.

Loopback by default; every route but `/healthz`, `/readyz` and `/v1/openapi.json` needs
`Authorization: Bearer <token>`, compared in constant time against the tokens of
`api.tokens_file`.

Nothing in `api` imports this module: it imports them (no cycle). The daemon gives the
application its database pool and two callables — where a worker's result goes and how a test
call is placed — so the API depends on no engine code.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ..config import Config
from ..store.conn import Pool
from . import bots, fleet, numbers, operators, testcalls, workers
from .answers import errors_and_auth
from .http import (
    CONFIG,
    ON_RESULT,
    OPENAPI,
    POOL,
    READINESS,
    READINESS_DETAIL,
    TEST_CALL,
    ConfigRef,
    Readiness,
    ReadinessDetail,
    ResultSink,
    TestCaller,
    serve,
)
from .limits import MAX_BODY, READY_TIMEOUT
from .openapi import document

__all__ = ["CONFIG", "ConfigRef", "Readiness", "ResultSink", "TestCaller", "make_app", "start"]

log = logging.getLogger(__name__)


async def healthz(_request: web.Request) -> web.Response:
    """Liveness: the event loop answers."""
    return web.json_response({"status": "ok"})


async def _database_up(pool: Pool) -> bool:
    try:
        # BEGIN and COMMIT: a round trip to the server on a connection of the pool.
        async with asyncio.timeout(READY_TIMEOUT), pool.acquire() as conn, conn.transaction():
            pass
    except Exception as exc:  # whatever the cause, the answer is "not ready"
        log.warning("readiness: database check failed: %s", exc)
        return False
    return True


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 when the database answers and every extra check (`make_app(readiness)`:
    the AMI connections in the daemon) is up, else 503; the body names each check."""
    checks = {"database": await _database_up(request.app[POOL])}
    extra = request.app[READINESS]
    if extra is not None:
        try:
            checks.update(await extra())
        except Exception:
            log.exception("readiness callback failed")
            checks["readiness_callback"] = False
    ready = all(checks.values())
    body: dict[str, object] = {"ready": ready, "checks": checks}
    detail = request.app[READINESS_DETAIL]
    if detail is not None:
        try:
            body = {**detail(), **body}
        except Exception:  # the detail informs; it never changes the answer
            log.exception("readiness detail failed")
    return web.json_response(body, status=200 if ready else 503)


async def openapi_document(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 description of every route (`openapi.document`)."""
    return web.json_response(request.app[OPENAPI])


def make_app(
    config: Config,
    pool: Pool,
    on_result: ResultSink,
    test_call: TestCaller | None = None,
    *,
    readiness: Readiness | None = None,
    readiness_detail: ReadinessDetail | None = None,
) -> web.Application:
    """The HTTP application: probes, worker routes, test calls (with a `test_call` placer),
    the operator API and its OpenAPI document.

    `on_result` receives each worker's result (`Engine.record_result`); `test_call` places a
    test call (`Engine.test_call`). `readiness` adds named checks to `/readyz` (the daemon
    passes its Asterisk servers); without it `/readyz` checks the database only;
    `readiness_detail` adds informative keys to its body (each server's state). The config in
    force is `app[CONFIG].config`, replaced on reload.
    """
    app = web.Application(middlewares=[errors_and_auth], client_max_size=MAX_BODY)
    app[CONFIG] = ConfigRef(config)
    app[POOL] = pool
    app[ON_RESULT] = on_result
    app[TEST_CALL] = test_call
    app[READINESS] = readiness
    app[READINESS_DETAIL] = readiness_detail
    app[OPENAPI] = document()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/v1/openapi.json", openapi_document)
    workers.add_routes(app.router)
    if test_call is not None:
        testcalls.add_routes(app.router)
    operators.add_routes(app.router)
    bots.add_routes(app.router)
    fleet.add_routes(app.router)
    numbers.add_routes(app.router)
    return app


async def start(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve `app` on host:port with the listener's limits (`http.serve`: timeouts, line and
    header limits, a connection cap); `runner.cleanup()` stops it."""
    runner, _port = await serve(app, host, port)
    return runner
