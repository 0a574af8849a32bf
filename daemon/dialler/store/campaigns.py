"""Bots, campaigns and their lifecycle, the caller-ID pool (`sql/campaigns.sql`).

Rows keep the database's units (durations in milliseconds); `retry_policy` and `redial_policy`
turn a campaign's retry and redial columns into the domain's policies (seconds). A unique name
taken is `errors.NameTaken`; a settings change the campaign's CHECK constraint refuses is
`SettingsRefused`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from ..domain.rules import RedialPolicy, RetryPolicy
from ..errors import NameTaken, SettingsRefused
from .conn import Connection, Record
from .queries import load

__all__ = [
    "BotDetailRow",
    "BotRow",
    "CampaignRow",
    "CampaignSettings",
    "CampaignStateRow",
    "CampaignSummaryRow",
    "CancelledRow",
    "SettingsRefused",
    "SwappedRow",
    "bot_names",
    "campaign_id",
    "campaign_id_by_name",
    "campaign_state",
    "campaigns_without_enabled_numbers",
    "cancel_campaign",
    "cancel_waiting_contacts",
    "complete_if_idle",
    "count_in_flight",
    "disable_unconfigured_numbers",
    "get_bot",
    "get_campaign",
    "get_campaigns",
    "has_contacts",
    "insert_bot",
    "insert_campaign",
    "list_bots",
    "list_campaigns",
    "lock_campaign",
    "numbers_enabled",
    "pause_campaign",
    "redial_policy",
    "replace_campaign_numbers",
    "resume_campaign",
    "retry_policy",
    "running_concurrency",
    "set_number_enabled",
    "start_campaign",
    "swap_campaign_number",
    "update_bot",
    "update_campaign",
    "upsert_numbers",
    "wake_daemons",
]

_Q = load("campaigns.sql")


# --- policies from the columns ------------------------------------------------------------


def _retry(
    max_attempts: int, delay_ms: int, on_system: Sequence[str], on_custom: Sequence[str]
) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=max_attempts,
        delay=delay_ms / 1000.0,
        on_system=frozenset(on_system),
        on_custom=frozenset(on_custom),
    )


def _redial(stop_after_ms: int | None, short_connect_ms: int | None) -> RedialPolicy:
    return RedialPolicy(
        stop_after_connect_longer_than=_seconds(stop_after_ms),
        redial_after_connect_shorter_than=_seconds(short_connect_ms),
    )


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000.0


def retry_policy(row: Record) -> RetryPolicy:
    """The retry policy of a row with a campaign's `retry_*` columns (durations in ms)."""
    return _retry(
        row["retry_max_attempts"],
        row["retry_delay_ms"],
        row["retry_on_system"],
        row["retry_on_custom"],
    )


def redial_policy(row: Record) -> RedialPolicy:
    """The redial rules of a row with a campaign's `redial_*` columns (ms, NULL when off)."""
    return _redial(row["redial_stop_after_ms"], row["redial_short_connect_ms"])


# --- rows ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BotRow:
    id: uuid.UUID
    name: str
    created_at: datetime
    campaigns: int  # campaigns using it


@dataclass(frozen=True, slots=True)
class CampaignRow:
    """One campaign as stored (`get_campaign`, `lock_campaign`); durations in ms."""

    id: uuid.UUID
    name: str
    state: str
    cancelled_at: datetime | None
    bot_id: uuid.UUID | None
    bot_name: str | None
    concurrency: int
    window_start: str
    window_end: str
    window_days: tuple[str, ...]
    timezone: str
    #: `window.per_contact`: the window is read on each contact's own clocks.
    window_per_contact: bool
    always_on: bool
    ring_timeout_ms: int
    retry_max_attempts: int
    retry_delay_ms: int
    retry_on_system: tuple[str, ...]
    retry_on_custom: tuple[str, ...]
    redial_stop_after_ms: int | None
    redial_short_connect_ms: int | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    last_dial_at: datetime | None
    numbers: tuple[str, ...]  # the pool (caller IDs), sorted

    @property
    def retry(self) -> RetryPolicy:
        return _retry(
            self.retry_max_attempts, self.retry_delay_ms, self.retry_on_system, self.retry_on_custom
        )

    @property
    def redial(self) -> RedialPolicy:
        return _redial(self.redial_stop_after_ms, self.redial_short_connect_ms)


@dataclass(frozen=True, slots=True)
class CampaignSettings:
    """A campaign's settings as columns (durations in ms), for insert and update."""

    name: str
    bot_name: str | None
    concurrency: int
    window_start: str
    window_end: str
    window_days: tuple[str, ...]
    timezone: str
    always_on: bool
    ring_timeout_ms: int | None
    retry_max_attempts: int
    retry_delay_ms: int | None
    retry_on_system: tuple[str, ...]
    retry_on_custom: tuple[str, ...]
    redial_stop_after_ms: int | None
    redial_short_connect_ms: int | None
    window_per_contact: bool = False

    def columns(self) -> tuple[object, ...]:
        """In the order of insert_campaign's parameters ($1..$16)."""
        return (
            self.name,
            self.bot_name,
            self.concurrency,
            self.window_start,
            self.window_end,
            list(self.window_days),
            self.timezone,
            self.always_on,
            self.ring_timeout_ms,
            self.retry_max_attempts,
            self.retry_delay_ms,
            list(self.retry_on_system),
            list(self.retry_on_custom),
            self.redial_stop_after_ms,
            self.redial_short_connect_ms,
            self.window_per_contact,
        )


@dataclass(frozen=True, slots=True)
class CampaignSummaryRow:
    id: uuid.UUID
    name: str
    state: str
    cancelled_at: datetime | None
    bot_name: str | None
    concurrency: int
    always_on: bool
    numbers: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CampaignStateRow:
    name: str
    state: str
    cancelled_at: datetime | None


@dataclass(frozen=True, slots=True)
class CancelledRow:
    """A campaign just cancelled: its name and the state it keeps for now."""

    name: str
    state: str


# --- bots ------------------------------------------------------------------------------------


async def insert_bot(conn: Connection, name: str, prompt: str, pipeline: object) -> uuid.UUID:
    """Store a bot; its id. `NameTaken` when the name is in use."""
    try:
        bot_id: uuid.UUID = await conn.fetchval(_Q["insert_bot"], name, prompt, pipeline)
    except asyncpg.UniqueViolationError:
        raise NameTaken("bot", name) from None
    return bot_id


async def list_bots(conn: Connection) -> list[BotRow]:
    """Every bot, by name, with how many campaigns use it."""
    return [
        BotRow(
            id=row["id"], name=row["name"], created_at=row["created_at"], campaigns=row["campaigns"]
        )
        for row in await conn.fetch(_Q["list_bots"])
    ]


async def bot_names(conn: Connection) -> list[str]:
    """Every bot's name, sorted."""
    return [row["name"] for row in await conn.fetch(_Q["bot_names"])]


# --- the caller-ID pool ----------------------------------------------------------------------


async def upsert_numbers(
    conn: Connection, numbers: Sequence[str], carriers: Sequence[str], enabled: Sequence[bool]
) -> None:
    """Mirror the configured caller IDs (sorted by number; see the query)."""
    await conn.execute(_Q["upsert_numbers"], list(numbers), list(carriers), list(enabled))


async def disable_unconfigured_numbers(conn: Connection, numbers: Sequence[str]) -> None:
    """Disable every number not in `numbers`."""
    await conn.execute(_Q["disable_unconfigured_numbers"], list(numbers))


async def set_number_enabled(conn: Connection, number: str, enabled: bool) -> bool:
    """Enable or disable a caller ID; False when the pool has no such number."""
    return await conn.fetchrow(_Q["set_number_enabled"], number, enabled) is not None


async def campaigns_without_enabled_numbers(conn: Connection, number: str) -> list[str]:
    """Names of live campaigns using `number` that have no enabled number left."""
    return [
        row["name"] for row in await conn.fetch(_Q["campaigns_without_enabled_numbers"], number)
    ]


async def numbers_enabled(conn: Connection, numbers: Sequence[str]) -> dict[str, bool]:
    """The given caller IDs that are in the pool, with their enabled flag."""
    return {
        row["number"]: row["enabled"]
        for row in await conn.fetch(_Q["numbers_enabled"], list(numbers))
    }


# --- campaigns: settings ---------------------------------------------------------------------


async def campaign_id(conn: Connection, campaign_id: uuid.UUID) -> uuid.UUID | None:
    """`campaign_id` if such a campaign exists."""
    found: uuid.UUID | None = await conn.fetchval(_Q["campaign_id"], campaign_id)
    return found


async def campaign_id_by_name(conn: Connection, name: str) -> uuid.UUID | None:
    """The id of the campaign named `name`, if any."""
    found: uuid.UUID | None = await conn.fetchval(_Q["campaign_id_by_name"], name)
    return found


async def insert_campaign(conn: Connection, settings: CampaignSettings) -> uuid.UUID:
    """Store a draft; its id. `NameTaken` when the name is in use."""
    try:
        new_id: uuid.UUID = await conn.fetchval(_Q["insert_campaign"], *settings.columns())
    except asyncpg.UniqueViolationError:
        raise NameTaken("campaign", settings.name) from None
    return new_id


async def update_campaign(
    conn: Connection, campaign_id: uuid.UUID, settings: CampaignSettings, state: str
) -> bool:
    """Rewrite the settings of the campaign if it is (still) in `state` and not cancelled;
    False otherwise. `NameTaken`, `SettingsRefused` (a CHECK constraint)."""
    try:
        updated = await conn.fetchval(
            _Q["update_campaign"], campaign_id, *settings.columns(), state
        )
    except asyncpg.UniqueViolationError:
        raise NameTaken("campaign", settings.name) from None
    except asyncpg.CheckViolationError as exc:
        raise SettingsRefused(exc.constraint_name) from None
    return updated is not None


async def replace_campaign_numbers(
    conn: Connection, campaign_id: uuid.UUID, numbers: Sequence[str], *, new: bool = False
) -> None:
    """Make `numbers` the campaign's pool (`new`: it has none yet)."""
    if not new:
        await conn.execute(_Q["delete_campaign_numbers"], campaign_id)
    await conn.execute(_Q["insert_campaign_numbers"], campaign_id, list(numbers))


def _campaign(row: Record) -> CampaignRow:
    return CampaignRow(
        id=row["id"],
        name=row["name"],
        state=row["state"],
        cancelled_at=row["cancelled_at"],
        bot_id=row["bot_id"],
        bot_name=row["bot_name"],
        concurrency=row["concurrency"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        window_days=tuple(row["window_days"]),
        timezone=row["timezone"],
        window_per_contact=row["window_per_contact"],
        always_on=row["always_on"],
        ring_timeout_ms=row["ring_timeout_ms"],
        retry_max_attempts=row["retry_max_attempts"],
        retry_delay_ms=row["retry_delay_ms"],
        retry_on_system=tuple(row["retry_on_system"]),
        retry_on_custom=tuple(row["retry_on_custom"]),
        redial_stop_after_ms=row["redial_stop_after_ms"],
        redial_short_connect_ms=row["redial_short_connect_ms"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        last_dial_at=row["last_dial_at"],
        numbers=tuple(row["numbers"]),
    )


async def get_campaign(conn: Connection, campaign_id: uuid.UUID) -> CampaignRow | None:
    """The campaign, or None."""
    return (await get_campaigns(conn, [campaign_id])).get(campaign_id)


async def get_campaigns(
    conn: Connection, campaign_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, CampaignRow]:
    """The campaigns of `campaign_ids` that exist, by id."""
    rows = await conn.fetch(_Q["get_campaigns"], list(campaign_ids))
    return {row["id"]: _campaign(row) for row in rows}


async def lock_campaign(conn: Connection, campaign_id: uuid.UUID) -> CampaignRow | None:
    """`get_campaign`, holding the row until the transaction ends."""
    row = await conn.fetchrow(_Q["lock_campaign"], campaign_id)
    return None if row is None else _campaign(row)


async def campaign_state(conn: Connection, campaign_id: uuid.UUID) -> CampaignStateRow | None:
    """The campaign's name, state and cancellation time, or None."""
    row = await conn.fetchrow(_Q["campaign_state"], campaign_id)
    if row is None:
        return None
    return CampaignStateRow(name=row["name"], state=row["state"], cancelled_at=row["cancelled_at"])


async def list_campaigns(conn: Connection) -> list[CampaignSummaryRow]:
    """Every campaign, oldest first."""
    return [
        CampaignSummaryRow(
            id=row["id"],
            name=row["name"],
            state=row["state"],
            cancelled_at=row["cancelled_at"],
            bot_name=row["bot_name"],
            concurrency=row["concurrency"],
            always_on=row["always_on"],
            numbers=row["numbers"],
            created_at=row["created_at"],
        )
        for row in await conn.fetch(_Q["list_campaigns"])
    ]


async def has_contacts(conn: Connection, campaign_id: uuid.UUID) -> bool:
    """Whether the campaign has any contact."""
    found: bool = await conn.fetchval(_Q["has_contacts"], campaign_id)
    return found


# --- campaigns: lifecycle --------------------------------------------------------------------


async def _transition(conn: Connection, query: str, campaign_id: uuid.UUID) -> str | None:
    try:
        name: str | None = await conn.fetchval(_Q[query], campaign_id)
    except asyncpg.CheckViolationError as exc:
        raise SettingsRefused(exc.constraint_name) from None
    return name


async def start_campaign(conn: Connection, campaign_id: uuid.UUID) -> str | None:
    """draft → running; the campaign's name, None when it was not a live draft.
    `SettingsRefused` when its settings cannot run."""
    return await _transition(conn, "start_campaign", campaign_id)


async def resume_campaign(conn: Connection, campaign_id: uuid.UUID) -> str | None:
    """paused → running; the campaign's name, None when it was not paused (or cancelled)."""
    return await _transition(conn, "resume_campaign", campaign_id)


async def pause_campaign(conn: Connection, campaign_id: uuid.UUID) -> str | None:
    """running → paused; the campaign's name, None when it was not running (or cancelled)."""
    return await _transition(conn, "pause_campaign", campaign_id)


async def cancel_campaign(conn: Connection, campaign_id: uuid.UUID) -> CancelledRow | None:
    """Set `cancelled_at`; None when the campaign is completed or was cancelled already."""
    row = await conn.fetchrow(_Q["cancel_campaign"], campaign_id)
    return None if row is None else CancelledRow(name=row["name"], state=row["state"])


async def cancel_waiting_contacts(conn: Connection, campaign_id: uuid.UUID) -> int:
    """Cancel the campaign's waiting contacts; how many."""
    status = await conn.execute(_Q["cancel_waiting_contacts"], campaign_id)
    return int(status.split()[-1])  # "UPDATE <n>"


async def complete_if_idle(conn: Connection, campaign_id: uuid.UUID) -> bool:
    """Complete the campaign now if no call is in flight; whether it was."""
    try:
        async with conn.transaction():  # a savepoint: the refusal below must not undo the rest
            return await conn.fetchval(_Q["complete_if_idle"], campaign_id) is not None
    except asyncpg.CheckViolationError:
        # An incomplete draft cannot be `completed` (campaigns_startable_check holds for every
        # non-draft): it stays a draft with cancelled_at set, which nothing starts or edits.
        return False


async def count_in_flight(conn: Connection, campaign_id: uuid.UUID) -> int:
    """The campaign's contacts in a call now."""
    count: int = await conn.fetchval(_Q["count_in_flight"], campaign_id)
    return count


async def wake_daemons(conn: Connection, campaign_id: uuid.UUID) -> None:
    """`NOTIFY dialler_wakeup` (payload: the campaign id), delivered at commit: running
    daemons re-read their campaigns at once."""
    await conn.execute(_Q["wake_daemons"], str(campaign_id))


# --- bots: one at a time (`bot show`, `bot edit`) --------------------------------------------


@dataclass(frozen=True, slots=True)
class BotDetailRow:
    """One bot with its prompt and pipeline (the jsonb object, decoded)."""

    id: uuid.UUID
    name: str
    prompt: str
    pipeline: dict[str, Any]
    created_at: datetime
    campaigns: int  # campaigns using it


async def get_bot(conn: Connection, name: str) -> BotDetailRow | None:
    """The bot named `name`, or None."""
    row = await conn.fetchrow(_Q["get_bot"], name)
    if row is None:
        return None
    return BotDetailRow(
        id=row["id"],
        name=row["name"],
        prompt=row["prompt"],
        pipeline=dict(row["pipeline"]),
        created_at=row["created_at"],
        campaigns=row["campaigns"],
    )


async def update_bot(
    conn: Connection, name: str, new_name: str, prompt: str, pipeline: object
) -> bool:
    """Rewrite the bot named `name`; False when there is none. `NameTaken` when `new_name`
    belongs to another bot."""
    try:
        updated = await conn.fetchval(_Q["update_bot"], name, new_name, prompt, pipeline)
    except asyncpg.UniqueViolationError:
        raise NameTaken("bot", new_name) from None
    return updated is not None


# --- the caller-ID pool: swapping a number ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class SwappedRow:
    """A campaign whose pool had a caller ID replaced."""

    id: uuid.UUID
    name: str


async def swap_campaign_number(conn: Connection, old: str, new: str) -> list[SwappedRow]:
    """Replace `old` by `new` in every draft, running or paused pool that has `old` and not
    `new`; the campaigns changed, by name."""
    rows = await conn.fetch(_Q["swap_campaign_number"], old, new)
    return sorted((SwappedRow(row["id"], row["name"]) for row in rows), key=lambda r: r.name)


async def running_concurrency(conn: Connection) -> int:
    """The sum of the running (not cancelled) campaigns' concurrency."""
    return int(await conn.fetchval(_Q["running_concurrency"]))
