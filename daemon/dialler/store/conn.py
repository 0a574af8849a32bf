"""The database as the rest of the package sees it: typed ports over asyncpg.

asyncpg ships no type information, so a connection held as `Any` lets mypy check nothing. These
Protocols name exactly the calls the store makes; `asyncpg.Connection` and `asyncpg.Pool`
satisfy them structurally. Only `dialler.store` calls them (the import-linter contracts in
pyproject.toml keep it so): services, the engine and the adapters pass a `Connection` through
to store functions and never run SQL themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Protocol


class Record(Protocol):
    """One result row (`asyncpg.Record`): by column name or position."""

    def __getitem__(self, key: str | int, /) -> Any: ...

    def get(self, key: str, default: Any = None, /) -> Any: ...

    def keys(self) -> Iterable[str]: ...


class Transaction(Protocol):
    """`conn.transaction()`: commits on a clean exit, rolls back on an exception."""

    async def __aenter__(self) -> object: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...


class Cursor(Protocol):
    """`conn.cursor(...)`: rows fetched `prefetch` at a time (inside a transaction)."""

    def __aiter__(self) -> AsyncIterator[Record]: ...


class Connection(Protocol):
    """One database connection (`asyncpg.Connection`)."""

    async def execute(self, query: str, *args: object, timeout: float | None = None) -> str: ...

    async def executemany(
        self, command: str, args: Iterable[Sequence[object]], *, timeout: float | None = None
    ) -> None: ...

    async def fetch(
        self, query: str, *args: object, timeout: float | None = None
    ) -> list[Record]: ...

    async def fetchrow(
        self, query: str, *args: object, timeout: float | None = None
    ) -> Record | None: ...

    async def fetchval(
        self, query: str, *args: object, column: int = 0, timeout: float | None = None
    ) -> Any: ...

    def transaction(
        self, *, isolation: str | None = None, readonly: bool = False, deferrable: bool = False
    ) -> Transaction: ...

    def is_in_transaction(self) -> bool: ...

    def cursor(
        self, query: str, *args: object, prefetch: int | None = None, timeout: float | None = None
    ) -> Cursor: ...

    async def copy_records_to_table(
        self,
        table_name: str,
        *,
        records: Iterable[Sequence[object]] | AsyncIterable[Sequence[object]],
        columns: Sequence[str] | None = None,
        schema_name: str | None = None,
        timeout: float | None = None,
        where: str | None = None,
    ) -> str: ...

    async def add_listener(self, channel: str, callback: Callable[..., object]) -> None: ...

    async def remove_listener(self, channel: str, callback: Callable[..., object]) -> None: ...

    async def close(self, *, timeout: float | None = None) -> None: ...


class Pool(Protocol):
    """A pool of connections (`asyncpg.Pool`)."""

    def acquire(
        self, *, timeout: float | None = None
    ) -> AbstractAsyncContextManager[Connection]: ...

    async def close(self) -> None: ...

    def terminate(self) -> None: ...
