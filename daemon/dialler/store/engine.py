"""The dialling engine's queries (`sql/engine.sql`, docs/engine.md): daemons, the claim,
attempts from dial to final, stale recovery."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ..domain.rules import RedialPolicy, RetryPolicy
from ..domain.window import Window
from ..domain.zones import CAMPAIGN_ZONE_KEY
from .campaigns import redial_policy, retry_policy
from .conn import Connection, Record
from .queries import load

__all__ = [
    "CallerId",
    "CampaignClaim",
    "CampaignRules",
    "Claimed",
    "Completed",
    "HostDaemon",
    "OpenAttempt",
    "StaleAttempt",
    "adopt_attempt",
    "attempt_exists",
    "campaign_rules",
    "campaigns_caller_ids",
    "campaigns_in_flight",
    "carriers_in_flight",
    "claim_contacts",
    "claimable_campaigns",
    "complete_finished_campaigns",
    "daemons_of_host",
    "database_unreachable",
    "extend_deadline",
    "finalise_attempt",
    "heartbeat",
    "listen_wakeups",
    "lock_campaigns_for_claim",
    "lock_open_attempt",
    "lock_open_attempts",
    "mark_answered",
    "mark_campaigns_dialled",
    "mark_daemon_dead",
    "mark_wrapping",
    "ping",
    "register_daemon",
    "running_campaigns",
    "schema_versions",
    "settle_contact",
    "stale_attempts",
    "store_result",
    "touch_numbers",
    "trailing_requeues",
    "unclaim",
    "unlisten_wakeups",
    "unregister_daemon",
]

_Q = load("engine.sql")


# --- rows ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CampaignRules:
    """The rules a campaign's calls are placed and judged by."""

    id: uuid.UUID
    window: Window
    retry: RetryPolicy
    redial: RedialPolicy
    ring_timeout: float
    cancelled: bool = False
    #: `window.per_contact`: each contact is dialled inside the window on its own clocks
    #: (its zone key), not the campaign's zone.
    per_contact: bool = False


@dataclass(frozen=True, slots=True)
class HostDaemon:
    id: str
    pid: int


@dataclass(frozen=True, slots=True)
class Completed:
    """A campaign just completed."""

    id: uuid.UUID
    name: str


@dataclass(frozen=True, slots=True)
class CallerId:
    number: str
    carrier: str


@dataclass(frozen=True, slots=True)
class Claimed:
    """A contact claimed for a dial, with its new attempt."""

    id: uuid.UUID  # the attempt (and the channel's Uniqueid)
    contact_id: uuid.UUID
    attempt_number: int
    caller_id: str
    carrier: str
    counts_toward_max: bool
    phone_number: str
    attempts_used: int
    asterisk: str  # the server its Originate goes through


@dataclass(frozen=True, slots=True)
class OpenAttempt:
    """An open attempt, locked by its decider, with its contact's attempt count."""

    id: uuid.UUID
    contact_id: uuid.UUID
    campaign_id: uuid.UUID
    state: str
    counts_toward_max: bool
    answered_at: datetime | None
    ended_at: datetime | None
    duration_ms: int
    disposition: str | None
    callback_at: datetime | None
    attempts_used: int
    attached_at: datetime | None = None  # when a worker took the call (None: none did)
    zone_key: str = CAMPAIGN_ZONE_KEY  # the contact's zones (domain/zones.py)


@dataclass(frozen=True, slots=True)
class StaleAttempt:
    """An open attempt to reconcile with Asterisk."""

    id: uuid.UUID
    campaign_id: uuid.UUID
    contact_id: uuid.UUID
    state: str
    daemon_id: str
    asterisk: str | None
    dialled_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    deadline_at: datetime
    ring_timeout_ms: int


def _rules(row: Record) -> CampaignRules:
    # The window was validated when the campaign started, so it parses.
    return CampaignRules(
        id=row["id"],
        window=Window.parse(
            row["window_start"], row["window_end"], list(row["window_days"]), row["timezone"]
        ),
        retry=retry_policy(row),
        redial=redial_policy(row),
        ring_timeout=row["ring_timeout_ms"] / 1000.0,
        cancelled=row.get("cancelled_at") is not None,
        per_contact=row["window_per_contact"],
    )


# --- the database's health ------------------------------------------------------------------


def database_unreachable(exc: BaseException) -> bool:
    """Does `exc` say the database could not be reached or dropped the session (refused,
    reset, shutting down or starting, the connection closed under us, a query cancelled or
    timed out) — an outage to wait out, not a fault of the statement itself?"""
    return isinstance(
        exc,
        OSError
        | TimeoutError
        | asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.exceptions.OperatorInterventionError
        | asyncpg.exceptions.TooManyConnectionsError,
    )


# --- daemons ---------------------------------------------------------------------------------


async def schema_versions(conn: Connection) -> set[str]:
    """Versions of the applied migrations (none on a database never migrated)."""
    try:
        return {r["version"] for r in await conn.fetch(_Q["schema_versions"])}
    except asyncpg.UndefinedTableError:
        return set()


async def register_daemon(conn: Connection, daemon_id: str, hostname: str, pid: int) -> None:
    """This daemon in `daemons` (its heartbeat starts now)."""
    await conn.execute(_Q["register_daemon"], daemon_id, hostname, pid)


async def heartbeat(conn: Connection, daemon_id: str) -> None:
    """This daemon is alive."""
    await conn.execute(_Q["heartbeat"], daemon_id)


async def unregister_daemon(conn: Connection, daemon_id: str) -> None:
    """This daemon stops (cleanly)."""
    await conn.execute(_Q["unregister_daemon"], daemon_id)


async def daemons_of_host(conn: Connection, hostname: str) -> list[HostDaemon]:
    """The daemons registered from this host."""
    return [
        HostDaemon(r["id"], r["pid"]) for r in await conn.fetch(_Q["daemons_of_host"], hostname)
    ]


async def mark_daemon_dead(conn: Connection, daemon_id: str) -> None:
    """The daemon's process is gone: its calls are reconciled now."""
    await conn.execute(_Q["mark_daemon_dead"], daemon_id)


WAKEUP_CHANNEL = "dialler_wakeup"  # NOTIFY-ed when a campaign starts or gets contacts


async def listen_wakeups(conn: Connection, callback: Callable[..., object]) -> None:
    """LISTEN on the wake-up channel: `callback` runs on each notification."""
    await conn.add_listener(WAKEUP_CHANNEL, callback)


async def ping(conn: Connection) -> None:
    """One round trip: raises when the connection is gone."""
    await conn.execute(_Q["ping"])


async def unlisten_wakeups(conn: Connection, callback: Callable[..., object]) -> None:
    """Stop listening (the connection goes back to the pool)."""
    await conn.remove_listener(WAKEUP_CHANNEL, callback)


# --- the scheduler ---------------------------------------------------------------------------


async def complete_finished_campaigns(conn: Connection) -> list[Completed]:
    """Complete the campaigns with nothing left to dial or finish; returns them."""
    return [
        Completed(r["id"], r["name"]) for r in await conn.fetch(_Q["complete_finished_campaigns"])
    ]


async def running_campaigns(conn: Connection) -> list[CampaignRules]:
    """The rules of every running campaign."""
    return [_rules(r) for r in await conn.fetch(_Q["running_campaigns"])]


async def campaign_rules(conn: Connection, campaign_id: uuid.UUID) -> CampaignRules | None:
    """A campaign's rules, whatever its state (live calls of a paused one still end)."""
    row = await conn.fetchrow(_Q["campaign_rules"], campaign_id)
    return None if row is None else _rules(row)


async def carriers_in_flight(conn: Connection) -> dict[str, int]:
    """Open attempts per carrier, across campaigns and daemons."""
    return {r["carrier"]: r["n"] for r in await conn.fetch(_Q["carriers_in_flight"])}


def _claimed(r: Record) -> Claimed:
    return Claimed(
        r["id"],
        r["contact_id"],
        r["attempt_number"],
        r["caller_id"],
        r["carrier"],
        r["counts_toward_max"],
        r["phone_number"],
        r["attempts_used"],
        r["asterisk"],
    )


async def touch_numbers(conn: Connection, numbers: Sequence[str]) -> None:
    """The caller IDs were just used (least recently used rotation)."""
    await conn.execute(_Q["touch_numbers"], list(numbers))


async def unclaim(conn: Connection, attempt_id: uuid.UUID) -> None:
    """The originate was never sent: the attempt goes, the contact is due again."""
    await conn.execute(_Q["unclaim"], attempt_id)


# --- one attempt -----------------------------------------------------------------------------


async def mark_answered(
    conn: Connection, attempt_id: uuid.UUID, at: datetime | None, max_call_length: float
) -> float | None:
    """The call was answered at `at`; returns the answer-to-attach seconds when the attach
    came first (else None)."""
    waited: float | None = await conn.fetchval(_Q["mark_answered"], attempt_id, at, max_call_length)
    return waited


async def lock_open_attempt(conn: Connection, attempt_id: uuid.UUID) -> OpenAttempt | None:
    """Lock the attempt for deciding it; None when it is final already or unknown."""
    r = await conn.fetchrow(_Q["lock_open_attempt"], attempt_id)
    return None if r is None else _open_attempt(r)


def _open_attempt(r: Record) -> OpenAttempt:
    return OpenAttempt(
        r["id"],
        r["contact_id"],
        r["campaign_id"],
        r["state"],
        r["counts_toward_max"],
        r["answered_at"],
        r["ended_at"],
        r["duration_ms"],
        r["disposition"],
        r["callback_at"],
        r["attempts_used"],
        r["attached_at"],
        r["zone_key"],
    )


async def attempt_exists(conn: Connection, attempt_id: uuid.UUID) -> bool:
    """Is there an attempt with this id (open or final)?"""
    return bool(await conn.fetchval(_Q["attempt_exists"], attempt_id))


async def finalise_attempt(
    conn: Connection,
    attempt_id: uuid.UUID,
    answered_at: datetime | None,
    ended_at: datetime,
    sip_code: int | None,
    outcome: str,
    disposition: str,
    duration_ms: int,
    next_action: str,
    next_at: datetime | None,
) -> None:
    """The attempt's result and the decision taken on it, written once."""
    await conn.execute(
        _Q["finalise_attempt"],
        attempt_id,
        answered_at,
        ended_at,
        sip_code,
        outcome,
        disposition,
        duration_ms,
        next_action,
        next_at,
    )


async def settle_contact(
    conn: Connection,
    contact_id: uuid.UUID,
    state: str,
    next_due_at: datetime | None,
    uncount: int,
    reason: str | None = None,
) -> None:
    """The contact's state after its attempt; `uncount` 1 gives back a counted attempt;
    `reason` says why it ends without a call to come (`no_common_window`), else None."""
    await conn.execute(_Q["settle_contact"], contact_id, state, next_due_at, uncount, reason)


async def mark_wrapping(
    conn: Connection,
    attempt_id: uuid.UUID,
    answered_at: datetime | None,
    ended_at: datetime,
    duration_ms: int,
    result_timeout: float,
) -> None:
    """An answered call hung up before its worker's result: wait `result_timeout` s for it."""
    await conn.execute(
        _Q["mark_wrapping"], attempt_id, answered_at, ended_at, duration_ms, result_timeout
    )


async def store_result(
    conn: Connection,
    attempt_id: uuid.UUID,
    disposition: str,
    callback_at: datetime | None,
    notes: str | None,
    frames_sent: int | None,
    frames_received: int | None,
) -> None:
    """The worker's result on the attempt (the attempt stays open)."""
    await conn.execute(
        _Q["store_result"],
        attempt_id,
        disposition,
        callback_at,
        notes,
        frames_sent,
        frames_received,
    )


# --- recovery --------------------------------------------------------------------------------


async def stale_attempts(
    conn: Connection, heartbeat_age: float, daemon_id: str
) -> list[StaleAttempt]:
    """Open attempts past their deadline or owned by a daemon silent for `heartbeat_age` s,
    and every call of `daemon_id` not yet ended (the caller skips those it follows: the rest
    were lost by it — during a database outage — and are reconciled at once)."""
    return [
        StaleAttempt(
            r["id"],
            r["campaign_id"],
            r["contact_id"],
            r["state"],
            r["daemon_id"],
            r["asterisk"],
            r["dialled_at"],
            r["answered_at"],
            r["ended_at"],
            r["deadline_at"],
            r["ring_timeout_ms"],
        )
        for r in await conn.fetch(_Q["stale_attempts"], heartbeat_age, daemon_id)
    ]


async def trailing_requeues(conn: Connection, contact_id: uuid.UUID) -> int:
    """How many of the contact's latest final attempts in a row were requeued."""
    return int(await conn.fetchval(_Q["trailing_requeues"], contact_id))


async def adopt_attempt(
    conn: Connection, attempt_id: uuid.UUID, daemon_id: str, deadline: datetime
) -> None:
    """This daemon follows a live call of a dead one from now on."""
    await conn.execute(_Q["adopt_attempt"], attempt_id, daemon_id, deadline)


async def extend_deadline(conn: Connection, attempt_id: uuid.UUID, deadline: datetime) -> None:
    """The call is still up: reconcile it again at `deadline`."""
    await conn.execute(_Q["extend_deadline"], attempt_id, deadline)


# --- batches (issue 12: many campaigns, group commit) ----------------------------------------


async def claimable_campaigns(conn: Connection) -> dict[uuid.UUID, int]:
    """The running campaigns with a contact due now and a place free under their concurrency,
    with how many dials each could take (a hint: the claim decides), in one statement."""
    return {r["id"]: r["wanted"] for r in await conn.fetch(_Q["claimable_campaigns"])}


@dataclass(frozen=True, slots=True)
class CampaignClaim:
    """One campaign's part of `claim_contacts`: up to one dial per caller ID given (with its
    carrier and Asterisk server, in order). `zone_keys`: for a campaign whose window is read
    per contact, the zone keys open now — only contacts with one of them are claimed; None for
    a campaign with one window."""

    campaign_id: uuid.UUID
    lease: float  # seconds
    caller_ids: Sequence[str]
    carriers: Sequence[str]
    asterisk: Sequence[str]
    zone_keys: Sequence[str] | None = None


async def claim_contacts(
    conn: Connection, daemon_id: str, claims: Sequence[CampaignClaim]
) -> dict[uuid.UUID, list[Claimed]]:
    """Claim due contacts for many campaigns in one statement and create their attempts
    (`dialing`, leased): each claims up to as many as it has caller IDs dealt; the claimed, by
    campaign (absent: none). A per-contact campaign with no zone key open claims nothing."""
    claims = [c for c in claims if c.caller_ids and (c.zone_keys is None or c.zone_keys)]
    if not claims:
        return {}
    firsts, position = [], 1
    for claim in claims:
        firsts.append(position)
        position += len(claim.caller_ids)
    keyed = [(c.campaign_id, k) for c in claims for k in c.zone_keys or ()]
    rows = await conn.fetch(
        _Q["claim_contacts"],
        [c.campaign_id for c in claims],
        [len(c.caller_ids) for c in claims],
        daemon_id,
        [c.lease for c in claims],
        [n for c in claims for n in c.caller_ids],
        [n for c in claims for n in c.carriers],
        [n for c in claims for n in c.asterisk],
        firsts,
        [c.zone_keys is not None for c in claims],
        [campaign for campaign, _key in keyed],
        [key for _campaign, key in keyed],
    )
    claimed: dict[uuid.UUID, list[Claimed]] = {}
    for r in rows:
        claimed.setdefault(r["campaign_id"], []).append(_claimed(r))
    return claimed


async def lock_campaigns_for_claim(
    conn: Connection, campaign_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Lock the running ones of `campaign_ids` for this claim transaction (in id order);
    their concurrency (a campaign no longer running is absent)."""
    rows = await conn.fetch(_Q["lock_campaigns_for_claim"], list(campaign_ids))
    return {r["id"]: r["concurrency"] for r in rows}


async def campaigns_in_flight(
    conn: Connection, campaign_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Each campaign's contacts in a call now (absent: none)."""
    rows = await conn.fetch(_Q["campaigns_in_flight"], list(campaign_ids))
    return {r["campaign_id"]: r["n"] for r in rows}


async def campaigns_caller_ids(
    conn: Connection, campaign_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[CallerId]]:
    """Each campaign's enabled caller IDs, least recently used first (absent: none)."""
    numbers: dict[uuid.UUID, list[CallerId]] = {}
    for r in await conn.fetch(_Q["campaigns_caller_ids"], list(campaign_ids)):
        numbers.setdefault(r["campaign_id"], []).append(CallerId(r["number"], r["carrier"]))
    return numbers


async def mark_campaigns_dialled(conn: Connection, campaign_ids: Sequence[uuid.UUID]) -> None:
    """These campaigns dialled now (their `last_dial_at`)."""
    await conn.execute(_Q["mark_campaigns_dialled"], list(campaign_ids))


async def lock_open_attempts(
    conn: Connection, attempt_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, OpenAttempt]:
    """`lock_open_attempt` for many attempts in one statement (locked in id order); the open
    ones by id (a final or unknown attempt is absent)."""
    rows = await conn.fetch(_Q["lock_open_attempts"], list(attempt_ids))
    return {r["id"]: _open_attempt(r) for r in rows}
