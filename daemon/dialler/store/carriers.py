"""Caller IDs per carrier with their recent SIP results (`sql/carriers.sql`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from .conn import Connection
from .queries import load

__all__ = ["NumberFigures", "number_campaigns", "number_figures"]

_Q = load("carriers.sql")


@dataclass(frozen=True, slots=True)
class NumberFigures:
    """A caller ID of the `numbers` table and its attempts that ended since a moment."""

    number: str
    carrier: str
    enabled: bool
    calls: int
    c4xx: int  # final code 400..499 except 429
    c5xx: int
    c429: int


async def number_figures(conn: Connection, since: datetime) -> list[NumberFigures]:
    """Every caller ID of the table, by number, with its attempts ended since `since`."""
    return [
        NumberFigures(
            number=row["number"],
            carrier=row["carrier"],
            enabled=row["enabled"],
            calls=row["calls"],
            c4xx=row["c4xx"],
            c5xx=row["c5xx"],
            c429=row["c429"],
        )
        for row in await conn.fetch(_Q["number_figures"], since)
    ]


async def number_campaigns(conn: Connection) -> dict[str, list[str]]:
    """Each number → the names of the campaigns that can still dial with it, sorted."""
    found: dict[str, list[str]] = defaultdict(list)
    for row in await conn.fetch(_Q["number_campaigns"]):
        found[row["number"]].append(row["name"])
    return dict(found)
