"""Caller IDs per carrier for operators (`GET /v1/numbers`, `dialler number ...`, the
console's carriers page): enabled or not, the last hour's calls and the share of them that
ended 4xx / 5xx / 429 (to spot a number the carrier or the callees' networks flag), the
campaigns using each; disable / enable; and swapping one caller ID for another in every pool
that can still dial (the guide: "swap it out under Carriers"). docs/api.md.

Numbers are the config's (`numbers:`); their enabled flag is the config's and the operator's
together (`dialler number disable` stands until `number enable`: `repo.sync_numbers`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .campaigns import repo
from .config import Config
from .domain.numbers import is_e164
from .errors import InvalidField, InvalidNumber, UnknownNumber
from .store import Connection
from .store import campaigns as campaigns_store
from .store import carriers as store

__all__ = [
    "FIGURES_WINDOW",
    "NumberStatus",
    "SwapResult",
    "list_numbers",
    "set_enabled",
    "swap_number",
]

#: The figures of a number count the attempts that ended this recently.
FIGURES_WINDOW = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class NumberStatus:
    """A configured caller ID. The shares are fractions (0.0 to 1.0) of `calls_last_hour`,
    the number's attempts that ended in the last hour: `share_4xx` counts final codes 400 to
    499 except 429, which `share_429` counts on its own (throttling, not a flagged number)."""

    number: str
    carrier: str
    enabled: bool
    calls_last_hour: int
    share_4xx: float
    share_5xx: float
    share_429: float
    campaigns: list[str]  # draft, running or paused campaigns whose pool has it, by name
    #: Set by `set_enabled` only: live campaigns this change left without an enabled number.
    stranded: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """A number as `GET /v1/numbers` and `dialler number list --json` give it."""
        return {
            "number": self.number,
            "carrier": self.carrier,
            "enabled": self.enabled,
            "calls_last_hour": self.calls_last_hour,
            "share_4xx": self.share_4xx,
            "share_5xx": self.share_5xx,
            "share_429": self.share_429,
            "campaigns": self.campaigns,
        }

    def warnings(self) -> list[str]:
        """One line per campaign this change left without an enabled number."""
        return [
            f"campaign {name} has no enabled number left; it places no calls until one is enabled"
            for name in self.stranded
        ]


@dataclass(frozen=True, slots=True)
class SwapResult:
    """A swap done: the campaigns whose pool now has `new` instead of `old`, by name."""

    old: str
    new: str
    campaigns: list[str]


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


async def list_numbers(
    conn: Connection, config: Config, now: datetime | None = None
) -> list[NumberStatus]:
    """Every configured caller ID, by number, with its last hour's figures."""
    now = now or datetime.now(UTC)
    figures = {row.number: row for row in await store.number_figures(conn, now - FIGURES_WINDOW)}
    campaigns = await store.number_campaigns(conn)
    statuses: list[NumberStatus] = []
    for entry in sorted(config.numbers, key=lambda entry: entry.number):
        row = figures.get(entry.number)
        calls = row.calls if row else 0
        statuses.append(
            NumberStatus(
                number=entry.number,
                carrier=entry.carrier,
                # Not synced yet: the config's word; else both the config and the operator's.
                enabled=entry.enabled and (row.enabled if row else True),
                calls_last_hour=calls,
                share_4xx=_share(row.c4xx, calls) if row else 0.0,
                share_5xx=_share(row.c5xx, calls) if row else 0.0,
                share_429=_share(row.c429, calls) if row else 0.0,
                campaigns=campaigns.get(entry.number, []),
            )
        )
    return statuses


async def _status(conn: Connection, config: Config, number: str) -> NumberStatus:
    for status in await list_numbers(conn, config):
        if status.number == number:
            return status
    raise UnknownNumber(number, "it is not in the config's `numbers:`")


async def set_enabled(conn: Connection, config: Config, number: str, enabled: bool) -> NumberStatus:
    """Enable or disable a caller ID (`repo.set_number_enabled`, after syncing the pool);
    the number's status after it, with the live campaigns a disable left without any enabled
    number in `stranded`. `InvalidNumber`, `UnknownNumber`, `InvalidInput` (the config
    disables it)."""
    await repo.sync_numbers(conn, config)
    stranded = await repo.set_number_enabled(conn, number, enabled, config=config)
    status = await _status(conn, config, number)
    return NumberStatus(
        number=status.number,
        carrier=status.carrier,
        enabled=status.enabled,
        calls_last_hour=status.calls_last_hour,
        share_4xx=status.share_4xx,
        share_5xx=status.share_5xx,
        share_429=status.share_429,
        campaigns=status.campaigns,
        stranded=tuple(stranded),
    )


def _e164(number: str, field: str) -> None:
    if not is_e164(number):
        raise InvalidNumber(
            f"{field}: {number!r} is not an E.164 number ('+', then the country code and "
            "number, e.g. +441632960001)",
            field=field,
        )


async def swap_number(conn: Connection, config: Config, old: str, new: str) -> SwapResult:
    """Replace caller ID `old` by `new` in the pool of every draft, running or paused campaign
    that has `old` and not `new`, in one transaction, and wake the daemons of the campaigns
    changed. `new` must be an enabled caller ID of the config: `UnknownNumber` (field `to`)
    when it is not one, `InvalidField` (`to`) when it is disabled or is `old` itself."""
    _e164(old, "number")
    _e164(new, "to")
    if new == old:
        raise InvalidField("to", f"to: {new} is the number being replaced; name another one")
    if not any(entry.number == new for entry in config.numbers):
        unknown = UnknownNumber(new, "it is not in the config's `numbers:`")
        unknown.field = "to"
        raise unknown
    await repo.sync_numbers(conn, config)
    async with conn.transaction():
        enabled = await campaigns_store.numbers_enabled(conn, [new])
        if not enabled.get(new, False):
            raise InvalidField(
                "to",
                f"to: {new} is disabled; enable it first (`dialler number enable {new}`) "
                "or choose an enabled number",
            )
        swapped = await campaigns_store.swap_campaign_number(conn, old, new)
        for campaign in swapped:
            await campaigns_store.wake_daemons(conn, campaign.id)
    return SwapResult(old=old, new=new, campaigns=[campaign.name for campaign in swapped])
