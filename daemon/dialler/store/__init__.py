"""The store: the only package that talks to PostgreSQL (asyncpg), loads SQL or runs it.

`conn` has the typed ports (`Connection`, `Pool`) every other layer holds; `pool` opens them;
one module per area (`campaigns`, `contacts`, `engine`, `fleet`, …) wraps the named queries of
`sql/<area>.sql` as functions that return typed rows (frozen dataclasses); `migrate` and
`schema.sql` own the schema. docs/architecture.md.
"""

from __future__ import annotations

from .conn import Connection, Pool, Record
from .pool import UNAVAILABLE, connect, create_pool

__all__ = ["UNAVAILABLE", "Connection", "Pool", "Record", "connect", "create_pool"]
