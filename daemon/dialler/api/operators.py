"""The operator API (docs/api.md): bots, campaigns, contacts, the call list, the attempt report
and the do-not-call list over HTTP, in the CLI's vocabulary and JSON.

Each handler is an adapter: it reads the request, calls the service the matching CLI command
calls (`campaigns.repo`, `contacts.importer` / `single` / `suppressions`, `stats`, `report`)
and turns the result into JSON. Refusals are the services' typed errors, left to propagate:
the middleware (`answers`) answers each from the one table, `errors.ANSWERS` — 404 unknown
campaign or contact, 409 the state does not allow it (or the name is taken), 422 invalid input
or failed start checks, naming the field, with every problem in `problems`.

Big things stream: the CSV upload goes to a temporary file as it arrives (capped at
`limits.MAX_UPLOAD_BYTES`), the call list and the report are written to the client as the
database cursor yields them.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import logging
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from ..campaigns import repo
from ..campaigns.lookup import resolve_campaign
from ..campaigns.spec import Document, parse_bot
from ..config import Config
from ..contacts.importer import ImportSummary, check_accepts_contacts, import_contacts
from ..contacts.single import add_contact, cancel_contact
from ..contacts.suppressions import (
    Suppression,
    add_suppression,
    list_suppressions,
    remove_suppression,
)
from ..domain.states import ContactState
from ..errors import CsvFileError, InvalidField
from ..report import write_report
from ..stats import call_items, campaign_show, rfc3339
from ..store import Connection
from ..store import campaigns as campaigns_store
from ..triage import triage
from . import limits
from .http import (
    POOL,
    ApiError,
    StreamAborted,
    current_config,
    json_body,
    json_object,
    string_field,
)
from .pages import page_of, page_request, paged

__all__ = ["add_routes"]

log = logging.getLogger(__name__)

#: What an uploaded CSV is called in messages (`body:3: ...`) and the field it is.
UPLOAD = "body"


def add_routes(router: web.UrlDispatcher) -> None:
    """Register every operator route (`server.make_app` calls this)."""
    router.add_post("/v1/bots", create_bot)
    router.add_get("/v1/bots", list_bots)
    router.add_post("/v1/campaigns", create_campaign)
    router.add_get("/v1/campaigns", list_campaigns)
    router.add_post("/v1/campaigns/validate", validate_campaign)
    router.add_get("/v1/campaigns/{campaign}", show_campaign)
    router.add_put("/v1/campaigns/{campaign}", edit_campaign)
    router.add_post("/v1/campaigns/{campaign}/start", start_campaign)
    router.add_post("/v1/campaigns/{campaign}/pause", pause_campaign)
    router.add_post("/v1/campaigns/{campaign}/resume", resume_campaign)
    router.add_post("/v1/campaigns/{campaign}/cancel", cancel_campaign)
    router.add_post("/v1/campaigns/{campaign}/contacts/import", import_csv)
    router.add_post("/v1/campaigns/{campaign}/contacts", add_one_contact)
    router.add_post("/v1/campaigns/{campaign}/contacts/cancel", cancel_one_contact)
    router.add_get("/v1/campaigns/{campaign}/calls", calls)
    router.add_get("/v1/campaigns/{campaign}/report", report)
    router.add_get("/v1/campaigns/{campaign}/triage", triage_campaign)
    router.add_get("/v1/suppressions", suppressions)
    router.add_post("/v1/suppressions", suppress)
    router.add_delete("/v1/suppressions/{phone_number}", unsuppress)


# --- reading requests ------------------------------------------------------------------------


def _body(data: dict[str, Any]) -> Document:
    """A JSON body read as a bot or campaign file: the same checks; a refusal is a
    `SpecError` whose problems are ``<key path>: <what is wrong>``, its `fields` the paths."""
    return Document.request_body(data, UPLOAD)


async def _campaign_id(request: web.Request, conn: Connection) -> uuid.UUID:
    """The campaign named in the path (its id or its name); `UnknownCampaign` (404) if none."""
    return await resolve_campaign(conn, request.match_info["campaign"])


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


# --- bots ------------------------------------------------------------------------------------


async def create_bot(request: web.Request) -> web.Response:
    """`POST /v1/bots`: the bot file's fields; 201 `{"id"}`."""
    spec = parse_bot(_body(await json_body(request)))
    async with request.app[POOL].acquire() as conn:
        bot_id = await repo.create_bot(conn, spec)
    log.info("bot created", extra={"bot": spec.name})
    return _json({"id": str(bot_id)}, 201)


async def list_bots(request: web.Request) -> web.Response:
    """`GET /v1/bots`: by name, paginated (`after`: a bot's name)."""
    page = page_request(request)
    async with request.app[POOL].acquire() as conn:
        bots = page_of(await repo.list_bots(conn), lambda bot: bot.name, page)
    return paged(
        request,
        page,
        [
            {
                "id": str(bot.id),
                "name": bot.name,
                "campaigns": bot.campaigns,
                "created_at": rfc3339(bot.created_at),
            }
            for bot in bots
        ],
        bots[-1].name if bots else None,
    )


# --- campaigns -------------------------------------------------------------------------------


async def create_campaign(request: web.Request) -> web.Response:
    """`POST /v1/campaigns`: the campaign file's fields; a draft, 201 `{"id"}`."""
    body = _body(await json_body(request))
    async with request.app[POOL].acquire() as conn:
        spec = await repo.read_campaign_spec(conn, current_config(request), body)
        campaign_id = await repo.create_campaign(conn, spec)
    log.info("campaign created", extra={"campaign_id": str(campaign_id)})
    return web.json_response(
        {"id": str(campaign_id)}, status=201, headers={"Location": f"/v1/campaigns/{campaign_id}"}
    )


async def list_campaigns(request: web.Request) -> web.Response:
    """`GET /v1/campaigns`: oldest first, paginated (`after`: a campaign's id)."""
    page = page_request(request)
    async with request.app[POOL].acquire() as conn:
        campaigns = page_of(await repo.list_campaigns(conn), lambda c: str(c.id), page)
    return paged(
        request,
        page,
        [
            {
                "id": str(c.id),
                "name": c.name,
                "state": c.state,
                "cancelled_at": rfc3339(c.cancelled_at),
                "bot": c.bot_name,
                "concurrency": c.concurrency,
                "always_on": c.always_on,
                "numbers": c.numbers,
                "created_at": rfc3339(c.created_at),
            }
            for c in campaigns
        ],
        str(campaigns[-1].id) if campaigns else None,
    )


async def validate_campaign(request: web.Request) -> web.Response:
    """`POST /v1/campaigns/validate`: the campaign file's fields, checked as `campaign create`
    and `campaign start` would (but "no contacts"), nothing stored; 200 with every problem
    beside its field (`?campaign=ID` checks an edit of that campaign: its own name is free,
    its contacts' variables are compared with the prompt)."""
    body = _body(await json_body(request))
    async with request.app[POOL].acquire() as conn:
        edited = request.query.get("campaign")
        campaign_id = None if edited is None else await resolve_campaign(conn, edited)
        check = await repo.validate_campaign(
            conn, current_config(request), body, campaign_id=campaign_id
        )
    return _json(
        {
            "problems": [{"field": field, "message": message} for field, message in check.problems],
            "warnings": check.warnings,
        }
    )


async def show_campaign(request: web.Request) -> web.Response:
    """`GET /v1/campaigns/{campaign}`: exactly `campaign show --json`."""
    async with request.app[POOL].acquire() as conn:
        campaign_id = await _campaign_id(request, conn)
        return _json(await campaign_show(conn, current_config(request), campaign_id))


async def edit_campaign(request: web.Request) -> web.Response:
    """`PUT /v1/campaigns/{campaign}`: replace every setting of a draft or paused campaign."""
    body = _body(await json_body(request))
    async with request.app[POOL].acquire() as conn:
        campaign_id = await _campaign_id(request, conn)
        spec = await repo.read_campaign_spec(conn, current_config(request), body)
        changed = await repo.edit_campaign(conn, campaign_id, spec)
    log.info("campaign edited", extra={"campaign_id": str(campaign_id)})
    return _json({"id": str(campaign_id), "name": changed.name, "warnings": changed.warnings})


_Transition = Callable[[Connection, Config, uuid.UUID], Awaitable[repo.Changed]]


async def _transition(
    request: web.Request, change: _Transition, verb: str, state: str
) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        campaign_id = await _campaign_id(request, conn)
        changed = await change(conn, current_config(request), campaign_id)
    log.info("campaign %s", verb, extra={"campaign_id": str(campaign_id)})
    return _json(
        {"id": str(campaign_id), "name": changed.name, "state": state, "warnings": changed.warnings}
    )


async def start_campaign(request: web.Request) -> web.Response:
    """`POST .../start`: draft → running, after the start checks."""
    return await _transition(request, repo.start_campaign, "started", "running")


async def resume_campaign(request: web.Request) -> web.Response:
    """`POST .../resume`: paused → running, after the start checks again."""
    return await _transition(request, repo.resume_campaign, "resumed", "running")


async def pause_campaign(request: web.Request) -> web.Response:
    """`POST .../pause`: running → paused; live calls finish."""

    async def pause(conn: Connection, _config: Config, campaign_id: uuid.UUID) -> repo.Changed:
        return await repo.pause_campaign(conn, campaign_id)

    return await _transition(request, pause, "paused", "paused")


async def cancel_campaign(request: web.Request) -> web.Response:
    """`POST .../cancel`: no new dials, waiting contacts cancelled."""
    async with request.app[POOL].acquire() as conn:
        campaign_id = await _campaign_id(request, conn)
        result = await repo.cancel_campaign(conn, campaign_id)
    log.info("campaign cancelled", extra={"campaign_id": str(campaign_id)})
    return _json(
        {
            "id": str(campaign_id),
            "name": result.name,
            "state": result.state,
            "contacts_cancelled": result.contacts_cancelled,
            "in_flight": result.in_flight,
        }
    )


# --- contacts --------------------------------------------------------------------------------


def _too_large() -> ApiError:
    return ApiError(
        413,
        "too_large",
        f"the CSV is over {limits.MAX_UPLOAD_BYTES} bytes; split it and import the parts",
        UPLOAD,
    )


async def import_csv(request: web.Request) -> web.Response:
    """`POST .../contacts/import`: the CSV file as a `text/csv` body; the import summary with
    the first `limits.REJECTED_ROWS_SHOWN` rejected rows."""
    if request.content_type != "text/csv":
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the contacts CSV as the body, with Content-Type: text/csv",
            "Content-Type",
        )
    if request.content_length is not None and request.content_length > limits.MAX_UPLOAD_BYTES:
        raise _too_large()  # before a byte of it is read
    config = current_config(request)
    pool = request.app[POOL]
    async with pool.acquire() as conn:  # refuse before the upload, not after it
        campaign_id = await _campaign_id(request, conn)
        await check_accepts_contacts(conn, campaign_id)
    with tempfile.TemporaryDirectory(prefix="dialler-import-") as directory:
        path = Path(directory) / "contacts.csv"
        await _receive(request, path)  # no connection held while a slow client uploads
        async with pool.acquire() as conn:
            try:
                summary = await import_contacts(
                    conn,
                    campaign_id,
                    path,
                    config.contacts.default_region,
                    Path(directory) / "errors.csv",
                )
            except CsvFileError as exc:
                raise _upload_problem(exc) from None
            if summary.imported:
                await campaigns_store.wake_daemons(conn, campaign_id)
        shown = await asyncio.to_thread(_rejected_rows, summary.errors_path)
    log.info(
        "contacts imported",
        extra={
            "campaign_id": str(campaign_id),
            "imported": summary.imported,
            "rejected": summary.rejected,
        },
    )
    return _json(_import_answer(campaign_id, summary, shown))


def _upload_problem(exc: CsvFileError) -> CsvFileError:
    """The same problem, located in the request body rather than in the temporary file the
    body was saved to (`body:3: ...`, `field: body`)."""
    located = CsvFileError(UPLOAD, exc.problem, exc.line)
    located.field = UPLOAD
    return located


async def _receive(request: web.Request, path: Path) -> None:
    """The body into `path` as it arrives; 413 once it passes `limits.MAX_UPLOAD_BYTES`, 408
    when a piece of it takes longer than `limits.BODY_TIMEOUT` to arrive (a stalled client
    does not hold the upload open for ever)."""
    size = 0
    with path.open("wb") as out:
        while True:
            try:
                async with asyncio.timeout(limits.BODY_TIMEOUT):
                    chunk = await request.content.read(limits.WRITE_BYTES)
            except TimeoutError:
                raise ApiError(
                    408,
                    "timeout",
                    f"no part of the body arrived for {limits.BODY_TIMEOUT:g} s",
                    "body",
                ) from None
            if not chunk:
                return
            size += len(chunk)
            if size > limits.MAX_UPLOAD_BYTES:
                raise _too_large()
            await asyncio.to_thread(out.write, chunk)


def _rejected_rows(errors_path: Path | None) -> list[dict[str, object]]:
    """The first `limits.REJECTED_ROWS_SHOWN` rows of the import's errors file."""
    if errors_path is None:
        return []
    with errors_path.open(encoding="utf-8", newline="") as handle:
        rows = itertools.islice(csv.reader(handle), 1, limits.REJECTED_ROWS_SHOWN + 1)
        return [{"line": int(row[0]), "reason": row[1]} for row in rows]


def _import_answer(
    campaign_id: uuid.UUID, summary: ImportSummary, shown: list[dict[str, object]]
) -> dict[str, object]:
    return {
        "campaign_id": str(campaign_id),
        "campaign": summary.campaign,
        "imported": summary.imported,
        "rejected": summary.rejected,
        "duplicates_in_campaign": summary.duplicates_in_campaign,
        "suppressed": summary.suppressed,
        "warnings": summary.warnings,
        "rejected_rows": shown,
        "rejected_rows_omitted": summary.rejected - len(shown),
    }


def _metadata(value: object) -> Mapping[str, str]:
    """The trigger's `metadata`: an object of strings, which become the contact's variables."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidField("metadata", "'metadata' must be an object of strings")
    for key, item in value.items():
        if not isinstance(item, str):
            raise InvalidField(
                f"metadata.{key}",
                f"'metadata.{key}' must be a string (variables are text, as in a CSV)",
            )
    return value


async def add_one_contact(request: web.Request) -> web.Response:
    """`POST .../contacts`: one contact, due at once; the daemons are woken to dial it."""
    config = current_config(request)
    body = await json_object(request, {"phone_number", "metadata"}, {"phone_number"})
    phone = string_field(body, "phone_number")
    variables = _metadata(body.get("metadata"))
    async with request.app[POOL].acquire() as conn:
        campaign_id = await _campaign_id(request, conn)
        added = await add_contact(
            conn, campaign_id, phone, variables, config.contacts.default_region
        )
        if not added.suppressed:
            await campaigns_store.wake_daemons(conn, campaign_id)
    log.info("contact added", extra={"campaign_id": str(campaign_id), "contact_id": str(added.id)})
    return _json(
        {
            "id": str(added.id),
            "phone_number": added.phone,
            "state": ContactState.CANCELLED if added.suppressed else ContactState.PENDING,
            "suppressed": added.suppressed,
            "warnings": added.warnings,
        },
        201,
    )


async def cancel_one_contact(request: web.Request) -> web.Response:
    """`POST .../contacts/cancel`: the waiting contact with this number is not dialled."""
    config = current_config(request)
    body = await json_object(request, {"phone_number"}, {"phone_number"})
    phone = string_field(body, "phone_number")
    async with request.app[POOL].acquire() as conn:
        campaign_id = await _campaign_id(request, conn)
        result = await cancel_contact(conn, campaign_id, phone, config.contacts.default_region)
    return _json(
        {
            "id": str(result.id),
            "phone_number": result.phone,
            "state": result.already_final or "cancelled",
            "already_final": result.already_final is not None,
        }
    )


# --- the call list and the report ------------------------------------------------------------


async def calls(request: web.Request) -> web.Response:
    """`GET .../calls`: the call list, paginated (`after`: a contact id), `?state=` keeps the
    contacts in one state."""
    page = page_request(request)
    state = _state_filter(request.query.get("state"))
    after = None if page.after is None else _contact_cursor(page.after)
    async with request.app[POOL].acquire() as conn:
        campaign_id = await _campaign_id(request, conn)
        items = [
            call
            async for call in call_items(
                conn, campaign_id, state=state, after=after, limit=page.limit
            )
        ]
    return paged(request, page, list(items), str(items[-1]["contact_id"]) if items else None)


def _state_filter(raw: str | None) -> ContactState | None:
    if raw is None:
        return None
    try:
        return ContactState(raw)
    except ValueError:
        raise InvalidField(
            "state", f"state: {raw!r} is not one of {', '.join(ContactState)}"
        ) from None


def _contact_cursor(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise InvalidField("after", f"after: {raw!r} is not a contact id") from None


async def report(request: web.Request) -> web.StreamResponse:
    """`GET .../report`: the attempt report CSV, streamed as `write_report` writes it.

    Between rows, the CSV written so far is sent once there is `limits.WRITE_BYTES` of it,
    and the next row waits until the client has taken it: a slow client slows the query
    instead of filling memory.
    """
    async with request.app[POOL].acquire() as conn:
        campaign_id = await _campaign_id(request, conn)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="attempts-{campaign_id}.csv"',
            }
        )
        out = io.StringIO()

        async def drain() -> None:
            text = out.getvalue()
            out.seek(0)
            out.truncate()
            if not response.prepared:  # first bytes: from now on failures cut the stream
                await response.prepare(request)
            await response.write(text.encode())

        async def on_progress() -> None:
            if out.tell() >= limits.WRITE_BYTES:
                await drain()

        try:
            count = await write_report(conn, campaign_id, out, on_progress=on_progress)
            await drain()
            await response.write_eof()
        except Exception as exc:
            if not response.prepared:
                raise  # nothing sent yet: an ordinary JSON error
            raise StreamAborted(f"{type(exc).__name__}: {exc}") from exc
    log.info("report downloaded", extra={"campaign_id": str(campaign_id), "attempts": count})
    return response


async def triage_campaign(request: web.Request) -> web.Response:
    """`GET .../triage`: the guide's quick triage table evaluated (`dialler triage --json`)."""
    async with request.app[POOL].acquire() as conn:
        campaign_id = await _campaign_id(request, conn)
        report = await triage(conn, current_config(request), campaign_id)
    return _json(report.to_json())


# --- the do-not-call list --------------------------------------------------------------------


def _suppression(entry: Suppression) -> dict[str, object]:
    return {
        "phone_number": entry.phone_number,
        "reason": entry.reason,
        "added_at": rfc3339(entry.added_at),
    }


async def suppressions(request: web.Request) -> web.Response:
    """`GET /v1/suppressions`: the list, oldest first, paginated (`after`: a number)."""
    page = page_request(request)
    async with request.app[POOL].acquire() as conn:
        entries = page_of(await list_suppressions(conn), lambda entry: entry.phone_number, page)
    return paged(
        request,
        page,
        [_suppression(entry) for entry in entries],
        entries[-1].phone_number if entries else None,
    )


async def suppress(request: web.Request) -> web.Response:
    """`POST /v1/suppressions`: list the number and cancel its waiting contacts everywhere;
    201 when new, 200 when it was listed already."""
    config = current_config(request)
    body = await json_object(request, {"phone_number", "reason"}, {"phone_number"})
    phone = string_field(body, "phone_number")
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise InvalidField("reason", "'reason' must be a string")
    async with request.app[POOL].acquire() as conn:
        added = await add_suppression(conn, phone, config.contacts.default_region, reason)
    log.info("number suppressed", extra={"contacts_cancelled": len(added.cancelled)})
    return _json(
        {**_suppression(added.entry), "new": added.new, "contacts_cancelled": len(added.cancelled)},
        201 if added.new else 200,
    )


async def unsuppress(request: web.Request) -> web.Response:
    """`DELETE /v1/suppressions/{phone_number}`: 204; 404 when the number is not listed."""
    config = current_config(request)
    async with request.app[POOL].acquire() as conn:
        await remove_suppression(
            conn, request.match_info["phone_number"], config.contacts.default_region
        )
    return web.Response(status=204)
