"""Live activity and the stats grid of a campaign (CONTRACT.md, `campaign show ID --json`).

Activity (triage guide, "Running but no calls go out"): `live` — a dial in the last 30 s;
`idle_waiting_for_retries` — running, inside the window, no dial for 30 s;
`paused_outside_window` — running but outside the calling window or on a non-working day;
`draft`, `paused`, `completed` — the campaign's state. A campaign is `stalled` when it is running,
inside its window, has contacts due, a free slot, and no dial for longer than `stall_after`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from .config import Config
from .store.queries import load
from .domain.window import Window, WindowError

Q = load("stats.sql")
F = load("fleet.sql")
LIVE_WITHIN = 30.0
STATES = ("pending", "dialing", "connected", "wrapping", "retry_scheduled",
          "callback_scheduled", "done", "exhausted", "cancelled")
IN_FLIGHT = ("dialing", "connected", "wrapping")


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def activity(state: str, window_open: bool, last_dial_at: datetime | None,
             now: datetime) -> str:
    if state != "running":
        return state
    if not window_open:
        return "paused_outside_window"
    if last_dial_at is not None and (now - last_dial_at).total_seconds() <= LIVE_WITHIN:
        return "live"
    return "idle_waiting_for_retries"


def window_open_at(row: Mapping[str, Any], now: datetime) -> bool:
    """Is the calling window of a `campaigns` row open at `now`? An unreadable one is closed."""
    try:
        window = Window.parse(row["window_start"], row["window_end"], list(row["window_days"]),
                              row["timezone"])
    except WindowError:
        return False
    return window.is_open(now)


async def campaign_show(conn: Any, config: Config, campaign_id: UUID,
                        now: datetime | None = None) -> dict[str, Any]:
    """The JSON of `campaign show ID --json`."""
    now = now or datetime.now(UTC)
    row = await conn.fetchrow(Q["campaign_header"], campaign_id)
    counts = {state: 0 for state in STATES}
    due = retries_left = 0
    for r in await conn.fetch(Q["contact_counts"], campaign_id, row["retry_max_attempts"]):
        counts[r["state"]] = r["n"]
        due += r["due"]
        retries_left += r["retries_left"] or 0
    rates = await conn.fetchrow(Q["attempt_rates"], campaign_id)
    carriers = [r["carrier"] for r in await conn.fetch(Q["campaign_carrier_capacity"],
                                                      campaign_id)]
    carrier_channels = sum(config.carrier(c).max_channels for c in carriers
                           if any(k.name == c for k in config.carriers))
    fleet = await conn.fetchval(F["fleet_capacity"], config.fleet.heartbeat_timeout)
    effective = min(row["concurrency"], carrier_channels) if carriers else row["concurrency"]
    capped_by = "carrier" if carriers and carrier_channels < row["concurrency"] else None
    if fleet < effective:
        effective, capped_by = fleet, "fleet"

    open_by_carrier = {r["carrier"]: r["n"] for r in await conn.fetch(
        Q["open_attempts_by_carrier"])}
    carriers_full = bool(carriers) and all(
        open_by_carrier.get(c, 0) >= config.carrier(c).max_channels for c in carriers
        if any(k.name == c for k in config.carriers))
    in_flight = sum(counts[s] for s in IN_FLIGHT)
    window_open = window_open_at(row, now)
    last_dial: datetime | None = row["last_dial_at"]
    since = last_dial or row["started_at"]
    idle_for = (now - since).total_seconds() if since else 0.0
    stalled = (row["state"] == "running" and window_open and due > 0
               and in_flight < effective and not carriers_full
               and idle_for > config.scheduler.stall_after)
    attempts = rates["attempts"]
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "state": row["state"],
        "activity": activity(row["state"], window_open, last_dial, now),
        "stalled": stalled,
        "effective_concurrency": effective,
        "capped_by": capped_by,
        "stats": {
            **{state: counts[state] for state in STATES},
            "retries_left": retries_left,
            "answer_rate": round(rates["answered"] / attempts, 4) if attempts else 0.0,
            "last_dial_at": rfc3339(last_dial),
        },
    }


def call_item(row: Mapping[str, Any], max_attempts: int) -> dict[str, object]:
    """One contact of the call list (`dialler calls --json`), from a `call_list` row."""
    return {
        "contact_id": str(row["id"]), "phone_number": row["phone_number"],
        "state": row["state"], "attempts": f"{row['attempts_used']}/{max_attempts}",
        "last_outcome": row["outcome"], "last_sip_code": row["sip_code"],
        "last_disposition": row["disposition"], "next_action": row["next_action"],
        "next_due_at": rfc3339(row["next_due_at"]),
    }
