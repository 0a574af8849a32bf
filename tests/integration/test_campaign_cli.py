"""Bots, campaigns and numbers through the CLI, as operators use it, against a real database."""

from __future__ import annotations

import asyncio
import itertools
import json
import textwrap
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from dialler.api.server import make_app, start
from dialler.config import load_config
from dialler.store.pool import create_pool

from ..support import free_port
from .cli_helpers import AGI_SECRET, AGI_SECRET_ENV, AMI_SECRET_ENV, LISTENERS_YAML, run_cli

pytestmark = pytest.mark.integration

NUMBERS = ("+441632960001", "+441632960002", "+441632960003")
BOT = "name: renewals-bot\nprompt: 'Hello {{CustomerName}}'\npipeline: {stt: deepgram}\n"


@dataclass
class Result:
    code: int
    out: str
    err: str


class Lab:
    """A config around the test's database, files in a temporary directory, the CLI."""

    def __init__(self, directory: Path, dsn: str) -> None:
        self.directory = directory
        self.dsn = dsn
        self.config = directory / "dialler.yaml"
        self.write_config()

    def write_config(self, disabled: tuple[str, ...] = ()) -> None:
        numbers = "".join(
            f"  - {{number: '{number}', carrier: lab, enabled: {number not in disabled}}}\n"
            for number in NUMBERS
        )
        self.config.write_text(
            "database:\n"
            f'  dsn: "{self.dsn}"\n'
            "asterisk:\n"
            "  - name: test\n"
            "    ami: {username: dialler, secret_env: " + AMI_SECRET_ENV + "}\n"
            "carriers:\n"
            "  - name: lab\n" + LISTENERS_YAML + "numbers:\n" + numbers,
            encoding="utf-8",
        )

    def file(self, name: str, text: str) -> str:
        """Write `text` to `name` in the working directory of the commands; returns `name`."""
        (self.directory / name).write_text(textwrap.dedent(text), encoding="utf-8")
        return name

    async def run(self, *args: str) -> Result:
        return Result(*await run_cli("--config", str(self.config), *args, cwd=self.directory))

    async def ok(self, *args: str) -> Result:
        result = await self.run(*args)
        assert result.code == 0, result.err
        return result

    async def refused(self, *args: str) -> Result:
        result = await self.run(*args)
        assert result.code == 2, (result.out, result.err)
        assert result.out == ""
        assert "Traceback" not in result.err
        return result

    async def bot(self) -> str:
        return (await self.ok("bot", "create", self.file("bot.yaml", BOT))).out.strip()

    async def campaign(self, text: str, name: str = "campaign.yaml") -> str:
        return (await self.ok("campaign", "create", self.file(name, text))).out.strip()


def good_campaign(name: str = "Renewals", **lines: str) -> str:
    """A campaign file that passes every start check (with contacts); `lines` replace keys."""
    keys = {
        "name": name,
        "bot": "renewals-bot",
        "numbers": '["+441632960001", "+441632960002"]',
        "concurrency": "5",
    }
    keys.update(lines)
    return "".join(f"{key}: {value}\n" for key, value in keys.items() if value)


@pytest.fixture
async def lab(tmp_path: Path, db_dsn: str) -> Lab:
    return Lab(tmp_path, db_dsn)


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(db_dsn)
    try:
        yield conn
    finally:
        await conn.close()


_phones = itertools.count(900000)


async def add_contacts(
    db: asyncpg.Connection, campaign_id: str, count: int = 2, state: str = "pending"
) -> None:
    """`count` contacts in `state` (in-flight ones with a lease, as a daemon would hold)."""
    in_flight = state in ("dialing", "connected", "wrapping")
    for _ in range(count):
        await db.execute(
            "INSERT INTO contacts (campaign_id, phone_number, state, next_due_at, lease_owner,"
            " lease_expires_at) VALUES ($1, $2, $3, CASE WHEN $4 THEN NULL ELSE now() END,"
            " CASE WHEN $4 THEN 'test' END, CASE WHEN $4 THEN now() + interval '1 hour' END)",
            uuid.UUID(campaign_id),
            f"+447700{next(_phones)}",
            state,
            in_flight,
        )


async def state_of(db: asyncpg.Connection, campaign_id: str) -> str:
    state: str = await db.fetchval(
        "SELECT state FROM campaigns WHERE id = $1", uuid.UUID(campaign_id)
    )
    return state


async def ready(lab: Lab, db: asyncpg.Connection, text: str | None = None) -> str:
    """A bot and a startable draft with contacts; its id."""
    await lab.bot()
    campaign_id = await lab.campaign(text or good_campaign())
    await add_contacts(db, campaign_id)
    return campaign_id


# --- bots ------------------------------------------------------------------------------------


async def test_bot_create_prints_its_id_and_list_shows_it(lab: Lab) -> None:
    bot_id = await lab.bot()
    assert str(uuid.UUID(bot_id)) == bot_id
    listing = (await lab.ok("bot", "list")).out.splitlines()
    assert listing[0].split() == ["ID", "NAME", "CAMPAIGNS", "CREATED"]
    assert listing[1].split()[:3] == [bot_id, "renewals-bot", "0"]

    again = await lab.refused("bot", "create", lab.file("bot.yaml", BOT))
    assert "bot.yaml:1: name: a bot named 'renewals-bot' already exists" in again.err


async def test_bot_create_reports_every_problem(lab: Lab) -> None:
    result = await lab.refused("bot", "create", lab.file("b.yaml", "name: x\npipline: {}\n"))
    assert "b.yaml: prompt: missing required key" in result.err
    assert "b.yaml:2: pipline: unknown key (did you mean 'pipeline'?)" in result.err


# --- campaign create -------------------------------------------------------------------------


async def test_campaign_create_prints_only_the_id_and_stores_a_draft(
    lab: Lab, db: asyncpg.Connection
) -> None:
    await lab.bot()
    result = await lab.ok(
        "campaign",
        "create",
        lab.file(
            "c.yaml",
            good_campaign(
                concurrency="", ring_timeout="45s", retry="{max_attempts: 3, delay: 90s}"
            ),
        ),
    )
    campaign_id = result.out.strip()
    assert result.out == f"{uuid.UUID(campaign_id)}\n"
    row = await db.fetchrow("SELECT * FROM campaigns WHERE id = $1", uuid.UUID(campaign_id))
    assert row["state"] == "draft"
    assert row["concurrency"] == 50
    assert (row["ring_timeout_ms"], row["retry_max_attempts"], row["retry_delay_ms"]) == (
        45000,
        3,
        90000,
    )
    pool = await db.fetch(
        "SELECT number FROM campaign_numbers WHERE campaign_id = $1 ORDER BY number",
        uuid.UUID(campaign_id),
    )
    assert [r["number"] for r in pool] == ["+441632960001", "+441632960002"]


async def test_a_draft_may_lack_a_bot_and_numbers(lab: Lab) -> None:
    campaign_id = await lab.campaign("name: Sketch\n")
    assert uuid.UUID(campaign_id)


async def test_campaign_create_with_unknown_bot_names_the_key(lab: Lab) -> None:
    result = await lab.refused("campaign", "create", lab.file("c.yaml", good_campaign()))
    assert "c.yaml:2: bot: no bot named 'renewals-bot'" in result.err


async def test_campaign_create_refuses_unconfigured_numbers_and_bad_types(lab: Lab) -> None:
    await lab.bot()
    result = await lab.refused(
        "campaign",
        "create",
        lab.file(
            "c.yaml",
            good_campaign(numbers='["+441632960009"]', concurrency="lots", ring_timeout="0"),
        ),
    )
    lines = result.err.splitlines()
    assert lines[0] == "dialler: error: c.yaml: 3 problems:"
    assert lines[1].startswith("  - c.yaml:3: numbers[0]: +441632960009 is not a configured number")
    assert lines[2] == "  - c.yaml:4: concurrency: expected an integer, got str 'lots'"
    assert lines[3] == "  - c.yaml:5: ring_timeout: must be greater than 0, got 0"


async def test_campaign_names_are_unique(lab: Lab) -> None:
    await lab.campaign("name: Twice\n")
    result = await lab.refused("campaign", "create", lab.file("c.yaml", "name: Twice\n"))
    assert "c.yaml:1: name: a campaign named 'Twice' already exists" in result.err


async def test_campaign_list(lab: Lab) -> None:
    await lab.bot()
    first = await lab.campaign(good_campaign("Alpha"))
    second = await lab.campaign("name: Beta\n")
    lines = (await lab.ok("campaign", "list")).out.splitlines()
    assert lines[0].split() == [
        "ID",
        "NAME",
        "STATE",
        "BOT",
        "CONCURRENCY",
        "NUMBERS",
        "ALWAYS_ON",
        "CREATED",
    ]
    assert lines[1].split()[:7] == [first, "Alpha", "draft", "renewals-bot", "5", "2", "no"]
    assert lines[2].split()[:7] == [second, "Beta", "draft", "-", "50", "0", "no"]


# --- start -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            {"bot": ""},
            "no bot selected: set `bot:` to one of renewals-bot (create one with "
            "`dialler bot create`)",
        ),
        ({"numbers": ""}, "number pool is empty: add caller IDs under `numbers:`"),
        ({"concurrency": "0"}, "concurrency must be at least 1 (got 0)"),
        (
            {"window": "{start: 9am}"},
            "window.start: '9am' is not HH:MM (24-hour, two digits each, e.g. '09:00')",
        ),
        ({"window": "{days: []}"}, "window.days: at least one day is required"),
        (
            {"window": "{timezone: Mars/Olympus}"},
            "window.timezone: unknown time zone 'Mars/Olympus'",
        ),
    ],
)
async def test_start_refusals(
    lab: Lab, db: asyncpg.Connection, lines: dict[str, str], message: str
) -> None:
    campaign_id = await ready(lab, db, good_campaign(**lines))
    result = await lab.refused("campaign", "start", campaign_id)
    assert result.err.splitlines()[0] == "dialler: error: campaign Renewals cannot start:"
    assert result.err.splitlines()[1].startswith(f"  - {message}")
    assert len(result.err.splitlines()) == 2, result.err
    assert await state_of(db, campaign_id) == "draft"


async def test_start_refused_without_contacts_unless_always_on(
    lab: Lab, db: asyncpg.Connection
) -> None:
    await lab.bot()
    campaign_id = await lab.campaign(good_campaign())
    result = await lab.refused("campaign", "start", campaign_id)
    assert result.err.splitlines()[1:] == [
        "  - no contacts: import a CSV with `dialler contacts import` (or make the campaign "
        "always_on)"
    ]
    always_on = await lab.campaign(good_campaign("Inbound", always_on="true"), "c2.yaml")
    await lab.ok("campaign", "start", always_on)


async def test_start_lists_every_problem(lab: Lab, db: asyncpg.Connection) -> None:
    campaign_id = await lab.campaign(
        "name: Empty\nconcurrency: 0\nwindow: {start: '18:00', end: '09:00', days: []}\n"
    )
    result = await lab.refused("campaign", "start", campaign_id)
    lines = result.err.splitlines()
    assert lines[0] == "dialler: error: campaign Empty cannot start:"
    assert [line.split(":")[0] for line in lines[1:]] == [
        "  - no bot selected, and no bot exists yet",
        "  - number pool is empty",
        "  - concurrency must be at least 1 (got 0)",
        "  - window.end",
        "  - window.days",
        "  - no contacts",
    ]


async def test_start_runs_the_campaign_and_wakes_the_daemons(
    lab: Lab, db: asyncpg.Connection
) -> None:
    campaign_id = await ready(
        lab,
        db,
        good_campaign(
            redial="{stop_after_connect_longer_than: 20s, redial_after_connect_shorter_than: 30s}"
        ),
    )
    woken: list[str] = []
    await db.add_listener("dialler_wakeup", lambda *args: woken.append(args[3]))
    result = await lab.ok("campaign", "start", campaign_id)
    assert result.out == ""
    assert (
        "dialler: warning: redial rules overlap: a connect between 20s and 30s matches "
        "both; the stop rule wins"
    ) in result.err
    assert await state_of(db, campaign_id) == "running"
    for _ in range(50):
        if woken:
            break
        await asyncio.sleep(0.05)
    assert woken == [campaign_id]

    again = await lab.refused("campaign", "start", campaign_id)
    assert "campaign Renewals is running, not draft: cannot start it" in again.err


async def test_every_number_disabled_refuses_start_until_one_is_enabled(
    lab: Lab, db: asyncpg.Connection
) -> None:
    campaign_id = await ready(lab, db)
    await lab.ok("number", "disable", "+441632960001")
    result = await lab.ok("number", "disable", "+441632960002")
    assert "number +441632960002 disabled" in result.err

    refused = await lab.refused("campaign", "start", campaign_id)
    assert refused.err.splitlines()[1] == (
        "  - every number in the pool is disabled: +441632960001, +441632960002 (enable one "
        "with `dialler number enable NUMBER`, or add an enabled number under `numbers:`)"
    )

    await lab.ok("number", "enable", "+441632960002")
    started = await lab.ok("campaign", "start", campaign_id)
    assert (
        "dialler: warning: 1 of 2 numbers in the pool are disabled (+441632960001); "
        "calls go out from the others"
    ) in started.err

    stranded = await lab.ok("number", "disable", "+441632960002")
    assert (
        "dialler: warning: campaign Renewals has no enabled number left; it places no "
        "calls until one is enabled"
    ) in stranded.err


async def test_number_commands(lab: Lab, db: asyncpg.Connection) -> None:
    unknown = await lab.refused("number", "disable", "+441632960099")
    assert "unknown number +441632960099" in unknown.err
    malformed = await lab.refused("number", "enable", "441632960001")
    assert "'441632960001' is not an E.164 number" in malformed.err

    # The operator's disable survives a sync with `enabled: true` in the config.
    await lab.ok("number", "disable", "+441632960003")
    await lab.campaign("name: Sync\n")
    assert await db.fetchval("SELECT enabled FROM numbers WHERE number = '+441632960003'") is False

    # A number the config disables is disabled by the sync and cannot be enabled by hand.
    lab.write_config(disabled=("+441632960001",))
    refused = await lab.refused("number", "enable", "+441632960001")
    assert (
        "number +441632960001 is disabled in the config (numbers[0].enabled: false); "
        "set it to true there"
    ) in refused.err
    assert await db.fetchval("SELECT enabled FROM numbers WHERE number = '+441632960001'") is False


# --- pause, resume, cancel -------------------------------------------------------------------


async def test_pause_resume_and_wrong_transitions(lab: Lab, db: asyncpg.Connection) -> None:
    campaign_id = await ready(lab, db)
    wrong = await lab.refused("campaign", "pause", campaign_id)
    assert wrong.err == "dialler: error: campaign Renewals is draft, not running: cannot pause it\n"
    wrong = await lab.refused("campaign", "resume", campaign_id)
    assert "campaign Renewals is draft, not paused: cannot resume it" in wrong.err

    await lab.ok("campaign", "start", campaign_id)
    await lab.ok("campaign", "pause", campaign_id)
    assert await state_of(db, campaign_id) == "paused"
    again = await lab.refused("campaign", "pause", campaign_id)
    assert "campaign Renewals is paused, not running: cannot pause it" in again.err

    # Resume runs the start checks again: numbers may have been disabled meanwhile.
    await lab.ok("number", "disable", "+441632960001")
    await lab.ok("number", "disable", "+441632960002")
    refused = await lab.refused("campaign", "resume", campaign_id)
    assert refused.err.startswith(
        "dialler: error: campaign Renewals cannot resume:\n  - every number in the pool is disabled"
    )
    await lab.ok("number", "enable", "+441632960001")
    await lab.ok("campaign", "resume", campaign_id)
    assert await state_of(db, campaign_id) == "running"


async def test_campaigns_are_referenced_by_name_too(lab: Lab, db: asyncpg.Connection) -> None:
    campaign_id = await ready(lab, db)
    await lab.ok("campaign", "start", "Renewals")
    assert await state_of(db, campaign_id) == "running"
    await lab.ok("campaign", "pause", "Renewals")
    assert await state_of(db, campaign_id) == "paused"


@pytest.mark.parametrize("ref", [str(uuid.UUID(int=7)), "No Such Campaign"])
async def test_unknown_campaign(lab: Lab, ref: str) -> None:
    for verb in ("start", "pause", "resume", "cancel"):
        result = await lab.refused("campaign", verb, ref)
        assert result.err == f"dialler: error: unknown campaign: {ref!r}\n"
    edit = await lab.refused("campaign", "edit", ref, lab.file("c.yaml", "name: x\n"))
    assert "unknown campaign" in edit.err


async def test_cancel_with_nothing_in_flight_completes_at_once(
    lab: Lab, db: asyncpg.Connection
) -> None:
    campaign_id = await ready(lab, db)
    await lab.ok("campaign", "start", campaign_id)
    await add_contacts(db, campaign_id, 1, "retry_scheduled")
    await add_contacts(db, campaign_id, 1, "done")
    result = await lab.ok("campaign", "cancel", campaign_id)
    assert "3 waiting contact(s) cancelled; completed" in result.err
    row = await db.fetchrow(
        "SELECT state, cancelled_at, completed_at FROM campaigns WHERE id = $1",
        uuid.UUID(campaign_id),
    )
    assert row["state"] == "completed"
    assert row["cancelled_at"] is not None and row["completed_at"] is not None
    states = await db.fetch(
        "SELECT state, count(*) FROM contacts WHERE campaign_id = $1 GROUP BY state ORDER BY state",
        uuid.UUID(campaign_id),
    )
    assert [(r["state"], r["count"]) for r in states] == [("cancelled", 3), ("done", 1)]

    again = await lab.refused("campaign", "cancel", campaign_id)
    assert "campaign Renewals was already cancelled at" in again.err
    resume = await lab.refused("campaign", "resume", campaign_id)
    assert "cannot resume it" in resume.err


async def test_cancel_with_live_calls_waits_for_them(lab: Lab, db: asyncpg.Connection) -> None:
    campaign_id = await ready(lab, db)
    await lab.ok("campaign", "start", campaign_id)
    await add_contacts(db, campaign_id, 1, "dialing")
    result = await lab.ok("campaign", "cancel", campaign_id)
    assert "2 waiting contact(s) cancelled; it completes when its 1 live call(s) end" in result.err
    row = await db.fetchrow(
        "SELECT state, cancelled_at FROM campaigns WHERE id = $1", uuid.UUID(campaign_id)
    )
    assert row["state"] == "running" and row["cancelled_at"] is not None
    listing = (await lab.ok("campaign", "list")).out
    assert "running (cancelled)" in listing
    pause = await lab.refused("campaign", "pause", campaign_id)
    assert "was cancelled at" in pause.err and "cannot pause it" in pause.err


async def test_cancel_a_draft(lab: Lab, db: asyncpg.Connection) -> None:
    complete = await ready(lab, db)
    assert "completed" in (await lab.ok("campaign", "cancel", complete)).err
    assert await state_of(db, complete) == "completed"
    # An incomplete draft cannot be `completed` (the startable constraint): it stays a draft.
    sketch = await lab.campaign("name: Sketch\n", "sketch.yaml")
    result = await lab.ok("campaign", "cancel", sketch)
    assert "it stays draft and can no longer be started or edited" in result.err
    assert await state_of(db, sketch) == "draft"
    refused = await lab.refused("campaign", "start", sketch)
    assert "campaign Sketch was cancelled at" in refused.err


# --- edit ------------------------------------------------------------------------------------


async def test_edit_a_draft_replaces_its_settings(lab: Lab, db: asyncpg.Connection) -> None:
    await lab.bot()
    campaign_id = await lab.campaign("name: Sketch\nnumbers: ['+441632960001']\n")
    await lab.ok(
        "campaign",
        "edit",
        "Sketch",
        lab.file("c.yaml", good_campaign("Renamed", numbers='["+441632960003"]', concurrency="9")),
    )
    row = await db.fetchrow(
        "SELECT name, concurrency, bot_id FROM campaigns WHERE id = $1", uuid.UUID(campaign_id)
    )
    assert (row["name"], row["concurrency"]) == ("Renamed", 9)
    assert row["bot_id"] is not None
    pool = await db.fetch(
        "SELECT number FROM campaign_numbers WHERE campaign_id = $1", uuid.UUID(campaign_id)
    )
    assert [r["number"] for r in pool] == ["+441632960003"]


async def test_edit_a_paused_campaign_keeps_it_startable(lab: Lab, db: asyncpg.Connection) -> None:
    campaign_id = await ready(lab, db)
    await lab.ok("campaign", "start", campaign_id)
    running = await lab.refused(
        "campaign", "edit", campaign_id, lab.file("c.yaml", good_campaign(concurrency="9"))
    )
    assert "campaign Renewals is running, not draft or paused: cannot edit it" in running.err

    await lab.ok("campaign", "pause", campaign_id)
    await lab.ok(
        "campaign", "edit", campaign_id, lab.file("c.yaml", good_campaign(concurrency="9"))
    )
    assert (
        await db.fetchval("SELECT concurrency FROM campaigns WHERE id = $1", uuid.UUID(campaign_id))
        == 9
    )

    bad = await lab.refused(
        "campaign",
        "edit",
        campaign_id,
        lab.file("c.yaml", good_campaign(concurrency="0", window="{start: '25:00'}")),
    )
    lines = bad.err.splitlines()
    assert lines[0] == "dialler: error: campaign Renewals cannot take these settings while paused:"
    assert lines[1] == "  - concurrency must be at least 1 (got 0)"
    assert lines[2].startswith("  - window.start: '25:00' is not a time of day")
    assert (
        await db.fetchval("SELECT concurrency FROM campaigns WHERE id = $1", uuid.UUID(campaign_id))
        == 9
    )


# --- bot show / edit, fleet list, number swap, show --json against the API --------------------


async def test_bot_show_and_edit(lab: Lab) -> None:
    await lab.bot()
    shown = json.loads((await lab.ok("bot", "show", "renewals-bot", "--json")).out)
    assert shown | {"created_at": None} == {
        "name": "renewals-bot",
        "prompt": "Hello {{CustomerName}}",
        "pipeline": {"stt": "deepgram"},
        "campaigns": 0,
        "created_at": None,
    }
    text = (await lab.ok("bot", "show", "renewals-bot")).out
    assert "variables  CustomerName" in text and "  Hello {{CustomerName}}" in text
    new = lab.file("new.yaml", "name: renewals-v2\nprompt: 'Hi {{Plan}}'\n")
    result = await lab.ok("bot", "edit", "renewals-bot", new)
    assert result.out == ""
    assert json.loads((await lab.ok("bot", "show", "renewals-v2", "--json")).out)["prompt"] == (
        "Hi {{Plan}}"
    )
    refused = await lab.refused("bot", "show", "renewals-bot")
    assert "renewals-bot" in refused.err
    await lab.ok("bot", "create", lab.file("other.yaml", "name: other\nprompt: x\n"))
    taken = await lab.refused("bot", "edit", "other", new)
    assert "new.yaml" in taken.err and "name" in taken.err
    bad = await lab.refused("bot", "edit", "other", lab.file("bad.yaml", "name: other\n"))
    assert "prompt" in bad.err


async def test_fleet_list(lab: Lab, db: asyncpg.Connection) -> None:
    await db.execute(
        "INSERT INTO workers (name, host, port, capacity, source, last_heartbeat_at, enabled)"
        " VALUES ('w1', '127.0.0.1', 9001, 4, 'api', now(), true),"
        " ('w2', '127.0.0.1', 9002, 6, 'api', now() - interval '1 hour', true)"
    )
    fleet = json.loads((await lab.ok("fleet", "list", "--json")).out)
    assert (fleet["capacity"], fleet["free"], fleet["running_concurrency"]) == (4, 4, 0)
    assert [(w["name"], w["in_rotation"]) for w in fleet["workers"]] == [
        ("w1", True),
        ("w2", False),
    ]
    table = (await lab.ok("fleet", "list")).out
    assert table.splitlines()[0].split() == [
        "NAME",
        "ADDRESS",
        "SOURCE",
        "CAPACITY",
        "IN_USE",
        "FREE",
        "HEARTBEAT",
        "ROTATION",
    ]
    assert "capacity 4  in use 0  free 4" in table


async def test_number_swap(lab: Lab, db: asyncpg.Connection) -> None:
    await lab.bot()
    await lab.campaign(good_campaign("A", numbers='["+441632960001"]'), "a.yaml")
    await lab.campaign(good_campaign("B", numbers='["+441632960001", "+441632960003"]'), "b.yaml")
    result = await lab.ok("number", "swap", NUMBERS[0], NUMBERS[2])
    assert result.out.splitlines() == ["A"]
    assert "in 1 campaign" in result.err
    pools = {
        row["name"]: row["numbers"]
        for row in await db.fetch(
            "SELECT c.name, array_agg(cn.number ORDER BY cn.number) AS numbers FROM campaigns c"
            " JOIN campaign_numbers cn ON cn.campaign_id = c.id GROUP BY c.name"
        )
    }
    assert pools == {"A": [NUMBERS[2]], "B": [NUMBERS[0], NUMBERS[2]]}
    await lab.ok("number", "disable", NUMBERS[1])
    refused = await lab.refused("number", "swap", NUMBERS[2], NUMBERS[1])
    assert "disabled" in refused.err
    unknown = await lab.refused("number", "swap", NUMBERS[2], "+441632960999")
    assert "+441632960999" in unknown.err
    listed = json.loads((await lab.ok("number", "list", "--json")).out)
    assert [(n["number"], n["enabled"], n["campaigns"]) for n in listed] == [
        (NUMBERS[0], True, ["B"]),
        (NUMBERS[1], False, []),
        (NUMBERS[2], True, ["A", "B"]),
    ]


async def test_show_json_equals_the_api(lab: Lab, db: asyncpg.Connection, db_dsn: str) -> None:
    campaign_id = await ready(lab, db)
    contact = await db.fetchval(
        "SELECT id FROM contacts WHERE campaign_id = $1 LIMIT 1", uuid.UUID(campaign_id)
    )
    await db.execute(
        "INSERT INTO attempts (id, contact_id, campaign_id, attempt_number, daemon_id,"
        " deadline_at, caller_id, carrier, state, dialled_at, answered_at, ended_at, sip_code,"
        " outcome, disposition, next_action, finalised_at) VALUES (gen_random_uuid(), $1, $2,"
        " 1, 'd', now(), $3, 'lab', 'final', now(), now(), now(), 200, 'answered', 'abandoned',"
        " 'done', now())",
        contact,
        uuid.UUID(campaign_id),
        NUMBERS[0],
    )
    await lab.ok("campaign", "start", campaign_id)
    cli = json.loads((await lab.ok("campaign", "show", campaign_id, "--json")).out)
    config = load_config(str(lab.config), env={AMI_SECRET_ENV: "x", AGI_SECRET_ENV: AGI_SECRET})
    config = replace(config, api=replace(config.api, tokens=("t" * 24,)))
    pool = await create_pool(db_dsn)
    port = free_port()

    async def no_results(*_args: object) -> None:
        raise AssertionError("not called")

    runner = await start(make_app(config, pool, no_results), "127.0.0.1", port)
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"http://127.0.0.1:{port}/v1/campaigns/{campaign_id}",
                headers={"Authorization": "Bearer " + "t" * 24},
            ) as response,
        ):
            assert response.status == 200, await response.text()
            api = await response.json()
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"http://127.0.0.1:{port}/v1/campaigns/{campaign_id}/calls",
                headers={"Authorization": "Bearer " + "t" * 24},
            ) as response,
        ):
            api_calls = await response.json()
    finally:
        await runner.cleanup()
        await pool.close()
    assert set(cli) == set(api)
    for key in cli:  # field by field, so a failure names the field
        if key not in ("activity", "stalled"):  # live: both read the clock
            assert cli[key] == api[key], key
    assert cli["outcomes"]["answered"] == 1 and cli["abandon_rate_30d"] == 1.0
    assert cli["settings"]["numbers"] == list(NUMBERS[:2])
    cli_calls = json.loads((await lab.ok("calls", campaign_id, "--json")).out)
    assert cli_calls == api_calls and len(cli_calls) == 2
    assert {c["last_outcome"] for c in cli_calls} == {"answered", None}
