"""`POST /v1/test-calls` (`dialler test-call`): one call outside any campaign, placed by the
daemon's test-call placer, its stages streamed back as JSON lines (docs/fleet.md).

Stages: `originated`, `ringing`, `answered`, `attached` (worker), `audio` (the frame counts
the worker reported in its result's `audio`), `result` (disposition) — or `failed` and why.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from aiohttp import web

from ..config import Config
from ..contacts.phone import normalise_phone
from ..domain.outcomes import Outcome
from ..domain.states import AttemptState, Disposition
from ..errors import InvalidField, InvalidNumber
from ..store import testcall
from ..store.testcall import TestProgress
from .http import (
    POOL,
    TEST_CALL,
    CallProgress,
    current_config,
    json_object,
    optional_string,
    seconds_field,
    streaming,
    string_field,
)

__all__ = ["add_routes"]

#: How often the stream looks at the attempt's row.
POLL_SECONDS = 0.1


def add_routes(router: web.UrlDispatcher) -> None:
    """Register the test-call route (only with a placer: `server.make_app`)."""
    router.add_post("/v1/test-calls", test_call_route)


async def test_call_route(request: web.Request) -> web.StreamResponse:
    """Place one call and stream its stages as JSON lines."""
    config = current_config(request)
    body = await json_object(request, {"bot", "to", "from", "ring_timeout"}, {"bot", "to"})
    bot, raw_to = string_field(body, "bot"), string_field(body, "to")
    try:
        to = normalise_phone(raw_to, config.contacts.default_region)
    except InvalidNumber as exc:
        raise InvalidNumber(f"'to': {exc}", field="to") from None
    enabled = [n for n in config.numbers if n.enabled]
    wanted = optional_string(body, "from")
    caller = next((n for n in enabled if wanted is None or n.number == wanted), None)
    if caller is None:
        raise InvalidField(
            "from",
            "'from' must be an enabled caller ID of the config"
            if wanted
            else "no enabled caller ID in the config",
        )
    ring_timeout = seconds_field(body, "ring_timeout", 30.0, high=300.0)
    placer = request.app[TEST_CALL]
    assert placer is not None  # the route exists only with a placer
    attempt_id, call = await placer(bot, to, caller.number, caller.carrier, ring_timeout)
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    with streaming():
        await _follow(request, response, config, attempt_id, call, ring_timeout)
    return response


async def _follow(
    request: web.Request,
    response: web.StreamResponse,
    config: Config,
    attempt_id: uuid.UUID,
    call: CallProgress,
    ring_timeout: float,
) -> None:
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
            progress = await testcall.test_progress(conn, attempt_id)
        if progress is None:  # the attempt is gone (a database reset): nothing to follow
            break
        if progress.attached_at is not None and "attached" not in shown:
            shown.add("attached")
            await emit("attached", worker=progress.worker)
        if progress.state == AttemptState.FINAL:
            if _heard(progress):
                await emit(
                    "audio",
                    frames_sent=progress.audio_frames_sent,
                    frames_received=progress.audio_frames_received,
                    notes=progress.notes,
                )
                await emit("result", disposition=progress.disposition)
            else:
                await emit("failed", reason=_failure(progress))
            break
        await asyncio.sleep(POLL_SECONDS)
    await response.write_eof()


def _heard(progress: TestProgress) -> bool:
    """Answered, and a worker's result decided it (not the dialler's own disposition)."""
    return progress.outcome == Outcome.ANSWERED and progress.disposition not in (
        Disposition.ABANDONED,
        Disposition.TIMEOUT,
    )


def _failure(progress: TestProgress) -> str:
    outcome, code, disposition = progress.outcome, progress.sip_code, progress.disposition
    if outcome == Outcome.REJECTED:
        return f"rejected: SIP {code}"
    if outcome == Outcome.NO_ANSWER:
        return f"no answer: SIP {code}" if code else "no answer: ring timeout"
    if outcome == Outcome.ERROR:
        return "error: the call could not be placed"
    if disposition == Disposition.ABANDONED:
        return "abandoned: no bot worker could take the call"
    return f"{disposition}: no result from the worker"
