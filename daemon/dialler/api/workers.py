"""The bot workers' routes (docs/fleet.md, docs/worker.md): registration, heartbeats, a call's
context and its result.

A result is read into a `domain.results.WorkerResult` — disposition, `callback_at`, `notes`
(free text, stored as given and never parsed) and `audio` (frame counts, as numbers) — and
handed to the daemon's result sink (`Engine.record_result`), which refuses an unknown call
(`errors.UnknownCall`, 404) or a final one (`errors.AlreadyFinal`, 409).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from ..config import is_host
from ..domain.prompt import render
from ..domain.results import AudioStats, WorkerResult
from ..domain.states import SYSTEM_DISPOSITIONS, Disposition
from ..errors import Forbidden, InvalidField, UnknownCall, UnknownWorker
from ..store import fleet
from ..store.conn import Connection
from ..store.engine import database_unreachable
from .answers import principal
from .auth import Role
from .http import (
    ON_RESULT,
    POOL,
    attempt_id,
    check_keys,
    current_config,
    int_field,
    json_object,
    optional_string,
    string_field,
)

__all__ = ["add_routes"]

log = logging.getLogger(__name__)

#: Dispositions a worker may not report: the dialler decides them (`completed` and `RNR` are
#: a bot's to report).
DIALLER_DISPOSITIONS = frozenset(SYSTEM_DISPOSITIONS - {Disposition.RNR})
#: A worker's name: it reaches metric labels, logs and the AGI variables.
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: Largest frame count accepted (a day of 20 ms frames is 4.32 million).
MAX_FRAMES = 2**31 - 1


def add_routes(router: web.UrlDispatcher) -> None:
    """Register the worker routes (`server.make_app` calls this)."""
    router.add_post("/v1/workers", register_worker)
    router.add_post("/v1/workers/{name}/heartbeat", heartbeat)
    router.add_post("/v1/workers/{name}/leave", leave)
    router.add_get("/v1/calls/{attempt_id}/context", call_context)
    router.add_post("/v1/calls/{attempt_id}/result", call_result)


async def register_worker(request: web.Request) -> web.Response:
    """`POST /v1/workers`: register (or re-register) a worker; its heartbeat timeout back.

    Only a token allowed to act for the name (`_check_name`). A worker the config defines
    keeps the config's host, port and capacity: registering it with exactly those is a
    heartbeat, with anything else a 403."""
    body = await json_object(
        request, {"name", "host", "port", "capacity"}, {"name", "host", "port", "capacity"}
    )
    name = string_field(body, "name")
    if _NAME.fullmatch(name) is None:
        raise InvalidField("name", "'name' must be letters, digits, '_', '.', '-' (at most 64)")
    host = string_field(body, "host")
    if len(host) > 253 or not is_host(host):
        # It is written into the AGI line that hands a call over: no quote, comma, CR/LF.
        raise InvalidField("host", "'host' must be an IP address or a host name")
    port = int_field(body, "port", 1, 65535)
    capacity = int_field(body, "capacity", 0, 10_000)
    config = current_config(request)
    _check_name(request, name)
    static = next((w for w in config.fleet.workers if w.name == name), None)
    async with request.app[POOL].acquire() as conn:
        if static is None:
            await fleet.register_worker(conn, name, host, port, capacity)
        elif (static.host, static.port, static.capacity) == (host, port, capacity):
            # The config's values, as the daemon writes them at start: a heartbeat, no change.
            await fleet.upsert_config_worker(conn, name, static.host, static.port, static.capacity)
            await fleet.heartbeat_worker(conn, name)
        else:
            raise Forbidden(
                f"worker {name} is defined in the config: its host, port and capacity come "
                "from there and cannot be changed over the API",
                "name",
            )
    log.info("worker registered", extra={"worker": name, "capacity": capacity})
    return web.json_response({"name": name, "heartbeat_timeout": config.fleet.heartbeat_timeout})


async def heartbeat(request: web.Request) -> web.Response:
    """`POST /v1/workers/{name}/heartbeat`: 204; 404 when the worker must register first."""
    await _for_worker(request, fleet.heartbeat_worker)
    return web.Response(status=204)


async def leave(request: web.Request) -> web.Response:
    """`POST /v1/workers/{name}/leave`: 204; the worker is out of rotation until it registers
    or heart-beats again (a stopping worker, before it closes its port); 404 when unknown."""
    name = await _for_worker(request, fleet.leave_rotation)
    log.info("worker left rotation", extra={"worker": name})
    return web.Response(status=204)


async def _for_worker(
    request: web.Request, change: Callable[[Connection, str], Awaitable[bool]]
) -> str:
    """`change` for the worker named in the path, by a token allowed to act for it; the name.
    `UnknownWorker` when `change` finds no such worker."""
    name = request.match_info["name"]
    _check_name(request, name)
    async with request.app[POOL].acquire() as conn:
        found = await change(conn, name)
    if not found:
        raise UnknownWorker(name)
    return name


async def _check_call(request: web.Request, conn: Connection, call: uuid.UUID) -> None:
    """May this request's token read or report call `call`? A worker token: only for a call
    attached to one of its workers (else 403; an unknown call is 404). Operators: any call."""
    who = principal(request)
    if who.role is not Role.WORKER:
        return
    found = await fleet.call_worker(conn, call)
    if found is None:
        raise UnknownCall(call)
    if found.worker is None or not who.may_act_for(found.worker):
        raise Forbidden("this call is not attached to a worker of this token", "attempt_id")


async def _check_call_reachable(request: web.Request, call: uuid.UUID) -> None:
    """`_check_call` for a result. While the database is away the result is kept unchecked
    and written later (a worker's result is never lost; docs/security.md names this gap)."""
    try:
        async with request.app[POOL].acquire() as conn:
            await _check_call(request, conn, call)
    except (Forbidden, UnknownCall):
        raise
    except Exception as exc:
        if not database_unreachable(exc):
            raise
        log.warning("database unreachable: result taken without its worker check")


def _check_name(request: web.Request, name: str) -> None:
    """May this request's token act for worker `name`? A worker token: for the names bound
    to it. An operator token (compatibility, for deployments without worker tokens): for
    names no worker token is bound to and the config does not define. Else 403."""
    who = principal(request)
    if who.role is Role.WORKER:
        if not who.may_act_for(name):
            raise Forbidden(f"this worker token is not bound to worker {name}", "name")
        return
    config = current_config(request)
    if any(name in bound.workers for bound in config.api.worker_tokens):
        raise Forbidden(f"worker {name} is bound to a worker token; only it may act for it", "name")
    if any(w.name == name for w in config.fleet.workers):
        raise Forbidden(
            f"worker {name} is defined in the config; only a worker token bound to it may "
            "heartbeat it, and nobody can change it over the API",
            "name",
        )


async def call_context(request: web.Request) -> web.Response:
    """`GET /v1/calls/{attempt_id}/context`: the bot, its prompt rendered with the contact's
    variables (those it lacks in `unresolved`), the caller ID."""
    call = attempt_id(request)
    async with request.app[POOL].acquire() as conn:
        await _check_call(request, conn, call)
        context = await fleet.call_context(conn, call)
    if context is None:
        raise UnknownCall(call)
    variables = {str(k): "" if v is None else str(v) for k, v in (context.variables or {}).items()}
    rendered = render(context.prompt or "", variables)
    return web.json_response(
        {
            "attempt_id": str(context.attempt_id),
            "campaign_id": str(context.campaign_id),
            "campaign": context.campaign,
            "caller_id": context.caller_id,
            "bot": {
                "name": context.bot,
                "prompt": context.prompt,
                "pipeline": context.pipeline or {},
            },
            "variables": variables,
            "prompt": rendered.text,
            "unresolved": rendered.unresolved,
        }
    )


async def call_result(request: web.Request) -> web.Response:
    """`POST /v1/calls/{attempt_id}/result`: the worker's result of a call; 204."""
    call = attempt_id(request)
    body = await json_object(
        request, {"disposition", "callback_at", "notes", "audio"}, {"disposition"}
    )
    result = WorkerResult(
        disposition=_disposition(body),
        callback_at=_callback_at(body),
        notes=optional_string(body, "notes"),
        audio=_audio(body),
    )
    await _check_call_reachable(request, call)
    await request.app[ON_RESULT](call, result)
    return web.Response(status=204)


def _disposition(body: dict[str, Any]) -> str:
    disposition = string_field(body, "disposition")
    if disposition in DIALLER_DISPOSITIONS:
        raise InvalidField(
            "disposition", f"{disposition!r} is decided by the dialler, not reported by a bot"
        )
    return disposition


def _callback_at(body: dict[str, Any]) -> datetime | None:
    raw = optional_string(body, "callback_at")
    if raw is None:
        return None
    try:
        callback_at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidField("callback_at", "'callback_at' must be an RFC 3339 time") from None
    if callback_at.tzinfo is None:
        raise InvalidField("callback_at", "'callback_at' needs a time zone offset")
    return callback_at


def _audio(body: dict[str, Any]) -> AudioStats | None:
    """`audio`: `{"frames_sent": N, "frames_received": M}`, both counts required."""
    audio = body.get("audio")
    if audio is None:
        return None
    if not isinstance(audio, dict):
        raise InvalidField(
            "audio", '\'audio\' must be an object: {"frames_sent": N, "frames_received": M}'
        )
    keys = {"frames_sent", "frames_received"}
    check_keys(audio, keys, keys, prefix="audio.")
    return AudioStats(
        frames_sent=int_field(audio, "frames_sent", 0, MAX_FRAMES, name="audio.frames_sent"),
        frames_received=int_field(
            audio, "frames_received", 0, MAX_FRAMES, name="audio.frames_received"
        ),
    )
