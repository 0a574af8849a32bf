"""The campaign service's refusals, in-process against a real PostgreSQL: each one typed, with
the data an API answer needs (the states, the problems, the name), and worded as the CLI
prints it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dialler.campaigns import repo
from dialler.campaigns.spec import parse_bot, parse_text
from dialler.config import Config, load_config
from dialler.errors import (
    InvalidNumber,
    NameTaken,
    StartChecksFailed,
    UnknownCampaign,
    UnknownNumber,
    WrongState,
)
from dialler.store import Connection, connect

from .cli_helpers import AGI_SECRET, AGI_SECRET_ENV, AMI_SECRET_ENV, write_config

pytestmark = pytest.mark.integration

NUMBERS = "  - {number: '+441632960001', carrier: lab}\n"
BOT = "name: renewals-bot\nprompt: 'Hello {{CustomerName}}'\n"


@pytest.fixture
async def conn(db_dsn: str) -> AsyncIterator[Connection]:
    connection = await connect(db_dsn)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
def config(tmp_path: Path, db_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv(AMI_SECRET_ENV, "not-used")
    monkeypatch.setenv(AGI_SECRET_ENV, AGI_SECRET)
    return load_config(str(write_config(tmp_path, db_dsn, NUMBERS)))


async def draft(
    conn: Connection, config: Config, name: str = "Renewals", bot: str = "renewals-bot"
) -> uuid.UUID:
    text = f"name: {name}\nbot: {bot}\nnumbers: ['+441632960001']\nalways_on: true\n"
    spec = await repo.read_campaign_spec(conn, config, parse_text(text, "c.yaml"))
    return await repo.create_campaign(conn, spec)


async def test_names_taken(conn: Connection, config: Config) -> None:
    await repo.create_bot(conn, parse_bot(parse_text(BOT, "bot.yaml")))
    with pytest.raises(NameTaken, match="a bot named 'renewals-bot' already exists") as bot:
        await repo.create_bot(conn, parse_bot(parse_text(BOT, "bot.yaml")))
    assert (bot.value.kind, bot.value.name, bot.value.exit_code) == ("bot", "renewals-bot", 2)
    await draft(conn, config)
    with pytest.raises(NameTaken) as campaign:
        await draft(conn, config)
    assert (campaign.value.kind, campaign.value.name) == ("campaign", "Renewals")


async def test_wrong_state_carries_the_states(conn: Connection, config: Config) -> None:
    await repo.create_bot(conn, parse_bot(parse_text(BOT, "bot.yaml")))
    campaign_id = await draft(conn, config)
    with pytest.raises(WrongState, match="is draft, not running: cannot pause it") as pause:
        await repo.pause_campaign(conn, campaign_id)
    assert (pause.value.state, pause.value.allowed) == ("draft", ("running",))
    with pytest.raises(WrongState, match="is draft, not paused: cannot resume it") as resume:
        await repo.resume_campaign(conn, config, campaign_id)
    assert resume.value.allowed == ("paused",)

    await repo.start_campaign(conn, config, campaign_id)
    await repo.cancel_campaign(conn, campaign_id)
    with pytest.raises(WrongState, match=r"was cancelled at .* cannot edit it") as edit:
        await repo.edit_campaign(
            conn, campaign_id, (await repo.get_campaign(conn, campaign_id)).spec
        )
    assert edit.value.allowed == ("draft", "paused")
    with pytest.raises(WrongState, match="was already cancelled at") as cancel:
        await repo.cancel_campaign(conn, campaign_id)
    assert cancel.value.state == "completed"


async def test_start_checks_failed_lists_every_problem(conn: Connection, config: Config) -> None:
    text = "name: Empty\nconcurrency: 0\n"
    spec = await repo.read_campaign_spec(conn, config, parse_text(text, "c.yaml"))
    campaign_id = await repo.create_campaign(conn, spec)
    with pytest.raises(StartChecksFailed) as refused:
        await repo.start_campaign(conn, config, campaign_id)
    problems = refused.value.problems
    assert [problem.split(":")[0] for problem in problems] == [
        "no bot selected, and no bot exists yet",
        "number pool is empty",
        "concurrency must be at least 1 (got 0)",
        "no contacts",
    ]
    assert str(refused.value) == "campaign Empty cannot start:\n  - " + "\n  - ".join(problems)
    assert refused.value.campaign == "Empty"


async def test_unknown_campaign_and_numbers(conn: Connection, config: Config) -> None:
    with pytest.raises(UnknownCampaign):
        await repo.get_campaign(conn, uuid.uuid4())
    with pytest.raises(UnknownCampaign):
        await repo.pause_campaign(conn, uuid.uuid4())
    await repo.sync_numbers(conn, config)
    with pytest.raises(UnknownNumber, match="unknown number \\+441632960099") as unknown:
        await repo.set_number_enabled(conn, "+441632960099", False, config=config)
    assert unknown.value.number == "+441632960099"
    with pytest.raises(InvalidNumber, match=r"'441632960001' is not an E\.164 number") as bad:
        await repo.set_number_enabled(conn, "441632960001", False, config=config)
    assert bad.value.field == "number"
    assert await repo.set_number_enabled(conn, "+441632960001", False, config=config) == []
