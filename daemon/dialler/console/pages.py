"""The console's pages and the fragments its pages poll (GET only: nothing here changes
anything). Every figure comes from the services the CLI and `/v1` use — `stats.campaign_show`,
`stats.call_items`, `triage.triage`, `workers.fleet_status`, `carriers.list_numbers`,
`contacts.suppressions` — so the console is never a second source of truth.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from .. import carriers, workers
from ..api.http import POOL, TEST_CALL, current_config
from ..campaigns import repo
from ..campaigns.lookup import resolve_campaign
from ..campaigns.spec import system_dispositions
from ..contacts.suppressions import list_suppressions
from ..domain.prompt import placeholders
from ..domain.states import CampaignState, ContactState
from ..errors import InvalidField
from ..stats import call_items, campaign_show
from ..store import Connection
from ..triage import triage
from .present import ACTIVITY, activity_of, age, contact_kind, parse_time, percent, stat_cells
from .sessions import current_session

__all__ = ["CALLS_PAGE", "DAYS", "FRAGMENTS", "Fragments", "add_routes"]

#: Contacts per page of the call list.
CALLS_PAGE = 50
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: The wizard's defaults: the campaign file's (CONTRACT "Files").
_NEW_CAMPAIGN: dict[str, Any] = {
    "name": "",
    "bot": None,
    "numbers": [],
    "concurrency": None,  # blank: 50 is shown as the placeholder
    "window": {"start": "09:00", "end": "18:00", "days": list(DAYS[:5]), "timezone": "UTC"},
    "always_on": False,
    "ring_timeout": "30s",
    "retry": {"max_attempts": 1, "delay": "30m", "on_system": [], "on_custom": []},
    "redial": {"stop_after_connect_longer_than": None, "redial_after_connect_shorter_than": None},
}


#: How long a polled fragment is reused: pages open on one campaign share one rendering.
LIVE_TTL = 1.0
TRIAGE_TTL = 10.0
_MAX_FRAGMENTS = 1000


class Fragments:
    """The polled fragments rendered in the last `LIVE_TTL` (triage: `TRIAGE_TTL`) seconds, by
    URL: five pages open on a campaign cost the daemon about what one costs. The figures are
    the services' own, at most that old; nothing is kept longer."""

    def __init__(self) -> None:
        self._by_url: dict[str, tuple[float, str]] = {}

    async def get(self, key: str, ttl: float, render: Callable[[], Awaitable[str]]) -> str:
        """The fragment for `key`, rendered by `render` when none is fresh."""
        now = time.monotonic()
        kept = self._by_url.get(key)
        if kept is not None and kept[0] > now:
            return kept[1]
        text = await render()
        if len(self._by_url) >= _MAX_FRAGMENTS:
            self._by_url = {k: v for k, v in self._by_url.items() if v[0] > now}
            if len(self._by_url) >= _MAX_FRAGMENTS:
                self._by_url.clear()
        self._by_url[key] = (now + ttl, text)
        return text


FRAGMENTS: web.AppKey[Fragments] = web.AppKey("console_fragments", Fragments)


async def _fragment(
    request: web.Request, ttl: float, render: Callable[[], Awaitable[web.Response]]
) -> web.Response:
    """A polled fragment (HTML), from `FRAGMENTS` when fresh. The fragments show no session-
    dependent part, so every session may share them."""

    async def text() -> str:
        return (await render()).text or ""

    body = await request.app[FRAGMENTS].get(request.path_qs, ttl, text)
    return web.Response(text=body, content_type="text/html")


def add_routes(router: web.UrlDispatcher) -> None:
    """The pages (and their fragments)."""
    router.add_get("/", home)
    router.add_get("/campaigns", campaigns_page)
    router.add_get("/campaigns/new", new_campaign_page)
    router.add_get("/campaigns/{campaign}", campaign_page)
    router.add_get("/campaigns/{campaign}/edit", edit_campaign_page)
    router.add_get("/campaigns/{campaign}/live", live_fragment)
    router.add_get("/campaigns/{campaign}/calls", calls_fragment)
    router.add_get("/campaigns/{campaign}/triage", triage_fragment)
    router.add_get("/bots", bots_page)
    router.add_get("/bots/{name}", bot_page)
    router.add_get("/fleet", fleet_page)
    router.add_get("/carriers", carriers_page)
    router.add_get("/suppressions", suppressions_page)


def _page(request: web.Request, template: str, **context: Any) -> web.Response:
    """A page: every one knows the session (sign-out form, CSRF token, what it may change)."""
    session = current_session(request)
    return aiohttp_jinja2.render_template(
        template,
        request,
        {"session": session, "can_change": session.can_change, "path": request.path, **context},
    )


async def home(_request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/campaigns")


async def _campaign_id(request: web.Request, conn: Connection) -> uuid.UUID:
    return await resolve_campaign(conn, request.match_info["campaign"])


# --- campaigns -------------------------------------------------------------------------------


async def campaigns_page(request: web.Request) -> web.Response:
    """The campaigns list: name, state badge, bot, concurrency, created, id with copy button."""
    async with request.app[POOL].acquire() as conn:
        campaigns = await repo.list_campaigns(conn)
    return _page(request, "campaigns.html", campaigns=campaigns)


async def _wizard(
    request: web.Request, campaign: dict[str, Any], campaign_id: str | None, has_contacts: bool
) -> web.Response:
    config = current_config(request)
    async with request.app[POOL].acquire() as conn:
        bots = await repo.list_bots(conn)
        numbers = await carriers.list_numbers(conn, config)
    return _page(
        request,
        "wizard.html",
        campaign=campaign,
        campaign_id=campaign_id,
        has_contacts=has_contacts,
        bots=bots,
        numbers=numbers,
        days=DAYS,
        system_dispositions=system_dispositions(),
    )


async def new_campaign_page(request: web.Request) -> web.Response:
    """The wizard, for a new campaign."""
    return await _wizard(request, _NEW_CAMPAIGN, None, False)


async def edit_campaign_page(request: web.Request) -> web.Response:
    """The wizard, on a campaign's settings as they are stored."""
    config = current_config(request)
    async with request.app[POOL].acquire() as conn:
        campaign_id = await _campaign_id(request, conn)
        show = await campaign_show(conn, config, campaign_id)
    settings = {"name": show["name"], **show["settings"]}
    return await _wizard(request, settings, str(campaign_id), _contacts(show) > 0)


def _contacts(show: dict[str, Any]) -> int:
    stats = show["stats"]
    return sum(int(stats.get(state.value, 0)) for state in ContactState)


def _live_context(show: dict[str, Any]) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "show": show,
        "activity": activity_of(show["activity"]),
        "cells": stat_cells(show),
        "last_dial": age(parse_time(show["stats"]["last_dial_at"]), now),
        "answer_rate": percent(show["stats"]["answer_rate"]),
        "abandon_rate": percent(show.get("abandon_rate_30d", 0.0)),
        "contacts": _contacts(show),
    }


async def campaign_page(request: web.Request) -> web.Response:
    """The detail page: live panel, stats grid, actions, call list, settings, triage."""
    config = current_config(request)
    async with request.app[POOL].acquire() as conn:
        campaign_id = await _campaign_id(request, conn)
        show = await campaign_show(conn, config, campaign_id)
        calls = await _calls(request, conn, campaign_id)
        report = (await triage(conn, config, campaign_id)).to_json()
    return _page(
        request,
        "campaign.html",
        **_live_context(show),
        **calls,
        triage=report,
        states=list(ContactState),
        activities=ACTIVITY,
        startable=show["state"] == CampaignState.DRAFT,
    )


async def live_fragment(request: web.Request) -> web.Response:
    """The live panel and the stats grid, for the page's polling."""

    async def render() -> web.Response:
        async with request.app[POOL].acquire() as conn:
            campaign_id = await _campaign_id(request, conn)
            show = await campaign_show(conn, current_config(request), campaign_id)
        return _page(request, "_live.html", **_live_context(show))

    return await _fragment(request, LIVE_TTL, render)


async def _calls(request: web.Request, conn: Connection, campaign_id: uuid.UUID) -> dict[str, Any]:
    """One page of the call list, as the query string asks (`state`, `after`)."""
    raw_state = request.query.get("state") or None
    raw_after = request.query.get("after") or None
    try:
        state = ContactState(raw_state) if raw_state else None
    except ValueError:
        raise InvalidField("state", f"'state' must be one of {', '.join(ContactState)}") from None
    try:
        after = uuid.UUID(raw_after) if raw_after else None
    except ValueError:
        raise InvalidField("after", "'after' must be a contact id") from None
    items: list[dict[str, object]] = []
    async with conn.transaction():  # the call list reads from a cursor
        async for item in call_items(
            conn, campaign_id, state=state, after=after, limit=CALLS_PAGE + 1
        ):
            items.append({**item, "kind": contact_kind(str(item["state"]))})
    more = len(items) > CALLS_PAGE
    items = items[:CALLS_PAGE]
    return {
        "calls": items,
        "state_filter": raw_state or "",
        "after": raw_after,
        "next_after": items[-1]["contact_id"] if more else None,
        "campaign_id": str(campaign_id),
    }


async def calls_fragment(request: web.Request) -> web.Response:
    """One page of the call list, for the page's polling and its filter and pager."""

    async def render() -> web.Response:
        async with request.app[POOL].acquire() as conn:
            campaign_id = await _campaign_id(request, conn)
            calls = await _calls(request, conn, campaign_id)
        return _page(request, "_calls.html", **calls)

    return await _fragment(request, LIVE_TTL, render)


async def triage_fragment(request: web.Request) -> web.Response:
    """The triage panel (the same logic as `dialler triage`)."""

    async def render() -> web.Response:
        async with request.app[POOL].acquire() as conn:
            campaign_id = await _campaign_id(request, conn)
            report = (await triage(conn, current_config(request), campaign_id)).to_json()
        return _page(request, "_triage.html", triage=report)

    return await _fragment(request, TRIAGE_TTL, render)


# --- bots ------------------------------------------------------------------------------------


async def bots_page(request: web.Request) -> web.Response:
    """Every bot, and the form creating one."""
    async with request.app[POOL].acquire() as conn:
        bots = await repo.list_bots(conn)
    return _page(request, "bots.html", bots=bots)


def prompt_parts(prompt: str) -> list[tuple[str, bool]]:
    """The prompt cut into (text, is a placeholder) pieces, to mark its variables."""
    parts: list[tuple[str, bool]] = []
    at = 0
    for placeholder in placeholders(prompt):
        start = placeholder.start
        if start > at:
            parts.append((prompt[at:start], False))
        parts.append((placeholder.text, True))
        at = start + len(placeholder.text)
    if at < len(prompt):
        parts.append((prompt[at:], False))
    return parts


async def bot_page(request: web.Request) -> web.Response:
    """One bot: its prompt with the variables marked, its pipeline, the edit form and the
    test call."""
    config = current_config(request)
    async with request.app[POOL].acquire() as conn:
        bot = await repo.get_bot(conn, request.match_info["name"])
    found = placeholders(bot.prompt)
    return _page(
        request,
        "bot.html",
        bot=bot,
        parts=prompt_parts(bot.prompt),
        variables=[p for p in found if p.valid],
        malformed=[p for p in found if not p.valid],
        test_calls=request.app[TEST_CALL] is not None,
        caller_ids=[n.number for n in config.numbers if n.enabled],
    )


# --- fleet, carriers, suppressions -----------------------------------------------------------


async def fleet_page(request: web.Request) -> web.Response:
    """Workers, capacity, in use, free, heartbeat age, rotation; free against running
    campaigns' concurrency."""
    async with request.app[POOL].acquire() as conn:
        fleet = await workers.fleet_status(conn, current_config(request))
    return _page(request, "fleet.html", fleet=fleet)


async def carriers_page(request: web.Request) -> web.Response:
    """Numbers per carrier with the last hour's calls and 4xx/5xx/429 shares; disable,
    enable, replace in running campaigns."""
    config = current_config(request)
    async with request.app[POOL].acquire() as conn:
        numbers = await carriers.list_numbers(conn, config)
    by_carrier: dict[str, list[Any]] = {c.name: [] for c in config.carriers}
    for number in numbers:
        by_carrier.setdefault(number.carrier, []).append(number)
    return _page(
        request,
        "carriers.html",
        by_carrier=by_carrier,
        numbers=numbers,
        percent=percent,
    )


async def suppressions_page(request: web.Request) -> web.Response:
    """The do-not-call list; `q` keeps the entries whose number or reason contain it."""
    query = request.query.get("q", "").strip()
    async with request.app[POOL].acquire() as conn:
        entries = await list_suppressions(conn)
    if query:
        digits = query.lstrip("+")
        entries = [
            e
            for e in entries
            if (digits and digits in e.phone_number)
            or query.casefold() in (e.reason or "").casefold()
        ]
    return _page(request, "suppressions.html", entries=entries, query=query)
