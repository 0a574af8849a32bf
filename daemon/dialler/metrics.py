"""Prometheus metrics of the daemon (reference: docs/metrics.md).

Everything lives in this module's own `REGISTRY`, served by `start_server` on the metrics
listener; nothing goes to prometheus_client's global registry. Names start with `dialler_` and
use base units (seconds, plain counts). Labels are bounded: a campaign id (UUID), a carrier,
an Asterisk or a worker state from the configuration, an outcome, a contact or call state, a SIP
code. Never a phone number, an attempt id or anything else that grows with the calls.

Two kinds of instruments:

* counters, histograms and `AMI_CONNECTED` are updated by the engine as things happen (per
  daemon: with several daemons on one database, sum them);
* the gauges read from the database (`refresh`, every few seconds) describe the shared state —
  every daemon on one database exports the same values, so aggregate them with `max`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from uuid import UUID

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from .config import Config
from .domain.outcomes import Outcome
from .domain.states import CampaignState
from .domain.throttle import Pacing, at_claim, fresh
from .stats import ABANDON_WINDOW, IN_FLIGHT, STATES, campaigns_show, window_open_at
from .store import fleet
from .store import metrics as store
from .store import pacing as pacing_store
from .store import stats as stats_store
from .store.conn import Connection

__all__ = [
    "AMI_CONNECTED",
    "ANSWER_TO_ATTACH",
    "ASTERISK_CALLS_IN_FLIGHT",
    "ASTERISK_ORIGINATIONS",
    "ATTEMPT_OUTCOMES",
    "CALLS_ABANDONED",
    "CALLS_IN_FLIGHT",
    "CAMPAIGN_ABANDON_RATE",
    "CAMPAIGN_CONTACTS_DUE",
    "CAMPAIGN_LAST_DIAL",
    "CAMPAIGN_RUNNING",
    "CAMPAIGN_STALLED",
    "CAMPAIGN_WINDOW_OPEN",
    "CARRIER_ALLOWED_RATE",
    "CARRIER_THROTTLED",
    "CLAIM_DURATION",
    "CONTACTS",
    "FLEET_SLOTS",
    "ORIGINATE_TO_ANSWER",
    "ORIGINATIONS",
    "REGISTRY",
    "SIP_RESPONSES",
    "STUCK_ATTEMPTS",
    "refresh",
    "sip_code_label",
    "start_server",
]

REGISTRY = CollectorRegistry()

# --- updated by the engine as things happen --------------------------------------------------

ORIGINATIONS = Counter(
    "dialler_originations_total",
    "Originates sent to Asterisk.",
    ["campaign", "carrier"],
    registry=REGISTRY,
)
ATTEMPT_OUTCOMES = Counter(
    "dialler_attempt_outcomes_total",
    "Attempts that became final, by outcome (answered, no_answer, rejected, error).",
    ["campaign", "outcome"],
    registry=REGISTRY,
)
CALLS_ABANDONED = Counter(
    "dialler_calls_abandoned_total",
    "Answered calls no worker could take (callee heard a message and was hung up on).",
    ["campaign"],
    registry=REGISTRY,
)
SIP_RESPONSES = Counter(
    "dialler_sip_responses_total",
    'Final SIP codes of unanswered dials, by carrier; code "none" when no final code came.',
    ["carrier", "code"],
    registry=REGISTRY,
)
ORIGINATE_TO_ANSWER = Histogram(
    "dialler_originate_to_answer_seconds",
    "From the originate to the callee's answer.",
    ["carrier"],
    buckets=(0.5, 1, 2, 3, 5, 10, 20, 30, 60),
    registry=REGISTRY,
)
ANSWER_TO_ATTACH = Histogram(
    "dialler_answer_to_attach_seconds",
    "From the answer to the call being handed to a bot worker (FastAGI attach).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
    registry=REGISTRY,
)
CLAIM_DURATION = Histogram(
    "dialler_claim_duration_seconds",
    "The claim transaction of one campaign's tick.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
    registry=REGISTRY,
)
AMI_CONNECTED = Gauge(
    "dialler_ami_connected",
    "1 while the AMI connection to this Asterisk is up, else 0.",
    ["asterisk"],
    registry=REGISTRY,
)
# Several Asterisk servers (docs/asterisk.md): how this daemon spreads its calls over them.
ASTERISK_ORIGINATIONS = Counter(
    "dialler_asterisk_originations_total",
    "Originates this daemon sent through each Asterisk server.",
    ["asterisk"],
    registry=REGISTRY,
)
ASTERISK_CALLS_IN_FLIGHT = Gauge(
    "dialler_asterisk_calls_in_flight",
    "Calls this daemon has up on each Asterisk server (followed, or claimed and about to be "
    "sent): what dials are dealt by, least first, and what `asterisk[].max_channels` caps.",
    ["asterisk"],
    registry=REGISTRY,
)

DATABASE_UP = Gauge(
    "dialler_database_up",
    "1 while this daemon's last database write or claim succeeded, 0 while the database is "
    "unreachable (nothing is claimed then; call ends wait in memory and the journal).",
    registry=REGISTRY,
)
DATABASE_UP.set(1)
RESULTS_UNWRITTEN = Gauge(
    "dialler_results_unwritten",
    "Call ends this daemon holds (memory and journal) because they could not be written yet.",
    registry=REGISTRY,
)

# --- read from the database by `refresh` -----------------------------------------------------

CALLS_IN_FLIGHT = Gauge(
    "dialler_calls_in_flight",
    "Open attempts by state (dialing, connected, wrapping).",
    ["campaign", "state"],
    registry=REGISTRY,
)
CONTACTS = Gauge(
    "dialler_contacts",
    "Contacts by state (waiting, in flight and final states).",
    ["campaign", "state"],
    registry=REGISTRY,
)
CAMPAIGN_LAST_DIAL = Gauge(
    "dialler_campaign_last_dial_timestamp_seconds",
    "Unix time of the campaign's last dial (no series until its first dial).",
    ["campaign"],
    registry=REGISTRY,
)
CAMPAIGN_WINDOW_OPEN = Gauge(
    "dialler_campaign_window_open",
    "1 when now is inside the campaign's calling window and a working day, else 0.",
    ["campaign"],
    registry=REGISTRY,
)
CAMPAIGN_STALLED = Gauge(
    "dialler_campaign_stalled",
    "1 when running, inside its window, contacts due, a free slot and no dial for longer "
    "than scheduler.stall_after (campaign show's `stalled`).",
    ["campaign"],
    registry=REGISTRY,
)
CAMPAIGN_CONTACTS_DUE = Gauge(
    "dialler_campaign_contacts_due",
    "Waiting contacts whose due time has come.",
    ["campaign"],
    registry=REGISTRY,
)
STUCK_ATTEMPTS = Gauge(
    "dialler_stuck_attempts",
    "Open attempts past their deadline, not yet reconciled.",
    ["campaign"],
    registry=REGISTRY,
)
FLEET_SLOTS = Gauge(
    "dialler_fleet_slots",
    "Bot fleet slots: total (capacity of the workers in rotation) and busy (reserved).",
    ["state"],
    registry=REGISTRY,
)
# Carrier pacing shared by the daemons (docs/engine.md, "Pacing"): set at each claim and
# throttling refusal, and by `refresh` from the shared row.
CARRIER_ALLOWED_RATE = Gauge(
    "dialler_carrier_allowed_calls_per_second",
    "Calls per second a carrier is allowed now, for all daemons together: its configured "
    "calls_per_second, lower while it is throttled (429/503).",
    ["carrier"],
    registry=REGISTRY,
)
CARRIER_THROTTLED = Gauge(
    "dialler_carrier_throttled",
    "1 while a carrier's rate is cut below its configured calls_per_second because it answers "
    "429/503 (AIMD throttling), else 0.",
    ["carrier"],
    registry=REGISTRY,
)
CAMPAIGN_RUNNING = Gauge(
    "dialler_campaign_running",
    "1 for a running campaign, 0 for a paused one.",
    ["campaign"],
    registry=REGISTRY,
)


# The abandon rate regulators cap (docs/metrics.md, "Abandon rate"): `campaign show`'s
# `abandon_rate_30d`, for running and paused campaigns.
CAMPAIGN_ABANDON_RATE = Gauge(
    "dialler_campaign_abandon_rate",
    "Abandoned calls (answered, no worker took them) / answered calls of the campaign that "
    "ended in the last 30 days (0 when none was answered); as campaign show's abandon_rate_30d.",
    ["campaign"],
    registry=REGISTRY,
)


def sip_code_label(code: int | None) -> str:
    """The `code` label of `SIP_RESPONSES`: the code as text, `none` when no final code came."""
    return "none" if code is None else str(code)


def start_server(host: str, port: int) -> None:
    """Serve `REGISTRY` at http://host:port/metrics on a listener of its own (a thread).

    Raises `OSError` when the address cannot be bound.
    """
    start_http_server(port, addr=host, registry=REGISTRY)


# --- refresh from the database ---------------------------------------------------------------

Labels = tuple[str, ...]
# Label sets each refreshed gauge had after the last refresh, so that the series of a campaign
# that left the running/paused states can be removed. Series are set before stale ones are
# removed: a scrape in between (the server runs in a thread) never sees a hole.
_published: dict[Gauge, set[Labels]] = {}


async def refresh(conn: Connection, config: Config, now: datetime | None = None) -> None:
    """Re-read the database gauges of running and paused campaigns and of the fleet.

    One query per concern, in one read-only snapshot; the stall verdict is `campaign show`'s,
    taken for every running campaign at once (`stats.campaigns_show`: one statement per
    concern for all of them, not one `campaign show` per campaign). The contacts are counted
    once, for the gauges and for `campaign show` alike.
    """
    now = now or datetime.now(UTC)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        campaigns = await store.watched_campaigns(conn)
        counts = await stats_store.contact_counts(conn, [c.id for c in campaigns])
        attempts = await store.open_attempts(conn)
        capacity = await fleet.fleet_capacity(conn, config.fleet.heartbeat_timeout)
        busy = await store.fleet_busy(conn)
        paced = await pacing_store.pacing_states(conn)
        running = [c.id for c in campaigns if c.state == CampaignState.RUNNING]
        shown = await campaigns_show(conn, config, running, now, counts=counts) if running else {}
        # Paused campaigns: their abandon rate only (one indexed query for all).
        paused = [c.id for c in campaigns if c.id not in shown]
        outcomes = (
            await stats_store.attempt_outcomes(conn, paused, now - ABANDON_WINDOW) if paused else {}
        )
        abandon = {c: _abandon_rate(outcomes.get(c, [])) for c in paused}
    stalled = {campaign: bool(show["stalled"]) for campaign, show in shown.items()}
    # A running campaign's window is open when `campaign show` says so: for a per-contact
    # window, when some contacts' zones are open (stats.local_windows), not the campaign zone.
    window = {
        campaign: show["activity"] != "paused_outside_window" for campaign, show in shown.items()
    }

    ids = [str(c.id) for c in campaigns]
    contacts = [
        (campaign, count) for campaign, of_campaign in counts.items() for count in of_campaign
    ]
    _publish(
        CAMPAIGN_RUNNING, {(str(c.id),): float(c.state == CampaignState.RUNNING) for c in campaigns}
    )
    _publish(
        CAMPAIGN_WINDOW_OPEN,
        {(str(c.id),): float(window.get(c.id, window_open_at(c, now))) for c in campaigns},
    )
    _publish(CAMPAIGN_STALLED, {(str(c.id),): float(stalled.get(c.id, False)) for c in campaigns})
    _publish(
        CAMPAIGN_LAST_DIAL,
        {(str(c.id),): c.last_dial_at.timestamp() for c in campaigns if c.last_dial_at is not None},
    )
    _publish(CONTACTS, _per_state(ids, STATES, ((c, n.state, n.n) for c, n in contacts)))
    _publish(CAMPAIGN_CONTACTS_DUE, _per_campaign(ids, ((c, n.due) for c, n in contacts)))
    in_flight = ((a.campaign_id, a.state, a.n) for a in attempts)
    _publish(CALLS_IN_FLIGHT, _per_state(ids, IN_FLIGHT, in_flight))
    _publish(STUCK_ATTEMPTS, _per_campaign(ids, ((a.campaign_id, a.stuck) for a in attempts)))
    _publish(FLEET_SLOTS, {("total",): float(capacity), ("busy",): float(busy)})
    pacing = _paced(config, paced)
    _publish(CARRIER_ALLOWED_RATE, {(n,): p.allowed for n, p in pacing.items()})
    _publish(CARRIER_THROTTLED, {(n,): float(p.throttled) for n, p in pacing.items()})
    abandon.update({c: float(show["abandon_rate_30d"]) for c, show in shown.items()})
    _publish(CAMPAIGN_ABANDON_RATE, {(str(c),): rate for c, rate in abandon.items()})


def _abandon_rate(outcomes: Iterable[stats_store.OutcomeCount]) -> float:
    """`campaign show`'s `abandon_rate_30d` from the campaign's outcome counts."""
    for tally in outcomes:
        if tally.outcome == Outcome.ANSWERED and tally.recent:
            return round(tally.abandoned / tally.recent, 4)
    return 0.0


def _paced(config: Config, rows: Iterable[pacing_store.CarrierPacing]) -> dict[str, Pacing]:
    """Configured carriers' pacing as of now (a carrier never paced yet: its configured rate)."""
    found = {r.carrier: r for r in rows}
    states: dict[str, Pacing] = {}
    for carrier in config.carriers:
        row = found.get(carrier.name)
        states[carrier.name] = (
            at_claim(row.state, carrier.calls_per_second, row.now, carrier.throttle)
            if row is not None
            else fresh(carrier.calls_per_second, datetime.now(UTC))
        )
    return states


def _per_state(
    ids: Iterable[str], states: Iterable[str], counted: Iterable[tuple[UUID, str, int]]
) -> dict[Labels, float]:
    """Every (campaign, state) pair, zero unless a (campaign, state, count) counts it."""
    values: dict[Labels, float] = {(c, s): 0.0 for c in ids for s in states}
    for campaign, state, count in counted:
        key = (str(campaign), state)
        if key in values:
            values[key] = float(count)
    return values


def _per_campaign(ids: Iterable[str], counted: Iterable[tuple[UUID, int]]) -> dict[Labels, float]:
    """The (campaign, count) pairs summed per campaign, zero for a campaign without any."""
    values: dict[Labels, float] = {(c,): 0.0 for c in ids}
    for campaign, count in counted:
        key = (str(campaign),)
        if key in values:
            values[key] += float(count)
    return values


def _publish(gauge: Gauge, values: Mapping[Labels, float]) -> None:
    """Set `gauge` to exactly `values`: new series set, series no longer present removed."""
    for labels, value in values.items():
        gauge.labels(*labels).set(value)
    for labels in _published.get(gauge, set()) - values.keys():
        gauge.remove(*labels)
    _published[gauge] = set(values)
