"""A carrier's pacing, shared by every daemon: a token bucket and AIMD throttling (pure).

The state of one carrier (`Pacing`) lives in one database row (store/pacing.py); every claim
and every throttling refusal reads it locked, runs one of the functions here with the
database's clock, and writes it back in the same transaction. docs/engine.md, "Pacing".

Token bucket. A bucket of capacity C refilled at r tokens/s lets C + r·t dials through in any
interval of t seconds: with C = r (one second of burst) a carrier at 10 calls/s could see 20 in
one sliding second. So the burst is kept to a tenth of a second's worth (at least 1.5 tokens,
so that a claim waking a little late loses nothing) and the refill lowered by what the burst
adds beyond one: C + r' = rate + 1 — at most one call over the
rate in every sliding second, whatever the timing of claims.

AIMD. Per carrier, the daemons count dials (at claim) and throttling refusals (429/503 by
default, at settle) since the last change of rate. When the refusals reach `min_refusals` and a
share `threshold` of the dials, the allowed rate is multiplied by `decrease` (at most once per
`cooldown`, and never below `min_rate`); while no throttling refusal comes for a `cooldown`, it
grows by `increase` calls/s, up to the configured rate. Below the configured rate the carrier
is *throttled*. Counts older than `window` start over, so that a lone refusal now and then
(the demo's one `…429` contact) never adds up to a trip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

__all__ = [
    "DEFAULT_CODES",
    "Pacing",
    "ThrottleSettings",
    "after_refusal",
    "at_claim",
    "burst",
    "fresh",
    "refill_rate",
    "room",
    "seconds_until_token",
]

#: SIP codes a carrier sends when it is refusing for load: Too Many Requests, Service Unavailable.
DEFAULT_CODES = frozenset({429, 503})
#: A clock reading this much before the last writer's is a clock stepped back, not a read
#: taken before the row's lock was granted (those lag by the lock wait: milliseconds).
CLOCK_STEP = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class ThrottleSettings:
    """A carrier's `throttle:` settings (docs/config.md); defaults are the documented ones."""

    codes: frozenset[int] = field(default=DEFAULT_CODES)
    threshold: float = 0.2  # share of the counted dials refused with a throttling code
    min_refusals: int = 5  # refusals needed before the share counts at all
    decrease: float = 0.5  # allowed rate × this on a trip
    increase: float = 1.0  # calls/s added after each clean cooldown
    cooldown: float = 2.0  # seconds between two changes of the allowed rate
    min_rate: float = 1.0  # the allowed rate never goes below this (calls/s)
    window: float = 10.0  # seconds after which the counts start over
    max_requeues: int = 10  # per contact, in a row; then a refusal is an ordinary attempt
    requeue_after: float = 1.0  # a requeued refusal is due again after this (seconds)


@dataclass(frozen=True, slots=True)
class Pacing:
    """One carrier's shared pacing state (a row of `carrier_pacing`)."""

    configured: float  # calls/s from the configuration
    allowed: float  # calls/s allowed now (≤ configured; lower while throttled)
    tokens: float  # may go below 0: a test call takes its token unasked
    refilled_at: datetime
    dials: int  # dials counted since `counted_since`
    refusals: int  # throttling refusals counted since `counted_since`
    counted_since: datetime
    changed_at: datetime | None  # the last change of `allowed` (None: never)

    @property
    def throttled(self) -> bool:
        """Is the carrier held below its configured rate by throttling?"""
        return self.allowed < self.configured


def burst(rate: float) -> float:
    """The bucket's capacity: a tenth of a second's worth of calls, at least one and a half
    (a claim that wakes a little late then loses nothing); one below 2 calls/s."""
    return 1.0 if rate < 2.0 else max(1.5, math.floor(rate / 10.0))


def refill_rate(rate: float) -> float:
    """Tokens per second, so that burst + one second of refill ≤ rate + 1."""
    return rate if rate < 2.0 else rate + 1.0 - burst(rate)


def fresh(configured: float, now: datetime) -> Pacing:
    """A carrier never paced before: its configured rate, a full bucket."""
    return Pacing(configured, configured, burst(configured), now, 0, 0, now, None)


def _refilled(state: Pacing, now: datetime) -> Pacing:
    """Tokens refilled up to `now` (a clock read before the row was locked may lag behind
    the last writer's: time never runs backwards here)."""
    if now < state.refilled_at - CLOCK_STEP:
        # The database's clock was stepped back: start from its new reading (no refill),
        # rather than wait for it to catch up with the old one.
        changed = None if state.changed_at is None else min(state.changed_at, now)
        return replace(
            state,
            refilled_at=now,
            counted_since=min(state.counted_since, now),
            changed_at=changed,
            tokens=min(state.tokens, burst(state.allowed)),
        )
    now = max(now, state.refilled_at)
    elapsed = (now - state.refilled_at).total_seconds()
    cap = burst(state.allowed)
    tokens = min(cap, state.tokens + elapsed * refill_rate(state.allowed))
    return replace(state, tokens=tokens, refilled_at=now)


def _recount(state: Pacing, now: datetime) -> Pacing:
    return replace(state, dials=0, refusals=0, counted_since=now)


def _rolled(state: Pacing, now: datetime, settings: ThrottleSettings) -> Pacing:
    """Counts older than the window start over."""
    if (now - state.counted_since).total_seconds() >= settings.window:
        return _recount(state, now)
    return state


def _since_change(state: Pacing, now: datetime) -> float:
    return math.inf if state.changed_at is None else (now - state.changed_at).total_seconds()


def at_claim(state: Pacing, configured: float, now: datetime, settings: ThrottleSettings) -> Pacing:
    """The state a claim works from: the configured rate as this daemon's configuration says,
    tokens refilled, counts rolled, and the additive increase when a cooldown went clean."""
    state = _refilled(state, now)
    now = state.refilled_at
    if configured != state.configured:
        # A new configured rate: an unthrottled carrier follows it; a throttled one keeps
        # climbing towards it (or is cut down to it).
        allowed = configured if not state.throttled else min(state.allowed, configured)
        state = replace(state, configured=configured, allowed=allowed)
    state = _rolled(state, now, settings)
    if state.throttled and state.refusals == 0 and _since_change(state, now) >= settings.cooldown:
        allowed = min(state.configured, state.allowed + settings.increase)
        state = _recount(replace(state, allowed=allowed, changed_at=now), now)
    return replace(state, tokens=min(state.tokens, burst(state.allowed)))


def room(state: Pacing) -> int:
    """Dials the bucket allows now (whole tokens)."""
    return max(0, math.floor(state.tokens + 1e-9))


def seconds_until_token(state: Pacing, now: datetime) -> float:
    """How long until the bucket holds one whole token again."""
    missing = 1.0 - state.tokens
    if missing <= 0:
        return 0.0
    waited = (now - state.refilled_at).total_seconds()
    return max(0.0, missing / refill_rate(state.allowed) - max(0.0, waited))


def after_refusal(state: Pacing, now: datetime, settings: ThrottleSettings) -> tuple[Pacing, bool]:
    """Count one throttling refusal; the new state and whether it tripped a decrease."""
    state = _refilled(state, now)
    now = state.refilled_at
    state = _rolled(state, now, settings)
    state = replace(state, refusals=state.refusals + 1)
    share_reached = state.refusals >= settings.threshold * max(state.dials, 1)
    if (
        state.refusals >= settings.min_refusals
        and share_reached
        and _since_change(state, now) >= settings.cooldown
    ):
        allowed = max(min(settings.min_rate, state.allowed), state.allowed * settings.decrease)
        state = replace(
            state,
            allowed=allowed,
            changed_at=now,
            tokens=min(state.tokens, burst(allowed)),
        )
        return _recount(state, now), True
    return state, False
