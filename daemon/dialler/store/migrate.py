"""Forward-only schema migrations.

The migrations are the `NNNN_name.sql` files packaged in `dialler/store/migrations`, applied in
version order, each in its own transaction, and recorded in `schema_migrations` with a checksum
of the file. A run holds a PostgreSQL advisory lock from start to end, so two processes migrating
the same database at once queue up: the second finds nothing left to do. An applied migration
whose file has since changed is an error: fix forward with a new migration instead.
See docs/schema.md.
"""

from __future__ import annotations

import hashlib
import logging
import re
import socket
from dataclasses import dataclass
from importlib import resources
from urllib.parse import unquote, urlsplit

# No stubs ship with asyncpg; `unused-ignore` keeps this valid once the project configures it.
import asyncpg  # type: ignore[import-untyped, unused-ignore]

from dialler.errors import OperationalError

__all__ = ["Migration", "available_migrations", "migrate"]

logger = logging.getLogger(__name__)

# Advisory locks are keyed by a bigint shared by every client of the database; this one is
# "dialler" in ASCII, unlikely to collide with another application's key.
_LOCK_KEY = 0x6469_616C_6C65_72

_FILE_NAME = re.compile(r"(?P<version>[0-9]{4})_(?P<name>[a-z0-9_]+)\.sql")

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version text PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,      -- sha256 of the file as applied: later edits are detected
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: `version` "0001", `name` "initial", the SQL and its sha256."""

    version: str
    name: str
    sql: str
    checksum: str

    @property
    def filename(self) -> str:
        return f"{self.version}_{self.name}.sql"


def available_migrations() -> list[Migration]:
    """The packaged migrations, in version order.

    Raises OperationalError for a misnamed `.sql` file or two files with one version: both are
    packaging mistakes that must not be skipped silently.
    """
    folder = resources.files("dialler.store") / "migrations"
    found: dict[str, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.fullmatch(entry.name)
        if match is None:
            raise OperationalError(
                f"migration file {entry.name}: the name must look like "
                "NNNN_name.sql (four digits, lower-case name)"
            )
        data = entry.read_bytes()
        migration = Migration(
            version=match["version"],
            name=match["name"],
            sql=data.decode("utf-8"),
            checksum=hashlib.sha256(data).hexdigest(),
        )
        if migration.version in found:
            raise OperationalError(
                f"migration files {found[migration.version].filename} and "
                f"{entry.name} have the same version"
            )
        found[migration.version] = migration
    return [found[version] for version in sorted(found)]


async def migrate(dsn: str, *, connect_timeout: float = 10.0) -> list[str]:
    """Apply the pending migrations to the database at `dsn`; the versions applied, in order.

    Returns [] when the schema is up to date. Safe to run twice and from several processes at
    once. Raises OperationalError when the database cannot be reached, a migration fails (that
    migration is rolled back; earlier ones stay), an applied file was changed, or the database
    holds migrations this version of the dialler does not know.
    """
    migrations = available_migrations()
    conn = await _connect(dsn, connect_timeout)
    try:
        # A session-level lock, held across the per-migration transactions and released when
        # the connection closes, even if this process dies.
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_KEY):
            logger.info("another process is migrating the database; waiting for it")
            await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        return await _apply(conn, migrations)
    except asyncpg.PostgresError as exc:
        raise OperationalError(f"database migration failed: {exc}") from exc
    finally:
        await conn.close()


async def _apply(conn: asyncpg.Connection, migrations: list[Migration]) -> list[str]:
    await conn.execute(_BOOKKEEPING)
    applied: dict[str, str] = {
        row["version"]: row["checksum"]
        for row in await conn.fetch("SELECT version, checksum FROM schema_migrations")
    }
    _check_history(applied, migrations)
    done: list[str] = []
    for migration in migrations:
        if migration.version in applied:
            continue
        try:
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
        except asyncpg.PostgresError as exc:
            raise OperationalError(
                f"migration {migration.filename} failed and was rolled back: {exc}"
            ) from exc
        logger.info("applied migration %s", migration.filename)
        done.append(migration.version)
    return done


def _check_history(applied: dict[str, str], migrations: list[Migration]) -> None:
    """Refuse to touch a database whose recorded history does not match our files."""
    known = {migration.version for migration in migrations}
    unknown = sorted(set(applied) - known)
    if unknown:
        raise OperationalError(
            f"the database has migrations this dialler does not know ({', '.join(unknown)}): "
            "it was migrated by a newer version; upgrade the dialler"
        )
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is not None and recorded != migration.checksum:
            raise OperationalError(
                f"migration {migration.filename} was changed after it was applied (its "
                "checksum differs from the one recorded in schema_migrations): applied "
                "migrations must never be edited; restore the file and add a new migration"
            )


async def _connect(dsn: str, connect_timeout: float) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(dsn, timeout=connect_timeout)
    except ConnectionRefusedError:
        reason = "connection refused (is PostgreSQL running and listening there?)"
    except socket.gaierror as exc:
        reason = f"cannot resolve the host ({exc.strerror})"
    except TimeoutError:
        reason = f"no answer within {connect_timeout:g} s"
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
    raise OperationalError(f"cannot connect to the database {_where(dsn)}: {reason}")


def _where(dsn: str) -> str:
    """Database, host and user of a DSN, for messages: never its password."""
    try:
        parts = urlsplit(dsn)
        host, port = parts.hostname or "localhost", parts.port or 5432
    except ValueError:
        return "(invalid DSN)"
    user = unquote(parts.username) if parts.username else None
    database = unquote(parts.path.lstrip("/")) or user or "?"
    return f"{database!r} on {host}:{port}" + (f" as {user!r}" if user else "")
