"""`dialler db migrate`, run as operators run it: the console script in a subprocess."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from dialler.store.migrate import available_migrations

from .cli_helpers import run_cli, write_config

pytestmark = pytest.mark.integration


async def run_dialler(*args: str) -> tuple[int, str, str]:
    return await run_cli(*args)


async def test_db_migrate_applies_then_reports_up_to_date(
    tmp_path: Path, new_empty_db: Callable[[], Awaitable[str]]
) -> None:
    config = write_config(tmp_path, await new_empty_db())

    code, out, err = await run_dialler("--config", str(config), "db", "migrate")
    assert code == 0, err
    assert out == ""
    assert err.splitlines() == [f"applied {m.filename}" for m in available_migrations()]

    code, out, err = await run_dialler("--config", str(config), "db", "migrate")
    assert code == 0, err
    assert err.strip() == "schema up to date"


async def test_db_migrate_unreachable_database_exits_1_with_one_line(
    tmp_path: Path, closed_port: int
) -> None:
    config = write_config(tmp_path, f"postgresql://dialler:s3cret@127.0.0.1:{closed_port}/dialler")

    code, out, err = await run_dialler("--config", str(config), "db", "migrate")
    assert code == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "cannot connect to the database" in err
    assert "s3cret" not in err
    assert "Traceback" not in err
