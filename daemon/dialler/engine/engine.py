"""The dialling engine of one daemon: claims due contacts, dials them, decides what follows.

Per tick: one statement lists the running campaigns with a contact due and a place free; those
inside their window are claimed in batches of up to `CLAIM_BATCH` per transaction (campaign
rows locked in id order, so several daemons never race past `concurrency` nor deadlock): the
in-flight counts, the fleet's free slots and each carrier's room (channels and shared calls
per second) are read once per batch, and one statement claims each campaign's share with
`FOR UPDATE SKIP LOCKED` and creates the attempts; each batch's dials are originated over AMI
as soon as it commits, and followed. When a call's result is final, the attempt and the
decision taken on it (retry, callback, stop, exhaustion) are written in one transaction —
unanswered ends in groups (`SETTLE_BATCH`).

Every call is followed by a task of its own (`live`), and every background write by one kept in
`_background`: none is left unreferenced, and each logs its own failure. A call's end that
cannot be written (the database is away) is kept in `unsettled` and in the results journal on
local disk (`journal`), and written by `run_settler` with backoff as soon as the database
answers again — idempotently: an attempt is decided once (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from .. import metrics
from ..ami.calls import CallResultLost, CallTracker, TrackedCall
from ..ami.client import AmiUnavailable, OriginateRequest
from ..config import Config
from ..domain.outcomes import DialResult, Outcome
from ..domain.results import ResultRecorded, WorkerResult
from ..domain.rules import AttemptFacts, Decision, NextAction, decide, requeue
from ..domain.states import AttemptState, ContactState, Disposition
from ..domain.window import Window
from ..domain.zones import ZonedWindow, open_zone_keys
from ..errors import (
    AlreadyFinal,
    DiallingUnavailable,
    NoFreeWorker,
    NumberSuppressed,
    TestCallInProgress,
    UnknownBot,
    UnknownCall,
)
from ..store import engine as store
from ..store import fleet, suppressions, testcall
from ..store import zones as zones_store
from ..store.conn import Connection, Pool
from ..store.engine import CampaignRules, OpenAttempt
from ..store.fleet import WorkerFree
from .journal import Journal, Unsettled
from .pacing import (
    TokenBucket,
    carrier_room,
    deal_caller_ids,
    deal_workers,
    throttling_refusal,
)
from .servers import Servers

__all__ = [
    "MAX_REQUEUES",
    "REQUEUE_DELAY",
    "Dial",
    "Engine",
    "NumberSuppressed",
    "Unsettled",
]

log = logging.getLogger(__name__)
REQUEUE_DELAY = 5.0  # after our own failure, before the contact is due again
# Consecutive requeues of one contact after which a refused Originate is an ordinary `error`
# attempt: Asterisk restarting is over in seconds; an endpoint refused for good must not spin.
MAX_REQUEUES = 5
SETTLE_BACKOFF_FIRST = 0.5
SETTLE_BACKOFF_MAX = 5.0
#: Campaigns claimed in one transaction (`Engine._claim_many`): enough that 1,000 campaigns take
#: a handful of transactions, few enough that the fleet and carrier locks, held to each commit,
#: are never held long (docs/benchmarks.md, "Many campaigns").
CLAIM_BATCH = 100
#: Call ends written in one transaction at most (group commit, `Engine._settle_grouped`).
SETTLE_BATCH = 100
#: Ticks begin at least this far apart (seconds): every call's end wakes the scheduler, and at
#: hundreds of ends a second the wake-ups of one gap are served by one tick (its claim is the
#: bigger for it) instead of one tick each.
TICK_GAP = 0.02
#: Running campaigns are checked for completion at most this often (seconds) by the ticks.
COMPLETE_EVERY = 0.25
#: How often the calls of an Asterisk whose AMI is down are looked at (`close_lost_calls`).
SERVER_CHECK_INTERVAL = 1.0


#: What is kept while the database cannot take it: a call end or a worker's result.
_Kept = TypeVar("_Kept", Unsettled, WorkerResult)


def utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


@dataclass(slots=True)
class Dial:
    """One claimed contact on its way out."""

    attempt_id: uuid.UUID
    contact_id: uuid.UUID
    campaign_id: uuid.UUID
    phone: str
    caller_id: str
    carrier: str
    attempts_used: int
    counts: bool
    asterisk: str  # the server it goes through (dealt at the claim)


@dataclass(frozen=True, slots=True)
class _Offer:
    """What one campaign of a claim batch may claim: the caller IDs dealt to it (with their
    carriers), and for a campaign whose window is read per contact, the zone keys open now."""

    rules: CampaignRules
    caller_ids: list[tuple[str, str]]
    zone_keys: list[str] | None


class Engine:
    def __init__(
        self,
        config: Config,
        pool: Pool,
        trackers: Mapping[str, CallTracker],
        daemon_id: str,
        journal: Journal | None = None,
    ) -> None:
        self.config = config
        self.pool = pool
        self.trackers = dict(trackers)
        self.daemon_id = daemon_id
        self.buckets = {c.name: TokenBucket(c.calls_per_second) for c in config.carriers}
        self.wake = asyncio.Event()
        self.draining = False
        self.live: dict[uuid.UUID, asyncio.Task[None]] = {}
        self.unsettled: dict[uuid.UUID, Unsettled] = {}
        #: This daemon's answered calls that hung up and wait for their worker's result: a
        #: drain waits for them too (else a later daemon's recovery would call them `timeout`).
        self.wrapping: set[uuid.UUID] = set()
        self._none_wrapping = asyncio.Event()
        # Workers' results received while the database was away, written by the settler.
        self.kept_results: dict[uuid.UUID, WorkerResult] = {}
        self.journal = journal
        self.database_up = True
        self.database_back = asyncio.Event()  # set when the database answers again
        self._kept = asyncio.Event()  # a call end was kept: the settler tries at once
        # Claimed, Originate not yet sent or answered: recovery leaves these alone.
        self.dialling: set[uuid.UUID] = set()
        self._background: set[asyncio.Task[None]] = set()
        # Group commit of call ends (`_settle_grouped`): ends waiting for the writer, and it.
        self._ends: list[tuple[uuid.UUID, Unsettled, asyncio.Future[Decision | None]]] = []
        self._end_writer: asyncio.Task[None] | None = None
        self._tick_at = 0.0  # when the last tick began (event loop clock): `TICK_GAP`
        self._completed_at = 0.0  # when campaigns were last checked for completion
        self._carriers: dict[uuid.UUID, str] = {}  # live attempts' carriers, for the metrics
        for tracker in self.trackers.values():
            tracker.on_stage = self._on_stage
        self.servers = Servers(self.trackers, {a.name: a.max_channels for a in config.asterisk})

    # -- the loop ------------------------------------------------------------------------
    def tracker(self) -> Servers | None:
        """Where the next claims' dials may go: every Asterisk whose AMI is up, each dial dealt
        to the least loaded within its channel cap (`Servers.deal`, at the claim); None while
        all are down (nothing is claimed then)."""
        return self.servers if self.servers.any_up() else None

    async def run(self, stop: asyncio.Event) -> None:
        """The scheduler: tick until `stop`; a failed tick is logged and retried."""
        poll = self.config.scheduler.poll_interval
        while not stop.is_set():
            try:
                delay = await self.tick()
            except Exception as exc:
                if store.database_unreachable(exc):
                    self.set_database_up(False, exc)
                else:
                    log.exception("scheduler tick failed; retrying")
                delay = poll
            else:
                self.set_database_up(True)
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=min(delay, poll))

    def set_database_up(self, up: bool, why: BaseException | None = None) -> None:
        """Record whether the database answers (metric, `/readyz`); log each change once."""
        if up == self.database_up:
            return
        self.database_up = up
        metrics.DATABASE_UP.set(int(up))
        if up:
            log.warning("database reachable again", extra={"unwritten": len(self.unsettled)})
            self.database_back.set()
            self._kept.set()
        else:
            self.database_back.clear()
            log.error(
                "database unreachable: nothing is claimed; call ends are kept",
                extra={"error": repr(why), "unwritten": len(self.unsettled)},
            )

    async def tick(self) -> float:
        """One pass over running campaigns; returns how soon the next pass is worth doing.

        One statement picks the campaigns worth a claim (a contact due, a place free: idle and
        full ones cost nothing more); they are claimed `CLAIM_BATCH` at a time, one transaction
        per batch (`_claim_many`), and each batch's dials are sent as soon as it commits, while
        the next batch is claimed. The tick ends once every claimed dial was sent."""
        loop = asyncio.get_running_loop()
        wait = self._tick_at + TICK_GAP - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)  # wake-ups close together: one tick serves them all
        self._tick_at = loop.time()
        poll = self.config.scheduler.poll_interval
        async with self.pool.acquire() as conn:
            if self._tick_at - self._completed_at >= COMPLETE_EVERY or self.draining:
                self._completed_at = self._tick_at
                for done in await store.complete_finished_campaigns(conn):
                    log.info("campaign completed", extra={"campaign_id": str(done.id)})
            else:
                poll = min(poll, COMPLETE_EVERY)  # not checked this time: soon, then
            if self.draining:
                return poll
            tracker = self.tracker()
            if tracker is None:
                return poll  # AMI down: claim nothing
            claimable = await store.claimable_campaigns(conn)
            campaigns = await store.running_campaigns(conn) if claimable else []
        now = datetime.now(UTC)
        due = [r for r in campaigns if r.id in claimable and self._dialable_now(r, now)]
        next_in = poll
        sending: list[asyncio.Task[None]] = []
        try:
            for start in range(0, len(due), CLAIM_BATCH):
                batch = due[start : start + CLAIM_BATCH]
                next_in = min(next_in, await self._fill(batch, tracker, sending, claimable))
        finally:
            # Claimed dials are sent whatever happens to a later batch (drain counts on it).
            await asyncio.gather(*sending)
        return next_in

    def _dialable_now(self, rules: CampaignRules, now: datetime) -> bool:
        """Is any of the campaign's contacts inside its calling window now?

        A campaign whose window is read per contact may have callable contacts while its own
        zone is closed: the claim decides, per zone key (`_open_zone_keys`)."""
        return rules.per_contact or rules.window.is_open(now)

    async def _open_zone_keys(self, conn: Connection, rules: CampaignRules) -> list[str] | None:
        """For a campaign whose window is read per contact, the zone keys of its waiting
        contacts that are open now (one window check per key, a handful — never per
        contact); None for any other campaign (its claim takes any due contact)."""
        if not rules.per_contact:
            return None
        keys = await zones_store.waiting_zone_keys(conn, rules.id)
        return open_zone_keys(rules.window, keys, datetime.now(UTC))

    async def _fill(
        self,
        batch: list[CampaignRules],
        tracker: Servers,
        sending: list[asyncio.Task[None]],
        wanted: Mapping[uuid.UUID, int],
    ) -> float:
        """Claim for a batch of campaigns (one transaction; `wanted`: how many each could take,
        as last seen), then send its dials in a task added to `sending` (the tick awaits it);
        returns the delay until it is worth claiming again (0: a campaign got all it asked
        for, more may be due)."""
        with metrics.CLAIM_DURATION.time():
            dials, delay = await self._claim_many(batch, tracker, wanted)
        for dial in dials:
            self.buckets[dial.carrier].take(1)
        if dials:
            rules = {r.id: r for r in batch}
            sending.append(
                asyncio.create_task(self._dial_all(dials, rules, tracker), name="dial-batch")
            )
        return delay

    async def _dial_all(
        self, dials: list[Dial], rules: Mapping[uuid.UUID, CampaignRules], tracker: Servers
    ) -> None:
        """Originate a committed claim's dials, all at once (each logs its own failure)."""
        await asyncio.gather(*(self._dial_one(d, rules[d.campaign_id], tracker) for d in dials))

    async def _claim_many(
        self, batch: Sequence[CampaignRules], tracker: Servers, hints: Mapping[uuid.UUID, int]
    ) -> tuple[list[Dial], float]:
        """The claim transaction of a batch of campaigns: the dials claimed, and how soon
        claiming again is worth it.

        The campaigns are locked together (in id order: daemons never deadlock) and their
        free places counted; the fleet and the carriers' room are read once (`_free_workers`,
        `_carrier_room`: their locks are held to the commit). Each campaign is offered up to
        its free places — or its due contacts, `hints`, if fewer — from the slots and room
        left, in turn (a campaign whose window is read per contact, within the zone keys open
        now); then one statement claims for them all (`claim_contacts`). Bounds as exact as one
        claim per transaction, for a few statements per batch."""
        poll = self.config.scheduler.poll_interval
        delay = poll
        dials: list[Dial] = []
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                concurrency = await store.lock_campaigns_for_claim(conn, [r.id for r in batch])
                in_flight = await store.campaigns_in_flight(conn, list(concurrency))
                wanted = {
                    c: min(n - in_flight.get(c, 0), hints.get(c, n)) for c, n in concurrency.items()
                }
                wanted = {c: n for c, n in wanted.items() if n > 0}
                if not wanted:
                    return [], poll
                # Fleet slots and carrier channels are shared by every campaign and daemon.
                workers = await self._free_workers(conn)
                slots = sum(w.free for w in workers)
                if slots <= 0:
                    return [], poll  # no bot free: never dial
                room = await self._carrier_room(conn)
                caller_ids = await store.campaigns_caller_ids(conn, list(wanted))
                offers, delay = await self._offer(conn, batch, wanted, slots, room, caller_ids)
                if offers:
                    new, got_all = await self._claim_offers(conn, offers, tracker)
                    self._take(new, tracker, dials)
                    if got_all:
                        delay = 0.0
                if dials:
                    # A bot slot is reserved before the dial: a callee is never connected to
                    # silence for lack of capacity.
                    await fleet.reserve_slots(
                        conn,
                        [d.attempt_id for d in dials],
                        deal_workers(_slots(workers), len(dials)),
                    )
                    await store.touch_numbers(conn, list({d.caller_id for d in dials}))
                    await store.mark_campaigns_dialled(conn, list({d.campaign_id for d in dials}))
        except BaseException:
            # Rolled back: these dials do not exist; forget them.
            for dial in dials:
                self.dialling.discard(dial.attempt_id)
                tracker.release(dial.attempt_id)
            raise
        return dials, delay

    async def _offer(
        self,
        conn: Connection,
        batch: Sequence[CampaignRules],
        wanted: Mapping[uuid.UUID, int],
        slots: int,
        room: dict[str, int],
        caller_ids: Mapping[uuid.UUID, list[store.CallerId]],
    ) -> tuple[list[_Offer], float]:
        """Deal each campaign of the batch, in turn, caller IDs for up to its wanted dials from
        the fleet's `slots` and the carriers' `room` left (decremented); a campaign whose
        window is read per contact is offered only with a zone key open. The offers for
        `_claim_offers`, and how soon claiming again is worth it (pacing)."""
        delay = self.config.scheduler.poll_interval
        offers: list[_Offer] = []
        for rules in batch:
            free = min(wanted.get(rules.id, 0), slots)
            if free <= 0:
                continue
            zone_keys = await self._open_zone_keys(conn, rules)
            if zone_keys is not None and not zone_keys:
                continue  # none of its contacts' zones is open now
            numbers = [(n.number, n.carrier) for n in caller_ids.get(rules.id, [])]
            offered = deal_caller_ids(numbers, room, free)
            if offered:
                offers.append(_Offer(rules, offered, zone_keys))
                slots -= len(offered)
            else:
                delay = min(delay, self._pacing_delay(numbers))
        return offers, delay

    def _take(self, new: list[Dial], tracker: Servers, dials: list[Dial]) -> None:
        """Claimed dials, before the claim commits: recovery must never see an attempt without
        knowing it is ours, and each counts on its server until its Originate is tried."""
        dials.extend(new)
        self.dialling.update(d.attempt_id for d in new)
        tracker.reserve((d.attempt_id, d.asterisk) for d in new)

    async def _claim_offers(
        self, conn: Connection, offers: list[_Offer], tracker: Servers
    ) -> tuple[list[Dial], bool]:
        """Claim what each campaign was offered (caller IDs dealt), in one statement, after
        one deal of Asterisk servers for them all (offers past the servers' caps are dropped,
        the last first); the dials, and whether some campaign got all it was offered."""
        dealt, asterisk = self._deal_servers(tracker, [d for o in offers for d in o.caller_ids])
        margin = self.config.scheduler.dial_margin
        claims: list[store.CampaignClaim] = []
        start = 0
        for offer in offers:
            part = offer.caller_ids[: len(dealt) - start]
            if not part:
                break  # every Asterisk up is at its channel cap
            claims.append(
                store.CampaignClaim(
                    offer.rules.id,
                    offer.rules.ring_timeout + margin,
                    [n for n, _c in part],
                    [c for _n, c in part],
                    asterisk[start : start + len(part)],
                    offer.zone_keys,
                )
            )
            start += len(part)
        if not claims:
            return [], False
        claimed = await store.claim_contacts(conn, self.daemon_id, claims)
        dials: list[Dial] = []
        got_all = False
        for claim in claims:
            rows = claimed.get(claim.campaign_id, [])
            got_all = got_all or len(rows) == len(claim.caller_ids)
            dials.extend(
                Dial(
                    c.id,
                    c.contact_id,
                    claim.campaign_id,
                    c.phone_number,
                    c.caller_id,
                    c.carrier,
                    c.attempts_used,
                    c.counts_toward_max,
                    c.asterisk,
                )
                for c in rows
            )
        return dials, got_all

    async def _free_workers(self, conn: Connection) -> list[WorkerFree]:
        """Lock the fleet and count its free slots (claims and test calls): slots reserved
        from this list before the transaction ends never exceed a worker's capacity."""
        return await fleet.locked_fleet_free(conn, self.config.fleet.heartbeat_timeout)

    def _deal_servers(
        self, servers: Servers, dealt: list[tuple[str, str]]
    ) -> tuple[list[tuple[str, str]], list[str]]:
        """The Asterisk server of each dealt dial (least loaded first, within each server's
        cap); the dials beyond what the servers up can take now are dropped."""
        names = servers.deal(len(dealt))
        return dealt[: len(names)], names

    async def _carrier_room(self, conn: Connection) -> dict[str, int]:
        """Each carrier's dials allowed now, for all daemons together: free channels, bounded
        by its shared calls per second (engine/pacing.py; its tokens are taken in this
        transaction)."""
        return await carrier_room(conn, self.config, self.buckets)

    def _pacing_delay(self, numbers: list[tuple[str, str]]) -> float:
        """How soon a claim may find room again: when the next token of one of these carriers
        is due (the shared bucket as last read), else at the next poll."""
        carriers = {carrier for _n, carrier in numbers}
        waits = [self.buckets[c].seconds_until() for c in carriers if c in self.buckets]
        return min(waits, default=self.config.scheduler.poll_interval) or 0.05

    # -- one call ------------------------------------------------------------------------
    async def _dial_one(self, dial: Dial, rules: CampaignRules, tracker: Servers) -> None:
        """Originate one claimed dial; whatever fails is logged here, never left to kill the
        tick (and the other dials of it)."""
        try:
            await self._originate(dial, rules, tracker)
        except Exception:
            log.exception("originating failed", extra={"attempt_id": str(dial.attempt_id)})
        finally:
            self.dialling.discard(dial.attempt_id)

    async def _unsent(self, attempt_id: uuid.UUID) -> None:
        """The Originate was never sent: as if never claimed. When the database is away too,
        the attempt is kept to be written as a `requeue` (it uses no attempt either)."""
        try:
            async with self.pool.acquire() as conn:
                await store.unclaim(conn, attempt_id)
        except Exception:
            now = time.time()
            not_sent = DialResult(Outcome.ERROR, None, ended_at=now, reason="originate not sent")
            self.keep(attempt_id, Unsettled(not_sent, Disposition.ERROR, requeue=True))

    async def _originate(self, dial: Dial, rules: CampaignRules, servers: Servers) -> None:
        """Send the dial through the Asterisk dealt to it at the claim. If that server went
        down since, nothing is sent: the contact is due again at once and the next claim deals
        it to a server that is up (no attempt used; never sent twice)."""
        tracker = self.trackers[dial.asterisk]
        endpoint = self.config.carrier(dial.carrier).endpoint
        request = OriginateRequest(
            attempt_id=str(dial.attempt_id),
            channel=f"PJSIP/{dial.phone}@{endpoint}",
            context=tracker.ami.config.originate_context,
            caller_id=dial.caller_id,
            ring_timeout=rules.ring_timeout,
        )
        try:
            call = await tracker.dial(request)
        except AmiUnavailable:
            # Nothing was sent: as if never claimed (no attempt used, nothing to report).
            await self._unsent(dial.attempt_id)
            log.warning(
                "ami down before dialling; contact requeued",
                extra={"attempt_id": str(dial.attempt_id), "asterisk": dial.asterisk},
            )
            self.wake.set()  # dealt again now, to a server that is up
            return
        finally:
            servers.release(dial.attempt_id)  # counted by its tracker from here on
        metrics.ORIGINATIONS.labels(str(dial.campaign_id), dial.carrier).inc()
        metrics.ASTERISK_ORIGINATIONS.labels(dial.asterisk).inc()
        self._carriers[dial.attempt_id] = dial.carrier
        self.follow(dial.attempt_id, call)

    def following(self, attempt_id: uuid.UUID) -> bool:
        """Does this daemon know where the attempt is (dialling, followed, end kept)?"""
        return (
            attempt_id in self.live or attempt_id in self.dialling or attempt_id in self.unsettled
        )

    def follow(self, attempt_id: uuid.UUID, call: TrackedCall) -> None:
        """Follow the call to its end in a task of its own (in `live` until it ends)."""
        task = asyncio.create_task(self._await_result(attempt_id, call), name=f"call-{attempt_id}")
        self.live[attempt_id] = task
        task.add_done_callback(lambda _t: self.live.pop(attempt_id, None))

    async def _await_result(self, attempt_id: uuid.UUID, call: TrackedCall) -> None:
        try:
            result = await call.result
        except CallResultLost:
            # The channel went while the AMI link was down (Asterisk crashed, the link was
            # cut): its end is unknown — `timeout`, unless its worker's result is in already.
            answered = call.answered_at is not None
            lost = DialResult(
                Outcome.ANSWERED if answered else Outcome.NO_ANSWER,
                200 if answered else None,
                answered_at=call.answered_at,
                ended_at=time.time(),
                reason="result lost",
            )
            await self._conclude(attempt_id, Unsettled(lost, Disposition.TIMEOUT))
            return
        if result.outcome is Outcome.ERROR and not call.placed:
            # Asterisk refused or could not create the channel (starting, reloading, out of
            # resources): our side, not the callee's — requeued, no attempt used (CONTRACT).
            await self._conclude(attempt_id, Unsettled(result, Disposition.ERROR, requeue=True))
            return
        disposition = None if result.outcome is Outcome.ANSWERED else result.outcome.value
        await self._conclude(attempt_id, Unsettled(result, disposition))

    # -- Asterisk servers ----------------------------------------------------------------
    async def run_servers(self, stop: asyncio.Event) -> None:
        """Every `SERVER_CHECK_INTERVAL`: the per-server gauges, and the calls of a server
        whose AMI is down closed once they must have ended (`close_lost_calls`)."""
        for name in self.trackers:
            metrics.ASTERISK_ORIGINATIONS.labels(name)  # a series from the start: rate() works
        while not stop.is_set():
            for name in self.trackers:
                metrics.ASTERISK_CALLS_IN_FLIGHT.labels(name).set(self.servers.in_flight(name))
            try:
                await self.close_lost_calls()
            except Exception as exc:
                if not store.database_unreachable(exc):
                    raise
                self.set_database_up(False, exc)  # checked again on the next round
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SERVER_CHECK_INTERVAL)

    async def close_lost_calls(self, now: float | None = None) -> int:
        """Close the calls of servers whose AMI is down that must have ended by now; how many.

        A server that went away (crashed, unreachable) tells nothing more of its calls, and one
        that stays away must not hold its campaigns open for ever. Its calls end as lost
        (`_await_result`: `timeout`, or the worker's result if it is in) once:
        - unanswered: `ring_timeout + dial_margin` after the Originate — ringing cannot outlast
          the ring timeout, and an answer would show as the worker's attach in the database;
        - answered (seen, or attached in the database): as soon as its worker's result is in
          (the bot's session is over: with the server gone, so is the audio), else
          `max_call_length` after the answer.
        A server that comes back first reconciles them itself, against its live channels."""
        sched = self.config.scheduler
        now = time.time() if now is None else now
        due: list[tuple[CallTracker, TrackedCall]] = []
        for tracker in self.trackers.values():
            if tracker.ami.ready:
                continue
            for call in list(tracker.calls.values()):
                if call.result.done() or call.ended_at is not None:
                    continue  # decided, or its Hangup came before the link went
                if call.answered_at is not None or now > (
                    call.sent_at + call.ring_timeout + sched.dial_margin
                ):
                    due.append((tracker, call))
        closed = 0
        for tracker, call in due:
            attempt_id = uuid.UUID(call.attempt_id)
            async with self.pool.acquire() as conn, conn.transaction():
                row = await store.lock_open_attempt(conn, attempt_id)
            if row is not None and call.answered_at is None and row.attached_at is not None:
                # Answered while the AMI link was away: the attach says so.
                call.answered_at = (row.answered_at or row.attached_at).timestamp()
            answered = call.answered_at
            talking = answered is not None and now < answered + sched.max_call_length
            if talking and row is not None and row.disposition is None:
                continue  # answered, and the bot may still be talking: wait for its result
            if tracker.lost_unless_alive(call.attempt_id, {}):
                closed += 1
                log.warning(
                    "call lost with its Asterisk; closed",
                    extra={"attempt_id": call.attempt_id, "asterisk": tracker.ami.name},
                )
        return closed

    async def _conclude(self, attempt_id: uuid.UUID, end: Unsettled) -> None:
        """Write a call's end; if that fails, keep it (memory and journal) for the settler."""
        try:
            await self._settle_grouped(attempt_id, end)
        except Exception as exc:
            if store.database_unreachable(exc):
                self.set_database_up(False, exc)
                log.warning(
                    "database unreachable: call end kept until it can be written",
                    extra={"attempt_id": str(attempt_id)},
                )
            else:
                log.exception(
                    "writing a call's end failed; kept to be written again",
                    extra={"attempt_id": str(attempt_id)},
                )
            self.keep(attempt_id, end)

    async def _settle_grouped(self, attempt_id: uuid.UUID, end: Unsettled) -> Decision | None:
        """`settle_end`, written in one transaction with the other call ends that arrived
        meanwhile (group commit: while one batch is written the next gathers, up to
        `SETTLE_BATCH`; no delay is added). An answered call's end, which may wait for its
        worker's result, is written alone as before. Raises what writing it raised."""
        if end.disposition is None:
            return await self.settle_end(attempt_id, end)
        future: asyncio.Future[Decision | None] = asyncio.get_running_loop().create_future()
        self._ends.append((attempt_id, end, future))
        if self._end_writer is None:
            writer = asyncio.create_task(self._write_ends(), name="settle-writer")
            self._end_writer = writer
            self._background.add(writer)  # cancelled and awaited by `abandon`, like the rest
            writer.add_done_callback(self._background.discard)
        return await future

    async def _write_ends(self) -> None:
        """The group-commit writer: batches of waiting call ends until none is left. A future
        it leaves unresolved (cancelled at exit) is cancelled, never left hanging."""
        batch: list[tuple[uuid.UUID, Unsettled, asyncio.Future[Decision | None]]] = []
        try:
            while self._ends:
                batch, self._ends = self._ends[:SETTLE_BATCH], self._ends[SETTLE_BATCH:]
                await self._write_end_batch(batch)
        except Exception as exc:  # a fault of the writer itself: each end is kept by its caller
            log.exception("writing call ends failed")
            for _attempt, _end, future in [*batch, *self._ends]:
                if not future.done():
                    future.set_exception(exc)
            self._ends = []
        finally:
            self._end_writer = None
            for _attempt, _end, future in [*batch, *self._ends]:
                future.cancel()  # no-op when resolved
            self._ends = []

    async def _write_end_batch(
        self, batch: list[tuple[uuid.UUID, Unsettled, asyncio.Future[Decision | None]]]
    ) -> None:
        """Write a batch of call ends in one transaction and resolve their futures. The
        database away: each gets the error (its caller keeps it). Another error: one end
        spoilt the transaction — each is written again alone, so only that one fails."""
        waiting = [(a, e, f) for a, e, f in batch if not f.done()]
        if not waiting:
            return
        try:
            decided = await self._finalise_many([(a, e) for a, e, _f in waiting])
        except Exception as exc:
            if store.database_unreachable(exc) or len(waiting) == 1:
                for _a, _e, future in waiting:
                    if not future.done():
                        future.set_exception(exc)
                return
            for attempt_id, end, future in waiting:
                try:
                    decision = await self.settle_end(attempt_id, end)
                except Exception as one:
                    if not future.done():
                        future.set_exception(one)
                else:
                    if not future.done():
                        future.set_result(decision)
            return
        for attempt_id, _e, future in waiting:
            if not future.done():
                future.set_result(decided.get(attempt_id))

    async def _finalise_many(
        self, ends: Sequence[tuple[uuid.UUID, Unsettled]]
    ) -> dict[uuid.UUID, Decision]:
        """`finalise` for many call ends in one transaction: the attempts locked in one
        statement (in id order), each decided and written by `_settle`; the decisions taken
        (an attempt already final is absent: decided elsewhere, nothing to do)."""
        decided: dict[uuid.UUID, Decision] = {}
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await store.lock_open_attempts(conn, [a for a, _e in ends])
            for attempt_id, end in ends:
                row = rows.get(attempt_id)
                if row is None:
                    continue
                assert end.disposition is not None  # answered ends are not grouped
                result = end.result
                decided[attempt_id] = await self._settle(
                    conn,
                    row,
                    result.outcome,
                    result.sip_code,
                    utc(result.answered_at),
                    utc(result.ended_at) or datetime.now(UTC),
                    result.talk_seconds,
                    end.disposition,
                    row.callback_at,
                    end.requeue,
                )
        return decided

    def keep(self, attempt_id: uuid.UUID, end: Unsettled) -> None:
        """Keep a call end that could not be written: in memory, and in the journal (so a
        restart loses nothing either); the settler writes it as soon as it can."""
        write = None if self.journal is None else self.journal.write
        self._keep(self.unsettled, attempt_id, end, write)

    def keep_result(self, attempt_id: uuid.UUID, result: WorkerResult) -> None:
        """Keep a worker's result the database could not take (memory and journal)."""
        write = None if self.journal is None else self.journal.write_result
        self._keep(self.kept_results, attempt_id, result, write)

    def _forget_kept(self, attempt_id: uuid.UUID) -> None:
        remove = None if self.journal is None else self.journal.remove
        self._forget(self.unsettled, attempt_id, remove)

    def _forget_kept_result(self, attempt_id: uuid.UUID) -> None:
        remove = None if self.journal is None else self.journal.remove_result
        self._forget(self.kept_results, attempt_id, remove)

    def _keep(
        self,
        kept: dict[uuid.UUID, _Kept],
        attempt_id: uuid.UUID,
        item: _Kept,
        write: Callable[[uuid.UUID, _Kept], None] | None,
    ) -> None:
        """The one way something unwritten is kept (a call end or a worker's result): in
        `kept`, counted, and in the journal when there is one; the settler is woken."""
        kept[attempt_id] = item
        self._count_kept()
        if write is not None:
            try:
                write(attempt_id, item)
            except OSError:
                log.exception(
                    "results journal write failed; kept in memory only",
                    extra={"attempt_id": str(attempt_id)},
                )
        self._kept.set()

    def _forget(
        self,
        kept: dict[uuid.UUID, _Kept],
        attempt_id: uuid.UUID,
        remove: Callable[[uuid.UUID], None] | None,
    ) -> None:
        """Written: out of `kept` and of the journal."""
        kept.pop(attempt_id, None)
        self._count_kept()
        if remove is not None:
            try:
                remove(attempt_id)
            except OSError:
                log.exception(
                    "results journal entry not removed (replaying it is harmless)",
                    extra={"attempt_id": str(attempt_id)},
                )

    def replay_journal(self) -> int:
        """At start: the ends a previous process of this daemon kept, back into `unsettled`
        (written by `settle_kept` / the settler); how many."""
        if self.journal is None:
            return 0
        entries = self.journal.load()
        for attempt_id, end in entries.items():
            self.unsettled.setdefault(attempt_id, end)
        results = self.journal.load_results()
        for attempt_id, result in results.items():
            self.kept_results.setdefault(attempt_id, result)
        self._count_kept()
        count = len(entries) + len(results)
        if count:
            log.warning("results journal replayed", extra={"entries": count})
        return count

    async def write_kept(self, attempt_id: uuid.UUID) -> Decision | None:
        """Write one kept end now (raises if the database is still away)."""
        end = self.unsettled.get(attempt_id)
        if end is None:
            return None
        decided = await self.settle_end(attempt_id, end)
        self._forget_kept(attempt_id)
        return decided

    async def settle_kept(self) -> int:
        """Write every kept end, then every kept worker's result; returns how many are left
        (0: all written). Stops at the first sign the database is still away."""
        for attempt_id in list(self.unsettled):
            try:
                await self.write_kept(attempt_id)
            except Exception as exc:
                if store.database_unreachable(exc):
                    self.set_database_up(False, exc)
                    return self._left()
                log.exception(
                    "writing a kept call end failed; retrying later",
                    extra={"attempt_id": str(attempt_id)},
                )
            else:
                self.set_database_up(True)
                log.info("kept call end written", extra={"attempt_id": str(attempt_id)})
        for attempt_id, result in list(self.kept_results.items()):
            try:
                await self._record_result(attempt_id, result)
            except (UnknownCall, AlreadyFinal) as exc:
                log.warning(
                    "kept worker result refused; dropped",
                    extra={"attempt_id": str(attempt_id), "error": type(exc).__name__},
                )
            except Exception as exc:
                if store.database_unreachable(exc):
                    self.set_database_up(False, exc)
                    return self._left()
                log.exception(
                    "writing a kept worker result failed; retrying later",
                    extra={"attempt_id": str(attempt_id)},
                )
                continue
            else:
                self.set_database_up(True)
                log.info("kept worker result written", extra={"attempt_id": str(attempt_id)})
            self._forget_kept_result(attempt_id)
        return self._left()

    def _left(self) -> int:
        return len(self.unsettled) + len(self.kept_results)

    async def run_settler(self, stop: asyncio.Event) -> None:
        """Write kept call ends as soon as the database takes them: at once when one is kept,
        then with backoff (0.5 s doubling to 5 s) while the database is away."""
        backoff = SETTLE_BACKOFF_FIRST
        while not stop.is_set():
            if not self.unsettled and not self.kept_results:
                backoff = SETTLE_BACKOFF_FIRST
                self._kept.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kept.wait(), timeout=SETTLE_BACKOFF_MAX)
                continue
            if await self.settle_kept() == 0:
                backoff = SETTLE_BACKOFF_FIRST
                continue
            self._kept.clear()
            with contextlib.suppress(TimeoutError):
                # A new database success (the scheduler's tick) cuts the wait short.
                await asyncio.wait_for(self.database_back.wait(), timeout=backoff)
            backoff = min(backoff * 2, SETTLE_BACKOFF_MAX)

    async def settle_end(self, attempt_id: uuid.UUID, end: Unsettled) -> Decision | None:
        """Write a call's end: final now, or `wrapping` for an answered call whose worker's
        result is not in yet. The decision when it became final."""
        if end.disposition is None:
            return await self.end_answered(attempt_id, end.result)
        return await self.finalise(attempt_id, end.result, end.disposition, requeue_it=end.requeue)

    def _on_stage(self, call: TrackedCall, stage: str) -> None:
        if stage == "answered" and call.answered_at is not None:
            carrier = self._carriers.get(uuid.UUID(call.attempt_id))
            if carrier is not None:
                metrics.ORIGINATE_TO_ANSWER.labels(carrier).observe(
                    max(0.0, call.answered_at - call.sent_at)
                )
            attempt_id = uuid.UUID(call.attempt_id)
            self._in_background(
                self._mark_answered(attempt_id, call.answered_at), f"answered-{attempt_id}"
            )

    def _in_background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run `work` in a task kept until it ends; its failure is logged (the write it made
        is also decided later: the answer time is rewritten at the call's end)."""

        async def logged() -> None:
            try:
                await work
            except Exception as exc:
                # An outage is said once (`database unreachable`): no traceback per call.
                unreachable = store.database_unreachable(exc)
                if unreachable:
                    self.set_database_up(False, exc)
                (log.warning if unreachable else log.error)(
                    "background write failed", exc_info=not unreachable, extra={"task": name}
                )

        task = asyncio.create_task(logged(), name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _mark_answered(self, attempt_id: uuid.UUID, at: float) -> None:
        async with self.pool.acquire() as conn:
            waited = await store.mark_answered(
                conn, attempt_id, utc(at), self.config.scheduler.max_call_length
            )
        if waited is not None:
            metrics.ANSWER_TO_ATTACH.observe(max(0.0, waited))

    # -- results -------------------------------------------------------------------------
    async def finalise(
        self,
        attempt_id: uuid.UUID,
        result: DialResult,
        disposition: str,
        *,
        requeue_it: bool = False,
        expect_state: str | None = None,
    ) -> Decision | None:
        """Write the attempt's result and the decision on it; None if already final (or, with
        `expect_state`, if it has moved on from that state meanwhile)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await store.lock_open_attempt(conn, attempt_id)
            if row is None or (expect_state is not None and row.state != expect_state):
                return None
            ended = utc(result.ended_at) or datetime.now(UTC)
            return await self._settle(
                conn,
                row,
                result.outcome,
                result.sip_code,
                utc(result.answered_at),
                ended,
                result.talk_seconds,
                disposition,
                row.callback_at,
                requeue_it,
            )

    async def end_answered(self, attempt_id: uuid.UUID, result: DialResult) -> Decision | None:
        """An answered call hung up: final now if its worker's result (or `abandoned`) is in,
        or if no worker ever took the call (`abandoned`: none will report); else `wrapping`
        until the result arrives or `result_timeout` passes (None then)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await store.lock_open_attempt(conn, attempt_id)
            if row is None:
                return None
            answered, ended = utc(result.answered_at), utc(result.ended_at) or datetime.now(UTC)
            if row.disposition is not None or row.attached_at is None:
                # Never attached (the attach failed: e.g. the database was down at the answer,
                # and the dialplan played its message and hung up): no result will ever come.
                return await self._settle(
                    conn,
                    row,
                    Outcome.ANSWERED,
                    200,
                    answered,
                    ended,
                    result.talk_seconds,
                    row.disposition or Disposition.ABANDONED,
                    row.callback_at,
                )
            await store.mark_wrapping(
                conn,
                attempt_id,
                answered,
                ended,
                int(result.talk_seconds * 1000),
                self.config.scheduler.result_timeout,
            )
            self.wrapping.add(attempt_id)
            self._none_wrapping.clear()
            return None

    async def record_result(self, attempt_id: uuid.UUID, result: WorkerResult) -> ResultRecorded:
        """A worker's result: `FINAL` (the call had ended: decided now) or `STORED` (the call
        is still up: decided at hang-up — or the database is away: kept, memory and journal,
        and written by the settler). Raises `UnknownCall` (no such attempt) or `AlreadyFinal`
        (decided already: by its hang-up's timeout, or a result before)."""
        try:
            return await self._record_result(attempt_id, result)
        except Exception as exc:
            if not store.database_unreachable(exc):
                raise
            self.set_database_up(False, exc)
            self.keep_result(attempt_id, result)
            log.warning(
                "database unreachable: worker result kept until it can be written",
                extra={"attempt_id": str(attempt_id)},
            )
            return ResultRecorded.STORED

    def _count_kept(self) -> None:
        metrics.RESULTS_UNWRITTEN.set(len(self.unsettled) + len(self.kept_results))

    async def _record_result(self, attempt_id: uuid.UUID, result: WorkerResult) -> ResultRecorded:
        audio = result.audio
        async with self.pool.acquire() as conn, conn.transaction():
            row = await store.lock_open_attempt(conn, attempt_id)
            if row is None:
                if await store.attempt_exists(conn, attempt_id):
                    raise AlreadyFinal("this call's result is already final")
                raise UnknownCall(attempt_id)
            await store.store_result(
                conn,
                attempt_id,
                result.disposition,
                result.callback_at,
                result.notes,
                audio.frames_sent if audio else None,
                audio.frames_received if audio else None,
            )
            if row.state != AttemptState.WRAPPING:
                return ResultRecorded.STORED
            talk = row.duration_ms / 1000.0
            assert row.ended_at is not None  # a wrapping attempt's call has ended
            await self._settle(
                conn,
                row,
                Outcome.ANSWERED,
                200,
                row.answered_at,
                row.ended_at,
                talk,
                result.disposition,
                result.callback_at,
            )
            return ResultRecorded.FINAL

    async def _settle(
        self,
        conn: Connection,
        row: OpenAttempt,
        outcome: Outcome,
        sip_code: int | None,
        answered_at: datetime | None,
        ended: datetime,
        talk_seconds: float,
        disposition: str,
        callback_at: datetime | None,
        requeue_it: bool = False,
    ) -> Decision:
        """Decide what follows and write it all (attempt, contact, slot) in the caller's
        transaction, the attempt row being locked."""
        attempt_id = row.id
        self.wrapping.discard(attempt_id)
        if not self.wrapping:
            self._none_wrapping.set()
        rules = await store.campaign_rules(conn, row.campaign_id)
        assert rules is not None  # an attempt's campaign outlives it (ON DELETE CASCADE)
        if disposition == Disposition.TIMEOUT and row.disposition is not None and answered_at:
            # The call's end was lost, but its worker's result came: that is the real one.
            disposition, callback_at = row.disposition, row.callback_at
        if requeue_it and await store.trailing_requeues(conn, row.contact_id) >= MAX_REQUEUES:
            requeue_it = False  # refused again and again: an ordinary `error` attempt
        requeue_delay = REQUEUE_DELAY
        if not requeue_it:
            # A 429/503 that tripped its carrier's throttling or came while it is throttled
            # uses up no attempt (CONTRACT); it counts toward the carrier's AIMD either way.
            throttled = await throttling_refusal(
                conn, self.config, attempt_id, row.contact_id, outcome, sip_code
            )
            if throttled is not None and not rules.cancelled:
                requeue_it, requeue_delay = True, throttled
        if requeue_it:
            decision = requeue(ended + timedelta(seconds=requeue_delay))
        else:
            decision = decide(
                AttemptFacts(
                    outcome=outcome.value,
                    disposition=disposition,
                    talk_seconds=talk_seconds,
                    ended_at=ended,
                    callback_at=callback_at,
                    attempts_used=row.attempts_used,
                ),
                rules.retry,
                rules.redial,
                self._settle_window(rules, row),
            )
            if rules.cancelled and decision.action in (NextAction.RETRY, NextAction.CALLBACK):
                decision = Decision(NextAction.CANCELLED, None, ContactState.CANCELLED)
        await store.finalise_attempt(
            conn,
            attempt_id,
            answered_at,
            ended,
            sip_code,
            outcome.value,
            disposition,
            int(talk_seconds * 1000),
            decision.action.value,
            decision.next_at,
        )
        uncount = int(requeue_it and row.counts_toward_max)
        await store.settle_contact(
            conn, row.contact_id, decision.contact_state, decision.next_at, uncount, decision.reason
        )
        await fleet.release_slot(conn, attempt_id)
        campaign = str(row.campaign_id)
        metrics.ATTEMPT_OUTCOMES.labels(campaign, outcome.value).inc()
        carrier = self._carriers.pop(attempt_id, None)
        if outcome is not Outcome.ANSWERED and carrier is not None:
            metrics.SIP_RESPONSES.labels(carrier, metrics.sip_code_label(sip_code)).inc()
        log.info(
            "attempt final",
            extra={
                "attempt_id": str(attempt_id),
                "campaign_id": campaign,
                "outcome": outcome.value,
                "sip_code": sip_code,
                "disposition": disposition,
                "next_action": decision.action.value,
            },
        )
        self.wake.set()
        return decision

    def _settle_window(self, rules: CampaignRules, row: OpenAttempt) -> Window | ZonedWindow:
        """The window a callback or retry of this attempt's contact is moved into: with a
        window read per contact, the window on the contact's own zones (its zone key; the
        campaign's zone for the empty key)."""
        if rules.per_contact:
            return ZonedWindow.for_key(rules.window, row.zone_key)
        return rules.window

    async def test_call(
        self, bot: str, to: str, caller_id: str, carrier: str, ring_timeout: float
    ) -> tuple[uuid.UUID, TrackedCall]:
        """Place one call outside any campaign (`dialler test-call`): recorded in the bot's
        test-call campaign, a bot slot reserved like any dial. Raises `UnknownBot`,
        `TestCallInProgress`, `NoFreeWorker` or `DiallingUnavailable`."""
        servers = self.tracker()
        chosen = servers.deal(1) if servers is not None else []
        if not chosen:
            raise DiallingUnavailable()  # no Asterisk up (or every one at its cap)
        tracker = self.trackers[chosen[0]]
        attempt_id = uuid.uuid4()
        deadline = ring_timeout + self.config.scheduler.dial_margin
        async with self.pool.acquire() as conn, conn.transaction():
            bot_id = await testcall.bot_id(conn, bot)
            if bot_id is None:
                raise UnknownBot(bot)
            if await suppressions.is_suppressed(conn, to):
                raise NumberSuppressed()
            campaign_id = await testcall.test_campaign(
                conn, f"test-call: {bot}", bot_id, ring_timeout
            )
            contact_id = await testcall.test_contact(
                conn, campaign_id, to, self.daemon_id, deadline
            )
            if contact_id is None:
                raise TestCallInProgress()
            workers = await self._free_workers(conn)
            if not workers:
                raise NoFreeWorker()
            await testcall.test_attempt(
                conn,
                attempt_id,
                contact_id,
                campaign_id,
                caller_id,
                carrier,
                tracker.ami.name,
                self.daemon_id,
                deadline,
            )
            await fleet.reserve_slots(conn, [attempt_id], deal_workers(_slots(workers), 1))
            self.dialling.add(attempt_id)
        endpoint = self.config.carrier(carrier).endpoint
        try:
            call = await tracker.dial(
                OriginateRequest(
                    attempt_id=str(attempt_id),
                    channel=f"PJSIP/{to}@{endpoint}",
                    context=tracker.ami.config.originate_context,
                    caller_id=caller_id,
                    ring_timeout=ring_timeout,
                )
            )
        except AmiUnavailable:
            await self._unsent(attempt_id)
            raise DiallingUnavailable() from None
        finally:
            self.dialling.discard(attempt_id)
        self.follow(attempt_id, call)
        return attempt_id, call

    async def drain(self, timeout: float) -> int:
        """Stop claiming and wait for live calls to finish (up to `timeout` s); returns how
        many were still live."""
        self.draining = True
        self.wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self.live:
            await asyncio.wait(list(self.live.values()), timeout=timeout)
        # Calls that hung up wait for their worker's result (it comes over HTTP, still served
        # while draining), at most `result_timeout` — after that recovery decides them anyway.
        deadline = min(deadline, loop.time() + self.config.scheduler.result_timeout)
        while self.wrapping and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._none_wrapping.wait(), min(0.5, max(0.0, deadline - loop.time()))
                )
            # The result may have reached another daemon sharing the database (the worker
            # posts it to whichever daemon it talks to): look there too.
            await self._forget_decided_wrapping()
        return len(self.live)

    async def _forget_decided_wrapping(self) -> None:
        """Drop from `wrapping` the attempts already final in the database."""
        try:
            async with self.pool.acquire() as conn:
                for attempt_id in list(self.wrapping):
                    if await store.lock_open_attempt(conn, attempt_id) is None:
                        self.wrapping.discard(attempt_id)
        except Exception as exc:  # the database away: the drain's deadline still holds
            log.warning("drain: cannot check wrapping calls: %s", exc)
        if not self.wrapping:
            self._none_wrapping.set()

    async def abandon(self) -> None:
        """At exit: stop following the calls still live (the next start reconciles them) and
        the background writes, and wait until their tasks are done."""
        tasks = [*self.live.values(), *self._background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _slots(workers: Sequence[WorkerFree]) -> list[tuple[str, int]]:
    return [(w.name, w.free) for w in workers]
