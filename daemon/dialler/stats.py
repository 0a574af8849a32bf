"""Live activity, the stats grid and the call list of a campaign (CONTRACT.md, `campaign show
ID --json`, `calls ID --json`).

Activity (triage guide, "Running but no calls go out"): `live` — a dial in the last 30 s;
`idle_waiting_for_retries` — running, inside the window, no dial for 30 s;
`paused_outside_window` — running but outside the calling window or on a non-working day;
`draft`, `paused`, `completed` — the campaign's state. A campaign is `stalled` when it is running,
inside its window, has contacts due, a free slot, and no dial for longer than `stall_after`.

With a window read per contact (CONTRACT, "Campaign window per contact") "inside its window"
means "some contact is callable now" (`local_windows`): due contacts whose zones are all open;
the due contacts whose zones are not are `waiting_for_local_window`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from .config import Config
from .domain.outcomes import Outcome
from .domain.states import CampaignState, ContactState
from .domain.throttle import at_claim, room
from .domain.window import Window, WindowError
from .domain.zones import open_zone_keys
from .durations import format_duration
from .errors import InvalidField, UnknownCampaign
from .store import Connection
from .store import campaigns as campaigns_store
from .store import fleet as fleet_store
from .store import pacing as pacing_store
from .store import stats as store
from .store import zones as zones_store
from .store.campaigns import CampaignRow
from .store.stats import CallRow

__all__ = [
    "ABANDON_WINDOW",
    "IN_FLIGHT",
    "LIVE_WITHIN",
    "STATES",
    "LocalWindows",
    "WindowColumns",
    "activity",
    "call_item",
    "call_items",
    "campaign_settings",
    "campaign_show",
    "campaigns_show",
    "local_windows",
    "rfc3339",
    "window_open",
    "window_open_at",
]

LIVE_WITHIN = 30.0
#: `abandon_rate_30d` counts the answered attempts that ended this recently.
ABANDON_WINDOW = timedelta(days=30)
#: Every contact state, in the order of the stats grid.
STATES: tuple[ContactState, ...] = (
    ContactState.PENDING,
    ContactState.DIALING,
    ContactState.CONNECTED,
    ContactState.WRAPPING,
    ContactState.RETRY_SCHEDULED,
    ContactState.CALLBACK_SCHEDULED,
    ContactState.DONE,
    ContactState.EXHAUSTED,
    ContactState.CANCELLED,
)
#: The in-flight states, in call order.
IN_FLIGHT: tuple[ContactState, ...] = (
    ContactState.DIALING,
    ContactState.CONNECTED,
    ContactState.WRAPPING,
)


class WindowColumns(Protocol):
    """A row with a campaign's calling-window columns."""

    @property
    def window_start(self) -> str: ...
    @property
    def window_end(self) -> str: ...
    @property
    def window_days(self) -> Sequence[str]: ...
    @property
    def timezone(self) -> str: ...


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def activity(state: str, window_open: bool, last_dial_at: datetime | None, now: datetime) -> str:
    if state != CampaignState.RUNNING:
        return state
    if not window_open:
        return "paused_outside_window"
    if last_dial_at is not None and (now - last_dial_at).total_seconds() <= LIVE_WITHIN:
        return "live"
    return "idle_waiting_for_retries"


def window_open(start: str, end: str, days: Sequence[str], timezone: str, now: datetime) -> bool:
    """Is this calling window open at `now`? An unreadable one is closed."""
    try:
        window = Window.parse(start, end, list(days), timezone)
    except WindowError:
        return False
    return window.is_open(now)


def window_open_at(row: WindowColumns, now: datetime) -> bool:
    """Is the calling window of a campaign row open at `now`? An unreadable one is closed."""
    return window_open(row.window_start, row.window_end, row.window_days, row.timezone, now)


@dataclass(frozen=True, slots=True)
class LocalWindows:
    """A per-contact campaign's due contacts, split by their own windows at one instant."""

    #: Some waiting contact's zones are all open now (the campaign is "inside its window");
    #: with no contact waiting, the campaign's own window is open.
    any_open: bool
    #: Due contacts callable now (what `stalled` looks at).
    callable_due: int
    #: Due contacts whose zones are not all open now.
    waiting_for_local_window: int


class ZoneTally(Protocol):
    """Waiting and due contacts of one zone key (store.zones.ZoneDue)."""

    @property
    def zone_key(self) -> str: ...
    @property
    def waiting(self) -> int: ...
    @property
    def due(self) -> int: ...


def local_windows(row: WindowColumns, tallies: Iterable[ZoneTally], now: datetime) -> LocalWindows:
    """Split a per-contact campaign's due contacts by their own windows at `now` (one window
    evaluation per zone key, not per contact). An unreadable window opens nothing."""
    tallies = list(tallies)
    try:
        window = Window.parse(row.window_start, row.window_end, list(row.window_days), row.timezone)
    except WindowError:
        due = sum(tally.due for tally in tallies)
        return LocalWindows(any_open=False, callable_due=0, waiting_for_local_window=due)
    open_keys = set(open_zone_keys(window, (tally.zone_key for tally in tallies), now))
    callable_due = sum(tally.due for tally in tallies if tally.zone_key in open_keys)
    return LocalWindows(
        # Nothing waiting (calls in flight, or an always-on campaign between contacts): the
        # campaign's own window says whether it is inside its hours.
        any_open=bool(open_keys) if tallies else window.is_open(now),
        callable_due=callable_due,
        waiting_for_local_window=sum(tally.due for tally in tallies) - callable_due,
    )


async def campaign_show(
    conn: Connection, config: Config, campaign_id: UUID, now: datetime | None = None
) -> dict[str, Any]:
    """The JSON of `campaign show ID --json`; `UnknownCampaign` when there is none."""
    shown = await campaigns_show(conn, config, [campaign_id], now)
    if campaign_id not in shown:
        raise UnknownCampaign(str(campaign_id))
    return shown[campaign_id]


@dataclass(frozen=True, slots=True)
class _Shared:
    """What every campaign's `campaign show` reads of the fleet and the carriers, once."""

    fleet: int  # bot slots of the workers alive
    fleet_full: bool  # every slot reserved (by any campaign): no free slot, so no stall
    open_by_carrier: dict[str, int]
    paced: dict[str, pacing_store.CarrierPacing]


async def campaigns_show(
    conn: Connection,
    config: Config,
    campaign_ids: Sequence[UUID],
    now: datetime | None = None,
    *,
    counts: Mapping[UUID, list[store.ContactCount]] | None = None,
) -> dict[UUID, dict[str, Any]]:
    """`campaign_show` of many campaigns (the metrics refresh: every running one each 5 s),
    set-based: each concern is one statement for all of them, not one per campaign. By id;
    an id that is no campaign is absent. `counts`: their contacts as already counted in the
    caller's snapshot (`store.contact_counts` of these campaigns, or more), not read again."""
    now = now or datetime.now(UTC)
    rows = await campaigns_store.get_campaigns(conn, campaign_ids)
    if not rows:
        return {}
    ids = list(rows)
    if counts is None:
        counts = await store.contact_counts(conn, ids)
    outcomes = await store.attempt_outcomes(conn, ids, now - ABANDON_WINDOW)
    carriers = await store.campaign_carriers(conn, ids)
    zoned = [row.id for row in rows.values() if row.window_per_contact]
    zones = await zones_store.due_by_zone_key(conn, zoned) if zoned else {}
    timeout = config.fleet.heartbeat_timeout
    shared = _Shared(
        fleet=await fleet_store.fleet_capacity(conn, timeout),
        fleet_full=not await fleet_store.fleet_free(conn, timeout),
        open_by_carrier=await store.open_attempts_by_carrier(conn),
        paced={p.carrier: p for p in await pacing_store.pacing_states(conn)},
    )
    return {
        cid: _show(
            config,
            row,
            counts.get(cid, []),
            outcomes.get(cid, []),
            carriers.get(cid, []),
            zones.get(cid, []),
            shared,
            now,
        )
        for cid, row in rows.items()
    }


def _show(
    config: Config,
    row: CampaignRow,
    contact_counts: Iterable[store.ContactCount],
    outcomes: Iterable[store.OutcomeCount],
    carriers: Sequence[str],
    zone_tallies: Iterable[ZoneTally],
    shared: _Shared,
    now: datetime,
) -> dict[str, Any]:
    """One campaign's `campaign show` from what was read for it (no I/O)."""
    counts = {state: 0 for state in STATES}
    due = retries_left = 0
    for count in contact_counts:
        counts[ContactState(count.state)] = count.n
        due += count.due
        retries_left += count.retries_left or 0
    configured = {carrier.name for carrier in config.carriers}
    carrier_channels = sum(config.carrier(c).max_channels for c in carriers if c in configured)
    effective = min(row.concurrency, carrier_channels) if carriers else row.concurrency
    capped_by = "carrier" if carriers and carrier_channels < row.concurrency else None
    if shared.fleet < effective:
        effective, capped_by = shared.fleet, "fleet"

    carriers_full = bool(carriers) and all(
        shared.open_by_carrier.get(c, 0) >= config.carrier(c).max_channels
        for c in carriers
        if c in configured
    )
    in_flight = sum(counts[s] for s in IN_FLIGHT)
    waiting_for_local_window = 0
    if row.window_per_contact:
        # The callee's own window: "inside its window" means some zone group is open, and
        # only the due contacts of open groups are callable now (one evaluation per key).
        split = local_windows(row, zone_tallies, now)
        is_open, callable_due = split.any_open, split.callable_due
        waiting_for_local_window = split.waiting_for_local_window
    else:
        is_open, callable_due = window_open_at(row, now), due
    last_dial = row.last_dial_at
    since = last_dial or row.started_at
    idle_for = (now - since).total_seconds() if since else 0.0
    stalled = (
        row.state == CampaignState.RUNNING
        and is_open
        and callable_due > 0
        and in_flight < effective
        and not carriers_full
        and not shared.fleet_full
        and idle_for > config.scheduler.stall_after
    )
    capped_by = _pacing_cap(
        config, carriers, shared.paced, capped_by, callable_due > 0 and in_flight < effective
    )
    by_outcome = {str(outcome): 0 for outcome in Outcome}
    answered_recent = abandoned_recent = 0
    for tally in outcomes:
        by_outcome[tally.outcome] = tally.n
        if tally.outcome == Outcome.ANSWERED:
            answered_recent, abandoned_recent = tally.recent, tally.abandoned
    attempts = sum(by_outcome.values())
    answered = by_outcome[Outcome.ANSWERED]
    return {
        "id": str(row.id),
        "name": row.name,
        "state": row.state,
        "activity": activity(row.state, is_open, last_dial, now),
        "stalled": stalled,
        "effective_concurrency": effective,
        "capped_by": capped_by,
        "stats": {
            **{str(state): counts[state] for state in STATES},
            "retries_left": retries_left,
            "answer_rate": round(answered / attempts, 4) if attempts else 0.0,
            "last_dial_at": rfc3339(last_dial),
        },
        "outcomes": by_outcome,
        "abandon_rate_30d": (
            round(abandoned_recent / answered_recent, 4) if answered_recent else 0.0
        ),
        # Due contacts whose own window is closed now (per-contact windows only).
        "waiting_for_local_window": waiting_for_local_window,
        "settings": campaign_settings(row),
    }


def _pacing_cap(
    config: Config,
    carriers: Iterable[str],
    paced: dict[str, pacing_store.CarrierPacing],
    capped_by: str | None,
    wants: bool,
) -> str | None:
    """`capped_by` with the carriers' shared pacing: `carrier_throttle` while a carrier of the
    campaign is throttled (429/503), `carrier` when the campaign wants dials (callable contacts
    due, a free slot) and every one of its carriers' shared calls/s bucket is empty now."""
    settings = {c.name: c for c in config.carriers}
    mine = [c for c in carriers if c in settings]
    if not mine:
        return capped_by
    views = [
        at_claim(p.state, settings[c].calls_per_second, p.now, settings[c].throttle)
        for c in mine
        if (p := paced.get(c)) is not None
    ]
    if any(view.throttled for view in views):
        return "carrier_throttle"
    empty = len(views) == len(mine) and all(room(view) == 0 for view in views)
    return "carrier" if capped_by is None and wants and empty else capped_by


def campaign_settings(row: CampaignRow) -> dict[str, Any]:
    """A campaign's settings as its file writes them: the file's field names, durations as
    duration strings (`30s`, `1h30m`), `null` for a redial rule that is off."""
    return {
        "bot": row.bot_name,
        "numbers": list(row.numbers),
        "concurrency": row.concurrency,
        "window": {
            "start": row.window_start,
            "end": row.window_end,
            "days": list(row.window_days),
            "timezone": row.timezone,
            "per_contact": row.window_per_contact,
        },
        "always_on": row.always_on,
        "ring_timeout": format_duration(row.ring_timeout_ms / 1000),
        "retry": {
            "max_attempts": row.retry_max_attempts,
            "delay": format_duration(row.retry_delay_ms / 1000),
            "on_system": list(row.retry_on_system),
            "on_custom": list(row.retry_on_custom),
        },
        "redial": {
            "stop_after_connect_longer_than": _duration(row.redial_stop_after_ms),
            "redial_after_connect_shorter_than": _duration(row.redial_short_connect_ms),
        },
    }


def _duration(ms: int | None) -> str | None:
    return None if ms is None else format_duration(ms / 1000)


def call_item(row: CallRow, max_attempts: int) -> dict[str, object]:
    """One contact of the call list (`dialler calls --json`, `GET .../calls`)."""
    return {
        "contact_id": str(row.id),
        "phone_number": row.phone_number,
        "state": row.state,
        "attempts": f"{row.attempts_used}/{max_attempts}",
        "last_outcome": row.outcome,
        "last_sip_code": row.sip_code,
        "last_disposition": row.disposition,
        "next_action": row.next_action,
        "next_due_at": rfc3339(row.next_due_at),
        "last_attempt_at": rfc3339(row.last_attempt_at),
        # Why a contact was cancelled without a call (`no_common_window`); null when none.
        "reason": row.state_reason,
    }


async def call_items(
    conn: Connection,
    campaign_id: UUID,
    *,
    state: ContactState | None = None,
    after: UUID | None = None,
    limit: int | None = None,
    prefetch: int = 1000,
) -> AsyncIterator[dict[str, object]]:
    """The call list, item by item, in its order (file line, then contacts added later).

    `state` keeps the contacts in that state; `after` (a contact id of the campaign, the last
    item of the previous page) and `limit` give one page (keyset pagination: a page does not
    shift when contacts change state in between). The whole list (no filter, no page) comes
    from a cursor, so the caller holds `conn.transaction()` around the iteration.
    `UnknownCampaign` when there is none; `InvalidField` (`after`) when the cursor is not a
    contact of the campaign.
    """
    header = await campaigns_store.get_campaign(conn, campaign_id)
    if header is None:
        raise UnknownCampaign(str(campaign_id))
    if state is None and after is None and limit is None:
        async for row in store.call_cursor(conn, campaign_id, prefetch):
            yield call_item(row, header.retry_max_attempts)
        return
    if after is not None and not await store.contact_in_campaign(conn, campaign_id, after):
        raise InvalidField("after", f"after: {after} is not a contact of this campaign")
    page = await store.call_page(
        conn,
        campaign_id,
        state=None if state is None else str(state),
        after=after,
        limit=limit,
    )
    for row in page:
        yield call_item(row, header.retry_max_attempts)
