"""The attempt report: one CSV row per attempt with a final result (CONTRACT.md).

Streams: rows are read with a server-side cursor and written as they come, so memory does not
grow with the campaign. Formula-like cells (`=`, `+`, `-`, `@`, tab, CR, or one of `= + - @`
after leading whitespace) are prefixed with `'` so a spreadsheet never evaluates them — header
cells (variable names come from uploaded CSVs) included — except `phone_number` and
`caller_id`, which are always E.164 (`+` and digits) and stay as they are. The contacts
import's errors file uses the same `neutralise`.
"""

from __future__ import annotations

import csv
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import IO
from uuid import UUID

from .stats import rfc3339
from .store import Connection
from .store import report as store
from .store.report import FinalAttempt

FIXED = (
    "campaign_id",
    "contact_id",
    "attempt_id",
    "attempt_number",
    "phone_number",
    "caller_id",
    "carrier",
    "dialled_at",
    "answered_at",
    "ended_at",
    "duration_seconds",
    "sip_code",
    "outcome",
    "disposition",
    "worker",
    "next_action",
    "next_at",
    "asterisk",
)
RAW = frozenset({"phone_number", "caller_id"})
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_AFTER_SPACE = ("=", "+", "-", "@")


def neutralise(value: str) -> str:
    """`value` made safe for a spreadsheet: a cell a spreadsheet could read as a formula
    (starting with `= + - @`, tab or CR, or with `= + - @` after leading whitespace) gets a
    leading `'`."""
    if value.startswith(_FORMULA) or value.lstrip().startswith(_FORMULA_AFTER_SPACE):
        return "'" + value
    return value


def variable_header(names: list[str]) -> list[str]:
    """Column names for variables; one named like a fixed column becomes `var_<name>`."""
    return [f"var_{n}" if n in FIXED else n for n in names]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return rfc3339(value) or ""
    return str(value)


def _row(r: FinalAttempt, variables: list[str]) -> list[str]:
    fixed: dict[str, object] = {
        "campaign_id": r.campaign_id,
        "contact_id": r.contact_id,
        "attempt_id": r.attempt_id,
        "attempt_number": r.attempt_number,
        "phone_number": r.phone_number,
        "caller_id": r.caller_id,
        "carrier": r.carrier,
        "dialled_at": r.dialled_at,
        "answered_at": r.answered_at,
        "ended_at": r.ended_at,
        "duration_seconds": f"{(r.duration_ms or 0) / 1000:g}",
        "sip_code": r.sip_code,
        "outcome": r.outcome,
        "disposition": r.disposition,
        "worker": r.worker,
        "next_action": r.next_action,
        "next_at": r.next_at,
        "asterisk": r.asterisk,
    }
    cells = [
        _cell(fixed[name]) if name in RAW else neutralise(_cell(fixed[name])) for name in FIXED
    ]
    values = r.variables or {}
    cells += [neutralise(_cell(values.get(name))) for name in variables]
    return cells


async def write_report(
    conn: Connection,
    campaign_id: UUID,
    out: IO[str],
    *,
    on_progress: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Write the report of a campaign to `out`; returns the number of attempt rows.

    `on_progress`, when given, is awaited after each row is written (a streaming caller sends
    what `out` holds so far, and a slow reader slows the cursor instead of filling memory).
    """
    names: dict[str, None] = {}
    async with conn.transaction():
        async for variables_of_contact in store.contact_variables(conn, campaign_id):
            for key in variables_of_contact:
                names.setdefault(key, None)
        variables = list(names)
        # CRLF (RFC 4180): the csv module quotes a cell holding any character of the line
        # terminator, so a cell with a CR or LF in it stays one cell in every CSV reader.
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([*FIXED, *map(neutralise, variable_header(variables))])
        count = 0
        async for row in store.final_attempts(conn, campaign_id):
            writer.writerow(_row(row, variables))
            count += 1
            if on_progress is not None:
                await on_progress()
    return count
