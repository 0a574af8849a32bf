"""Asterisk's own record of a call (CEL rows written by `cel_pgsql`, `sql/cel.sql`)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from .conn import Connection
from .queries import load

__all__ = ["CallRecord", "call_record", "prune"]

_Q = load("cel.sql")


@dataclass(frozen=True, slots=True)
class CallRecord:
    """What Asterisk recorded of one channel: times (UTC) and the hang-up's Q.850 cause."""

    started_at: datetime | None
    answered_at: datetime | None
    hungup_at: datetime | None
    cause: int | None  # the hang-up's Q.850 cause; None when not recorded or unreadable


async def call_record(conn: Connection, attempt_id: uuid.UUID, server: str) -> CallRecord | None:
    """The record of attempt `attempt_id`'s channel on Asterisk `server`; None when Asterisk
    wrote nothing for it (which proves nothing: its writer may have been down)."""
    row = await conn.fetchrow(_Q["call_record"], str(attempt_id), server)
    if row is None or (row["started_at"] is None and row["hungup_at"] is None):
        return None
    return CallRecord(
        _utc(row["started_at"]),
        _utc(row["answered_at"]),
        _utc(row["hungup_at"]),
        _cause(row["hangup_extra"]),
    )


async def prune(conn: Connection, older_than: float) -> None:
    """Delete the rows recorded more than `older_than` seconds ago."""
    await conn.execute(_Q["prune"], older_than)


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=UTC)


def _cause(extra: str | None) -> int | None:
    """`hangupcause` of the HANGUP row's JSON `extra` (Asterisk writes it; a row written by
    anything else may not parse: no cause then)."""
    if not extra:
        return None
    try:
        cause = json.loads(extra).get("hangupcause")
    except (ValueError, AttributeError):
        return None
    return cause if isinstance(cause, int) and 0 <= cause <= 127 else None
