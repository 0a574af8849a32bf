"""Prompt variables checked against the contacts' variables (the guide's "Bot says the wrong
customer details"): warnings from `contacts import`, `contacts add` and `campaign start`/
`resume`, through the CLI, against a real PostgreSQL. Warnings never change the exit code."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from .cli_helpers import AMI_SECRET_ENV, LISTENERS_YAML, run_cli

pytestmark = pytest.mark.integration

PROMPT = "Hello {{CustomerName}}, your {{call.Plan}} plan"
CUSTOMER_NAME = (
    "dialler: warning: prompt variable {{CustomerName}} has no column in the "
    "contacts (did you mean 'CUSTOMERNAME'?)"
)
PLAN = "dialler: warning: prompt variable {{call.Plan}} has no column in the contacts"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("dialler: warning:")]


class Cli:
    """A config around the test's database, files in a temporary directory, the CLI (as in
    test_campaign_cli.py)."""

    def __init__(self, directory: Path, dsn: str) -> None:
        self.directory = directory
        self.config = directory / "dialler.yaml"
        self.config.write_text(
            "database:\n"
            f'  dsn: "{dsn}"\n'
            "asterisk:\n"
            "  - name: test\n"
            "    ami: {username: dialler, secret_env: " + AMI_SECRET_ENV + "}\n"
            "carriers:\n"
            "  - name: lab\n" + LISTENERS_YAML + "numbers:\n"
            "  - {number: '+441632960001', carrier: lab}\n",
            encoding="utf-8",
        )

    def file(self, name: str, text: str) -> str:
        (self.directory / name).write_text(text, encoding="utf-8")
        return name

    async def run(self, *args: str) -> Result:
        return Result(*await run_cli("--config", str(self.config), *args, cwd=self.directory))

    async def ok(self, *args: str) -> Result:
        result = await self.run(*args)
        assert result.code == 0, result.err
        assert "Traceback" not in result.err
        return result

    async def campaign(
        self,
        name: str = "Renewals",
        *,
        prompt: str = PROMPT,
        bot: bool = True,
        always_on: bool = False,
    ) -> str:
        """A bot with `prompt` (unless not `bot`) and a draft campaign using it; its id."""
        lines = [f"name: {name}", "numbers: ['+441632960001']", f"always_on: {always_on}"]
        if bot:
            await self.ok(
                "bot",
                "create",
                self.file(f"{name}-bot.yaml", f"name: {name}-bot\nprompt: {prompt!r}\n"),
            )
            lines.append(f"bot: {name}-bot")
        created = await self.ok(
            "campaign", "create", self.file(f"{name}.yaml", "\n".join(lines) + "\n")
        )
        return created.out.strip()


@pytest.fixture
async def cli(tmp_path: Path, db_dsn: str) -> Cli:
    return Cli(tmp_path, db_dsn)


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(db_dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def state_of(db: asyncpg.Connection, campaign_id: str) -> str:
    state: str = await db.fetchval(
        "SELECT state FROM campaigns WHERE id = $1", uuid.UUID(campaign_id)
    )
    return state


# --- contacts import -------------------------------------------------------------------------


async def test_import_warns_about_each_prompt_variable_without_a_column(
    cli: Cli, db: asyncpg.Connection
) -> None:
    campaign_id = await cli.campaign()
    source = cli.file("c.csv", "phone_number,CUSTOMERNAME\n+447700900001,Ann\n")
    result = await cli.ok("contacts", "import", campaign_id, source)
    assert result.out == ""
    assert result.err.splitlines() == [
        "imported 1 contacts into Renewals; no rows rejected (no errors file written)",
        CUSTOMER_NAME,
        PLAN,
    ]
    assert await db.fetchval("SELECT count(*) FROM contacts") == 1


async def test_import_with_every_variable_has_no_warning(cli: Cli) -> None:
    campaign_id = await cli.campaign()
    source = cli.file("c.csv", "phone_number,Plan,CustomerName\n+447700900001,gold,Ann\n")
    result = await cli.ok("contacts", "import", campaign_id, source)
    assert result.warnings == []


async def test_import_into_a_campaign_without_a_bot_checks_nothing(cli: Cli) -> None:
    campaign_id = await cli.campaign(bot=False)
    result = await cli.ok(
        "contacts", "import", campaign_id, cli.file("c.csv", "phone_number\n+447700900001\n")
    )
    assert result.warnings == []


async def test_import_reports_malformed_placeholders(cli: Cli) -> None:
    campaign_id = await cli.campaign(prompt="Hello {{ Customer Name }}")
    result = await cli.ok(
        "contacts",
        "import",
        campaign_id,
        cli.file("c.csv", "phone_number,Customer Name\n+447700900001,Ann\n"),
    )
    assert result.warnings == [
        "dialler: warning: prompt placeholder '{{ Customer Name }}' (line 1 of the prompt) is "
        "malformed: 'Customer Name' is not a variable name: a name has no spaces; the bot is "
        "given nothing in its place"
    ]


async def test_import_with_rejected_rows_still_warns(cli: Cli) -> None:
    campaign_id = await cli.campaign()
    source = cli.file("c.csv", "phone_number,customer_name,plan\nnot a number,Ann,gold\n")
    result = await cli.ok("contacts", "import", campaign_id, source)
    assert result.warnings == [
        "dialler: warning: prompt variable {{CustomerName}} has no column in the contacts "
        "(did you mean 'customer_name'?)",
        "dialler: warning: prompt variable {{call.Plan}} has no column in the contacts "
        "(did you mean 'plan'?)",
    ]


# --- contacts add ----------------------------------------------------------------------------


async def test_add_warns_about_the_variables_it_lacks(cli: Cli, db: asyncpg.Connection) -> None:
    campaign_id = await cli.campaign()
    result = await cli.ok(
        "contacts", "add", campaign_id, "--phone", "+447700900001", "--var", "CustomerName=x"
    )
    contact_id = uuid.UUID(result.out.strip())
    assert result.warnings == [
        "dialler: warning: prompt variable {{call.Plan}} is not among this contact's variables"
    ]
    assert (
        await db.fetchval("SELECT variables::text FROM contacts WHERE id = $1", contact_id)
        == '{"CustomerName": "x"}'
    )

    suggested = await cli.ok(
        "contacts",
        "add",
        campaign_id,
        "--phone",
        "+447700900002",
        "--var",
        "customername=x",
        "--var",
        "Plan=",
    )
    assert suggested.warnings == [
        "dialler: warning: prompt variable {{CustomerName}} is not among this contact's "
        "variables (did you mean 'customername'?)"
    ]

    complete = await cli.ok(
        "contacts",
        "add",
        campaign_id,
        "--phone",
        "+447700900003",
        "--var",
        "CustomerName=x",
        "--var",
        "Plan=gold",
    )
    assert complete.warnings == []


# --- campaign start / resume / edit ----------------------------------------------------------


async def test_start_warns_and_still_starts(cli: Cli, db: asyncpg.Connection) -> None:
    campaign_id = await cli.campaign()
    await cli.ok(
        "contacts",
        "import",
        campaign_id,
        cli.file("c.csv", "phone_number,CUSTOMERNAME\n+447700900001,Ann\n"),
    )
    result = await cli.ok("campaign", "start", campaign_id)
    assert result.out == ""
    assert result.warnings == [
        "dialler: warning: prompt variable {{CustomerName}} is not a variable of any contact "
        "(did you mean 'CUSTOMERNAME'?)",
        "dialler: warning: prompt variable {{call.Plan}} is not a variable of any contact",
    ]
    assert await state_of(db, campaign_id) == "running"


async def test_a_variable_any_contact_has_is_not_warned_about(
    cli: Cli, db: asyncpg.Connection
) -> None:
    campaign_id = await cli.campaign()
    await cli.ok(
        "contacts",
        "import",
        campaign_id,
        cli.file("c.csv", "phone_number,CustomerName\n+447700900001,Ann\n"),
    )
    await cli.ok("contacts", "add", campaign_id, "--phone", "+447700900002", "--var", "Plan=x")
    result = await cli.ok("campaign", "start", campaign_id)
    assert result.warnings == []
    assert await state_of(db, campaign_id) == "running"


async def test_resume_warns_again(cli: Cli, db: asyncpg.Connection) -> None:
    campaign_id = await cli.campaign()
    await cli.ok(
        "contacts", "add", campaign_id, "--phone", "+447700900001", "--var", "CustomerName=Ann"
    )
    await cli.ok("campaign", "start", campaign_id)
    await cli.ok("campaign", "pause", campaign_id)
    result = await cli.ok("campaign", "resume", campaign_id)
    assert result.warnings == [
        "dialler: warning: prompt variable {{call.Plan}} is not a variable of any contact"
    ]
    assert await state_of(db, campaign_id) == "running"


async def test_editing_a_paused_campaign_checks_the_new_bot(cli: Cli) -> None:
    campaign_id = await cli.campaign()
    await cli.ok(
        "contacts",
        "add",
        campaign_id,
        "--phone",
        "+447700900001",
        "--var",
        "CustomerName=Ann",
        "--var",
        "Plan=gold",
    )
    await cli.ok("campaign", "start", campaign_id)
    await cli.ok("campaign", "pause", campaign_id)
    await cli.ok("bot", "create", cli.file("other.yaml", "name: other\nprompt: 'Hi {{Town}}'\n"))
    result = await cli.ok(
        "campaign",
        "edit",
        campaign_id,
        cli.file("edit.yaml", "name: Renewals\nbot: other\nnumbers: ['+441632960001']\n"),
    )
    assert result.warnings == [
        "dialler: warning: prompt variable {{Town}} is not a variable of any contact"
    ]


async def test_always_on_without_contacts_starts_without_a_warning(
    cli: Cli, db: asyncpg.Connection
) -> None:
    campaign_id = await cli.campaign(always_on=True)
    result = await cli.ok("campaign", "start", campaign_id)
    assert result.warnings == []
    assert await state_of(db, campaign_id) == "running"
