"""The operator web console, served by the daemon on the HTTP listener (docs/console.md).

Server-rendered pages (aiohttp-jinja2, autoescaping on) with a little JavaScript of our own
(`static/console.js`: the wizard's live checks, polling of the live panels, copy buttons, the
test call's stages) — no build step, nothing loaded from outside the daemon. URLs and test
hooks: CONTRACT.md, "Console".

An adapter, like `api`: pages call the same service functions as the CLI and `/v1` (and its
actions are the `/v1` handlers themselves), so it adds no second source of truth. `setup`
adds its routes, templates and session guard to the application `api.server.make_app` built;
`app.py` calls it.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from . import actions, pages
from .pages import FRAGMENTS, Fragments
from .present import age, percent
from .sessions import SESSIONS, Sessions, console_guard

__all__ = ["STATIC", "TEMPLATES", "setup"]

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")


def setup(app: web.Application) -> None:
    """Add the console to `app` (before it starts): its session guard in front of every
    middleware, the templates, the static files and the routes."""
    app.middlewares.insert(0, console_guard)
    app[SESSIONS] = Sessions()
    app[FRAGMENTS] = Fragments()
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"], default=True),
        undefined=jinja2.StrictUndefined,
    )
    env.globals.update(age=age, percent=percent)
    app.router.add_static("/static/", STATIC, name="static", append_version=True)
    actions.add_routes(app.router)  # /campaigns/validate before /campaigns/{campaign}
    pages.add_routes(app.router)
