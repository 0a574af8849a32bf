"""Fixtures for tests against a real PostgreSQL (tests/integration/ and the stand-in tests in
tests/unit/stand_ins/, which share the session's cluster).

One throwaway cluster per test session (`pg_cluster`), one database with every migration
applied (`migrated_template`), and per test a fresh clone of it (`db_dsn`): cloning a template
is a file copy, far faster than migrating each test's database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import pytest

from dialler.config import Config
from dialler.lab.postgres import PgCluster, throwaway_cluster
from dialler.store import Pool, create_pool
from dialler.store.migrate import migrate

from .support import daemon_config, free_port

# The role tests connect as: the owner of every test database, not a superuser.
DB_OWNER = "dialler"
TEMPLATE_DB = "dialler_template"


@pytest.fixture
def closed_port() -> int:
    """A loopback TCP port nobody listens on (the kernel just handed it out and took it back)."""
    return free_port()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A private PostgreSQL 15 cluster (fsync off) for the whole session."""
    with throwaway_cluster("dialler-pg-", fast=True) as cluster:
        yield cluster


@pytest.fixture(scope="session")
async def db_owner(pg_cluster: PgCluster) -> str:
    """The login role owning the test databases (created with a database of its own name)."""
    await asyncio.to_thread(pg_cluster.ensure_database, DB_OWNER, DB_OWNER)
    return DB_OWNER


@pytest.fixture(scope="session")
async def migrated_template(pg_cluster: PgCluster, db_owner: str) -> str:
    """Name of a database with every migration applied, to clone; nobody connects to it."""
    await asyncio.to_thread(pg_cluster.ensure_database, TEMPLATE_DB, db_owner)
    await migrate(pg_cluster.dsn(TEMPLATE_DB, DB_OWNER))
    return TEMPLATE_DB


async def _create_database(cluster: PgCluster, template: str | None) -> str:
    name = f"test_{uuid.uuid4().hex[:16]}"
    source = f' TEMPLATE "{template}"' if template else ""
    admin = await asyncpg.connect(cluster.dsn("postgres", cluster.superuser))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" OWNER "{DB_OWNER}"{source}')
    finally:
        await admin.close()
    return name


async def _drop_database(cluster: PgCluster, name: str) -> None:
    admin = await asyncpg.connect(cluster.dsn("postgres", cluster.superuser))
    try:
        # FORCE: a test that leaked a connection must not make the teardown fail.
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def db_dsn(pg_cluster: PgCluster, migrated_template: str) -> AsyncIterator[str]:
    """DSN of a fresh database with the current schema, owned by `DB_OWNER`, dropped after."""
    name = await _create_database(pg_cluster, migrated_template)
    try:
        yield pg_cluster.dsn(name, DB_OWNER)
    finally:
        await _drop_database(pg_cluster, name)


@pytest.fixture
async def new_empty_db(
    pg_cluster: PgCluster, db_owner: str
) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """A factory of fresh databases without any schema (for migration tests).

    Each call returns the DSN of a new database owned by `DB_OWNER`; all are dropped after
    the test.
    """
    created: list[str] = []

    async def create() -> str:
        name = await _create_database(pg_cluster, None)
        created.append(name)
        return pg_cluster.dsn(name, db_owner)

    try:
        yield create
    finally:
        for name in created:
            await _drop_database(pg_cluster, name)


@pytest.fixture
def config(db_dsn: str) -> Config:
    """`daemon_config` for this test's database."""
    return daemon_config(db_dsn)


@pytest.fixture
async def pool(db_dsn: str) -> AsyncIterator[Pool]:
    """A daemon's pool on this test's database."""
    pool = await create_pool(db_dsn)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def conn(db_dsn: str) -> AsyncIterator[Any]:
    """A plain asyncpg connection to this test's database."""
    connection = await asyncpg.connect(db_dsn)
    try:
        yield connection
    finally:
        await connection.close()
