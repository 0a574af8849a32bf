"""The migrations: they build exactly schema.sql, run once, tolerate concurrency, guard history."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from importlib import resources

import asyncpg
import pytest

from dialler.errors import OperationalError
from dialler.lab.postgres import PgCluster
from dialler.store.migrate import available_migrations, migrate

pytestmark = pytest.mark.integration

NewDb = Callable[[], Awaitable[str]]


async def dump_schema(cluster: PgCluster, dsn: str) -> list[str]:
    """`pg_dump --schema-only` of a database, without the lines that differ between dumps."""
    process = await asyncio.create_subprocess_exec(
        str(cluster.bindir / "pg_dump"),
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        "--exclude-table=schema_migrations",
        f"--dbname={dsn}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return [
        line
        for line in out.decode().splitlines()
        # Comments (they name the dump), session SETs, and psql meta-commands (recent
        # pg_dump versions add `\restrict <random key>`) vary from dump to dump.
        if line.strip() and not line.startswith(("--", "SET ", "SELECT pg_catalog.", "\\"))
    ]


async def count_applied(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        return count
    finally:
        await conn.close()


def test_available_migrations_are_numbered_in_order() -> None:
    migrations = available_migrations()
    versions = [migration.version for migration in migrations]
    assert versions[0] == "0001"
    assert versions == sorted(set(versions))
    assert migrations[0].filename == "0001_initial.sql"
    assert all(len(migration.checksum) == 64 for migration in migrations)


async def test_migrations_build_the_fresh_install_schema(
    pg_cluster: PgCluster, new_empty_db: NewDb
) -> None:
    migrated, fresh = await new_empty_db(), await new_empty_db()
    await migrate(migrated)
    schema_sql = (resources.files("dialler.store") / "schema.sql").read_text(encoding="utf-8")
    conn = await asyncpg.connect(fresh)
    try:
        await conn.execute(schema_sql)
    finally:
        await conn.close()

    from_migrations = await dump_schema(pg_cluster, migrated)
    from_schema_sql = await dump_schema(pg_cluster, fresh)
    assert any(line.startswith("CREATE TABLE public.contacts") for line in from_migrations)
    assert from_migrations == from_schema_sql


async def test_migrate_twice_applies_nothing_the_second_time(new_empty_db: NewDb) -> None:
    dsn = await new_empty_db()
    every_version = [migration.version for migration in available_migrations()]
    assert await migrate(dsn) == every_version
    assert await migrate(dsn) == []
    assert await count_applied(dsn) == len(every_version)


async def test_concurrent_migrations_apply_each_migration_once(new_empty_db: NewDb) -> None:
    dsn = await new_empty_db()
    every_version = [migration.version for migration in available_migrations()]
    first, second = await asyncio.gather(migrate(dsn), migrate(dsn))
    # The advisory lock serialises the runs: one applies everything, the other nothing.
    assert sorted([first, second]) == [[], every_version]
    assert await count_applied(dsn) == len(every_version)


async def test_a_changed_migration_is_refused_naming_the_file(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute(
            "UPDATE schema_migrations SET checksum = 'tampered' WHERE version = '0001'"
        )
    finally:
        await conn.close()
    with pytest.raises(OperationalError, match=r"0001_initial\.sql was changed"):
        await migrate(db_dsn)


async def test_a_database_from_a_newer_dialler_is_refused(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ('9999', 'future', 'x')"
        )
    finally:
        await conn.close()
    with pytest.raises(OperationalError, match="9999"):
        await migrate(db_dsn)


async def test_unreachable_database_is_an_operational_error(pg_cluster: PgCluster) -> None:
    # Our own cluster's port with a database that does not exist: a server-side refusal.
    with pytest.raises(OperationalError, match="cannot connect to the database 'no_such_db'"):
        await migrate(pg_cluster.dsn("no_such_db", "dialler"))


async def test_check_constraints_reject_an_unknown_contact_state(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        campaign = await conn.fetchval("INSERT INTO campaigns (name) VALUES ('c') RETURNING id")
        await conn.execute(
            "INSERT INTO contacts (campaign_id, phone_number) VALUES ($1, '+447700900001')",
            campaign,
        )
        with pytest.raises(asyncpg.CheckViolationError, match="contacts_state_check"):
            await conn.execute(
                "INSERT INTO contacts (campaign_id, phone_number, state) "
                "VALUES ($1, '+447700900002', 'ringing')",
                campaign,
            )
    finally:
        await conn.close()


async def test_only_draft_campaigns_may_hold_an_invalid_configuration(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        bot = await conn.fetchval(
            "INSERT INTO bots (name, prompt) VALUES ('b', 'Hello') RETURNING id"
        )
        # A draft keeps what the operator wrote, so `campaign start` can name the problem.
        campaign = await conn.fetchval(
            "INSERT INTO campaigns (name, window_start, window_days, concurrency) "
            "VALUES ('c', '9am', '{}', 0) RETURNING id"
        )
        with pytest.raises(asyncpg.CheckViolationError, match="campaigns_startable_check"):
            await conn.execute(
                "UPDATE campaigns SET state = 'running', bot_id = $2 WHERE id = $1", campaign, bot
            )
        await conn.execute(
            "UPDATE campaigns SET state = 'running', bot_id = $2, window_start = '09:00', "
            "window_end = '24:00', window_days = '{sat,sun}', concurrency = 1 WHERE id = $1",
            campaign,
            bot,
        )
    finally:
        await conn.close()
