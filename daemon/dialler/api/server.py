"""The daemon's HTTP listener (aiohttp): worker endpoints for now (issue #4), the operator API
later. Loopback by default; every route but `/healthz` needs `Authorization: Bearer <token>`,
compared in constant time against the tokens of `api.tokens_file`. Errors are JSON:
`{"error": {"code": "...", "message": "...", "field": "..."}}`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from ..config import Config
from ..contacts.phone import InvalidNumber, normalise_phone
from ..db.queries import load
from ..domain.prompt import render
from ..engine.engine import TestCallRefused

log = logging.getLogger(__name__)
F = load("fleet.sql")
T = load("testcall.sql")
MAX_BODY = 64 * 1024
ResultSink = Callable[[uuid.UUID, str, datetime | None, str | None], Awaitable[str]]
TestCaller = Callable[..., Awaitable[Any]]

CONFIG = web.AppKey("config", Config)
POOL: web.AppKey[Any] = web.AppKey("pool")
ON_RESULT: web.AppKey[ResultSink] = web.AppKey("on_result")
TEST_CALL: web.AppKey[TestCaller | None] = web.AppKey("test_call")


def error(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return web.json_response({"error": body}, status=status)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.response = error(status, code, message, field)


def _token_ok(header: str | None, tokens: tuple[str, ...]) -> bool:
    if not header or not header.startswith("Bearer "):
        return False
    given = header.removeprefix("Bearer ").strip().encode()
    ok = False
    for token in tokens:  # no early exit: the time taken does not depend on which matched
        ok |= hmac.compare_digest(given, token.encode())
    return ok


@web.middleware
async def _errors_and_auth(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    if request.path != "/healthz" and not _token_ok(request.headers.get("Authorization"),
                                                    request.app[CONFIG].api.tokens):
        return error(401, "unauthorized", "missing or wrong bearer token")
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response


async def _json_object(request: web.Request, allowed: set[str],
                       required: set[str]) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "bad_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    for key in body:
        if key not in allowed:
            raise ApiError(422, "unknown_field", f"unknown field {key!r}", key)
    for key in sorted(required - body.keys()):
        raise ApiError(422, "missing_field", f"missing required field {key!r}", key)
    return body


def _string(body: dict[str, Any], key: str, *, optional: bool = False) -> str | None:
    value = body.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ApiError(422, "bad_field", f"{key!r} must be a non-empty string", key)
    return value


def _int(body: dict[str, Any], key: str, low: int, high: int) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(422, "bad_field", f"{key!r} must be an integer in {low}..{high}", key)
    return value


def _attempt_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["attempt_id"])
    except ValueError:
        raise ApiError(404, "not_found", "no such call") from None


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def register_worker(request: web.Request) -> web.Response:
    body = await _json_object(request, {"name", "host", "port", "capacity"},
                              {"name", "host", "port", "capacity"})
    name = _string(body, "name")
    host = _string(body, "host")
    port = _int(body, "port", 1, 65535)
    capacity = _int(body, "capacity", 0, 10_000)
    async with request.app[POOL].acquire() as conn:
        await conn.execute(F["register_worker"], name, host, port, capacity)
    log.info("worker registered", extra={"worker": name, "capacity": capacity})
    config: Config = request.app[CONFIG]
    return web.json_response({"name": name,
                              "heartbeat_timeout": config.fleet.heartbeat_timeout})


async def heartbeat(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        found = await conn.fetchval(F["heartbeat_worker"], request.match_info["name"])
    if found is None:
        raise ApiError(404, "not_found", "unknown worker: register first")
    return web.Response(status=204)


async def call_context(request: web.Request) -> web.Response:
    attempt_id = _attempt_id(request)
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(F["call_context"], attempt_id)
    if row is None:
        raise ApiError(404, "not_found", "no such call")
    variables = {str(k): "" if v is None else str(v) for k, v in (row["variables"] or {}).items()}
    rendered = render(row["prompt"] or "", variables)
    return web.json_response({
        "attempt_id": str(row["attempt_id"]), "campaign_id": str(row["campaign_id"]),
        "campaign": row["campaign"], "caller_id": row["caller_id"],
        "bot": {"name": row["bot"], "prompt": row["prompt"], "pipeline": row["pipeline"] or {}},
        "variables": variables, "prompt": rendered.text, "unresolved": rendered.unresolved,
    })


async def call_result(request: web.Request) -> web.Response:
    attempt_id = _attempt_id(request)
    body = await _json_object(request, {"disposition", "callback_at", "notes"}, {"disposition"})
    disposition = _string(body, "disposition")
    assert disposition is not None
    if disposition in ("abandoned", "timeout", "no_answer", "rejected", "error"):
        raise ApiError(422, "bad_field", f"{disposition!r} is decided by the dialler, not "
                       "reported by a bot", "disposition")
    callback_at = None
    raw = _string(body, "callback_at", optional=True)
    if raw is not None:
        try:
            callback_at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ApiError(422, "bad_field", "'callback_at' must be an RFC 3339 time",
                           "callback_at") from None
        if callback_at.tzinfo is None:
            raise ApiError(422, "bad_field", "'callback_at' needs a time zone offset",
                           "callback_at")
    notes = _string(body, "notes", optional=True)
    sink: ResultSink = request.app[ON_RESULT]
    outcome = await sink(attempt_id, disposition, callback_at, notes)
    if outcome == "unknown":
        raise ApiError(404, "not_found", "no such call")
    if outcome == "already_final":
        raise ApiError(409, "already_final", "this call's result is already final")
    return web.Response(status=204)


def _failure(row: Any) -> str:
    outcome, code, disposition = row["outcome"], row["sip_code"], row["disposition"]
    if outcome == "rejected":
        return f"rejected: SIP {code}"
    if outcome == "no_answer":
        return f"no answer: SIP {code}" if code else "no answer: ring timeout"
    if outcome == "error":
        return "error: the call could not be placed"
    if disposition == "abandoned":
        return "abandoned: no bot worker could take the call"
    return f"{disposition}: no result from the worker"


_FRAMES = re.compile(r"frames sent (\d+), received (\d+)")


async def test_call_route(request: web.Request) -> web.StreamResponse:
    """`dialler test-call`: place one call and stream its stages as JSON lines."""
    config: Config = request.app[CONFIG]
    body = await _json_object(request, {"bot", "to", "from", "ring_timeout"}, {"bot", "to"})
    bot, raw_to = _string(body, "bot"), _string(body, "to")
    assert bot is not None and raw_to is not None
    try:
        to = normalise_phone(raw_to, config.contacts.default_region)
    except InvalidNumber as exc:
        raise ApiError(422, "bad_field", f"'to': {exc}", "to") from None
    enabled = [n for n in config.numbers if n.enabled]
    wanted = _string(body, "from", optional=True)
    caller = next((n for n in enabled if wanted is None or n.number == wanted), None)
    if caller is None:
        raise ApiError(422, "bad_field", "'from' must be an enabled caller ID of the config"
                       if wanted else "no enabled caller ID in the config", "from")
    ring_timeout = float(body.get("ring_timeout", 30))
    try:
        placer = request.app[TEST_CALL]
        assert placer is not None  # the route exists only with a placer
        attempt_id, call = await placer(bot, to, caller.number, caller.carrier, ring_timeout)
    except TestCallRefused as exc:
        raise ApiError(exc.status, "refused", str(exc), exc.field) from None
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)

    async def emit(stage: str, **details: Any) -> None:
        line = {"stage": stage, "t": round(time.time() - call.sent_at, 3), **details}
        await response.write((json.dumps(line) + "\n").encode())

    await emit("originated", attempt_id=str(attempt_id))
    shown = {"originated"}
    deadline = time.monotonic() + ring_timeout + config.scheduler.max_call_length
    while time.monotonic() < deadline:
        for stage, _at in list(call.stages):
            if stage in ("ringing", "answered") and stage not in shown:
                shown.add(stage)
                await emit(stage)
        async with request.app[POOL].acquire() as conn:
            row = await conn.fetchrow(T["test_progress"], attempt_id)
        if row["attached_at"] is not None and "attached" not in shown:
            shown.add("attached")
            await emit("attached", worker=row["worker"])
        if row["state"] == "final":
            if row["outcome"] == "answered" and row["disposition"] not in ("abandoned",
                                                                          "timeout"):
                frames = _FRAMES.search(row["notes"] or "")
                await emit("audio", frames_sent=int(frames[1]) if frames else None,
                           frames_received=int(frames[2]) if frames else None,
                           notes=row["notes"])
                await emit("result", disposition=row["disposition"])
            else:
                await emit("failed", reason=_failure(row))
            break
        await asyncio.sleep(0.1)
    await response.write_eof()
    return response


def make_app(config: Config, pool: Any, on_result: ResultSink,
             test_call: Callable[..., Awaitable[Any]] | None = None) -> web.Application:
    app = web.Application(middlewares=[_errors_and_auth], client_max_size=MAX_BODY)
    app[CONFIG] = config
    app[POOL] = pool
    app[ON_RESULT] = on_result
    app[TEST_CALL] = test_call
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/v1/workers", register_worker)
    app.router.add_post("/v1/workers/{name}/heartbeat", heartbeat)
    app.router.add_get("/v1/calls/{attempt_id}/context", call_context)
    app.router.add_post("/v1/calls/{attempt_id}/result", call_result)
    if test_call is not None:
        app.router.add_post("/v1/test-calls", test_call_route)
    return app


async def start(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)  # access logs would carry call ids only,
    await runner.setup()                           # but one line per request is noise
    await web.TCPSite(runner, host, port).start()
    return runner
