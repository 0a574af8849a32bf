"""`GET /v1/fleet`: the bot workers, their slots and the totals against the running campaigns'
concurrency (`dialler.workers.fleet_status`; docs/api.md, "Fleet")."""

from __future__ import annotations

from aiohttp import web

from ..workers import fleet_status
from .http import POOL, current_config

__all__ = ["add_routes"]


def add_routes(router: web.UrlDispatcher) -> None:
    """Register the fleet route (`server.make_app` calls this)."""
    router.add_get("/v1/fleet", show_fleet)


async def show_fleet(request: web.Request) -> web.Response:
    """`GET /v1/fleet`."""
    async with request.app[POOL].acquire() as conn:
        fleet = await fleet_status(conn, current_config(request))
    return web.json_response(fleet.to_json())
