"""What the console's buttons and forms do: sign-in and sign-out, and every change, each one
the `/v1` route's own handler (`api.operators`, `api.testcalls`) or the service function it
calls — the same checks, refusals and JSON as the API, so a page shows the API's problems
beside the fields they name. The session guard (`sessions.console_guard`) has checked the
session, the CSRF token and the role before any of these runs.
"""

from __future__ import annotations

import logging

import aiohttp_jinja2
from aiohttp import web

from .. import carriers
from ..api import operators, testcalls
from ..api.http import POOL, TEST_CALL, current_config, json_body, json_object, string_field
from ..campaigns import repo
from ..campaigns.lookup import resolve_campaign
from ..campaigns.spec import Document, parse_bot
from ..domain.rules import RedialPolicy
from ..durations import DurationError, parse_duration
from .sessions import sign_in, sign_out

__all__ = ["add_routes"]

log = logging.getLogger(__name__)


def add_routes(router: web.UrlDispatcher) -> None:
    """Sign-in, sign-out and every change the console offers."""
    router.add_get("/login", login_page)
    router.add_post("/login", login)
    router.add_post("/logout", logout)
    router.add_post("/campaigns/validate", validate_campaign)
    router.add_post("/campaigns", operators.create_campaign)
    router.add_put("/campaigns/{campaign}", operators.edit_campaign)
    router.add_post("/campaigns/{campaign}/start", operators.start_campaign)
    router.add_post("/campaigns/{campaign}/pause", operators.pause_campaign)
    router.add_post("/campaigns/{campaign}/resume", operators.resume_campaign)
    router.add_post("/campaigns/{campaign}/cancel", operators.cancel_campaign)
    router.add_post("/campaigns/{campaign}/contacts/import", operators.import_csv)
    router.add_get("/campaigns/{campaign}/report.csv", operators.report)
    router.add_post("/bots", operators.create_bot)
    router.add_put("/bots/{name}", edit_bot)
    router.add_post("/bots/{name}/test-call", test_call)
    router.add_post("/carriers/{number}/disable", disable_number)
    router.add_post("/carriers/{number}/enable", enable_number)
    router.add_post("/carriers/{number}/swap", swap_number)
    router.add_post("/suppressions", operators.suppress)
    router.add_delete("/suppressions/{phone_number}", operators.unsuppress)


# --- signing in and out ----------------------------------------------------------------------


async def login_page(request: web.Request) -> web.Response:
    """The sign-in form: one field, the API token, submitted by Enter."""
    return aiohttp_jinja2.render_template("login.html", request, {"failed": False})


async def login(request: web.Request) -> web.Response:
    """A good operator or viewer token: a session, and on to /campaigns; else the form again
    (401) saying so. The token itself is never logged."""
    form = await request.post()
    token = form.get("token")
    response = web.HTTPSeeOther("/campaigns")
    if isinstance(token, str) and sign_in(request, token, response):
        log.info("console sign-in")
        raise response
    log.info("console sign-in refused")
    failed = aiohttp_jinja2.render_template("login.html", request, {"failed": True})
    failed.set_status(401)
    return failed


async def logout(request: web.Request) -> web.Response:
    """End the session; back to /login."""
    response = web.HTTPSeeOther("/login")
    sign_out(request, response)
    raise response


# --- the wizard ------------------------------------------------------------------------------


def _overlap(data: object) -> bool:
    """Both redial rules set with overlapping thresholds (`RedialPolicy.overlaps`, the rule
    the start warning comes from); False while either is missing or unreadable."""
    redial = data.get("redial") if isinstance(data, dict) else None
    if not isinstance(redial, dict):
        return False
    try:
        values = [
            None if redial.get(key) in (None, "") else parse_duration(redial[key], key)
            for key in ("stop_after_connect_longer_than", "redial_after_connect_shorter_than")
        ]
        return RedialPolicy(values[0], values[1]).overlaps()
    except (DurationError, ValueError):
        return False


async def validate_campaign(request: web.Request) -> web.Response:
    """The wizard's check: `{"campaign": <file fields>, "id": <edited campaign or null>}` →
    `{"problems": [{"field", "message"}], "warnings": [...], "redial_overlap": bool}`
    (`repo.validate_campaign`: the API's checks; nothing is written)."""
    body = await json_object(request, {"campaign", "id"}, {"campaign"})
    data = body["campaign"]
    async with request.app[POOL].acquire() as conn:
        campaign_id = None
        if body.get("id"):
            campaign_id = await resolve_campaign(conn, string_field(body, "id"))
        check = await repo.validate_campaign(
            conn,
            current_config(request),
            Document.request_body(data, "body"),
            campaign_id=campaign_id,
        )
    return web.json_response(
        {
            "problems": [{"field": field, "message": message} for field, message in check.problems],
            "warnings": check.warnings,
            "redial_overlap": _overlap(data),
        }
    )


# --- bots ------------------------------------------------------------------------------------


async def edit_bot(request: web.Request) -> web.Response:
    """Replace a bot's name, prompt and pipeline (`repo.edit_bot`)."""
    spec = parse_bot(Document.request_body(await json_body(request), "body"))
    async with request.app[POOL].acquire() as conn:
        await repo.edit_bot(conn, request.match_info["name"], spec)
    log.info("bot edited", extra={"bot": spec.name})
    return web.json_response({"name": spec.name})


async def test_call(request: web.Request) -> web.StreamResponse:
    """A test call of this bot, its stages streamed as JSON lines (`POST /v1/test-calls`'s
    own handler; the body names the bot and the number)."""
    if request.app[TEST_CALL] is None:
        raise web.HTTPNotFound(reason="this daemon places no test calls")
    return await testcalls.test_call_route(request)


# --- numbers ---------------------------------------------------------------------------------


async def _set_enabled(request: web.Request, enabled: bool) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        status = await carriers.set_enabled(
            conn, current_config(request), request.match_info["number"], enabled
        )
    return web.json_response({"number": status.number, "enabled": status.enabled})


async def disable_number(request: web.Request) -> web.Response:
    """Take a caller ID out of use (`carriers.set_enabled`)."""
    return await _set_enabled(request, False)


async def enable_number(request: web.Request) -> web.Response:
    """Put a caller ID back in use."""
    return await _set_enabled(request, True)


async def swap_number(request: web.Request) -> web.Response:
    """Replace a caller ID by another in every pool that has it (`carriers.swap_number`)."""
    body = await json_object(request, {"to"}, {"to"})
    async with request.app[POOL].acquire() as conn:
        result = await carriers.swap_number(
            conn, current_config(request), request.match_info["number"], string_field(body, "to")
        )
    return web.json_response({"campaigns": list(result.campaigns)})
