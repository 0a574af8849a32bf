"""Carrier pacing shared by every daemon (`sql/pacing.sql`, migration 0005).

One row per carrier: its token bucket and throttling state (domain/throttle.py). A claim
locks the rows, refills them on the database's clock and writes them back (two statements for
all carriers); the tokens its dials take are subtracted by the `attempts` insert trigger, in
the same transaction. A throttling refusal locks its carrier's row and writes it back.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..domain.throttle import Pacing, burst
from .conn import Connection, Record
from .queries import load

__all__ = [
    "CarrierPacing",
    "lock_attempt_pacing",
    "lock_pacing",
    "pacing_states",
    "requeue_tripping_refusals",
    "save_pacing",
]

_Q = load("pacing.sql")


@dataclass(frozen=True, slots=True)
class CarrierPacing:
    """A carrier's pacing row, with the database's clock when it was read."""

    carrier: str
    state: Pacing
    now: datetime


def _row(row: Record) -> CarrierPacing:
    return CarrierPacing(
        carrier=row["carrier"],
        state=Pacing(
            configured=float(row["configured_rate"]),
            allowed=float(row["allowed_rate"]),
            tokens=float(row["tokens"]),
            refilled_at=row["refilled_at"],
            dials=int(row["dials"]),
            refusals=int(row["refusals"]),
            counted_since=row["counted_since"],
            changed_at=row["changed_at"],
        ),
        now=row["now"],
    )


async def lock_pacing(conn: Connection, rates: Mapping[str, float]) -> list[CarrierPacing]:
    """The pacing rows of `rates`' carriers (carrier → configured calls/s), locked until the
    transaction ends; a carrier without a row gets one (a full bucket) first."""
    names = sorted(rates)
    rows = [_row(r) for r in await conn.fetch(_Q["lock_pacing"], names)]
    if len(rows) < len(names):
        have = {r.carrier for r in rows}
        new = [n for n in names if n not in have]
        await conn.execute(
            _Q["add_pacing"], new, [rates[n] for n in new], [burst(rates[n]) for n in new]
        )
        rows = [_row(r) for r in await conn.fetch(_Q["lock_pacing"], names)]
    return rows


async def lock_attempt_pacing(conn: Connection, attempt_id: uuid.UUID) -> CarrierPacing | None:
    """The pacing row of the attempt's carrier, locked; None if that carrier is not paced."""
    row = await conn.fetchrow(_Q["lock_attempt_pacing"], attempt_id)
    return None if row is None else _row(row)


async def save_pacing(conn: Connection, states: Mapping[str, Pacing]) -> None:
    """Write the carriers' new states (rows locked by this transaction), in one statement."""
    if not states:
        return
    names = list(states)
    rows = [states[n] for n in names]
    await conn.execute(
        _Q["save_pacing"],
        names,
        [s.configured for s in rows],
        [s.allowed for s in rows],
        [s.tokens for s in rows],
        [s.refilled_at for s in rows],
        [s.dials for s in rows],
        [s.refusals for s in rows],
        [s.counted_since for s in rows],
        [s.changed_at for s in rows],
    )


async def requeue_tripping_refusals(
    conn: Connection, carrier: str, codes: Sequence[int], since: datetime, due_at: datetime
) -> int:
    """The carrier's throttling refusals since `since`, decided as ordinary attempts, become
    `requeue` (their contacts due at `due_at`, the attempts uncounted); how many."""
    rows = await conn.fetch(_Q["requeue_tripping_refusals"], carrier, list(codes), since, due_at)
    return len(rows)


async def pacing_states(conn: Connection) -> list[CarrierPacing]:
    """Every paced carrier's state (not locked)."""
    return [_row(r) for r in await conn.fetch(_Q["pacing_states"])]
