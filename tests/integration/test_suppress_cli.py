"""`dialler suppress add|remove|list` through the CLI, against a real database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dialler.store.pool import connect

from .cli_helpers import run_cli, write_config

pytestmark = pytest.mark.integration


@pytest.fixture
async def conn(db_dsn: str) -> AsyncIterator[Any]:
    connection = await connect(db_dsn)
    try:
        yield connection
    finally:
        await connection.close()


async def campaign_with(conn: Any, name: str, *numbers: str) -> uuid.UUID:
    campaign_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO campaigns (name) VALUES ($1) RETURNING id", name
    )
    for number in numbers:
        await conn.execute(
            "INSERT INTO contacts (campaign_id, phone_number) VALUES ($1, $2)", campaign_id, number
        )
    return campaign_id


async def test_add_list_remove(conn: Any, db_dsn: str, tmp_path: Path) -> None:
    config = str(write_config(tmp_path, db_dsn))
    first = await campaign_with(conn, "First", "+447700900123", "+447700900124")
    await campaign_with(conn, "Second", "+447700900123")
    await conn.execute(
        "UPDATE contacts SET state = 'done', next_due_at = NULL "
        "WHERE campaign_id = $1 AND phone_number = '+447700900123'",
        first,
    )

    code, out, err = await run_cli(
        "--config", config, "suppress", "add", "07700 900123", "--reason", "asked not to be called"
    )
    assert code == 0, err
    assert out == "+447700900123\n"
    assert "1 waiting contact(s) cancelled in 1 campaign(s)" in err
    states = {
        (r["name"], r["phone_number"]): r["state"]
        for r in await conn.fetch(
            "SELECT c.name, ct.phone_number, ct.state FROM contacts ct "
            "JOIN campaigns c ON c.id = ct.campaign_id"
        )
    }
    assert states == {
        ("First", "+447700900123"): "done",
        ("First", "+447700900124"): "pending",
        ("Second", "+447700900123"): "cancelled",
    }

    code, out, err = await run_cli("--config", config, "suppress", "add", "+447700900123")
    assert code == 0, err
    assert "already on the do-not-call list" in err

    code, out, err = await run_cli("--config", config, "suppress", "list")
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split() == ["NUMBER", "ADDED", "REASON"]
    assert row.startswith("+447700900123  ")
    assert row.endswith("asked not to be called")  # kept when added again without one

    code, out, err = await run_cli("--config", config, "suppress", "remove", "+44 7700 900123")
    assert code == 0, err
    assert out == ""
    assert "removed from the do-not-call list" in err
    assert await conn.fetchval("SELECT count(*) FROM suppressions") == 0
    code, out, err = await run_cli("--config", config, "suppress", "list")
    assert (code, out.splitlines()) == (0, ["NUMBER  ADDED  REASON"])


@pytest.mark.parametrize(
    "args",
    [
        ("suppress", "add", "12"),
        ("suppress", "add", "+447700900123", "--reason", "two\nlines"),
        ("suppress", "remove", "not a number"),
        ("suppress", "remove", "+447700900123"),  # not on the list
    ],
)
async def test_refused(db_dsn: str, tmp_path: Path, args: tuple[str, ...]) -> None:
    config = str(write_config(tmp_path, db_dsn))
    code, out, err = await run_cli("--config", config, *args)
    assert code == 2, (out, err)
    assert out == ""
    assert err.startswith("dialler: error: ")
    assert "Traceback" not in err
