"""`dialler db migrate`, run as operators run it: the console script in a subprocess."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from dialler.db.migrate import available_migrations

pytestmark = pytest.mark.integration

AMI_SECRET_ENV = "DIALLER_TEST_AMI_SECRET"


def write_config(directory: Path, dsn: str) -> Path:
    """The smallest valid config file around `dsn`."""
    path = directory / "dialler.yaml"
    path.write_text(
        "database:\n"
        f"  dsn: \"{dsn}\"\n"
        "asterisk:\n"
        "  - name: test\n"
        "    ami:\n"
        "      username: dialler\n"
        f"      secret_env: {AMI_SECRET_ENV}\n"
        "carriers:\n"
        "  - name: lab\n",
        encoding="utf-8")
    return path


async def run_dialler(*args: str) -> tuple[int, str, str]:
    """Run the `dialler` console script; (exit code, stdout, stderr)."""
    script = Path(sys.executable).with_name("dialler")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "dialler.cli"]
    env = {**os.environ, AMI_SECRET_ENV: "not-used"}
    env.pop("DIALLER_CONFIG", None)
    process = await asyncio.create_subprocess_exec(
        *command, *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_db_migrate_applies_then_reports_up_to_date(
        tmp_path: Path, new_empty_db: Callable[[], Awaitable[str]]) -> None:
    config = write_config(tmp_path, await new_empty_db())

    code, out, err = await run_dialler("--config", str(config), "db", "migrate")
    assert code == 0, err
    assert out == ""
    assert err.splitlines() == [f"applied {m.filename}" for m in available_migrations()]

    code, out, err = await run_dialler("--config", str(config), "db", "migrate")
    assert code == 0, err
    assert err.strip() == "schema up to date"


async def test_db_migrate_unreachable_database_exits_1_with_one_line(
        tmp_path: Path, closed_port: int) -> None:
    config = write_config(
        tmp_path, f"postgresql://dialler:s3cret@127.0.0.1:{closed_port}/dialler")

    code, out, err = await run_dialler("--config", str(config), "db", "migrate")
    assert code == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "cannot connect to the database" in err
    assert "s3cret" not in err
    assert "Traceback" not in err
