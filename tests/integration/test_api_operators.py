"""The operator API through a real HTTP listener and a real PostgreSQL: every route, good and
bad input, and the OpenAPI document against the routes the application registers."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from dialler.api import limits
from dialler.api.server import make_app, start
from dialler.config import Config, parse_config
from dialler.engine.engine import Engine
from dialler.report import FIXED, write_report
from dialler.store.engine import CampaignClaim, claim_contacts
from dialler.store.pool import create_pool
from dialler.triage import triage

from ..support import free_port

pytestmark = pytest.mark.integration

TOKEN = "o" * 24
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NUMBERS = ("+441632960001", "+441632960002")
BOT = {
    "name": "renewals-bot",
    "prompt": "Hello {{CustomerName}}, about {{call.Plan}}",
    "pipeline": {"stt": "deepgram"},
}
SHOW_KEYS = {
    "id",
    "name",
    "state",
    "activity",
    "stalled",
    "effective_concurrency",
    "capped_by",
    "stats",
    "outcomes",
    "abandon_rate_30d",
    "waiting_for_local_window",
    "settings",
}
STATS_KEYS = {
    "pending",
    "dialing",
    "connected",
    "wrapping",
    "retry_scheduled",
    "callback_scheduled",
    "done",
    "exhausted",
    "cancelled",
    "retries_left",
    "answer_rate",
    "last_dial_at",
}


def make_config(db_dsn: str, directory: Path) -> Config:
    tokens = directory / "tokens"
    tokens.write_text(f"# operators\n{TOKEN}\n")
    return parse_config(
        {
            "database": {"dsn": db_dsn},
            "asterisk": [{"name": "pbx", "ami": {"username": "u", "secret_env": "S"}}],
            "listeners": {"agi": {"secret_env": "A"}},
            "carriers": [{"name": "lab"}],
            "numbers": [{"number": number, "carrier": "lab"} for number in NUMBERS],
            "api": {"tokens_file": str(tokens)},
        },
        "test",
        env={"S": "secret", "A": "agi-secret-0123456789"},
    )


@dataclass
class Answer:
    status: int
    body: Any
    headers: Any

    @property
    def error(self) -> dict[str, Any]:
        assert isinstance(self.body, dict) and "error" in self.body, (self.status, self.body)
        found: dict[str, Any] = self.body["error"]
        return found


@dataclass
class Api:
    url: str
    pool: Any
    config: Config
    http: aiohttp.ClientSession

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        token: bool = True,
    ) -> Answer:
        sent = {**(AUTH if token else {}), **(headers or {})}
        async with self.http.request(
            method, f"{self.url}{path}", json=json_body, data=data, headers=sent
        ) as response:
            text = await response.text()
            body: Any = text
            if response.content_type == "application/json":
                body = json.loads(text)
            return Answer(response.status, body, response.headers)

    async def ok(self, method: str, path: str, status: int = 200, **options: Any) -> Any:
        answer = await self.call(method, path, **options)
        assert answer.status == status, (answer.status, answer.body)
        return answer.body

    async def refused(
        self, method: str, path: str, status: int, field: str | None = None, **options: Any
    ) -> dict[str, Any]:
        answer = await self.call(method, path, **options)
        assert answer.status == status, (answer.status, answer.body)
        error = answer.error
        assert error["message"]
        if field is not None:
            assert error.get("field") == field, error
        return error

    async def bot(self) -> str:
        created = await self.ok("POST", "/v1/bots", 201, json_body=BOT)
        return str(created["id"])

    async def campaign(self, name: str = "Renewals", **fields: Any) -> str:
        body = {"name": name, "bot": BOT["name"], "numbers": list(NUMBERS), **fields}
        created = await self.ok("POST", "/v1/campaigns", 201, json_body=body)
        return str(created["id"])

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        async with self.pool.acquire() as conn:
            return list(await conn.fetch(query, *args))


Readiness = Callable[[], Awaitable[dict[str, bool]]]


@pytest.fixture
async def serve(db_dsn: str, tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Api]]]:
    """Start a listener (with the given `make_app` options) around the test's database."""
    config = make_config(db_dsn, tmp_path)
    pool = await create_pool(db_dsn)
    http = aiohttp.ClientSession()
    runners: list[web.AppRunner] = []

    engine = Engine(config, pool, {}, "api-test")  # no AMI: results only, nothing dialled

    async def serve_app(readiness: Readiness | None = None) -> Api:
        port = free_port()
        app = make_app(config, pool, engine.record_result, readiness=readiness)
        runners.append(await start(app, "127.0.0.1", port))
        return Api(f"http://127.0.0.1:{port}", pool, config, http)

    yield serve_app
    await http.close()
    for runner in runners:
        await runner.cleanup()
    await pool.close()


@pytest.fixture
async def api(serve: Callable[..., Awaitable[Api]]) -> Api:
    return await serve()


# --- probes, auth, errors --------------------------------------------------------------------


async def test_probes_are_open_and_readyz_takes_the_callback(
    serve: Callable[..., Awaitable[Api]],
) -> None:
    plain = await serve()
    assert await plain.ok("GET", "/healthz", token=False) == {"status": "ok"}
    assert await plain.ok("GET", "/readyz", token=False) == {
        "ready": True,
        "checks": {"database": True},
    }
    assert (await plain.ok("GET", "/v1/openapi.json", token=False))["openapi"] == "3.1.0"

    async def ami_down() -> dict[str, bool]:
        return {"ami:pbx": False}

    down = await serve(readiness=ami_down)
    answer = await down.call("GET", "/readyz", token=False)
    assert answer.status == 503
    assert answer.body == {"ready": False, "checks": {"database": True, "ami:pbx": False}}

    async def broken() -> dict[str, bool]:
        raise RuntimeError("boom")

    answer = await (await serve(readiness=broken)).call("GET", "/readyz", token=False)
    assert answer.status == 503


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": TOKEN}]
)
async def test_operator_routes_need_the_token(api: Api, headers: dict[str, str]) -> None:
    for method, path in (
        ("GET", "/v1/campaigns"),
        ("POST", "/v1/bots"),
        ("GET", "/v1/suppressions"),
        ("GET", "/v1/campaigns/x/report"),
    ):
        error = await api.refused(method, path, 401, token=False, headers=headers)
        assert error["code"] == "unauthorized"


async def test_unknown_route_and_method_answer_json(api: Api) -> None:
    assert (await api.refused("GET", "/v1/nothing", 404))["code"] == "not_found"
    assert (await api.refused("DELETE", "/v1/campaigns", 405))["code"] == "method_not_allowed"


async def test_database_unavailable_answers_503(db_dsn: str, tmp_path: Path) -> None:
    """A pool that cannot give a connection (closed here; the database down in production):
    every route that needs it answers 503 `unavailable`, and /readyz says the database is
    not ready. (A worker's result is the exception: it is kept and written once the database
    is back — tests/integration/test_faults_database.py.)"""
    config = make_config(db_dsn, tmp_path)
    pool = await create_pool(db_dsn)
    await pool.close()
    engine = Engine(config, pool, {}, "api-test")
    port = free_port()
    runner = await start(make_app(config, pool, engine.record_result), "127.0.0.1", port)
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(f"http://127.0.0.1:{port}", pool, config, http)
            for method, path in (
                ("GET", "/v1/campaigns"),
                ("GET", "/v1/campaigns/x/calls"),
            ):
                error = await api.refused(method, path, 503, json_body={"disposition": "completed"})
                assert error["code"] == "unavailable"
            answer = await api.call("GET", "/readyz", token=False)
            assert (answer.status, answer.body["checks"]) == (503, {"database": False})
    finally:
        await runner.cleanup()


async def test_json_body_over_the_limit(api: Api) -> None:
    error = await api.refused(
        "POST", "/v1/bots", 413, json_body={"name": "b", "prompt": "x" * 70_000}
    )
    assert error["code"] == "too_large"


# --- bots ------------------------------------------------------------------------------------


async def test_bots(api: Api) -> None:
    bot_id = await api.bot()
    [listed] = await api.ok("GET", "/v1/bots")
    assert listed["id"] == bot_id
    assert listed["name"] == BOT["name"]
    assert listed["campaigns"] == 0
    assert listed["created_at"].endswith("Z")
    error = await api.refused("POST", "/v1/bots", 409, "name", json_body=BOT)
    assert error["code"] == "name_taken"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": 5, "prompt": "p"}, "name"),
        ({"name": "b", "prompt": "p", "pipelin": {}}, "pipelin"),
        ({"name": "b"}, "prompt"),
        ({"name": "b", "prompt": "p", "pipeline": "deepgram"}, "pipeline"),
    ],
)
async def test_bad_bot_names_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    error = await api.refused("POST", "/v1/bots", 422, field, json_body=body)
    assert error["problems"]


@pytest.mark.parametrize(
    "data", [b"{not json", b"[1, 2]", b'{"name": "a", "name": "b"}', b"\xff\xfe"]
)
async def test_body_that_is_not_a_json_object(api: Api, data: bytes) -> None:
    error = await api.refused(
        "POST", "/v1/bots", 400, data=data, headers={"Content-Type": "application/json"}
    )
    assert error["code"] == "bad_json"


# --- campaigns -------------------------------------------------------------------------------


async def test_campaign_create_list_show(api: Api) -> None:
    await api.bot()
    answer = await api.call(
        "POST",
        "/v1/campaigns",
        json_body={
            "name": "Renewals",
            "bot": BOT["name"],
            "numbers": list(NUMBERS),
            "window": {"start": "08:00", "end": "20:00", "days": ["mon", "sat"]},
            "ring_timeout": "25s",
            "retry": {"max_attempts": 3, "delay": 600, "on_system": ["no_answer"]},
        },
    )
    assert answer.status == 201, answer.body
    campaign_id = answer.body["id"]
    assert answer.headers["Location"] == f"/v1/campaigns/{campaign_id}"
    [listed] = await api.ok("GET", "/v1/campaigns")
    assert listed | {"created_at": None} == {
        "id": campaign_id,
        "name": "Renewals",
        "state": "draft",
        "cancelled_at": None,
        "bot": BOT["name"],
        "concurrency": 50,
        "always_on": False,
        "numbers": 2,
        "created_at": None,
    }
    by_id = await api.ok("GET", f"/v1/campaigns/{campaign_id}")
    by_name = await api.ok("GET", "/v1/campaigns/Renewals")
    assert by_id == by_name
    assert set(by_id) == SHOW_KEYS
    assert set(by_id["stats"]) == STATS_KEYS
    assert (by_id["id"], by_id["state"], by_id["activity"]) == (campaign_id, "draft", "draft")
    await api.refused("POST", "/v1/campaigns", 409, "name", json_body={"name": "Renewals"})


async def test_campaign_names_in_paths_are_percent_encoded(api: Api) -> None:
    campaign_id = await api.campaign("Q4 / renewals", bot=None, numbers=[])
    shown = await api.ok("GET", "/v1/campaigns/Q4%20%2F%20renewals")
    assert shown["id"] == campaign_id


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "c", "concurrency": "10"}, "concurrency"),
        ({"name": "c", "windw": {}}, "windw"),
        ({"name": "c", "bot": "no-such-bot"}, "bot"),
        ({"bot": "renewals-bot"}, "name"),
        ({"name": "c", "numbers": ["+447700900001"]}, "numbers[0]"),
        ({"name": "c", "retry": {"max_attempts": 0}}, "retry.max_attempts"),
        ({"name": "c", "always_on": "yes"}, "always_on"),
        ({"name": "c", "ring_timeout": "soon"}, "ring_timeout"),
    ],
)
async def test_bad_campaign_names_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    await api.bot()
    error = await api.refused("POST", "/v1/campaigns", 422, field, json_body=body)
    assert error["code"] == "invalid_field"
    assert any(problem.startswith(field) for problem in error["problems"])


async def test_every_problem_is_listed(api: Api) -> None:
    error = await api.refused(
        "POST",
        "/v1/campaigns",
        422,
        json_body={"name": "c", "concurrency": True, "retry": {"delay": "1x"}, "extra": 1},
    )
    fields = {problem.split(":")[0] for problem in error["problems"]}
    assert fields == {"concurrency", "retry.delay", "extra"}


async def test_start_refusal_lists_every_problem(api: Api) -> None:
    campaign_id = (
        await api.ok(
            "POST",
            "/v1/campaigns",
            201,
            json_body={"name": "Empty", "concurrency": 0, "window": {"days": []}},
        )
    )["id"]
    error = await api.refused("POST", f"/v1/campaigns/{campaign_id}/start", 422)
    assert error["code"] == "start_checks_failed"
    problems = error["problems"]
    assert len(problems) == 5, problems
    for words in ("no bot", "number pool is empty", "concurrency", "window.days", "no contacts"):
        assert any(words in problem for problem in problems), (words, problems)
        assert words in error["message"]


async def test_lifecycle(api: Api) -> None:
    await api.bot()
    campaign_id = await api.campaign()
    path = f"/v1/campaigns/{campaign_id}"
    error = await api.refused("POST", f"{path}/start", 422)
    assert any("no contacts" in problem for problem in error["problems"])
    await api.ok(
        "POST",
        f"{path}/contacts",
        201,
        json_body={
            "phone_number": "+447700900001",
            "metadata": {"CustomerName": "Ann", "Plan": "gold"},
        },
    )
    started = await api.ok("POST", "/v1/campaigns/Renewals/start")
    assert started == {"id": campaign_id, "name": "Renewals", "state": "running", "warnings": []}
    error = await api.refused("POST", f"{path}/start", 409)
    assert error["code"] == "wrong_state"
    assert error["problems"] == [error["message"]]
    assert "running" in error["message"]
    await api.refused("PUT", path, 409, json_body={"name": "Renewals"})
    assert (await api.ok("POST", f"{path}/pause"))["state"] == "paused"
    await api.refused("POST", f"{path}/pause", 409)
    edited = await api.ok(
        "PUT",
        path,
        json_body={
            "name": "Renewals Nov",
            "bot": BOT["name"],
            "numbers": [NUMBERS[0]],
            "concurrency": 5,
        },
    )
    assert edited == {"id": campaign_id, "name": "Renewals Nov", "warnings": []}
    error = await api.refused("PUT", path, 422, json_body={"name": "Renewals Nov"})
    assert error["code"] == "start_checks_failed"  # paused: must stay startable
    await api.refused(
        "PUT", path, 422, "concurrency", json_body={"name": "Renewals Nov", "concurrency": 1.5}
    )
    assert (await api.ok("POST", f"{path}/resume"))["state"] == "running"
    cancelled = await api.ok("POST", f"{path}/cancel")
    assert cancelled == {
        "id": campaign_id,
        "name": "Renewals Nov",
        "state": "completed",
        "contacts_cancelled": 1,
        "in_flight": 0,
    }
    await api.refused("POST", f"{path}/cancel", 409)
    await api.refused("POST", f"{path}/resume", 409)


async def test_edit_a_draft_and_name_clash(api: Api) -> None:
    await api.bot()
    first = await api.campaign("First")
    await api.campaign("Second")
    await api.refused("PUT", f"/v1/campaigns/{first}", 409, "name", json_body={"name": "Second"})
    edited = await api.ok("PUT", "/v1/campaigns/First", json_body={"name": "Renamed"})
    assert edited["name"] == "Renamed"
    [row] = await api.fetch(
        "SELECT bot_id, concurrency FROM campaigns WHERE id = $1", uuid.UUID(first)
    )
    assert row["bot_id"] is None  # a full replacement: absent fields take their defaults


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("PUT", ""),
        ("POST", "/start"),
        ("POST", "/pause"),
        ("POST", "/resume"),
        ("POST", "/cancel"),
        ("POST", "/contacts"),
        ("POST", "/contacts/cancel"),
        ("POST", "/contacts/import"),
        ("GET", "/calls"),
        ("GET", "/report"),
    ],
)
async def test_unknown_campaign(api: Api, method: str, suffix: str) -> None:
    options: dict[str, Any] = {"json_body": {"name": "x"}}
    if suffix.startswith("/contacts"):
        options = {"json_body": {"phone_number": "+447700900001"}}
    if suffix.endswith("import"):
        options = {"data": b"phone_number\n", "headers": {"Content-Type": "text/csv"}}
    for ref in ("nobody", str(uuid.uuid4())):
        error = await api.refused(
            method, f"/v1/campaigns/{ref}{suffix}", 404, "campaign", **options
        )
        assert error["code"] == "not_found"


# --- contacts --------------------------------------------------------------------------------


def csv_body(*lines: str) -> dict[str, Any]:
    return {"data": ("\n".join(lines) + "\n").encode(), "headers": {"Content-Type": "text/csv"}}


async def test_import(api: Api) -> None:
    await api.bot()
    campaign_id = await api.campaign()
    await api.ok("POST", "/v1/suppressions", 201, json_body={"phone_number": "+447700900005"})
    summary = await api.ok(
        "POST",
        "/v1/campaigns/Renewals/contacts/import",
        **csv_body(
            "phone_number,CustomerName,Plan",
            "07700 900001,Ann,gold",
            "not a number,Bob,silver",
            "+447700900001,Cy,gold",
            "+447700900002,Di",
            "+447700900005,Ed,gold",
        ),
    )
    assert summary == {
        "campaign_id": campaign_id,
        "campaign": "Renewals",
        "imported": 2,
        "rejected": 3,
        "duplicates_in_campaign": 0,
        "suppressed": 1,
        "warnings": [],
        "rejected_rows": [
            {"line": 3, "reason": "invalid phone number 'not a number': not a phone number"},
            {"line": 4, "reason": "duplicate: +447700900001 is already on line 2"},
            {"line": 5, "reason": "expected 3 fields (as in the header), got 2"},
        ],
        "rejected_rows_omitted": 0,
    }
    rows = await api.fetch(
        "SELECT phone_number, state, variables FROM contacts "
        "WHERE campaign_id = $1 ORDER BY line_number",
        uuid.UUID(campaign_id),
    )
    assert [(r["phone_number"], r["state"]) for r in rows] == [
        ("+447700900001", "pending"),
        ("+447700900005", "cancelled"),
    ]
    assert rows[0]["variables"] == {"CustomerName": "Ann", "Plan": "gold"}


async def test_import_lists_the_first_rejected_rows_only(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "REJECTED_ROWS_SHOWN", 2)
    await api.campaign("Plain", bot=None)
    summary = await api.ok(
        "POST",
        "/v1/campaigns/Plain/contacts/import",
        **csv_body("phone_number", "x1", "+447700900001", "x2", "x3", "+447700900001"),
    )
    assert summary["imported"] == 1
    assert summary["rejected"] == 4
    assert [row["line"] for row in summary["rejected_rows"]] == [2, 4]
    assert summary["rejected_rows_omitted"] == 2


@pytest.mark.parametrize(
    ("lines", "words", "line"),
    [
        (("phone,Name", "+447700900001,Ann"), "no 'phone_number' column", 1),
        ((), "the file is empty", None),
        (("phone_number", "+447700900001", "caf\udce9"), "not UTF-8", 3),
    ],
)
async def test_import_file_problem(
    api: Api, lines: tuple[str, ...], words: str, line: int | None
) -> None:
    campaign_id = await api.campaign("Plain", bot=None, numbers=[])
    data = "\n".join(lines).encode("utf-8", "surrogateescape")
    error = await api.refused(
        "POST",
        f"/v1/campaigns/{campaign_id}/contacts/import",
        422,
        "body",
        data=data,
        headers={"Content-Type": "text/csv"},
    )
    assert error["code"] == "bad_csv"
    assert words in error["message"]
    assert error["message"].startswith("body")
    assert error.get("line") == line
    assert await api.fetch("SELECT 1 FROM contacts") == []


async def test_import_refusals(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    campaign_id = await api.campaign("Plain", bot=None, numbers=[])
    path = f"/v1/campaigns/{campaign_id}/contacts/import"
    error = await api.refused(
        "POST",
        path,
        415,
        "Content-Type",
        data=b"phone_number\n",
        headers={"Content-Type": "application/json"},
    )
    assert error["code"] == "unsupported_media_type"
    monkeypatch.setattr(limits, "MAX_UPLOAD_BYTES", 100)
    big = ("phone_number\n" + "+447700900001\n" * 20).encode()
    error = await api.refused(
        "POST", path, 413, "body", data=big, headers={"Content-Type": "text/csv"}
    )
    assert error["code"] == "too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: caught while streaming
        for _ in range(20):
            yield b"+447700900001\n"

    await api.refused(
        "POST", path, 413, "body", data=chunks(), headers={"Content-Type": "text/csv"}
    )
    monkeypatch.setattr(limits, "MAX_UPLOAD_BYTES", 512)
    await api.ok("POST", f"/v1/campaigns/{campaign_id}/cancel")
    error = await api.refused("POST", path, 409, **csv_body("phone_number", "+447700900001"))
    assert error["code"] == "wrong_state"
    assert "cancelled" in error["message"]


async def test_trigger_adds_a_contact_and_wakes_the_daemons(api: Api) -> None:
    await api.bot()
    campaign_id = await api.campaign("Always", always_on=True)
    await api.ok("POST", f"/v1/campaigns/{campaign_id}/start")
    woken: asyncio.Queue[str] = asyncio.Queue()

    def wake(*args: Any) -> None:
        woken.put_nowait(args[-1])  # the payload: the campaign id

    async with api.pool.acquire() as listener:
        await listener.add_listener("dialler_wakeup", wake)
        try:
            added = await api.ok(
                "POST",
                "/v1/campaigns/Always/contacts",
                201,
                json_body={"phone_number": "07700 900123", "metadata": {"CustomerName": "Ann"}},
            )
            assert await asyncio.wait_for(woken.get(), 5) == campaign_id
        finally:
            await listener.remove_listener("dialler_wakeup", wake)
    assert added["phone_number"] == "+447700900123"
    assert (added["state"], added["suppressed"]) == ("pending", False)
    assert added["warnings"] == [
        "prompt variable {{call.Plan}} is not among this contact's variables"
    ]
    [row] = await api.fetch("SELECT id, state, variables FROM contacts")
    assert (str(row["id"]), row["state"]) == (added["id"], "pending")
    assert row["variables"] == {"CustomerName": "Ann"}
    error = await api.refused(
        "POST",
        f"/v1/campaigns/{campaign_id}/contacts",
        409,
        "phone_number",
        json_body={"phone_number": "+447700900123"},
    )
    assert error["code"] == "duplicate"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"phone_number": "+447700900001", "metadata": ["a"]}, 422, "metadata"),
        ({"phone_number": "+447700900001", "metadata": {"Plan": 3}}, 422, "metadata.Plan"),
        (
            {"phone_number": "+447700900001", "metadata": {"phone_number": "x"}},
            422,
            "metadata.phone_number",
        ),
        ({"phone_number": "+447700900001", "variables": {}}, 422, "variables"),
        ({"metadata": {}}, 422, "phone_number"),
        ({"phone_number": 447700900001}, 422, "phone_number"),
        ({"phone_number": "12"}, 422, "phone_number"),
    ],
)
async def test_bad_trigger(api: Api, body: dict[str, Any], status: int, field: str) -> None:
    campaign_id = await api.campaign("Plain", bot=None, numbers=[])
    await api.refused(
        "POST", f"/v1/campaigns/{campaign_id}/contacts", status, field, json_body=body
    )
    assert await api.fetch("SELECT 1 FROM contacts") == []


async def test_trigger_refused_for_a_cancelled_campaign(api: Api) -> None:
    campaign_id = await api.campaign("Plain", bot=None, numbers=[])
    await api.ok("POST", f"/v1/campaigns/{campaign_id}/cancel")
    error = await api.refused(
        "POST",
        f"/v1/campaigns/{campaign_id}/contacts",
        409,
        json_body={"phone_number": "+447700900001"},
    )
    assert error["code"] == "wrong_state"
    assert "cancelled" in error["message"]


async def test_cancel_contact(api: Api) -> None:
    campaign_id = await api.campaign("Plain", bot=None, numbers=[])
    path = f"/v1/campaigns/{campaign_id}/contacts"
    added = await api.ok("POST", path, 201, json_body={"phone_number": "+447700900001"})
    cancelled = await api.ok("POST", f"{path}/cancel", json_body={"phone_number": "07700 900001"})
    assert cancelled == {
        "id": added["id"],
        "phone_number": "+447700900001",
        "state": "cancelled",
        "already_final": False,
    }
    again = await api.ok("POST", f"{path}/cancel", json_body={"phone_number": "+447700900001"})
    assert again["already_final"] is True
    error = await api.refused(
        "POST", f"{path}/cancel", 404, "phone_number", json_body={"phone_number": "+447700900002"}
    )
    assert error["code"] == "not_found"
    await api.refused(
        "POST", f"{path}/cancel", 422, "phone_number", json_body={"phone_number": "nope"}
    )
    await api.refused("POST", f"{path}/cancel", 422, "phone", json_body={"phone": "x"})
    await api.ok("POST", path, 201, json_body={"phone_number": "+447700900003"})
    await api.pool.execute(
        "UPDATE contacts SET state = 'dialing', next_due_at = NULL "
        "WHERE phone_number = '+447700900003'"
    )
    error = await api.refused(
        "POST", f"{path}/cancel", 409, "phone_number", json_body={"phone_number": "+447700900003"}
    )
    assert error["code"] == "in_call"
    assert "in a call" in error["message"]


async def test_cancel_contact_that_keeps_changing_state_says_try_again(api: Api) -> None:
    """The race `contacts.single.cancel_contact` retries once: the contact is not waiting when
    the cancelling UPDATE runs, and waiting again when it is read back (a call ending at that
    moment). A trigger that skips the UPDATE sets that state up for good: after its retry the
    service gives up with `TryAgain`, answered 503 `try_again` with `Retry-After`."""
    campaign_id = await api.campaign("Plain", bot=None, numbers=[])
    path = f"/v1/campaigns/{campaign_id}/contacts"
    await api.ok("POST", path, 201, json_body={"phone_number": "+447700900001"})
    async with api.pool.acquire() as conn:
        await conn.execute("""
            CREATE FUNCTION test_skip_cancel() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RETURN NULL; END $$;
            CREATE TRIGGER test_skip_cancel BEFORE UPDATE ON contacts FOR EACH ROW
            WHEN (NEW.state = 'cancelled') EXECUTE FUNCTION test_skip_cancel();""")
    answer = await api.call("POST", f"{path}/cancel", json_body={"phone_number": "+447700900001"})
    assert answer.status == 503, answer.body
    assert answer.error["code"] == "try_again"
    assert answer.headers["Retry-After"] == "1"
    assert "again" in answer.error["message"]
    [row] = await api.fetch("SELECT state FROM contacts")
    assert row["state"] == "pending"


# --- calls and report ------------------------------------------------------------------------


async def add_final_attempts(api: Api, campaign_id: str, count: int) -> None:
    """`count` contacts with one final attempt each."""
    async with api.pool.acquire() as conn:
        await conn.execute(
            """
            WITH ct AS (
                INSERT INTO contacts (campaign_id, phone_number, variables, state,
                                      attempts_used, next_due_at, line_number)
                SELECT $1, '+44770091' || lpad(n::text, 4, '0'),
                       json_build_object('CustomerName', '=Ann ' || n, 'Plan', 'gold'),
                       'done', 1, NULL, n + 1
                FROM generate_series(1, $2) AS n
                RETURNING id)
            INSERT INTO attempts (id, contact_id, campaign_id, attempt_number, daemon_id,
                                  deadline_at, caller_id, carrier, state, dialled_at,
                                  answered_at, ended_at, duration_ms, sip_code, outcome,
                                  disposition, next_action, finalised_at)
            SELECT gen_random_uuid(), ct.id, $1, 1, 'd', now(), '+441632960001', 'lab',
                   'final', now(), now(), now(), 12500, 200, 'answered', 'completed',
                   'done', now()
            FROM ct""",
            uuid.UUID(campaign_id),
            count,
        )


async def test_calls(api: Api) -> None:
    await api.bot()
    campaign_id = await api.campaign(retry={"max_attempts": 3})
    await api.ok(
        "POST",
        f"/v1/campaigns/{campaign_id}/contacts",
        201,
        json_body={"phone_number": "+447700900001"},
    )
    await add_final_attempts(api, campaign_id, 2)
    calls = await api.ok("GET", "/v1/campaigns/Renewals/calls")
    assert [
        (
            c["phone_number"],
            c["state"],
            c["attempts"],
            c["last_outcome"],
            c["last_sip_code"],
            c["last_disposition"],
            c["next_action"],
        )
        for c in calls
    ] == [
        ("+447700910001", "done", "1/3", "answered", 200, "completed", "done"),
        ("+447700910002", "done", "1/3", "answered", 200, "completed", "done"),
        ("+447700900001", "pending", "0/3", None, None, None, None),
    ]
    assert set(calls[0]) == {
        "contact_id",
        "phone_number",
        "state",
        "attempts",
        "last_outcome",
        "last_sip_code",
        "last_disposition",
        "next_action",
        "next_due_at",
        "last_attempt_at",
        "reason",
    }
    assert calls[0]["reason"] is None  # only contacts cancelled without a call have one
    assert calls[2]["next_due_at"].endswith("Z")
    assert calls[0]["last_attempt_at"].endswith("Z") and calls[2]["last_attempt_at"] is None
    assert await api.ok("GET", f"/v1/campaigns/{await api.campaign('Empty')}/calls") == []


async def test_calls_page_through_many(api: Api) -> None:
    campaign_id = await api.campaign("Big", bot=None, numbers=[])
    await add_final_attempts(api, campaign_id, 3000)
    path: str | None = f"/v1/campaigns/{campaign_id}/calls?limit=1000"
    pages: list[list[dict[str, Any]]] = []
    while path is not None and len(pages) < 10:
        answer = await api.call("GET", path)
        assert answer.status == 200, answer.body
        pages.append(answer.body)
        path = _next_page(answer)
    # 3000 is three full pages: each has a next link; the fourth is empty and has none.
    assert [len(page) for page in pages] == [1000, 1000, 1000, 0]
    calls = [call for page in pages for call in page]
    assert calls[0]["phone_number"] == "+447700910001"
    assert [c["phone_number"] for c in calls] == [f"+44770091{n:04d}" for n in range(1, 3001)]
    assert {c["attempts"] for c in calls} == {"1/1"}
    default = await api.call("GET", f"/v1/campaigns/{campaign_id}/calls")
    assert len(default.body) == 100  # the default page
    assert _next_page(default) == (
        f"/v1/campaigns/{campaign_id}/calls?limit=100&after={default.body[-1]['contact_id']}"
    )


def _next_page(answer: Answer) -> str | None:
    """The path of the `Link: <...>; rel="next"` header, None without one."""
    link = answer.headers.get("Link")
    if link is None:
        return None
    target, _, rel = link.partition(";")
    assert rel.strip() == 'rel="next"', link
    return str(target.strip().removeprefix("<").removesuffix(">"))


@pytest.mark.parametrize("count", [0, 1, 3000])
async def test_report_is_the_attempt_report_csv(api: Api, count: int) -> None:
    campaign_id = await api.campaign("Report", bot=None, numbers=[])
    await add_final_attempts(api, campaign_id, count)
    answer = await api.call("GET", "/v1/campaigns/Report/report")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(answer.body)))
    if count:
        assert rows[0] == [*FIXED, "CustomerName", "Plan"]
        assert rows[1][FIXED.index("disposition")] == "completed"
        assert rows[1][len(FIXED)].startswith("'=Ann")  # neutralised
    else:
        assert rows == [list(FIXED)]
    assert len(rows) == count + 1
    expected = io.StringIO()
    async with api.pool.acquire() as conn:
        await write_report(conn, uuid.UUID(campaign_id), expected)
    assert answer.body == expected.getvalue()


# --- suppressions ----------------------------------------------------------------------------


async def test_suppression_cancels_waiting_contacts_and_blocks_claims(api: Api) -> None:
    first = await api.campaign("First", bot=None, numbers=[])
    second = await api.campaign("Second", bot=None, numbers=[])
    for campaign_id in (first, second):
        for number in ("+447700900123", "+447700900124"):
            await api.ok(
                "POST",
                f"/v1/campaigns/{campaign_id}/contacts",
                201,
                json_body={"phone_number": number},
            )
    async with api.pool.acquire() as conn:  # one of them in a call: it is left to finish
        await conn.execute(
            "UPDATE contacts SET state = 'dialing', next_due_at = NULL "
            "WHERE campaign_id = $1 AND phone_number = '+447700900123'",
            uuid.UUID(second),
        )
    added = await api.ok(
        "POST",
        "/v1/suppressions",
        201,
        json_body={"phone_number": "07700 900123", "reason": "asked not to be called"},
    )
    assert added["phone_number"] == "+447700900123"
    assert (added["new"], added["contacts_cancelled"]) == (True, 1)
    assert added["reason"] == "asked not to be called"
    states = {
        (str(r["campaign_id"]), r["phone_number"]): r["state"]
        for r in await api.fetch("SELECT campaign_id, phone_number, state FROM contacts")
    }
    assert states == {
        (first, "+447700900123"): "cancelled",
        (first, "+447700900124"): "pending",
        (second, "+447700900123"): "dialing",
        (second, "+447700900124"): "pending",
    }
    # The call ends and a retry becomes due: the claim never takes the number again.
    await api.pool.execute(
        "UPDATE contacts SET state = 'retry_scheduled', "
        "next_due_at = now() - interval '1 s' "
        "WHERE phone_number = '+447700900123' AND campaign_id = $1",
        uuid.UUID(second),
    )
    async with api.pool.acquire() as conn:
        offer = CampaignClaim(
            uuid.UUID(second), 60.0, [NUMBERS[0]] * 10, ["lab"] * 10, ["pbx"] * 10
        )
        claimed = await claim_contacts(conn, "test-daemon", [offer])
    assert [c.phone_number for c in claimed[uuid.UUID(second)]] == ["+447700900124"]

    again = await api.ok(
        "POST", "/v1/suppressions", 200, json_body={"phone_number": "+447700900123"}
    )
    assert (again["new"], again["reason"]) == (False, "asked not to be called")
    assert await api.ok("GET", "/v1/suppressions") == [
        {
            "phone_number": "+447700900123",
            "reason": "asked not to be called",
            "added_at": added["added_at"],
        }
    ]
    await api.ok("DELETE", "/v1/suppressions/%2B447700900123", 204)
    error = await api.refused("DELETE", "/v1/suppressions/+447700900123", 404, "phone_number")
    assert error["code"] == "not_found"
    assert await api.ok("GET", "/v1/suppressions") == []


async def test_trigger_of_a_suppressed_number(api: Api) -> None:
    campaign_id = await api.campaign("Plain", bot=None, numbers=[])
    await api.ok("POST", "/v1/suppressions", 201, json_body={"phone_number": "+447700900123"})
    added = await api.ok(
        "POST",
        f"/v1/campaigns/{campaign_id}/contacts",
        201,
        json_body={"phone_number": "+447700900123"},
    )
    assert (added["state"], added["suppressed"]) == ("cancelled", True)
    await api.ok("DELETE", "/v1/suppressions/+447700900123", 204)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone_number": "not a number"}, "phone_number"),
        ({"phone_number": "+447700900123", "reason": 5}, "reason"),
        ({"phone_number": "+447700900123", "reason": "x" * 1001}, "reason"),
        ({"phone_number": "+447700900123", "reason": "two\nlines"}, "reason"),
        ({"phone_number": "+447700900123", "why": "x"}, "why"),
        ({}, "phone_number"),
    ],
)
async def test_bad_suppression(api: Api, body: dict[str, Any], field: str) -> None:
    await api.refused("POST", "/v1/suppressions", 422, field, json_body=body)
    assert await api.ok("GET", "/v1/suppressions") == []


async def test_unsuppress_a_bad_number(api: Api) -> None:
    error = await api.refused("DELETE", "/v1/suppressions/abc", 422, "phone_number")
    assert error["code"] == "bad_field"


# --- the OpenAPI document --------------------------------------------------------------------


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


async def test_openapi_documents_every_route(db_dsn: str, tmp_path: Path) -> None:
    async def on_result(*_args: Any) -> Any:
        raise AssertionError("not called")

    async def test_call(*_args: Any) -> Any:
        raise AssertionError("not called")

    pool: Any = None  # the document needs no database
    app = make_app(make_config(db_dsn, tmp_path), pool, on_result, test_call)
    document = await (await _get_document(app)).json()
    registered = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert registered - documented == set(), "routes missing from the OpenAPI document"
    assert documented - registered == set(), "documented routes the app does not have"
    for ref in _refs(document):
        assert _resolve(document, ref) is not None
    for path, operations in document["paths"].items():
        names = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        for operation in operations.values():
            assert operation["responses"], path
            resolved = [_resolve(document, p["$ref"]) for p in operation.get("parameters", [])]
            params = {p["name"] for p in resolved if p["in"] == "path"}
            assert params == names, (path, params)


async def _get_document(app: web.Application) -> aiohttp.ClientResponse:
    port = free_port()
    runner = await start(app, "127.0.0.1", port)
    try:
        async with aiohttp.ClientSession() as http:
            response = await http.get(f"http://127.0.0.1:{port}/v1/openapi.json")
            await response.read()
            assert response.status == 200
            return response
    finally:
        await runner.cleanup()


# --- bots one at a time ------------------------------------------------------------------------


async def test_bot_show_and_edit(api: Api) -> None:
    await api.bot()
    campaign_id = await api.campaign()
    shown = await api.ok("GET", "/v1/bots/renewals-bot")
    assert shown | {"created_at": None} == {
        "name": "renewals-bot",
        "prompt": BOT["prompt"],
        "pipeline": {"stt": "deepgram"},
        "campaigns": 1,
        "created_at": None,
    }
    assert shown["created_at"].endswith("Z")
    edited = {"name": "renewals-v2", "prompt": "Hi {{CustomerName}}", "pipeline": {"tts": "x"}}
    after = await api.ok("PUT", "/v1/bots/renewals-bot", json_body=edited)
    assert after | {"created_at": None} == {**edited, "campaigns": 1, "created_at": None}
    await api.refused("GET", "/v1/bots/renewals-bot", 404, "bot")
    # The campaign follows the rename: it refers to the bot, not to its name.
    show = await api.ok("GET", f"/v1/campaigns/{campaign_id}")
    assert show["settings"]["bot"] == "renewals-v2"
    await api.ok("POST", "/v1/bots", 201, json_body={"name": "other", "prompt": "x"})
    await api.refused(
        "PUT", "/v1/bots/other", 409, "name", json_body={"name": "renewals-v2", "prompt": "y"}
    )
    await api.refused("PUT", "/v1/bots/nobody", 404, "bot", json_body={"name": "n", "prompt": "y"})
    await api.refused("PUT", "/v1/bots/other", 422, "prompt", json_body={"name": "other"})


# --- checking a campaign file without storing it -------------------------------------------


async def _problems(api: Api, body: dict[str, Any], query: str = "") -> dict[str, str]:
    answer = await api.ok("POST", f"/v1/campaigns/validate{query}", json_body=body)
    return {p["field"]: p["message"] for p in answer["problems"]}


async def test_validate_names_each_field_and_stores_nothing(api: Api) -> None:
    # A draft's gaps are start problems, each beside its field; "no contacts" is not one.
    assert set(await _problems(api, {"name": "New"})) == {"bot", "numbers"}
    await api.bot()
    good = {"name": "New", "bot": BOT["name"], "numbers": list(NUMBERS)}
    assert await api.ok("POST", "/v1/campaigns/validate", json_body=good) == {
        "problems": [],
        "warnings": [],
    }
    window = {"start": "25:00", "end": "18:00", "days": ["mon", "funday"], "timezone": "Mars/X"}
    problems = await _problems(api, {**good, "window": window, "concurrency": 0})
    assert set(problems) == {"concurrency", "window.start", "window.days", "window.timezone"}
    assert "funday" in problems["window.days"]
    # What the file itself gets wrong (types, unknown things) comes first and alone.
    problems = await _problems(
        api, {**good, "bot": "ghost", "concurrency": "many", "numbers": ["+441632960099"]}
    )
    assert set(problems) == {"bot", "concurrency", "numbers"}
    assert not problems["bot"].startswith("bot:")  # the field is apart, not in the message
    overlap = {"stop_after_connect_longer_than": "60s", "redial_after_connect_shorter_than": "90s"}
    answer = await api.ok("POST", "/v1/campaigns/validate", json_body={**good, "redial": overlap})
    assert answer["problems"] == []
    assert [w for w in answer["warnings"] if "redial rules overlap" in w]
    campaign_id = await api.campaign("Taken")
    assert set(await _problems(api, {**good, "name": "Taken"})) == {"name"}
    # Checking an edit of that campaign: its own name is free.
    assert await _problems(api, {**good, "name": "Taken"}, f"?campaign={campaign_id}") == {}
    assert [c["name"] for c in await api.ok("GET", "/v1/campaigns")] == ["Taken"]


# --- campaign show: outcomes, abandon rate, settings -----------------------------------------


async def _attempt(
    api: Api,
    campaign_id: str,
    phone: str,
    outcome: str,
    *,
    sip_code: int | None,
    disposition: str | None = None,
    ended_ago: str = "10 minutes",
    caller_id: str = NUMBERS[0],
) -> None:
    """One contact with one final attempt that ended `ended_ago`."""
    async with api.pool.acquire() as conn:
        contact_id = await conn.fetchval(
            "INSERT INTO contacts (campaign_id, phone_number, state, attempts_used, next_due_at)"
            " VALUES ($1, $2, 'done', 1, NULL) RETURNING id",
            uuid.UUID(campaign_id),
            phone,
        )
        await conn.execute(
            "INSERT INTO attempts (id, contact_id, campaign_id, attempt_number, daemon_id,"
            " deadline_at, caller_id, carrier, state, dialled_at, ended_at, sip_code, outcome,"
            " disposition, next_action, finalised_at)"
            " VALUES (gen_random_uuid(), $1, $2, 1, 'd', now(), $3, 'lab', 'final',"
            " now() - $4::text::interval, now() - $4::text::interval, $5, $6, $7, 'done', now())",
            contact_id,
            uuid.UUID(campaign_id),
            caller_id,
            ended_ago,
            sip_code,
            outcome,
            disposition or outcome,
        )


async def test_show_has_outcomes_abandon_rate_and_settings(api: Api) -> None:
    await api.bot()
    campaign_id = await api.campaign(
        concurrency=7,
        window={"start": "08:30", "end": "20:00", "days": ["mon", "sat"], "timezone": "UTC"},
        ring_timeout=45,
        retry={"max_attempts": 3, "delay": "1h30m", "on_system": ["no_answer"]},
        redial={"stop_after_connect_longer_than": "2m"},
    )
    fresh = await api.ok("GET", f"/v1/campaigns/{campaign_id}")
    assert fresh["outcomes"] == {"answered": 0, "no_answer": 0, "rejected": 0, "error": 0}
    assert fresh["abandon_rate_30d"] == 0.0
    assert fresh["waiting_for_local_window"] == 0
    assert fresh["settings"] == {
        "bot": BOT["name"],
        "numbers": list(NUMBERS),
        "concurrency": 7,
        "window": {
            "start": "08:30",
            "end": "20:00",
            "days": ["mon", "sat"],
            "timezone": "UTC",
            "per_contact": False,
        },
        "always_on": False,
        "ring_timeout": "45s",
        "retry": {
            "max_attempts": 3,
            "delay": "1h30m",
            "on_system": ["no_answer"],
            "on_custom": [],
        },
        "redial": {
            "stop_after_connect_longer_than": "2m",
            "redial_after_connect_shorter_than": None,
        },
    }
    # Read back and sent as the body of an edit, the settings leave the campaign as it is.
    edited = await api.ok(
        "PUT", f"/v1/campaigns/{campaign_id}", json_body={"name": "Renewals", **fresh["settings"]}
    )
    assert edited["warnings"] == []
    assert (await api.ok("GET", f"/v1/campaigns/{campaign_id}"))["settings"] == fresh["settings"]
    seeded = [
        ("answered", 200, "completed", "1 day"),
        ("answered", 200, "abandoned", "2 days"),
        ("answered", 200, "completed", "3 days"),
        ("answered", 200, "abandoned", "40 days"),  # outside the 30 days
        ("no_answer", 480, None, "1 day"),
        ("rejected", 486, None, "1 day"),
        ("error", None, None, "1 day"),
    ]
    for n, (outcome, code, disposition, ago) in enumerate(seeded):
        await _attempt(
            api,
            campaign_id,
            f"+4477009001{n:02d}",
            outcome,
            sip_code=code,
            disposition=disposition,
            ended_ago=ago,
        )
    show = await api.ok("GET", f"/v1/campaigns/{campaign_id}")
    assert show["outcomes"] == {"answered": 4, "no_answer": 1, "rejected": 1, "error": 1}
    assert show["abandon_rate_30d"] == round(1 / 3, 4)
    assert show["stats"]["answer_rate"] == round(4 / 7, 4)


# --- the fleet ---------------------------------------------------------------------------------


async def test_fleet_lists_workers_slots_and_rotation(api: Api) -> None:
    await api.bot()
    running = await api.campaign("Live", concurrency=30, always_on=True)
    async with api.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO workers (name, host, port, capacity, source, last_heartbeat_at, enabled)"
            " VALUES ('static', '127.0.0.1', 9001, 10, 'config', NULL, true),"
            " ('fresh', '127.0.0.1', 9002, 5, 'api', now() - interval '3 seconds', true),"
            " ('silent', '127.0.0.1', 9003, 8, 'api', now() - interval '1 hour', true),"
            " ('off', '127.0.0.1', 9004, 4, 'config', NULL, false)"
        )
        contact = await conn.fetchval(
            "INSERT INTO contacts (campaign_id, phone_number, state) VALUES ($1, '+447700900001',"
            " 'dialing') RETURNING id",
            uuid.UUID(running),
        )
        for n, worker in enumerate(("static", "static", "fresh")):
            attempt = await conn.fetchval(
                "INSERT INTO attempts (id, contact_id, campaign_id, attempt_number, daemon_id,"
                " deadline_at) VALUES (gen_random_uuid(), $1, $2, $3, 'd', now()) RETURNING id",
                contact,
                uuid.UUID(running),
                n + 1,
            )
            await conn.execute(
                "INSERT INTO worker_slots (attempt_id, worker) VALUES ($1, $2)", attempt, worker
            )
        await conn.execute(
            "UPDATE campaigns SET state = 'running', started_at = now() WHERE id = $1",
            uuid.UUID(running),
        )
    fleet = await api.ok("GET", "/v1/fleet")
    workers = {w["name"]: w for w in fleet["workers"]}
    assert [w["name"] for w in fleet["workers"]] == ["fresh", "off", "silent", "static"]
    assert workers["static"] | {"heartbeat_age_seconds": 0} == {
        "name": "static",
        "host": "127.0.0.1",
        "port": 9001,
        "capacity": 10,
        "in_use": 2,
        "free": 8,
        "heartbeat_age_seconds": 0,
        "in_rotation": True,
        "source": "config",
    }
    assert workers["static"]["heartbeat_age_seconds"] is None
    assert workers["fresh"]["in_rotation"] and workers["fresh"]["free"] == 4
    assert 2.0 <= workers["fresh"]["heartbeat_age_seconds"] < 60
    assert not workers["silent"]["in_rotation"] and workers["silent"]["free"] == 0
    assert workers["silent"]["heartbeat_age_seconds"] >= 3599
    assert not workers["off"]["in_rotation"]
    assert (fleet["capacity"], fleet["in_use"], fleet["free"]) == (15, 3, 12)
    assert fleet["running_concurrency"] == 30


# --- numbers and carriers --------------------------------------------------------------------


async def test_numbers_share_of_sip_codes_in_the_last_hour(api: Api) -> None:
    await api.bot()
    campaign_id = await api.campaign()
    seeded = [
        ("answered", 200, "10 minutes"),
        ("rejected", 403, "20 minutes"),
        ("rejected", 429, "30 minutes"),
        ("rejected", 503, "40 minutes"),
        ("rejected", 403, "2 hours"),  # before the last hour: not counted
    ]
    for n, (outcome, code, ago) in enumerate(seeded):
        await _attempt(
            api, campaign_id, f"+4477009002{n:02d}", outcome, sip_code=code, ended_ago=ago
        )
    numbers = await api.ok("GET", "/v1/numbers")
    assert numbers == [
        {
            "number": NUMBERS[0],
            "carrier": "lab",
            "enabled": True,
            "calls_last_hour": 4,
            "share_4xx": 0.25,
            "share_5xx": 0.25,
            "share_429": 0.25,
            "campaigns": ["Renewals"],
        },
        {
            "number": NUMBERS[1],
            "carrier": "lab",
            "enabled": True,
            "calls_last_hour": 0,
            "share_4xx": 0.0,
            "share_5xx": 0.0,
            "share_429": 0.0,
            "campaigns": ["Renewals"],
        },
    ]


async def test_number_disable_and_enable(api: Api) -> None:
    await api.bot()
    campaign_id = await api.campaign(numbers=[NUMBERS[0]], always_on=True)
    await api.ok("POST", f"/v1/campaigns/{campaign_id}/start")
    off = await api.ok("POST", f"/v1/numbers/{NUMBERS[0]}/disable")
    assert off["enabled"] is False
    assert off["warnings"] and "Renewals" in off["warnings"][0]
    assert [n["enabled"] for n in await api.ok("GET", "/v1/numbers")] == [False, True]
    on = await api.ok("POST", f"/v1/numbers/%2B{NUMBERS[0][1:]}/enable")
    assert (on["enabled"], on["warnings"]) == (True, [])
    await api.refused("POST", "/v1/numbers/+441632960999/disable", 404, "number")
    await api.refused("POST", "/v1/numbers/12345/disable", 422, "number")


async def test_swap_replaces_the_number_in_pools_that_can_dial(api: Api) -> None:
    await api.bot()
    only_old = await api.campaign("OnlyOld", numbers=[NUMBERS[0]])
    both = await api.campaign("Both", numbers=list(NUMBERS))
    done = await api.campaign("Done", numbers=[NUMBERS[0]])
    await api.ok("POST", f"/v1/campaigns/{done}/cancel")  # completed at once (no calls)
    swapped = await api.ok("POST", f"/v1/numbers/{NUMBERS[0]}/swap", json_body={"to": NUMBERS[1]})
    assert swapped == {"from": NUMBERS[0], "to": NUMBERS[1], "campaigns": ["OnlyOld"]}

    async def pool(campaign_id: str) -> list[str]:
        return list((await api.ok("GET", f"/v1/campaigns/{campaign_id}"))["settings"]["numbers"])

    assert await pool(only_old) == [NUMBERS[1]]
    assert await pool(both) == list(NUMBERS)  # had the new one already: left alone
    assert await pool(done) == [NUMBERS[0]]  # completed: history, not changed

    # Refused targets: unknown, disabled, the same number, not a number; nothing changes.
    await api.refused(
        "POST", f"/v1/numbers/{NUMBERS[1]}/swap", 404, "to", json_body={"to": "+441632960999"}
    )
    await api.ok("POST", f"/v1/numbers/{NUMBERS[0]}/disable")
    error = await api.refused(
        "POST", f"/v1/numbers/{NUMBERS[1]}/swap", 422, "to", json_body={"to": NUMBERS[0]}
    )
    assert "disabled" in error["message"]
    await api.refused(
        "POST", f"/v1/numbers/{NUMBERS[1]}/swap", 422, "to", json_body={"to": NUMBERS[1]}
    )
    await api.refused("POST", f"/v1/numbers/{NUMBERS[1]}/swap", 422, "to", json_body={"to": "x"})
    await api.refused("POST", f"/v1/numbers/{NUMBERS[1]}/swap", 422, "to", json_body={})
    assert await pool(only_old) == [NUMBERS[1]]
    assert await pool(both) == list(NUMBERS)


# --- triage ------------------------------------------------------------------------------------


async def test_triage_route_is_the_triage_report(api: Api) -> None:
    await api.bot()
    campaign_id = await api.campaign()
    report = await api.ok("GET", "/v1/campaigns/Renewals/triage")
    async with api.pool.acquire() as conn:
        expected = (await triage(conn, api.config, uuid.UUID(campaign_id))).to_json()
    assert set(report) == set(expected)
    assert report["campaign_id"] == campaign_id
    assert [s["key"] for s in report["symptoms"]] == [s["key"] for s in expected["symptoms"]]
    await api.refused("GET", "/v1/campaigns/nope/triage", 404, "campaign")


# --- pagination --------------------------------------------------------------------------------


async def test_lists_are_paginated_with_a_next_link(api: Api) -> None:
    await api.bot()
    for name in ("other-bot", "third-bot"):
        await api.ok("POST", "/v1/bots", 201, json_body={"name": name, "prompt": "x"})
    ids = [await api.campaign(name) for name in ("A", "B", "C")]
    for n in range(3):
        await api.ok(
            "POST", "/v1/suppressions", 201, json_body={"phone_number": f"+4477009003{n:02d}"}
        )

    async def walk(path: str) -> tuple[list[list[Any]], list[str | None]]:
        pages: list[list[Any]] = []
        links: list[str | None] = []
        next_path: str | None = path
        while next_path is not None and len(pages) < 10:
            answer = await api.call("GET", next_path)
            assert answer.status == 200, answer.body
            pages.append(answer.body)
            next_path = _next_page(answer)
            links.append(next_path)
        return pages, links

    pages, links = await walk("/v1/campaigns?limit=2")
    assert [[c["id"] for c in page] for page in pages] == [ids[:2], ids[2:]]
    assert links == [f"/v1/campaigns?limit=2&after={ids[1]}", None]
    pages, _ = await walk("/v1/bots?limit=2")
    assert [[b["name"] for b in page] for page in pages] == [
        ["other-bot", "renewals-bot"],
        ["third-bot"],
    ]
    pages, links = await walk("/v1/suppressions?limit=1")
    assert [len(page) for page in pages] == [1, 1, 1, 0]
    assert links[0] == "/v1/suppressions?limit=1&after=%2B447700900300"
    pages, _ = await walk("/v1/numbers?limit=1")
    assert [[n["number"] for n in page] for page in pages] == [[NUMBERS[0]], [NUMBERS[1]], []]
    full = await api.call("GET", "/v1/campaigns")
    assert len(full.body) == 3 and "Link" not in full.headers

    for bad in ("0", "1001", "ten", "-1", "2.5"):
        error = await api.refused("GET", f"/v1/campaigns?limit={bad}", 422, "limit")
        assert "1000" in error["message"]
    await api.refused("GET", "/v1/campaigns?after=nothing-like-it", 422, "after")
    await api.refused("GET", f"/v1/campaigns/{ids[0]}/calls?after=not-an-id", 422, "after")
    await api.refused("GET", f"/v1/campaigns/{ids[0]}/calls?after={uuid.uuid4()}", 422, "after")


async def test_calls_filter_by_state(api: Api) -> None:
    await api.bot()
    campaign_id = await api.campaign()
    await add_final_attempts(api, campaign_id, 3)  # done
    for n in range(2):
        await api.ok(
            "POST",
            f"/v1/campaigns/{campaign_id}/contacts",
            201,
            json_body={"phone_number": f"+4477009004{n:02d}"},
        )  # pending
    pending = await api.ok("GET", f"/v1/campaigns/{campaign_id}/calls?state=pending")
    assert [c["state"] for c in pending] == ["pending", "pending"]
    done = await api.call("GET", f"/v1/campaigns/{campaign_id}/calls?state=done&limit=2")
    assert [c["state"] for c in done.body] == ["done", "done"]
    rest = await api.ok("GET", _next_page(done) or "")
    assert [c["state"] for c in rest] == ["done"]
    await api.refused("GET", f"/v1/campaigns/{campaign_id}/calls?state=bogus", 422, "state")


# --- the callee's own calling window (CONTRACT, "Campaign window per contact") ---------------


async def test_window_per_contact_is_stored_shown_and_edited(api: Api) -> None:
    await api.bot()
    window = {"start": "08:00", "end": "21:00", "timezone": "America/New_York"}
    campaign_id = await api.campaign(window={**window, "per_contact": True})
    shown = await api.ok("GET", f"/v1/campaigns/{campaign_id}")
    assert shown["settings"]["window"]["per_contact"] is True
    assert shown["waiting_for_local_window"] == 0  # no contact yet
    await api.ok(
        "PUT",
        f"/v1/campaigns/{campaign_id}",
        json_body={"name": "Renewals", **{**shown["settings"], "window": window}},
    )
    edited = await api.ok("GET", f"/v1/campaigns/{campaign_id}")
    assert edited["settings"]["window"]["per_contact"] is False
    refused = await api.refused(
        "POST",
        "/v1/campaigns",
        422,
        json_body={"name": "Other", "window": {**window, "per_contact": "yes"}},
    )
    assert refused["field"] == "window.per_contact", refused
