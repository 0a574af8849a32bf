"""Bots, campaigns and the caller-ID pool: creation, editing, the lifecycle.

Every state transition is one ``UPDATE ... WHERE state = <the state it leaves> RETURNING``, so
of two operators racing, the second is told the state the first one left. Transitions that
make a campaign dial (start, resume) run the start checks first, holding the campaign's row,
and wake running daemons with ``NOTIFY dialler_wakeup`` (payload: the campaign id).

Refusals are typed (`dialler.errors`): `UnknownCampaign`, `NameTaken`, `WrongState` (the
campaign's state does not allow it), `StartChecksFailed` (with every problem). Queries:
`dialler.store.campaigns` and `dialler.store.prompts`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, NoReturn

from ..config import Config
from ..domain.numbers import is_e164
from ..domain.prompt import placeholders
from ..domain.rules import RedialPolicy, RetryPolicy
from ..domain.states import CampaignState
from ..domain.window import Window
from ..errors import (
    ConfigError,
    InvalidInput,
    InvalidNumber,
    NameTaken,
    SettingsRefused,
    SpecError,
    UnknownBot,
    UnknownCampaign,
    UnknownNumber,
    WrongState,
)
from ..store import Connection, prompts
from ..store import campaigns as store
from ..store import zones as zones_store
from ..store.campaigns import CampaignRow, CampaignSettings
from .checks import (
    StartFacts,
    cancelled_warnings,
    checks_failed,
    never_open_zone_keys,
    start_problem_fields,
    start_problems,
    start_warnings,
)
from .spec import BotSpec, CampaignSpec, Document, parse_campaign, system_dispositions

__all__ = [
    "Bot",
    "BotView",
    "Campaign",
    "CampaignCheck",
    "CampaignSummary",
    "Cancelled",
    "Changed",
    "bot_names",
    "cancel_campaign",
    "create_bot",
    "create_campaign",
    "edit_bot",
    "edit_campaign",
    "get_bot",
    "get_campaign",
    "list_bots",
    "list_campaigns",
    "pause_campaign",
    "read_campaign_spec",
    "resume_campaign",
    "set_number_enabled",
    "start_campaign",
    "sync_numbers",
    "validate_campaign",
]

_DRAFT, _RUNNING, _PAUSED = CampaignState.DRAFT, CampaignState.RUNNING, CampaignState.PAUSED


# --- rows ------------------------------------------------------------------------------------

Bot = store.BotRow


@dataclass(frozen=True, slots=True)
class Campaign:
    """One campaign as stored: its lifecycle and every setting the scheduler needs.

    Durations are float seconds. The window fields are text as written; once a campaign has
    left `draft` they are valid (the start checks and `campaigns_startable_check` saw to it),
    so `window()` does not fail for it.
    """

    id: uuid.UUID
    name: str
    state: CampaignState
    cancelled_at: datetime | None  # set by `cancel`; completes once live calls end
    bot_id: uuid.UUID | None
    bot_name: str | None
    numbers: tuple[str, ...]  # the pool (caller IDs), sorted; enabled: table `numbers`
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
    #: `window.per_contact`: the window is read on each contact's own clocks.
    window_per_contact: bool = False

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None

    @property
    def spec(self) -> CampaignSpec:
        """The settings, as a campaign file would give them."""
        return CampaignSpec(
            name=self.name,
            bot=self.bot_name,
            numbers=self.numbers,
            concurrency=self.concurrency,
            window_start=self.window_start,
            window_end=self.window_end,
            window_days=self.window_days,
            timezone=self.timezone,
            window_per_contact=self.window_per_contact,
            always_on=self.always_on,
            ring_timeout=self.ring_timeout,
            retry=self.retry,
            redial=self.redial,
        )

    def window(self) -> Window:
        """The calling window; `WindowError` only for a draft with an invalid one."""
        return Window.parse(self.window_start, self.window_end, self.window_days, self.timezone)


CampaignSummary = store.CampaignSummaryRow


@dataclass(frozen=True, slots=True)
class Changed:
    """A campaign after a start, resume, pause or edit, and the warnings to show."""

    name: str
    warnings: list[str]


@dataclass(frozen=True, slots=True)
class Cancelled:
    name: str
    state: str  # completed at once, or what it keeps until live calls end
    contacts_cancelled: int  # waiting contacts that will not be dialled
    in_flight: int  # live calls still to finish


# --- bots ------------------------------------------------------------------------------------


async def create_bot(conn: Connection, bot: BotSpec) -> uuid.UUID:
    """Store a bot; `NameTaken` if the name is in use."""
    return await store.insert_bot(conn, bot.name, bot.prompt, bot.pipeline)


async def list_bots(conn: Connection) -> list[Bot]:
    """Every bot, by name."""
    return await store.list_bots(conn)


async def bot_names(conn: Connection) -> list[str]:
    """Every bot's name, sorted."""
    return await store.bot_names(conn)


# --- the caller-ID pool ----------------------------------------------------------------------


async def sync_numbers(conn: Connection, config: Config) -> None:
    """Mirror the config's `numbers` into the `numbers` table.

    New numbers are added with their carrier; a number with `enabled: false` in the config is
    disabled; one that left the config is disabled (not deleted). `enabled: true` does not
    undo `dialler number disable`: the operator's decision stands until `number enable`.
    """
    configured = sorted(config.numbers, key=lambda entry: entry.number)
    numbers = [entry.number for entry in configured]
    for number in numbers:
        if not is_e164(number):
            raise ConfigError(
                [
                    f"numbers: {number} is not a valid E.164 number "
                    "(a '+', then the country code, which never starts with 0)"
                ]
            )
    async with conn.transaction():
        await store.upsert_numbers(
            conn,
            numbers,
            [entry.carrier for entry in configured],
            [entry.enabled for entry in configured],
        )
        await store.disable_unconfigured_numbers(conn, numbers)


async def set_number_enabled(
    conn: Connection, number: str, enabled: bool, *, config: Config | None = None
) -> list[str]:
    """Enable or disable a caller ID (`dialler number enable|disable`).

    With `config`, enabling a number the config disables (or no longer lists) is refused: the
    next sync would disable it again. Returns the names of running or paused campaigns that
    this leaves without any enabled number (they cannot dial). `InvalidNumber`,
    `UnknownNumber` (not in the pool).
    """
    if not is_e164(number):
        raise InvalidNumber(
            f"{number!r} is not an E.164 number ('+', then the country code "
            "and number, e.g. +441632960001)",
            field="number",
        )
    if enabled and config is not None:
        _check_enable_allowed(config, number)
    if not await store.set_number_enabled(conn, number, enabled):
        known = ", ".join(entry.number for entry in config.numbers) if config else ""
        raise _unknown_number(
            number,
            "it is not in the configured pool"
            + (f" ({known})" if known else " (add it under `numbers:`)"),
        )
    if enabled:
        return []
    return await store.campaigns_without_enabled_numbers(conn, number)


def _check_enable_allowed(config: Config, number: str) -> None:
    for index, entry in enumerate(config.numbers):
        if entry.number == number:
            if not entry.enabled:
                raise InvalidInput(
                    f"number {number} is disabled in the config "
                    f"(numbers[{index}].enabled: false); set it to true there",
                    field="number",
                )
            return
    raise _unknown_number(number, "it is not in the config's `numbers:`")


def _unknown_number(number: str, why: str) -> UnknownNumber:
    return UnknownNumber(number, why)


# --- campaigns: settings ---------------------------------------------------------------------


async def read_campaign_spec(conn: Connection, config: Config, document: Document) -> CampaignSpec:
    """The campaign in `document`, checked against the bots and the configured numbers.

    Syncs the number pool first, so that every configured number can be referenced.
    """
    await sync_numbers(conn, config)
    return parse_campaign(
        document, bots=await bot_names(conn), numbers=[entry.number for entry in config.numbers]
    )


async def create_campaign(conn: Connection, spec: CampaignSpec) -> uuid.UUID:
    """Store `spec` as a draft; `NameTaken` if the name is in use. Numbers must be synced."""
    async with conn.transaction():
        campaign_id = await store.insert_campaign(conn, _settings(spec))
        await store.replace_campaign_numbers(conn, campaign_id, spec.numbers, new=True)
    return campaign_id


async def edit_campaign(conn: Connection, campaign_id: uuid.UUID, spec: CampaignSpec) -> Changed:
    """Replace the settings of a draft or paused campaign with `spec` (numbers synced).

    A paused campaign must stay startable (it resumes without another start): its new settings
    go through the start checks first, and are refused with every problem
    (`StartChecksFailed`). `NameTaken`, `WrongState`, `UnknownCampaign`.
    """
    async with conn.transaction():
        campaign = await _locked(conn, campaign_id)
        if campaign.cancelled or campaign.state not in (_DRAFT, _PAUSED):
            _refuse(campaign.name, campaign.state, campaign.cancelled_at, "edit", (_DRAFT, _PAUSED))
        warnings: list[str] = []
        if campaign.state == _PAUSED:
            facts = await _facts(conn, campaign_id, spec)
            problems = start_problems(facts)
            if problems:
                raise checks_failed(campaign.name, "take these settings while paused", problems)
            warnings = start_warnings(facts)
        try:
            updated = await store.update_campaign(
                conn, campaign_id, _settings(spec), campaign.state
            )
        except SettingsRefused as exc:
            raise InvalidInput(_check_refused(campaign.name, "take these settings", exc)) from None
        if not updated:  # not reachable while the row is locked; kept as a guard
            await _refuse_current(conn, campaign_id, "edit", (_DRAFT, _PAUSED))
        await store.replace_campaign_numbers(conn, campaign_id, spec.numbers)
    return Changed(spec.name, warnings)


def _settings(spec: CampaignSpec) -> CampaignSettings:
    """The campaign columns of `spec`."""
    return CampaignSettings(
        name=spec.name,
        bot_name=spec.bot,
        concurrency=spec.concurrency,
        window_start=spec.window_start,
        window_end=spec.window_end,
        window_days=tuple(spec.window_days),
        timezone=spec.timezone,
        always_on=spec.always_on,
        ring_timeout_ms=_ms(spec.ring_timeout),
        retry_max_attempts=spec.retry.max_attempts,
        retry_delay_ms=_ms(spec.retry.delay),
        retry_on_system=tuple(
            name for name in system_dispositions() if name in spec.retry.on_system
        ),
        retry_on_custom=tuple(sorted(spec.retry.on_custom)),
        redial_stop_after_ms=_ms(spec.redial.stop_after_connect_longer_than),
        redial_short_connect_ms=_ms(spec.redial.redial_after_connect_shorter_than),
        window_per_contact=spec.window_per_contact,
    )


async def list_campaigns(conn: Connection) -> list[CampaignSummary]:
    """Every campaign, oldest first."""
    return await store.list_campaigns(conn)


async def get_campaign(conn: Connection, campaign_id: uuid.UUID) -> Campaign:
    """The campaign with id `campaign_id`; `UnknownCampaign` if there is none."""
    row = await store.get_campaign(conn, campaign_id)
    if row is None:
        raise UnknownCampaign(str(campaign_id))
    return _campaign(row)


async def _locked(conn: Connection, campaign_id: uuid.UUID) -> Campaign:
    """`get_campaign`, holding the row until the transaction ends."""
    row = await store.lock_campaign(conn, campaign_id)
    if row is None:
        raise UnknownCampaign(str(campaign_id))
    return _campaign(row)


def _campaign(row: CampaignRow) -> Campaign:
    return Campaign(
        id=row.id,
        name=row.name,
        state=CampaignState(row.state),
        cancelled_at=row.cancelled_at,
        bot_id=row.bot_id,
        bot_name=row.bot_name,
        numbers=row.numbers,
        concurrency=row.concurrency,
        window_start=row.window_start,
        window_end=row.window_end,
        window_days=row.window_days,
        timezone=row.timezone,
        always_on=row.always_on,
        ring_timeout=row.ring_timeout_ms / 1000,
        retry=row.retry,
        redial=row.redial,
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        completed_at=row.completed_at,
        last_dial_at=row.last_dial_at,
        window_per_contact=row.window_per_contact,
    )


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


# --- campaigns: lifecycle --------------------------------------------------------------------


async def start_campaign(conn: Connection, config: Config, campaign_id: uuid.UUID) -> Changed:
    """draft → running, after the start checks (`StartChecksFailed` with every problem)."""
    return await _go_live(conn, config, campaign_id, verb="start", expected=_DRAFT)


async def resume_campaign(conn: Connection, config: Config, campaign_id: uuid.UUID) -> Changed:
    """paused → running, after the start checks again (numbers may have been disabled)."""
    return await _go_live(conn, config, campaign_id, verb="resume", expected=_PAUSED)


async def _go_live(
    conn: Connection, config: Config, campaign_id: uuid.UUID, *, verb: str, expected: CampaignState
) -> Changed:
    await sync_numbers(conn, config)
    async with conn.transaction():
        campaign = await _locked(conn, campaign_id)
        if campaign.cancelled or campaign.state != expected:
            _refuse(campaign.name, campaign.state, campaign.cancelled_at, verb, (expected,))
        facts = await _facts(conn, campaign_id, campaign.spec)
        problems = start_problems(facts)
        if problems:
            raise checks_failed(campaign.name, verb, problems)
        transition = store.start_campaign if expected == _DRAFT else store.resume_campaign
        try:
            moved = await transition(conn, campaign_id)
        except SettingsRefused as exc:
            raise InvalidInput(_check_refused(campaign.name, verb, exc)) from None
        if moved is None:  # not reachable while the row is locked; kept as a guard
            await _refuse_current(conn, campaign_id, verb, (expected,))
        # Contacts whose zones never share an open instant of the window are cancelled now,
        # in the same transaction, never left waiting forever (CONTRACT, "Campaign window
        # per contact"); the warnings say so in the past tense.
        cancelled = await zones_store.cancel_never_open(
            conn, campaign_id, never_open_zone_keys(facts)
        )
        await store.wake_daemons(conn, campaign_id)
    warnings = start_warnings(replace(facts, zone_keys={}))
    warnings.extend(
        cancelled_warnings(facts.spec, {count.zone_key: count.n for count in cancelled})
    )
    return Changed(campaign.name, warnings)


async def pause_campaign(conn: Connection, campaign_id: uuid.UUID) -> Changed:
    """running → paused: no new dials; live calls finish normally."""
    async with conn.transaction():
        name = await store.pause_campaign(conn, campaign_id)
        if name is None:
            await _refuse_current(conn, campaign_id, "pause", (_RUNNING,))
        await store.wake_daemons(conn, campaign_id)
    return Changed(name, [])


async def cancel_campaign(conn: Connection, campaign_id: uuid.UUID) -> Cancelled:
    """No new dials; waiting contacts cancelled; completed now if no call is in flight.

    Otherwise the campaign keeps its state, with `cancelled_at` set, until the engine sees its
    last live call end and completes it.
    """
    async with conn.transaction():
        row = await store.cancel_campaign(conn, campaign_id)
        if row is None:
            await _refuse_current(conn, campaign_id, "cancel", (_DRAFT, _RUNNING, _PAUSED))
        contacts_cancelled = await store.cancel_waiting_contacts(conn, campaign_id)
        completed = await store.complete_if_idle(conn, campaign_id)
        in_flight = 0 if completed else await store.count_in_flight(conn, campaign_id)
        await store.wake_daemons(conn, campaign_id)
    return Cancelled(
        name=row.name,
        state=CampaignState.COMPLETED if completed else CampaignState(row.state),
        contacts_cancelled=contacts_cancelled,
        in_flight=in_flight,
    )


async def _facts(conn: Connection, campaign_id: uuid.UUID, spec: CampaignSpec) -> StartFacts:
    enabled = await store.numbers_enabled(conn, spec.numbers)
    has_contacts = await store.has_contacts(conn, campaign_id)
    prompt = None if spec.bot is None else await prompts.bot_prompt(conn, spec.bot)
    variables: list[str] = []
    # A pass over every contact: only when there is something to compare.
    if has_contacts and prompt is not None and any(p.valid for p in placeholders(prompt)):
        variables = await prompts.contact_variable_names(conn, campaign_id)
    return StartFacts(
        spec=spec,
        bots=await bot_names(conn),
        pool={number: enabled.get(number, False) for number in spec.numbers},
        has_contacts=has_contacts,
        prompt=prompt,
        contact_variables=variables,
        zone_keys=await _zone_keys(conn, campaign_id, spec, has_contacts),
    )


async def _zone_keys(
    conn: Connection, campaign_id: uuid.UUID, spec: CampaignSpec, has_contacts: bool
) -> dict[str, int]:
    """The waiting contacts per zone key, for a window read per contact (else none: the
    query groups every waiting contact of the campaign)."""
    if not spec.window_per_contact or not has_contacts:
        return {}
    return {
        count.zone_key: count.n for count in await zones_store.campaign_zone_keys(conn, campaign_id)
    }


async def _refuse_current(
    conn: Connection, campaign_id: uuid.UUID, verb: str, allowed: Sequence[CampaignState]
) -> NoReturn:
    """Refuse `verb` for the campaign's current state (a transition's UPDATE found no row)."""
    row = await store.campaign_state(conn, campaign_id)
    if row is None:
        raise UnknownCampaign(str(campaign_id))
    _refuse(row.name, CampaignState(row.state), row.cancelled_at, verb, allowed)


def _refuse(
    name: str,
    state: CampaignState,
    cancelled_at: datetime | None,
    verb: str,
    allowed: Sequence[CampaignState],
) -> NoReturn:
    """`WrongState`: the campaign is `state` (or cancelled) and `verb` needs `allowed`."""

    def refused(message: str) -> WrongState:
        return WrongState(message, state=state, allowed=allowed)

    if cancelled_at is not None:
        when = cancelled_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if verb == "cancel":
            raise refused(f"campaign {name} was already cancelled at {when}")
        if state == CampaignState.COMPLETED:
            raise refused(
                f"campaign {name} was cancelled at {when} and is completed: cannot {verb} it"
            )
        if state == _DRAFT:
            raise refused(f"campaign {name} was cancelled at {when} (as a draft): cannot {verb} it")
        raise refused(
            f"campaign {name} was cancelled at {when}; it completes when its "
            f"live calls end: cannot {verb} it"
        )
    if verb == "cancel":  # only a completed campaign refuses a cancel
        raise refused(f"campaign {name} is {state}: nothing to cancel")
    raise refused(f"campaign {name} is {state}, not {_either(allowed)}: cannot {verb} it")


def _either(states: Sequence[CampaignState]) -> str:
    """``draft``, ``draft or paused``, ``draft, running or paused``."""
    if len(states) == 1:
        return states[0]
    return ", ".join(states[:-1]) + f" or {states[-1]}"


def _check_refused(name: str, verb: str, exc: SettingsRefused) -> str:
    # The start checks cover what the constraint checks; if they ever disagree, say so plainly.
    return (
        f"campaign {name} cannot {verb}: the database refused its settings "
        f"({exc.constraint or 'a check constraint'}): it needs a bot, concurrency "
        "of at least 1, and a window of zero-padded HH:MM times (start before end) on at "
        "least one of mon..sun; fix them with `dialler campaign edit`"
    )


# --- bots: one at a time ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BotView:
    """One bot as `bot show` and `GET /v1/bots/{name}` give it."""

    name: str
    prompt: str
    pipeline: dict[str, Any]  # opaque to the dialler (stt, llm, tts, ...), passed to workers
    created_at: datetime
    campaigns: int  # campaigns using it

    def to_json(self) -> dict[str, object]:
        """The JSON of `GET /v1/bots/{name}` and `dialler bot show --json`."""
        return {
            "name": self.name,
            "prompt": self.prompt,
            "pipeline": self.pipeline,
            "campaigns": self.campaigns,
            "created_at": self.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }


async def get_bot(conn: Connection, name: str) -> BotView:
    """The bot named `name`; `UnknownBot` if there is none."""
    row = await store.get_bot(conn, name)
    if row is None:
        raise UnknownBot(name)
    return BotView(
        name=row.name,
        prompt=row.prompt,
        pipeline=row.pipeline,
        created_at=row.created_at,
        campaigns=row.campaigns,
    )


async def edit_bot(conn: Connection, name: str, spec: BotSpec) -> None:
    """Replace the bot named `name` with `spec` (its campaigns follow a rename: they refer to
    the bot, not its name). `UnknownBot`; `NameTaken` when `spec.name` is another bot's."""
    if not await store.update_bot(conn, name, spec.name, spec.prompt, spec.pipeline):
        raise UnknownBot(name)


# --- campaigns: checking a file without storing it (the console's wizard) ---------------------


@dataclass(frozen=True, slots=True)
class CampaignCheck:
    """What is wrong with a campaign file, field by field, and what deserves a warning."""

    #: (key path, message): the file's problems, or the start checks that apply to it.
    problems: list[tuple[str, str]]
    warnings: list[str]


async def validate_campaign(
    conn: Connection,
    config: Config,
    document: Document,
    *,
    campaign_id: uuid.UUID | None = None,
) -> CampaignCheck:
    """Check `document` as `campaign create` (or, with `campaign_id`, `campaign edit` of that
    campaign) and then `campaign start` would, without writing anything.

    Problems carry the key path of the field at fault, list items folded into their list
    (``window.days``, ``numbers``). A file that does not parse gives its problems only; one
    that does gives the start checks, except "no contacts" (the wizard's CSV step is checked
    apart). The name must be free (or the edited campaign's own).
    """
    body = Document.request_body(document.data, document.source)
    configured = {entry.number: entry.enabled for entry in config.numbers}
    try:
        spec = parse_campaign(body, bots=await bot_names(conn), numbers=list(configured))
    except SpecError as exc:
        return CampaignCheck(problems=_spec_problems(exc), warnings=[])
    problems: list[tuple[str, str]] = []
    holder = await store.campaign_id_by_name(conn, spec.name)
    if holder is not None and holder != campaign_id:
        problems.append(("name", str(NameTaken("campaign", spec.name))))
    in_table = await store.numbers_enabled(conn, spec.numbers)
    # Not synced yet (no write here): the config's word; else both must allow it.
    pool = {n: configured.get(n, False) and in_table.get(n, True) for n in spec.numbers}
    has_contacts = campaign_id is not None and await store.has_contacts(conn, campaign_id)
    prompt = None if spec.bot is None else await prompts.bot_prompt(conn, spec.bot)
    variables: list[str] = []
    if has_contacts and campaign_id is not None and prompt is not None:
        variables = await prompts.contact_variable_names(conn, campaign_id)
    facts = StartFacts(
        spec=spec,
        bots=await bot_names(conn),
        pool=pool,
        has_contacts=has_contacts,
        prompt=prompt,
        contact_variables=variables,
        zone_keys=(
            {} if campaign_id is None else await _zone_keys(conn, campaign_id, spec, has_contacts)
        ),
    )
    problems.extend(start_problem_fields(facts, contacts=False))
    return CampaignCheck(problems=problems, warnings=start_warnings(facts))


def _spec_problems(exc: SpecError) -> list[tuple[str, str]]:
    """(key path, message) of each problem of a request body's `SpecError` (whose messages
    are ``<key path>: <what is wrong>``)."""
    if len(exc.fields) != len(exc.problems):
        return [("", problem) for problem in exc.problems]
    pairs: list[tuple[str, str]] = []
    for path, problem in zip(exc.fields, exc.problems, strict=True):
        message = problem.removeprefix(f"{path}: ") if path else problem
        pairs.append((_INDEX.sub("", path), message))
    return pairs


#: A list item's index in a key path (``numbers[2]``): the form's field is the list.
_INDEX = re.compile(r"\[[0-9]+\]")
