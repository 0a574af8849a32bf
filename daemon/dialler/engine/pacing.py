"""Pacing limits: calls per second per carrier and caller-ID dealing.

A carrier's calls per second hold for every daemon sharing the database: its token bucket and
throttling state are a row of `carrier_pacing` (store/pacing.py), worked on with the pure
functions of domain/throttle.py inside the claim transaction (`carrier_room`) and when a
throttling refusal is settled (`throttling_refusal`). `TokenBucket` is this daemon's local
mirror of the shared bucket as last read: it says when the next token is due (the scheduler's
wake-up), and never grants a dial by itself. docs/engine.md, "Pacing".
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, MutableMapping, Sequence
from datetime import datetime, timedelta

from .. import metrics
from ..config import Config
from ..domain import throttle
from ..domain.outcomes import Outcome
from ..store import engine as engine_store
from ..store import pacing as store
from ..store.conn import Connection

log = logging.getLogger(__name__)


class TokenBucket:
    """A local view of a carrier's shared bucket: `rate` dials per second at most, bursts of
    a tenth of a second's worth (domain/throttle.py); `sync` sets it from the shared row."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = throttle.refill_rate(rate)
        self.capacity = throttle.burst(rate)
        self.tokens = self.capacity
        self.clock = clock
        self.stamp = clock()

    def sync(self, tokens: float, allowed_rate: float) -> None:
        """The shared bucket as just read: `tokens` now, refilled at `allowed_rate`'s pace."""
        self.rate = throttle.refill_rate(allowed_rate)
        self.capacity = throttle.burst(allowed_rate)
        self.tokens = min(self.capacity, tokens)
        self.stamp = self.clock()

    def available(self) -> int:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return int(self.tokens)

    def take(self, n: int) -> None:
        self.tokens -= n

    def seconds_until(self, n: int = 1) -> float:
        """How long until `n` tokens are available."""
        missing = n - self.available()
        return 0.0 if missing <= 0 else missing / self.rate


def deal_caller_ids(
    numbers: Sequence[tuple[str, str]], room: dict[str, int], wanted: int
) -> list[tuple[str, str]]:
    """Caller IDs (number, carrier) for up to `wanted` dials: least recently used first (the
    order of `numbers`), only carriers with room, spreading dials round robin over numbers.
    `room` (carrier → free channels) is decremented as dials are dealt."""
    dealt: list[tuple[str, str]] = []
    candidates = [n for n in numbers if room.get(n[1], 0) > 0]
    while len(dealt) < wanted and candidates:
        still = []
        for number, carrier in candidates:
            if len(dealt) >= wanted:
                break
            if room.get(carrier, 0) > 0:
                dealt.append((number, carrier))
                room[carrier] -= 1
                still.append((number, carrier))
        candidates = [c for c in still if room.get(c[1], 0) > 0]
    return dealt


def deal_workers(fleet: Sequence[tuple[str, int]], wanted: int) -> list[str]:
    """Workers for `wanted` calls from (worker, free slots), spreading calls over the
    emptiest first, never past a worker's free slots."""
    free = dict(fleet)
    dealt: list[str] = []
    while len(dealt) < wanted:
        name = max(free, key=lambda w: free[w], default=None)
        if name is None or free[name] <= 0:
            raise ValueError(f"not enough free slots for {wanted} calls")
        dealt.append(name)
        free[name] -= 1
    return dealt


async def carrier_room(
    conn: Connection, config: Config, buckets: MutableMapping[str, TokenBucket]
) -> dict[str, int]:
    """Each carrier's dials allowed now, for every daemon together: free channels (open
    attempts, from the database), bounded by its shared bucket. Inside the claim transaction:
    the carriers' pacing rows stay locked until it commits, refilled on the database's clock
    and written back here; the dials the claim then inserts take their tokens (the `attempts`
    insert trigger). Two statements for all carriers, whatever the number of dials."""
    in_flight = await engine_store.carriers_in_flight(conn)
    carriers = {c.name: c for c in config.carriers}
    rows = await store.lock_pacing(conn, {n: c.calls_per_second for n, c in carriers.items()})
    states: dict[str, throttle.Pacing] = {}
    room: dict[str, int] = {}
    for row in rows:
        carrier = carriers[row.carrier]
        state = throttle.at_claim(row.state, carrier.calls_per_second, row.now, carrier.throttle)
        states[row.carrier] = state
        if state.allowed > row.state.allowed:
            log.info(
                "carrier rate raised",
                extra={"carrier": row.carrier, "calls_per_second": round(state.allowed, 2)},
            )
        room[row.carrier] = min(
            carrier.max_channels - in_flight.get(row.carrier, 0), throttle.room(state)
        )
        bucket = buckets.get(row.carrier)
        if bucket is None:
            bucket = buckets[row.carrier] = TokenBucket(state.allowed)
        bucket.sync(state.tokens, state.allowed)
        _publish(row.carrier, state)
    await store.save_pacing(conn, states)
    return room


def throttling_codes(config: Config) -> frozenset[int]:
    """Every SIP code some carrier counts as throttling (a cheap first test at settle)."""
    return frozenset().union(*(c.throttle.codes for c in config.carriers))


async def throttling_refusal(
    conn: Connection,
    config: Config,
    attempt_id: uuid.UUID,
    contact_id: uuid.UUID,
    outcome: Outcome,
    sip_code: int | None,
) -> float | None:
    """A settled dial that may be a carrier throttling us (inside the settle transaction).

    A refusal with one of its carrier's throttling codes counts toward the carrier's AIMD
    (its row locked and written back: one small update); when it trips a decrease, the
    refusals that tripped it are requeued too. Returns the delay after which the contact is
    due again when this refusal is to be requeued — it tripped the throttling or arrived while
    the carrier was throttled, and the contact was not requeued `max_requeues` times in a row
    already — else None (an ordinary attempt)."""
    if outcome is not Outcome.REJECTED or sip_code not in throttling_codes(config):
        return None
    row = await store.lock_attempt_pacing(conn, attempt_id)
    if row is None:
        return None
    carrier = next((c for c in config.carriers if c.name == row.carrier), None)
    if carrier is None or sip_code not in carrier.throttle.codes:
        return None
    settings = carrier.throttle
    state, tripped = throttle.after_refusal(row.state, row.now, settings)
    await store.save_pacing(conn, {row.carrier: state})
    _publish(row.carrier, state)
    due_at = state.refilled_at + timedelta(seconds=settings.requeue_after)
    if tripped:
        since: datetime = row.now - timedelta(seconds=settings.window)
        earlier = await store.requeue_tripping_refusals(
            conn, row.carrier, sorted(settings.codes), since, due_at
        )
        log.warning(
            "carrier throttling: rate cut",
            extra={
                "carrier": row.carrier,
                "calls_per_second": round(state.allowed, 2),
                "sip_code": sip_code,
                "refusals_requeued": earlier + 1,
            },
        )
    if not (tripped or row.state.throttled):
        return None
    if await engine_store.trailing_requeues(conn, contact_id) >= settings.max_requeues:
        return None  # refused again and again: the normal rules take over
    return settings.requeue_after


def _publish(carrier: str, state: throttle.Pacing) -> None:
    metrics.CARRIER_ALLOWED_RATE.labels(carrier).set(state.allowed)
    metrics.CARRIER_THROTTLED.labels(carrier).set(float(state.throttled))
