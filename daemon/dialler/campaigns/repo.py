"""Bots, campaigns and the caller-ID pool in PostgreSQL: creation, editing, the lifecycle.

Every state transition is one ``UPDATE ... WHERE state = <the state it leaves> RETURNING``, so
of two operators racing, the second is told the state the first one left. Transitions that
make a campaign dial (start, resume) run the start checks first, holding the campaign's row,
and wake running daemons with ``NOTIFY dialler_wakeup`` (payload: the campaign id).

Queries: ``dialler/store/sql/campaigns.sql`` (and ``prompts.sql`` for the prompt-variable
warnings). Connections are asyncpg connections (`Any`).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

import asyncpg

from ..config import Config
from ..store.queries import load
from ..domain.prompt import placeholders
from ..domain.rules import RedialPolicy, RetryPolicy
from ..domain.window import Window
from ..engine.campaigns import redial_from_row, retry_from_row
from ..errors import InvalidInput
from .checks import StartFacts, refusal, start_problems, start_warnings
from .spec import BotSpec, CampaignSpec, Document, parse_campaign, system_dispositions

__all__ = [
    "Bot",
    "Campaign",
    "CampaignSummary",
    "Cancelled",
    "Changed",
    "NameTaken",
    "bot_names",
    "cancel_campaign",
    "create_bot",
    "create_campaign",
    "edit_campaign",
    "get_campaign",
    "list_bots",
    "list_campaigns",
    "pause_campaign",
    "read_campaign_spec",
    "resume_campaign",
    "set_number_enabled",
    "start_campaign",
    "sync_numbers",
]

_Q = load("campaigns.sql")
_PROMPTS = load("prompts.sql")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


class NameTaken(InvalidInput):
    """Another bot or campaign already has this name."""


# --- rows ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Bot:
    id: uuid.UUID
    name: str
    created_at: datetime
    campaigns: int  # campaigns using it


@dataclass(frozen=True, slots=True)
class Campaign:
    """One campaign as stored: its lifecycle and every setting the scheduler needs.

    Durations are float seconds. The window fields are text as written; once a campaign has
    left `draft` they are valid (the start checks and `campaigns_startable_check` saw to it),
    so `window()` does not fail for it.
    """

    id: uuid.UUID
    name: str
    state: str                      # draft | running | paused | completed
    cancelled_at: datetime | None   # set by `cancel`; completes once live calls end
    bot_id: uuid.UUID | None
    bot_name: str | None
    numbers: tuple[str, ...]        # the pool (caller IDs), sorted; enabled: table `numbers`
    concurrency: int
    window_start: str
    window_end: str
    window_days: tuple[str, ...]
    timezone: str
    always_on: bool
    ring_timeout: float
    retry: RetryPolicy
    redial: RedialPolicy
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    last_dial_at: datetime | None

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None

    @property
    def spec(self) -> CampaignSpec:
        """The settings, as a campaign file would give them."""
        return CampaignSpec(
            name=self.name, bot=self.bot_name, numbers=self.numbers,
            concurrency=self.concurrency, window_start=self.window_start,
            window_end=self.window_end, window_days=self.window_days, timezone=self.timezone,
            always_on=self.always_on, ring_timeout=self.ring_timeout, retry=self.retry,
            redial=self.redial)

    def window(self) -> Window:
        """The calling window; `WindowError` only for a draft with an invalid one."""
        return Window.parse(self.window_start, self.window_end, self.window_days, self.timezone)


@dataclass(frozen=True, slots=True)
class CampaignSummary:
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
class Changed:
    """A campaign after a start, resume, pause or edit, and the warnings to show."""

    name: str
    warnings: list[str]


@dataclass(frozen=True, slots=True)
class Cancelled:
    name: str
    state: str               # completed at once, or what it keeps until live calls end
    contacts_cancelled: int  # waiting contacts that will not be dialled
    in_flight: int           # live calls still to finish


# --- bots ------------------------------------------------------------------------------------

async def create_bot(conn: Any, bot: BotSpec) -> uuid.UUID:
    """Store a bot; `NameTaken` if the name is in use."""
    try:
        bot_id: uuid.UUID = await conn.fetchval(_Q["insert_bot"], bot.name, bot.prompt,
                                                bot.pipeline)
    except asyncpg.UniqueViolationError:
        raise NameTaken(f"a bot named {bot.name!r} already exists") from None
    return bot_id


async def list_bots(conn: Any) -> list[Bot]:
    return [Bot(id=row["id"], name=row["name"], created_at=row["created_at"],
                campaigns=row["campaigns"]) for row in await conn.fetch(_Q["list_bots"])]


async def bot_names(conn: Any) -> list[str]:
    return [row["name"] for row in await conn.fetch(_Q["bot_names"])]


# --- the caller-ID pool ----------------------------------------------------------------------

async def sync_numbers(conn: Any, config: Config) -> None:
    """Mirror the config's `numbers` into the `numbers` table.

    New numbers are added with their carrier; a number with `enabled: false` in the config is
    disabled; one that left the config is disabled (not deleted). `enabled: true` does not
    undo `dialler number disable`: the operator's decision stands until `number enable`.
    """
    configured = sorted(config.numbers, key=lambda entry: entry.number)
    numbers = [entry.number for entry in configured]
    for number in numbers:
        if not _E164.fullmatch(number):
            raise InvalidInput(f"config: numbers: {number} is not a valid E.164 number "
                               "(a '+', then the country code, which never starts with 0)")
    async with conn.transaction():
        await conn.execute(_Q["upsert_numbers"], numbers,
                           [entry.carrier for entry in configured],
                           [entry.enabled for entry in configured])
        await conn.execute(_Q["disable_unconfigured_numbers"], numbers)


async def set_number_enabled(conn: Any, number: str, enabled: bool, *,
                             config: Config | None = None) -> list[str]:
    """Enable or disable a caller ID (`dialler number enable|disable`).

    With `config`, enabling a number the config disables (or no longer lists) is refused: the
    next sync would disable it again. Returns the names of running or paused campaigns that
    this leaves without any enabled number (they cannot dial).
    """
    if not _E164.fullmatch(number):
        raise InvalidInput(f"{number!r} is not an E.164 number ('+', then the country code "
                           "and number, e.g. +441632960001)")
    if enabled and config is not None:
        _check_enable_allowed(config, number)
    row = await conn.fetchrow(_Q["set_number_enabled"], number, enabled)
    if row is None:
        known = ", ".join(entry.number for entry in config.numbers) if config else ""
        raise InvalidInput(f"unknown number {number}: it is not in the configured pool"
                           + (f" ({known})" if known else " (add it under `numbers:`)"))
    if enabled:
        return []
    return [row["name"] for row in
            await conn.fetch(_Q["campaigns_without_enabled_numbers"], number)]


def _check_enable_allowed(config: Config, number: str) -> None:
    for index, entry in enumerate(config.numbers):
        if entry.number == number:
            if not entry.enabled:
                raise InvalidInput(f"number {number} is disabled in the config "
                                   f"(numbers[{index}].enabled: false); set it to true there")
            return
    raise InvalidInput(f"unknown number {number}: it is not in the config's `numbers:`")


# --- campaigns: settings ---------------------------------------------------------------------

async def read_campaign_spec(conn: Any, config: Config, document: Document) -> CampaignSpec:
    """The campaign in `document`, checked against the bots and the configured numbers.

    Syncs the number pool first, so that every configured number can be referenced.
    """
    await sync_numbers(conn, config)
    return parse_campaign(document, bots=await bot_names(conn),
                          numbers=[entry.number for entry in config.numbers])


async def create_campaign(conn: Any, spec: CampaignSpec) -> uuid.UUID:
    """Store `spec` as a draft; `NameTaken` if the name is in use. Numbers must be synced."""
    async with conn.transaction():
        try:
            campaign_id: uuid.UUID = await conn.fetchval(_Q["insert_campaign"],
                                                         *_settings(spec))
        except asyncpg.UniqueViolationError:
            raise NameTaken(f"a campaign named {spec.name!r} already exists") from None
        await conn.execute(_Q["insert_campaign_numbers"], campaign_id, list(spec.numbers))
    return campaign_id


async def edit_campaign(conn: Any, campaign_id: uuid.UUID, spec: CampaignSpec) -> Changed:
    """Replace the settings of a draft or paused campaign with `spec` (numbers synced).

    A paused campaign must stay startable (it resumes without another start): its new settings
    go through the start checks first, and are refused with every problem.
    """
    async with conn.transaction():
        campaign = await _locked(conn, campaign_id)
        if campaign.cancelled or campaign.state not in ("draft", "paused"):
            _refuse(campaign.name, campaign.state, campaign.cancelled_at, "edit",
                    "draft or paused")
        warnings: list[str] = []
        if campaign.state == "paused":
            facts = await _facts(conn, campaign_id, spec)
            problems = start_problems(facts)
            if problems:
                raise InvalidInput(refusal(campaign.name, "take these settings while paused",
                                           problems))
            warnings = start_warnings(facts)
        try:
            updated = await conn.fetchval(_Q["update_campaign"], campaign_id, *_settings(spec),
                                          campaign.state)
        except asyncpg.UniqueViolationError:
            raise NameTaken(f"a campaign named {spec.name!r} already exists") from None
        except asyncpg.CheckViolationError as exc:
            raise InvalidInput(_check_refused(campaign.name, "take these settings", exc)
                               ) from None
        if updated is None:  # not reachable while the row is locked; kept as a guard
            await _refuse_current(conn, campaign_id, "edit", "draft or paused")
        await conn.execute(_Q["delete_campaign_numbers"], campaign_id)
        await conn.execute(_Q["insert_campaign_numbers"], campaign_id, list(spec.numbers))
    return Changed(spec.name, warnings)


def _settings(spec: CampaignSpec) -> tuple[object, ...]:
    """The campaign columns of `spec`, in the order of insert_campaign's parameters."""
    on_system = [name for name in system_dispositions() if name in spec.retry.on_system]
    return (spec.name, spec.bot, spec.concurrency, spec.window_start, spec.window_end,
            list(spec.window_days), spec.timezone, spec.always_on, _ms(spec.ring_timeout),
            spec.retry.max_attempts, _ms(spec.retry.delay), on_system,
            sorted(spec.retry.on_custom), _ms(spec.redial.stop_after_connect_longer_than),
            _ms(spec.redial.redial_after_connect_shorter_than))


async def list_campaigns(conn: Any) -> list[CampaignSummary]:
    return [CampaignSummary(
        id=row["id"], name=row["name"], state=row["state"], cancelled_at=row["cancelled_at"],
        bot_name=row["bot_name"], concurrency=row["concurrency"], always_on=row["always_on"],
        numbers=row["numbers"], created_at=row["created_at"])
        for row in await conn.fetch(_Q["list_campaigns"])]


async def get_campaign(conn: Any, campaign_id: uuid.UUID) -> Campaign:
    """The campaign with id `campaign_id`; `InvalidInput` (exit 2) if there is none."""
    row = await conn.fetchrow(_Q["get_campaign"], campaign_id)
    if row is None:
        raise InvalidInput(f"unknown campaign: {campaign_id}")
    return _campaign(row)


async def _locked(conn: Any, campaign_id: uuid.UUID) -> Campaign:
    """`get_campaign`, holding the row until the transaction ends."""
    row = await conn.fetchrow(_Q["lock_campaign"], campaign_id)
    if row is None:
        raise InvalidInput(f"unknown campaign: {campaign_id}")
    return _campaign(row)


def _campaign(row: Any) -> Campaign:
    return Campaign(
        id=row["id"], name=row["name"], state=row["state"], cancelled_at=row["cancelled_at"],
        bot_id=row["bot_id"], bot_name=row["bot_name"], numbers=tuple(row["numbers"]),
        concurrency=row["concurrency"], window_start=row["window_start"],
        window_end=row["window_end"], window_days=tuple(row["window_days"]),
        timezone=row["timezone"], always_on=row["always_on"],
        ring_timeout=row["ring_timeout_ms"] / 1000,
        retry=retry_from_row(row), redial=redial_from_row(row),
        created_at=row["created_at"], updated_at=row["updated_at"],
        started_at=row["started_at"], completed_at=row["completed_at"],
        last_dial_at=row["last_dial_at"])


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


# --- campaigns: lifecycle --------------------------------------------------------------------

async def start_campaign(conn: Any, config: Config, campaign_id: uuid.UUID) -> Changed:
    """draft → running, after the start checks (refused with every problem, exit 2)."""
    return await _go_live(conn, config, campaign_id, verb="start", expected="draft",
                          query="start_campaign")


async def resume_campaign(conn: Any, config: Config, campaign_id: uuid.UUID) -> Changed:
    """paused → running, after the start checks again (numbers may have been disabled)."""
    return await _go_live(conn, config, campaign_id, verb="resume", expected="paused",
                          query="resume_campaign")


async def _go_live(conn: Any, config: Config, campaign_id: uuid.UUID, *, verb: str,
                   expected: str, query: str) -> Changed:
    await sync_numbers(conn, config)
    async with conn.transaction():
        campaign = await _locked(conn, campaign_id)
        if campaign.cancelled or campaign.state != expected:
            _refuse(campaign.name, campaign.state, campaign.cancelled_at, verb, expected)
        facts = await _facts(conn, campaign_id, campaign.spec)
        problems = start_problems(facts)
        if problems:
            raise InvalidInput(refusal(campaign.name, verb, problems))
        try:
            moved = await conn.fetchval(_Q[query], campaign_id)
        except asyncpg.CheckViolationError as exc:
            raise InvalidInput(_check_refused(campaign.name, verb, exc)) from None
        if moved is None:  # not reachable while the row is locked; kept as a guard
            await _refuse_current(conn, campaign_id, verb, expected)
        await conn.execute(_Q["wake_daemons"], str(campaign_id))
    return Changed(campaign.name, start_warnings(facts))


async def pause_campaign(conn: Any, campaign_id: uuid.UUID) -> Changed:
    """running → paused: no new dials; live calls finish normally."""
    async with conn.transaction():
        name = await conn.fetchval(_Q["pause_campaign"], campaign_id)
        if name is None:
            await _refuse_current(conn, campaign_id, "pause", "running")
        await conn.execute(_Q["wake_daemons"], str(campaign_id))
    return Changed(name, [])


async def cancel_campaign(conn: Any, campaign_id: uuid.UUID) -> Cancelled:
    """No new dials; waiting contacts cancelled; completed now if no call is in flight.

    Otherwise the campaign keeps its state, with `cancelled_at` set, until the engine sees its
    last live call end and completes it.
    """
    async with conn.transaction():
        row = await conn.fetchrow(_Q["cancel_campaign"], campaign_id)
        if row is None:
            await _refuse_current(conn, campaign_id, "cancel", "draft, running or paused")
        status = await conn.execute(_Q["cancel_waiting_contacts"], campaign_id)
        contacts_cancelled = int(status.split()[-1])  # "UPDATE <n>"
        completed = await _complete_if_idle(conn, campaign_id)
        in_flight = 0 if completed else await conn.fetchval(_Q["count_in_flight"], campaign_id)
        await conn.execute(_Q["wake_daemons"], str(campaign_id))
    return Cancelled(name=row["name"], state="completed" if completed else row["state"],
                     contacts_cancelled=contacts_cancelled, in_flight=in_flight)


async def _complete_if_idle(conn: Any, campaign_id: uuid.UUID) -> bool:
    try:
        async with conn.transaction():  # a savepoint: the refusal below must not undo the rest
            return await conn.fetchval(_Q["complete_if_idle"], campaign_id) is not None
    except asyncpg.CheckViolationError:
        # An incomplete draft cannot be `completed` (campaigns_startable_check holds for every
        # non-draft): it stays a draft with cancelled_at set, which nothing starts or edits.
        return False


async def _facts(conn: Any, campaign_id: uuid.UUID, spec: CampaignSpec) -> StartFacts:
    rows = await conn.fetch(_Q["numbers_enabled"], list(spec.numbers))
    enabled = {row["number"]: row["enabled"] for row in rows}
    has_contacts: bool = await conn.fetchval(_Q["has_contacts"], campaign_id)
    prompt: str | None = (None if spec.bot is None
                          else await conn.fetchval(_PROMPTS["bot_prompt"], spec.bot))
    variables: list[str] = []
    # A pass over every contact: only when there is something to compare.
    if has_contacts and prompt is not None and any(p.valid for p in placeholders(prompt)):
        variables = [row["name"] for row in
                     await conn.fetch(_PROMPTS["contact_variable_names"], campaign_id)]
    return StartFacts(
        spec=spec,
        bots=await bot_names(conn),
        pool={number: enabled.get(number, False) for number in spec.numbers},
        has_contacts=has_contacts, prompt=prompt, contact_variables=variables)


async def _refuse_current(conn: Any, campaign_id: uuid.UUID, verb: str,
                          expected: str) -> NoReturn:
    """Refuse `verb` for the campaign's current state (a transition's UPDATE found no row)."""
    row = await conn.fetchrow(_Q["campaign_state"], campaign_id)
    if row is None:
        raise InvalidInput(f"unknown campaign: {campaign_id}")
    _refuse(row["name"], row["state"], row["cancelled_at"], verb, expected)


def _refuse(name: str, state: str, cancelled_at: datetime | None, verb: str,
            expected: str) -> NoReturn:
    if cancelled_at is not None:
        when = cancelled_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if verb == "cancel":
            raise InvalidInput(f"campaign {name} was already cancelled at {when}")
        if state == "completed":
            raise InvalidInput(f"campaign {name} was cancelled at {when} and is completed: "
                               f"cannot {verb} it")
        if state == "draft":
            raise InvalidInput(f"campaign {name} was cancelled at {when} (as a draft): "
                               f"cannot {verb} it")
        raise InvalidInput(f"campaign {name} was cancelled at {when}; it completes when its "
                           f"live calls end: cannot {verb} it")
    if verb == "cancel":  # only a completed campaign refuses a cancel
        raise InvalidInput(f"campaign {name} is {state}: nothing to cancel")
    raise InvalidInput(f"campaign {name} is {state}, not {expected}: cannot {verb} it")


def _check_refused(name: str, verb: str, exc: Any) -> str:
    # The start checks cover what the constraint checks; if they ever disagree, say so plainly.
    return (f"campaign {name} cannot {verb}: the database refused its settings "
            f"({exc.constraint_name or 'a check constraint'}): it needs a bot, concurrency "
            "of at least 1, and a window of zero-padded HH:MM times (start before end) on at "
            "least one of mon..sun; fix them with `dialler campaign edit`")
