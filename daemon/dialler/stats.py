"""Live activity, the stats grid and the call list of a campaign (CONTRACT.md, `campaign show
ID --json`, `calls ID --json`).

Activity (triage guide, "Running but no calls go out"): `live` — a dial in the last 30 s;
`idle_waiting_for_retries` — running, inside the window, no dial for 30 s;
`paused_outside_window` — running but outside the calling window or on a non-working day;
`draft`, `paused`, `completed` — the campaign's state. A campaign is `stalled` when it is running,
inside its window, has contacts due, a free slot, and no dial for longer than `stall_after`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from .config import Config
from .domain.states import CampaignState, ContactState
from .domain.window import Window, WindowError
from .errors import UnknownCampaign
from .store import Connection
from .store import campaigns as campaigns_store
from .store import fleet as fleet_store
from .store import stats as store
from .store.stats import CallRow

__all__ = [
    "IN_FLIGHT",
    "LIVE_WITHIN",
    "STATES",
    "WindowColumns",
    "activity",
    "call_item",
    "call_items",
    "campaign_show",
    "rfc3339",
    "window_open",
    "window_open_at",
]

LIVE_WITHIN = 30.0
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


async def campaign_show(
    conn: Connection, config: Config, campaign_id: UUID, now: datetime | None = None
) -> dict[str, Any]:
    """The JSON of `campaign show ID --json`; `UnknownCampaign` when there is none."""
    now = now or datetime.now(UTC)
    row = await campaigns_store.get_campaign(conn, campaign_id)
    if row is None:
        raise UnknownCampaign(str(campaign_id))
    counts = {state: 0 for state in STATES}
    due = retries_left = 0
    for count in await store.contact_counts(conn, campaign_id, row.retry_max_attempts):
        counts[ContactState(count.state)] = count.n
        due += count.due
        retries_left += count.retries_left or 0
    rates = await store.attempt_rates(conn, campaign_id)
    configured = {carrier.name for carrier in config.carriers}
    carriers = await store.campaign_carriers(conn, campaign_id)
    carrier_channels = sum(config.carrier(c).max_channels for c in carriers if c in configured)
    fleet = await fleet_store.fleet_capacity(conn, config.fleet.heartbeat_timeout)
    effective = min(row.concurrency, carrier_channels) if carriers else row.concurrency
    capped_by = "carrier" if carriers and carrier_channels < row.concurrency else None
    if fleet < effective:
        effective, capped_by = fleet, "fleet"

    open_by_carrier = await store.open_attempts_by_carrier(conn)
    carriers_full = bool(carriers) and all(
        open_by_carrier.get(c, 0) >= config.carrier(c).max_channels
        for c in carriers
        if c in configured
    )
    in_flight = sum(counts[s] for s in IN_FLIGHT)
    is_open = window_open_at(row, now)
    last_dial = row.last_dial_at
    since = last_dial or row.started_at
    idle_for = (now - since).total_seconds() if since else 0.0
    stalled = (
        row.state == CampaignState.RUNNING
        and is_open
        and due > 0
        and in_flight < effective
        and not carriers_full
        and idle_for > config.scheduler.stall_after
    )
    attempts = rates.attempts
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
            "answer_rate": round(rates.answered / attempts, 4) if attempts else 0.0,
            "last_dial_at": rfc3339(last_dial),
        },
    }


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
    }


async def call_items(
    conn: Connection, campaign_id: UUID, prefetch: int = 1000
) -> AsyncIterator[dict[str, object]]:
    """The call list, item by item from a cursor: the caller holds `conn.transaction()`
    around the iteration. `UnknownCampaign` when there is none."""
    header = await campaigns_store.get_campaign(conn, campaign_id)
    if header is None:
        raise UnknownCampaign(str(campaign_id))
    async for row in store.call_list(conn, campaign_id, prefetch):
        yield call_item(row, header.retry_max_attempts)
