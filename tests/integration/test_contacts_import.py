"""Contacts import, add and cancel against a real PostgreSQL, in-process and through the CLI."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dialler.campaigns.lookup import resolve_campaign
from dialler.contacts import importer
from dialler.contacts.importer import check_accepts_contacts, import_contacts
from dialler.contacts.single import add_contact, cancel_contact
from dialler.errors import (
    ContactBusy,
    ContactNotFound,
    CsvFileError,
    DuplicateContact,
    InvalidField,
    InvalidNumber,
    OperationalError,
    TryAgain,
    UnknownCampaign,
    WrongState,
)
from dialler.store.pool import connect

from .cli_helpers import run_cli, write_config

pytestmark = pytest.mark.integration

HEADER = "phone_number,CustomerName,Plan,zeta,alpha"


@pytest.fixture
async def conn(db_dsn: str) -> AsyncIterator[Any]:
    connection = await connect(db_dsn)
    try:
        yield connection
    finally:
        await connection.close()


async def make_campaign(
    conn: Any,
    name: str = "Renewals",
    *,
    state: str = "draft",
    always_on: bool = False,
    cancelled: bool = False,
) -> uuid.UUID:
    bot_id = await conn.fetchval(
        "INSERT INTO bots (name, prompt) VALUES ($1, 'Hello {{CustomerName}}') RETURNING id",
        f"bot-{name}",
    )
    campaign_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO campaigns (name, bot_id, state, always_on, cancelled_at)"
        " VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END) RETURNING id",
        name,
        bot_id,
        state,
        always_on,
        cancelled,
    )
    return campaign_id


@pytest.fixture
async def campaign(conn: Any) -> uuid.UUID:
    return await make_campaign(conn)


def write_csv(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_errors(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


async def contacts_of(conn: Any, campaign_id: uuid.UUID) -> list[Any]:
    return list(
        await conn.fetch(
            "SELECT phone_number, variables::text AS variables, line_number, state, next_due_at"
            " FROM contacts WHERE campaign_id = $1 ORDER BY line_number NULLS LAST",
            campaign_id,
        )
    )


# --- in-process ------------------------------------------------------------------------------


async def test_import_keeps_the_good_rows_and_reports_the_bad(
    conn: Any, campaign: uuid.UUID, tmp_path: Path
) -> None:
    await conn.execute("INSERT INTO suppressions (phone_number) VALUES ('+447700900005')")
    source = write_csv(
        tmp_path / "contacts.csv",
        HEADER,
        "+447700900001,Ann,gold,z1,a1",  # 2
        "07700 900002,Bob,silver,z2,a2",  # 3: national format
        "not a number,Cy,gold,z3,a3",  # 4: bad number
        "+447700900004,Di,gold",  # 5: ragged
        "",  # 6: blank, skipped silently
        "07700900001,Ann again,gold,z,a",  # 7: duplicate of line 2
        '+447700900006,"Ed\nSmith",gold,z6,a6',  # 8-9: multi-line field
        "+447700900005,Fay,gold,z5,a5",  # 10: on the do-not-call list
        f"+447700900007,Gil,{'x' * 70_000},z,a",  # 11: field over 64 KiB
    )
    summary = await import_contacts(conn, campaign, source, "GB", None)

    assert (
        summary.imported,
        summary.rejected,
        summary.duplicates_in_campaign,
        summary.suppressed,
    ) == (4, 4, 0, 1)
    assert summary.errors_path == tmp_path / "contacts.csv.errors.csv"
    rows = await contacts_of(conn, campaign)
    assert [(row["phone_number"], row["line_number"], row["state"]) for row in rows] == [
        ("+447700900001", 2, "pending"),
        ("+447700900002", 3, "pending"),
        ("+447700900006", 8, "pending"),
        ("+447700900005", 10, "cancelled"),
    ]
    # json keeps the header's order (jsonb would sort the keys).
    assert rows[0]["variables"] == (
        '{"CustomerName": "Ann", "Plan": "gold", "zeta": "z1", "alpha": "a1"}'
    )
    assert json.loads(rows[2]["variables"])["CustomerName"] == "Ed\nSmith"
    assert all(row["next_due_at"] is not None for row in rows[:3])
    assert rows[3]["next_due_at"] is None

    errors = read_errors(summary.errors_path)
    assert errors[0] == ["line", "reason", *HEADER.split(",")]
    assert [(row[0], row[2]) for row in errors[1:]] == [
        ("4", "not a number"),
        ("5", "+447700900004"),
        ("7", "07700900001"),
        ("11", "+447700900007"),
    ]
    reasons = [row[1] for row in errors[1:]]
    assert "not a phone number" in reasons[0]
    assert reasons[1] == "expected 5 fields (as in the header), got 3"
    assert reasons[2] == "duplicate: +447700900001 is already on line 2"
    assert "64 KiB" in reasons[3]
    assert errors[1] == ["4", reasons[0], "not a number", "Cy", "gold", "z3", "a3"]


async def test_numbers_already_in_the_campaign_are_reported_in_line_order(
    conn: Any, campaign: uuid.UUID, tmp_path: Path
) -> None:
    await add_contact(conn, campaign, "+447700900003", {}, "GB")
    source = write_csv(
        tmp_path / "c.csv",
        "phone_number,Name",
        "+447700900001,a",
        "bad,b",
        "07700 900003,c",
        "+447700900004,d",
        "x,e",
    )
    summary = await import_contacts(conn, campaign, source, "GB", tmp_path / "err.csv")
    assert (summary.imported, summary.rejected, summary.duplicates_in_campaign) == (2, 3, 1)
    errors = read_errors(tmp_path / "err.csv")
    assert [row[0] for row in errors[1:]] == ["3", "4", "6"]
    # The original fields, the number as it was written.
    assert errors[2] == [
        "4",
        "duplicate in campaign: +447700900003 is already a contact of the campaign",
        "07700 900003",
        "c",
    ]


async def test_importing_the_same_file_twice(
    conn: Any, campaign: uuid.UUID, tmp_path: Path
) -> None:
    source = write_csv(
        tmp_path / "c.csv", "phone_number,Name", *(f"+4477009{i:05d},n{i}" for i in range(300))
    )
    first = await import_contacts(conn, campaign, source, "GB")
    assert (first.imported, first.rejected, first.errors_path) == (300, 0, None)
    assert not (tmp_path / "c.csv.errors.csv").exists()
    second = await import_contacts(conn, campaign, source, "GB")
    assert (second.imported, second.rejected, second.duplicates_in_campaign) == (0, 300, 300)
    assert len(read_errors(tmp_path / "c.csv.errors.csv")) == 301
    assert await conn.fetchval("SELECT count(*) FROM contacts") == 300


async def test_a_failure_mid_insert_imports_nothing(
    conn: Any, campaign: uuid.UUID, tmp_path: Path
) -> None:
    # A trigger that lets two rows in, then fails: the INSERT ... SELECT dies half-way.
    await conn.execute("""
        CREATE SEQUENCE test_trip;
        CREATE FUNCTION test_fail_after_two() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF nextval('test_trip') > 2 THEN
                RAISE EXCEPTION 'test trigger: refusing row %', NEW.line_number;
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER test_fail BEFORE INSERT ON contacts
            FOR EACH ROW EXECUTE FUNCTION test_fail_after_two();
    """)
    source = write_csv(
        tmp_path / "c.csv", "phone_number", "bad", *(f"+4477009000{i:02d}" for i in range(10))
    )
    with pytest.raises(OperationalError, match=r"nothing imported.*test trigger"):
        await import_contacts(conn, campaign, source, "GB")
    assert await conn.fetchval("SELECT nextval('test_trip')") == 4  # it did insert two
    assert await conn.fetchval("SELECT count(*) FROM contacts") == 0
    # Rejected rows were spooled, but a failed import leaves no errors file behind.
    assert sorted(os.listdir(tmp_path)) == ["c.csv"]


async def test_a_file_error_late_in_the_file_imports_nothing(
    conn: Any, campaign: uuid.UUID, tmp_path: Path
) -> None:
    source = tmp_path / "c.csv"
    source.write_bytes(
        b"phone_number\n"
        + b"".join(f"+4477009{i:05d}\n".encode() for i in range(5000))
        + b"+44\xff\n"
    )
    with pytest.raises(CsvFileError) as info:
        await import_contacts(conn, campaign, source, "GB")
    assert info.value.line == 5002
    assert await conn.fetchval("SELECT count(*) FROM contacts") == 0


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 10 rows: a small file goes through many of them."""
    monkeypatch.setattr(importer, "_CHUNK_ROWS", 10)


@pytest.mark.usefixtures("small_chunks")
async def test_many_chunks(conn: Any, campaign: uuid.UUID, tmp_path: Path) -> None:
    for number in (5, 33, 77):
        await add_contact(conn, campaign, f"+4477009000{number:02d}", {}, "GB")
    lines = [f"+4477009000{i:02d},v{i}" if i % 9 else f"bad{i},v{i}" for i in range(100)]
    source = write_csv(tmp_path / "c.csv", "phone_number,V", *lines)
    summary = await import_contacts(conn, campaign, source, "GB")
    bad = [i for i in range(100) if i % 9 == 0]
    assert (summary.imported, summary.duplicates_in_campaign) == (100 - len(bad) - 3, 3)
    errors = read_errors(tmp_path / "c.csv.errors.csv")
    # Sorted by line, the reader's rejections and the campaign's duplicates merged.
    assert [int(row[0]) for row in errors[1:]] == sorted(
        [i + 2 for i in bad] + [5 + 2, 33 + 2, 77 + 2]
    )
    rows = await contacts_of(conn, campaign)
    assert [row["line_number"] for row in rows if row["line_number"] is not None] == [
        i + 2 for i in range(100) if i % 9 and i not in (5, 33, 77)
    ]


@pytest.mark.usefixtures("small_chunks")
async def test_a_failure_in_a_later_chunk_imports_nothing(
    conn: Any, campaign: uuid.UUID, tmp_path: Path
) -> None:
    await conn.execute("""
        CREATE FUNCTION test_fail_late() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.line_number = 57 THEN RAISE EXCEPTION 'test trigger: line 57'; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER test_fail BEFORE INSERT ON contacts
            FOR EACH ROW EXECUTE FUNCTION test_fail_late();
    """)
    source = write_csv(
        tmp_path / "c.csv", "phone_number", *(f"+4477009000{i:02d}" for i in range(100))
    )
    with pytest.raises(OperationalError, match="line 57"):
        await import_contacts(conn, campaign, source, "GB")
    assert await conn.fetchval("SELECT count(*) FROM contacts") == 0


@pytest.mark.usefixtures("small_chunks")
async def test_a_file_error_in_a_later_chunk_imports_nothing(
    conn: Any, campaign: uuid.UUID, tmp_path: Path
) -> None:
    source = tmp_path / "c.csv"
    source.write_bytes(
        b"phone_number\n"
        + b"".join(f"+4477009000{i:02d}\n".encode() for i in range(60))
        + b"\x00\n"
    )
    with pytest.raises(CsvFileError, match="NUL"):
        await import_contacts(conn, campaign, source, "GB")
    assert await conn.fetchval("SELECT count(*) FROM contacts") == 0


class CancelDuringCopy:
    """A connection on which another session cancels the campaign as the COPY starts."""

    def __init__(self, conn: Any, dsn: str) -> None:
        self._conn = conn
        self._dsn = dsn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def copy_records_to_table(self, *args: Any, **kwargs: Any) -> Any:
        other = await connect(self._dsn)
        try:
            await other.execute("UPDATE campaigns SET cancelled_at = now()")
        finally:
            await other.close()
        return await self._conn.copy_records_to_table(*args, **kwargs)


async def test_cancelled_during_the_import(
    conn: Any, campaign: uuid.UUID, tmp_path: Path, db_dsn: str
) -> None:
    """A campaign cancelled (by another session) while the file is being imported takes none
    of its contacts: the campaign row is not locked until the end, so the cancel goes
    through, and the import sees it before committing."""
    source = write_csv(tmp_path / "c.csv", "phone_number", "+447700900001")
    with pytest.raises(WrongState, match="cancelled"):
        await import_contacts(CancelDuringCopy(conn, db_dsn), campaign, source, "GB")
    assert await conn.fetchval("SELECT count(*) FROM contacts") == 0


async def test_two_imports_at_once(
    conn: Any, campaign: uuid.UUID, db_dsn: str, tmp_path: Path
) -> None:
    """Both succeed; a number in both files is a duplicate in the campaign for one of them."""
    first = write_csv(
        tmp_path / "a.csv", "phone_number", *(f"+4477009{i:05d}" for i in range(0, 3000))
    )
    second = write_csv(
        tmp_path / "b.csv", "phone_number", *(f"+4477009{i:05d}" for i in range(2000, 5000))
    )
    other = await connect(db_dsn)
    try:
        a, b = await asyncio.gather(
            import_contacts(conn, campaign, first, "GB"),
            import_contacts(other, campaign, second, "GB"),
        )
    finally:
        await other.close()
    assert a.imported + b.imported == 5000
    assert a.duplicates_in_campaign + b.duplicates_in_campaign == 1000
    assert await conn.fetchval("SELECT count(*) FROM contacts") == 5000


@pytest.mark.parametrize(
    ("state", "cancelled", "word"),
    [("completed", False, "completed"), ("draft", True, "cancelled")],
)
async def test_refused_for_completed_or_cancelled_campaigns(
    conn: Any, tmp_path: Path, state: str, cancelled: bool, word: str
) -> None:
    campaign_id = await make_campaign(conn, "Old", state=state, cancelled=cancelled)
    source = write_csv(tmp_path / "c.csv", "phone_number", "+447700900001")
    with pytest.raises(WrongState, match=rf"'Old' .*{word}") as refused:
        await import_contacts(conn, campaign_id, source, "GB")
    assert refused.value.state == state
    with pytest.raises(WrongState, match=word):
        await add_contact(conn, campaign_id, "+447700900001", {}, "GB")
    with pytest.raises(WrongState, match=word):
        await check_accepts_contacts(conn, campaign_id)


async def test_unknown_campaigns_are_refused_by_type(conn: Any, campaign: uuid.UUID) -> None:
    assert await resolve_campaign(conn, "Renewals") == campaign
    assert await resolve_campaign(conn, str(campaign)) == campaign
    with pytest.raises(UnknownCampaign) as by_name:
        await resolve_campaign(conn, "Nope")
    assert by_name.value.ref == "Nope"
    with pytest.raises(UnknownCampaign):
        await resolve_campaign(conn, str(uuid.uuid4()))
    assert await check_accepts_contacts(conn, campaign) == "Renewals"
    with pytest.raises(UnknownCampaign):
        await check_accepts_contacts(conn, uuid.uuid4())


async def test_add_to_a_running_always_on_campaign(conn: Any) -> None:
    campaign_id = await make_campaign(conn, "Inbound", state="running", always_on=True)
    added = await add_contact(conn, campaign_id, "07700 900123", {"b": "2", "a": "1"}, "GB")
    row = await conn.fetchrow(
        "SELECT phone_number, variables::text AS v, state, line_number FROM contacts WHERE id = $1",
        added.id,
    )
    assert (row["phone_number"], row["v"], row["state"], row["line_number"]) == (
        "+447700900123",
        '{"b": "2", "a": "1"}',
        "pending",
        None,
    )
    with pytest.raises(
        DuplicateContact, match=r"\+447700900123 is already in campaign 'Inbound'"
    ) as duplicate:
        await add_contact(conn, campaign_id, "+447700900123", {}, "GB")
    assert (duplicate.value.contact_id, duplicate.value.state) == (added.id, "pending")
    with pytest.raises(InvalidNumber, match="too short") as bad_number:
        await add_contact(conn, campaign_id, "123", {}, "GB")
    assert bad_number.value.field == "phone_number"
    with pytest.raises(InvalidField, match="variables: 'phone_number'") as bad_variable:
        await add_contact(conn, campaign_id, "+447700900124", {"phone_number": "x"}, "GB")
    assert bad_variable.value.field == "metadata.phone_number"


async def test_cancel_semantics(conn: Any, campaign: uuid.UUID) -> None:
    waiting = await add_contact(conn, campaign, "+447700900001", {}, "GB")
    result = await cancel_contact(conn, campaign, "07700 900001", "GB")
    assert (result.id, result.already_final) == (waiting.id, None)
    assert await conn.fetchrow(
        "SELECT state, next_due_at FROM contacts WHERE id = $1", waiting.id
    ) == ("cancelled", None)
    again = await cancel_contact(conn, campaign, "+447700900001", "GB")
    assert again.already_final == "cancelled"

    busy = await add_contact(conn, campaign, "+447700900002", {}, "GB")
    await conn.execute(
        "UPDATE contacts SET state = 'connected', lease_owner = 'd1',"
        " lease_expires_at = now() + interval '1 minute' WHERE id = $1",
        busy.id,
    )
    with pytest.raises(ContactBusy, match="in a call now") as in_call:
        await cancel_contact(conn, campaign, "+447700900002", "GB")
    assert (in_call.value.contact_id, in_call.value.state) == (busy.id, "connected")
    assert await conn.fetchval("SELECT state FROM contacts WHERE id = $1", busy.id) == ("connected")
    with pytest.raises(ContactNotFound, match="no such contact"):
        await cancel_contact(conn, campaign, "+447700900099", "GB")


async def test_cancel_of_a_contact_that_keeps_changing_says_try_again(
    conn: Any, campaign: uuid.UUID
) -> None:
    waiting = await add_contact(conn, campaign, "+447700900001", {}, "GB")
    # Every UPDATE of the contact is skipped, so it is found waiting after each cancel, as if
    # a call had just ended and rescheduled it each time.
    await conn.execute("""
        CREATE FUNCTION test_skip_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RETURN NULL; END $$;
        CREATE TRIGGER test_skip BEFORE UPDATE ON contacts
            FOR EACH ROW EXECUTE FUNCTION test_skip_update();
    """)
    with pytest.raises(TryAgain, match="run the command again"):
        await cancel_contact(conn, campaign, "+447700900001", "GB")
    assert await conn.fetchval("SELECT state FROM contacts WHERE id = $1", waiting.id) == (
        "pending"
    )


# --- the CLI ---------------------------------------------------------------------------------


async def run_dialler(config: Path, *args: str) -> tuple[int, str, str]:
    """`python -m dialler.cli --config CONFIG ARGS...`: (exit code, stdout, stderr)."""
    return await run_cli("--config", str(config), *args)


async def test_cli_import(conn: Any, campaign: uuid.UUID, db_dsn: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, db_dsn)
    source = write_csv(tmp_path / "c.csv", "phone_number,CustomerName", "+447700900001,a", "oops,b")

    code, out, err = await run_dialler(config, "contacts", "import", "Renewals", str(source))
    assert (code, out) == (0, ""), err
    assert err.strip() == (
        f"imported 1 contacts into Renewals; 1 rows rejected (see {source}.errors.csv)"
    )
    assert "\r" not in err  # no progress when stderr is not a terminal

    clean = write_csv(tmp_path / "clean.csv", "phone_number,CustomerName", "+447700900002,b")
    code, out, err = await run_dialler(
        config, "contacts", "import", str(campaign), str(clean), "--errors", str(tmp_path / "e.csv")
    )
    assert code == 0, err
    assert "no rows rejected (no errors file written)" in err
    assert not (tmp_path / "e.csv").exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("Phone_Number,Name\n+447700900001,a\n", "did you mean 'Phone_Number'"),
        ("", "the file is empty"),
        (b"phone_number\n+4477009\xff\n", ":2: not UTF-8 text"),
    ],
)
async def test_cli_import_refuses_bad_files_with_exit_2(
    conn: Any, campaign: uuid.UUID, db_dsn: str, tmp_path: Path, content: str | bytes, expected: str
) -> None:
    config = write_config(tmp_path, db_dsn)
    source = tmp_path / "c.csv"
    source.write_bytes(content.encode() if isinstance(content, str) else content)
    code, out, err = await run_dialler(config, "contacts", "import", "Renewals", str(source))
    assert (code, out) == (2, "")
    assert expected in err
    assert str(source) in err
    assert "Traceback" not in err
    assert await conn.fetchval("SELECT count(*) FROM contacts") == 0


async def test_cli_import_unknown_campaign_and_missing_file(
    conn: Any, campaign: uuid.UUID, db_dsn: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, db_dsn)
    code, _, err = await run_dialler(config, "contacts", "import", "Nope", str(tmp_path / "x"))
    assert code == 2
    assert "unknown campaign: 'Nope'" in err
    code, _, err = await run_dialler(
        config, "contacts", "import", "Renewals", str(tmp_path / "missing.csv")
    )
    assert code == 2
    assert "missing.csv: file not found" in err


async def test_cli_import_database_failure_exits_1(
    conn: Any, campaign: uuid.UUID, db_dsn: str, tmp_path: Path
) -> None:
    await conn.execute("""
        CREATE FUNCTION test_fail() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'test trigger says no'; END $$;
        CREATE TRIGGER test_fail BEFORE INSERT ON contacts
            FOR EACH ROW EXECUTE FUNCTION test_fail();
    """)
    config = write_config(tmp_path, db_dsn)
    source = write_csv(tmp_path / "c.csv", "phone_number", "+447700900001")
    code, _, err = await run_dialler(config, "contacts", "import", "Renewals", str(source))
    assert code == 1
    assert "nothing imported" in err and "test trigger says no" in err
    assert len(err.strip().splitlines()) == 1, err


async def test_cli_add_and_cancel(
    conn: Any, campaign: uuid.UUID, db_dsn: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, db_dsn)
    code, out, err = await run_dialler(
        config,
        "contacts",
        "add",
        "Renewals",
        "--phone",
        "07700 900001",
        "--var",
        "Name=Ann",
        "--var",
        "Note=a=b",
        "--var",
        "Empty=",
    )
    assert code == 0, err
    contact_id = uuid.UUID(out.strip())
    assert (
        await conn.fetchval("SELECT variables::text FROM contacts WHERE id = $1", contact_id)
        == '{"Name": "Ann", "Note": "a=b", "Empty": ""}'
    )

    code, out, err = await run_dialler(
        config, "contacts", "add", "Renewals", "--phone", "+447700900001"
    )
    assert (code, out) == (2, "")
    assert "already in campaign 'Renewals'" in err

    for bad, message in (
        (["--var", "NoEquals"], "--var 'NoEquals': expected NAME=VALUE"),
        (["--var", "=x"], "the variable name is empty"),
        (["--var", "a=1", "--var", "a=2"], "'a' is given twice"),
        (["--phone", "12"], "too short"),
    ):
        args = ["--phone", "+447700900002", *bad] if bad[0] == "--var" else bad
        code, out, err = await run_dialler(config, "contacts", "add", "Renewals", *args)
        assert (code, out) == (2, ""), err
        assert message in err

    code, out, err = await run_dialler(
        config, "contacts", "cancel", "Renewals", "--phone", "+447700900001"
    )
    assert code == 0, err
    assert f"cancelled contact {contact_id}" in err
    code, out, err = await run_dialler(
        config, "contacts", "cancel", "Renewals", "--phone", "+447700900001"
    )
    assert code == 0, err
    assert "already final (cancelled)" in err
    code, out, err = await run_dialler(
        config, "contacts", "cancel", "Renewals", "--phone", "+447700900077"
    )
    assert code == 2
    assert "no such contact" in err
