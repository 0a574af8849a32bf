"""Caller IDs over HTTP (docs/api.md, "Numbers and carriers"): `GET /v1/numbers` (per
number: carrier, enabled, the last hour's calls and 4xx / 5xx / 429 shares, campaigns),
`POST /v1/numbers/{number}/disable|enable`, `POST /v1/numbers/{number}/swap` (`{"to"}`:
replace it in every pool that can still dial). The services are `dialler.carriers`'."""

from __future__ import annotations

import logging

from aiohttp import web

from ..carriers import list_numbers, set_enabled, swap_number
from .http import POOL, current_config, json_object, string_field
from .pages import page_of, page_request, paged

__all__ = ["add_routes"]

log = logging.getLogger(__name__)


def add_routes(router: web.UrlDispatcher) -> None:
    """Register the number routes (`server.make_app` calls this)."""
    router.add_get("/v1/numbers", numbers)
    router.add_post("/v1/numbers/{number}/disable", disable)
    router.add_post("/v1/numbers/{number}/enable", enable)
    router.add_post("/v1/numbers/{number}/swap", swap)


async def numbers(request: web.Request) -> web.Response:
    """`GET /v1/numbers`: every configured caller ID, by number, paginated (`after`: a
    number)."""
    page = page_request(request)
    async with request.app[POOL].acquire() as conn:
        statuses = await list_numbers(conn, current_config(request))
    shown = page_of(statuses, lambda status: status.number, page)
    return paged(
        request,
        page,
        [status.to_json() for status in shown],
        shown[-1].number if shown else None,
    )


async def _set(request: web.Request, *, enabled: bool) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        status = await set_enabled(
            conn, current_config(request), request.match_info["number"], enabled
        )
    log.info("number %s", "enabled" if enabled else "disabled")  # never the number itself
    return web.json_response({**status.to_json(), "warnings": status.warnings()})


async def disable(request: web.Request) -> web.Response:
    """`POST /v1/numbers/{number}/disable`: out of rotation; the number's status, with a
    warning per live campaign left without an enabled number."""
    return await _set(request, enabled=False)


async def enable(request: web.Request) -> web.Response:
    """`POST /v1/numbers/{number}/enable` (422 when the config itself disables it)."""
    return await _set(request, enabled=True)


async def swap(request: web.Request) -> web.Response:
    """`POST /v1/numbers/{number}/swap` with `{"to": NUMBER}`: the campaigns changed."""
    body = await json_object(request, {"to"}, {"to"})
    to = string_field(body, "to")
    async with request.app[POOL].acquire() as conn:
        result = await swap_number(conn, current_config(request), request.match_info["number"], to)
    log.info("number swapped", extra={"campaigns": len(result.campaigns)})
    return web.json_response({"from": result.old, "to": result.new, "campaigns": result.campaigns})
