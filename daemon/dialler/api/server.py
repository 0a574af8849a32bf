"""The daemon's HTTP listener (aiohttp): the worker endpoints and test calls (here), the
operator API (`operators`), probes and the OpenAPI document (`openapi`). docs/api.md.

Loopback by default; every route but `/healthz`, `/readyz` and `/v1/openapi.json` needs
`Authorization: Bearer <token>`, compared in constant time against the tokens of
`api.tokens_file`. Every error is JSON:
`{"error": {"code": "...", "message": "...", "field": "..."}}` (`field` when one is to blame;
`problems` when there are several).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web

from ..config import Config
from ..contacts.phone import InvalidNumber, normalise_phone
from ..store.queries import load
from ..domain.prompt import render
from ..engine.engine import TestCallRefused
from ..errors import OperationalError

log = logging.getLogger(__name__)
F = load("fleet.sql")
T = load("testcall.sql")
#: Largest JSON body (the CSV upload streams, with its own cap: operators.MAX_UPLOAD_BYTES).
MAX_BODY = 64 * 1024
#: Routes open without a token: probes, and the API's description.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/v1/openapi.json"})
#: How long /readyz waits for the database.
READY_TIMEOUT = 2.0
ResultSink = Callable[[uuid.UUID, str, datetime | None, str | None], Awaitable[str]]
TestCaller = Callable[..., Awaitable[Any]]
#: Extra readiness checks (`make_app(readiness=...)`): name → up, e.g. `{"ami:pbx1": True}`.
Readiness = Callable[[], Awaitable[dict[str, bool]]]


class ConfigRef:
    """The daemon's current config: replaced on SIGHUP reload (the app itself is frozen)."""

    def __init__(self, config: Config) -> None:
        self.config = config


CONFIG = web.AppKey("config", ConfigRef)


def current_config(request: web.Request) -> Config:
    """The config in force for this request (a reload swaps it)."""
    return request.app[CONFIG].config


POOL: web.AppKey[Any] = web.AppKey("pool")
ON_RESULT: web.AppKey[ResultSink] = web.AppKey("on_result")
TEST_CALL: web.AppKey[TestCaller | None] = web.AppKey("test_call")
READINESS: web.AppKey[Readiness | None] = web.AppKey("readiness")
OPENAPI: web.AppKey[dict[str, Any]] = web.AppKey("openapi")


def error(status: int, code: str, message: str, field: str | None = None, *,
          problems: Sequence[str] | None = None, line: int | None = None) -> web.Response:
    """The JSON error answer: `{"error": {"code", "message", "field"?, "problems"?,
    "line"?}}`."""
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    if problems is not None:
        body["problems"] = list(problems)
    if line is not None:
        body["line"] = line
    return web.json_response({"error": body}, status=status)


class ApiError(Exception):
    """A refused request; `response` is its JSON error answer."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None, *,
                 problems: Sequence[str] | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.response = error(status, code, message, field, problems=problems, line=line)


class StreamAborted(Exception):
    """A streamed answer failed after its status line was sent: only cutting the connection
    can tell the client, so the middleware lets this through to aiohttp, which does that."""


@contextlib.contextmanager
def streaming() -> Iterator[None]:
    """Around the writes of a response already prepared (see `StreamAborted`)."""
    try:
        yield
    except Exception as exc:
        raise StreamAborted(f"{type(exc).__name__}: {exc}") from exc


def _token_ok(header: str | None, tokens: tuple[str, ...]) -> bool:
    if not header or not header.startswith("Bearer "):
        return False
    given = header.removeprefix("Bearer ").strip().encode()
    ok = False
    for token in tokens:  # no early exit: the time taken does not depend on which matched
        ok |= hmac.compare_digest(given, token.encode())
    return ok


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
               413: "too_large", 415: "unsupported_media_type"}


@web.middleware
async def _errors_and_auth(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    if request.path not in OPEN_PATHS and not _token_ok(request.headers.get("Authorization"),
                                                        current_config(request).api.tokens):
        return error(401, "unauthorized", "missing or wrong bearer token")
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response
    except StreamAborted:
        log.warning("streamed answer cut short", exc_info=True, extra={"path": request.path})
        raise
    except web.HTTPException as exc:  # aiohttp's own: no such route, body over the limit ...
        if exc.status < 400:
            raise
        return error(exc.status, _HTTP_CODES.get(exc.status, "http_error"), exc.reason)
    except (OperationalError, OSError, asyncpg.InterfaceError,
            asyncpg.CannotConnectNowError) as exc:
        log.warning("request failed: service unavailable: %s", exc,
                    extra={"path": request.path})
        return error(503, "unavailable", f"a service the dialler needs is unavailable ({exc}); "
                     "try again")
    except Exception:
        log.exception("request failed", extra={"path": request.path})
        return error(500, "internal", "internal error; the daemon's log has the details")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key, value in pairs:
        if key in body:
            raise ApiError(400, "bad_json", f"key {key!r} appears twice in a JSON object",
                           key)
        body[key] = value
    return body


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (at most `MAX_BODY` bytes); 400 when it is not one."""
    try:
        body = json.loads(await request.text(), object_pairs_hook=_no_duplicate_keys)
    except ValueError:
        raise ApiError(400, "bad_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return body


async def json_object(request: web.Request, allowed: set[str],
                      required: set[str]) -> dict[str, Any]:
    """`json_body`, with no field outside `allowed` and every one of `required` (422 naming
    the field otherwise)."""
    body = await json_body(request)
    for key in body:
        if key not in allowed:
            raise ApiError(422, "unknown_field", f"unknown field {key!r}", key)
    for key in sorted(required - body.keys()):
        raise ApiError(422, "missing_field", f"missing required field {key!r}", key)
    return body


def string_field(body: dict[str, Any], key: str, *, optional: bool = False) -> str | None:
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


def _seconds(body: dict[str, Any], key: str, default: float, *, high: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high:
        raise ApiError(422, "bad_field", f"{key!r} must be a number of seconds in (0, {high:g}]",
                       key)
    return float(value)


def _attempt_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["attempt_id"])
    except ValueError:
        raise ApiError(404, "not_found", "no such call") from None


async def healthz(_request: web.Request) -> web.Response:
    """Liveness: the event loop answers."""
    return web.json_response({"status": "ok"})


async def _database_up(pool: Any) -> bool:
    try:
        async with asyncio.timeout(READY_TIMEOUT), pool.acquire() as conn:
            await conn.execute("SELECT 1")
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
    return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


async def openapi_document(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 description of every route (`openapi.document`)."""
    return web.json_response(request.app[OPENAPI])


async def register_worker(request: web.Request) -> web.Response:
    body = await json_object(request, {"name", "host", "port", "capacity"},
                              {"name", "host", "port", "capacity"})
    name = string_field(body, "name")
    host = string_field(body, "host")
    port = _int(body, "port", 1, 65535)
    capacity = _int(body, "capacity", 0, 10_000)
    async with request.app[POOL].acquire() as conn:
        await conn.execute(F["register_worker"], name, host, port, capacity)
    log.info("worker registered", extra={"worker": name, "capacity": capacity})
    config: Config = current_config(request)
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
    body = await json_object(request, {"disposition", "callback_at", "notes"}, {"disposition"})
    disposition = string_field(body, "disposition")
    assert disposition is not None
    if disposition in ("abandoned", "timeout", "no_answer", "rejected", "error"):
        raise ApiError(422, "bad_field", f"{disposition!r} is decided by the dialler, not "
                       "reported by a bot", "disposition")
    callback_at = None
    raw = string_field(body, "callback_at", optional=True)
    if raw is not None:
        try:
            callback_at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ApiError(422, "bad_field", "'callback_at' must be an RFC 3339 time",
                           "callback_at") from None
        if callback_at.tzinfo is None:
            raise ApiError(422, "bad_field", "'callback_at' needs a time zone offset",
                           "callback_at")
    notes = string_field(body, "notes", optional=True)
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
    config: Config = current_config(request)
    body = await json_object(request, {"bot", "to", "from", "ring_timeout"}, {"bot", "to"})
    bot, raw_to = string_field(body, "bot"), string_field(body, "to")
    assert bot is not None and raw_to is not None
    try:
        to = normalise_phone(raw_to, config.contacts.default_region)
    except InvalidNumber as exc:
        raise ApiError(422, "bad_field", f"'to': {exc}", "to") from None
    enabled = [n for n in config.numbers if n.enabled]
    wanted = string_field(body, "from", optional=True)
    caller = next((n for n in enabled if wanted is None or n.number == wanted), None)
    if caller is None:
        raise ApiError(422, "bad_field", "'from' must be an enabled caller ID of the config"
                       if wanted else "no enabled caller ID in the config", "from")
    ring_timeout = _seconds(body, "ring_timeout", 30.0, high=300.0)
    try:
        placer = request.app[TEST_CALL]
        assert placer is not None  # the route exists only with a placer
        attempt_id, call = await placer(bot, to, caller.number, caller.carrier, ring_timeout)
    except TestCallRefused as exc:
        raise ApiError(exc.status, "refused", str(exc), exc.field) from None
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    with streaming():
        await _follow_test_call(request, response, config, attempt_id, call, ring_timeout)
    return response


async def _follow_test_call(request: web.Request, response: web.StreamResponse,
                            config: Config, attempt_id: uuid.UUID, call: Any,
                            ring_timeout: float) -> None:
    """Write one JSON line per stage of the test call until its result is final."""
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


def make_app(config: Config, pool: Any, on_result: ResultSink,
             test_call: Callable[..., Awaitable[Any]] | None = None, *,
             readiness: Readiness | None = None) -> web.Application:
    """The HTTP application: probes, worker routes, test calls (with a `test_call` placer),
    the operator API and its OpenAPI document.

    `readiness` adds named checks to `/readyz` (the daemon passes its AMI connections);
    without it `/readyz` checks the database only.
    """
    # Imported here, not at the top: both modules import this one's helpers.
    from .openapi import document
    from .operators import add_routes

    app = web.Application(middlewares=[_errors_and_auth], client_max_size=MAX_BODY)
    app[CONFIG] = ConfigRef(config)
    app[POOL] = pool
    app[ON_RESULT] = on_result
    app[TEST_CALL] = test_call
    app[READINESS] = readiness
    app[OPENAPI] = document()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/v1/openapi.json", openapi_document)
    app.router.add_post("/v1/workers", register_worker)
    app.router.add_post("/v1/workers/{name}/heartbeat", heartbeat)
    app.router.add_get("/v1/calls/{attempt_id}/context", call_context)
    app.router.add_post("/v1/calls/{attempt_id}/result", call_result)
    if test_call is not None:
        app.router.add_post("/v1/test-calls", test_call_route)
    add_routes(app.router)
    return app


async def start(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)  # access logs would carry call ids only,
    await runner.setup()                           # but one line per request is noise
    await web.TCPSite(runner, host, port).start()
    return runner
