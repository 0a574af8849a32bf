"""Issue 11, the contacts import against a real PostgreSQL: a field over the csv module's
limit and a file with no line breaks are row errors (never a failed import), memory stays flat
whatever the line length, and the errors file is neutralised for spreadsheets."""

from __future__ import annotations

import csv
import stat
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dialler.contacts.importer import import_contacts
from dialler.store.pool import connect

from .test_contacts_import import make_campaign

pytestmark = pytest.mark.integration


def _rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


@pytest.fixture
async def conn(db_dsn: str) -> AsyncIterator[Any]:
    connection = await connect(db_dsn)
    try:
        yield connection
    finally:
        await connection.close()


async def test_a_17_mib_field_is_a_row_error_and_the_rest_imports(
    conn: Any, tmp_path: Path
) -> None:
    campaign = await make_campaign(conn)
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("phone_number,Note\n+447700900001,a\n")
        out.write('+447700900002,"' + "x" * (17 * 1024 * 1024) + '"\n')
        out.write("+447700900003,c\n")
    summary = await import_contacts(conn, campaign, path, "GB")
    assert (summary.imported, summary.rejected) == (2, 1)
    assert summary.errors_path is not None
    rows = _rows(summary.errors_path)
    assert [row[0] for row in rows[1:]] == ["3"]
    assert "64 KiB" in rows[1][1]
    assert summary.errors_path.stat().st_size < 10_000


async def test_memory_stays_flat_without_line_breaks(conn: Any, tmp_path: Path) -> None:
    campaign = await make_campaign(conn)
    path = tmp_path / "flat.csv"
    with path.open("wb") as out:
        out.write(b"phone_number,Note\n+447700900001,a\n+447700900002,")
        chunk = b"y" * (1 << 20)
        for _ in range(64):  # 64 MiB on one line
            out.write(chunk)
        out.write(b"\n+447700900003,c\n")
    tracemalloc.start()
    try:
        summary = await import_contacts(conn, campaign, path, "GB")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (summary.imported, summary.rejected) == (2, 1)
    assert peak < 16 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


async def test_the_errors_file_is_neutralised_and_private(conn: Any, tmp_path: Path) -> None:
    campaign = await make_campaign(conn)
    path = tmp_path / "formulas.csv"
    path.write_text(
        'phone_number,=HYPERLINK("http://x")\n'
        "not-a-number,=1+1\n"
        "+447700900001,  @SUM(A1)\n"
        '  =cmd|" /C calc"!A0,ok\n',
        encoding="utf-8",
    )
    path.chmod(0o644)
    summary = await import_contacts(conn, campaign, path, "GB")
    assert summary.errors_path is not None
    rows = _rows(summary.errors_path)
    assert rows[0] == ["line", "reason", "phone_number", '\'=HYPERLINK("http://x")']
    assert rows[1][2:] == ["not-a-number", "'=1+1"]
    assert rows[2][2] == '\'  =cmd|" /C calc"!A0'
    assert stat.S_IMODE(summary.errors_path.stat().st_mode) & 0o007 == 0
