"""One bot over HTTP: `GET /v1/bots/{name}` (prompt and pipeline) and `PUT /v1/bots/{name}`
(replace it, rename included). The list and creation are with the other operator routes
(`operators`); docs/api.md, "Bots"."""

from __future__ import annotations

import logging

from aiohttp import web

from ..campaigns import repo
from ..campaigns.spec import Document, parse_bot
from .http import POOL, json_body

__all__ = ["add_routes"]

log = logging.getLogger(__name__)


def add_routes(router: web.UrlDispatcher) -> None:
    """Register the bot routes (`server.make_app` calls this)."""
    router.add_get("/v1/bots/{name}", show_bot)
    router.add_put("/v1/bots/{name}", edit_bot)


async def show_bot(request: web.Request) -> web.Response:
    """`GET /v1/bots/{name}`; 404 when there is no such bot."""
    async with request.app[POOL].acquire() as conn:
        bot = await repo.get_bot(conn, request.match_info["name"])
    return web.json_response(bot.to_json())


async def edit_bot(request: web.Request) -> web.Response:
    """`PUT /v1/bots/{name}`: the bot file's fields replace the bot's; the bot as it is now.
    404 unknown bot, 409 the new name is another bot's, 422 an invalid field."""
    spec = parse_bot(Document.request_body(await json_body(request), "body"))
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await repo.edit_bot(conn, request.match_info["name"], spec)
        bot = await repo.get_bot(conn, spec.name)
    log.info("bot edited", extra={"bot": spec.name})
    return web.json_response(bot.to_json())
