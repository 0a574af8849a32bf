"""The dialling engine of one daemon: claims due contacts, dials them, decides what follows.

Per tick, for each running campaign inside its window: in one transaction (campaign row locked,
so several daemons never race past `concurrency`) count the campaign's in-flight contacts,
claim up to the free slots — bounded by each carrier's channels and calls per second — with
`FOR UPDATE SKIP LOCKED`, and create their attempts; then originate each over AMI and follow
it. When a call's result is final, the attempt and the decision taken on it (retry, callback,
stop, exhaustion) are written in one transaction.

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
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import metrics
from ..ami.calls import CallResultLost, CallTracker, TrackedCall
from ..ami.client import AmiUnavailable, OriginateRequest
from ..config import Config
from ..domain.outcomes import DialResult, Outcome
from ..domain.results import ResultRecorded, WorkerResult
from ..domain.rules import AttemptFacts, Decision, NextAction, decide, requeue
from ..domain.states import AttemptState, ContactState, Disposition
from ..domain.window import Window
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
from ..store.conn import Connection, Pool
from ..store.engine import CampaignRules, OpenAttempt
from ..store.fleet import WorkerFree
from .journal import Journal, Unsettled
from .pacing import TokenBucket, deal_caller_ids, deal_workers

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
        self._claimed_all = False
        self._carriers: dict[uuid.UUID, str] = {}  # live attempts' carriers, for the metrics
        for tracker in self.trackers.values():
            tracker.on_stage = self._on_stage

    # -- the loop ------------------------------------------------------------------------
    def tracker(self) -> CallTracker | None:
        """An Asterisk whose AMI is up (the first, for now); None while all are down."""
        for tracker in self.trackers.values():
            if tracker.ami.ready:
                return tracker
        return None

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
        """One pass over running campaigns; returns how soon the next pass is worth doing."""
        poll = self.config.scheduler.poll_interval
        async with self.pool.acquire() as conn:
            for done in await store.complete_finished_campaigns(conn):
                log.info("campaign completed", extra={"campaign_id": str(done.id)})
            if self.draining:
                return poll
            tracker = self.tracker()
            if tracker is None:
                return poll  # AMI down: claim nothing
            campaigns = await store.running_campaigns(conn)
        next_in = poll
        now = datetime.now(UTC)
        for rules in campaigns:
            if self._dialable_now(rules, now):
                next_in = min(next_in, await self._fill(rules, tracker))
        return next_in

    def _dialable_now(self, rules: CampaignRules, now: datetime) -> bool:
        """Is any of the campaign's contacts inside its calling window now?"""
        return rules.window.is_open(now)

    async def _fill(self, rules: CampaignRules, tracker: CallTracker) -> float:
        """Claim and dial for one campaign; returns the delay until pacing allows more."""
        with metrics.CLAIM_DURATION.time():
            dials, delay = await self._claim(rules, tracker)
        if delay is not None:
            return delay
        for dial in dials:
            self.buckets[dial.carrier].take(1)
        await asyncio.gather(*(self._dial_one(dial, rules, tracker) for dial in dials))
        return 0.0 if self._claimed_all else self.config.scheduler.poll_interval

    async def _free_workers(self, conn: Connection) -> list[WorkerFree]:
        """Lock the fleet and count its free slots (claims and test calls): slots reserved
        from this list before the transaction ends never exceed a worker's capacity."""
        return await fleet.locked_fleet_free(conn, self.config.fleet.heartbeat_timeout)

    async def _claim(
        self, rules: CampaignRules, tracker: CallTracker
    ) -> tuple[list[Dial], float | None]:
        """The claim transaction: the dials claimed, or a delay when nothing was."""
        poll = self.config.scheduler.poll_interval
        campaign_id = rules.id
        async with self.pool.acquire() as conn, conn.transaction():
            concurrency = await store.lock_campaign_for_claim(conn, campaign_id)
            if concurrency is None:
                return [], poll
            free = concurrency - await store.campaign_in_flight(conn, campaign_id)
            if free <= 0:
                return [], poll
            # Fleet slots and carrier channels are shared by every campaign and daemon.
            workers = await self._free_workers(conn)
            free = min(free, sum(w.free for w in workers))
            if free <= 0:
                return [], poll  # no bot free: never dial
            room = await self._carrier_room(conn)
            numbers = [
                (n.number, n.carrier) for n in await store.campaign_caller_ids(conn, campaign_id)
            ]
            dealt = deal_caller_ids(numbers, room, free)
            if not dealt:
                return [], self._pacing_delay(numbers)
            deadline = rules.ring_timeout + self.config.scheduler.dial_margin
            claimed = await store.claim_contacts(
                conn,
                campaign_id,
                len(dealt),
                self.daemon_id,
                deadline,
                [d[0] for d in dealt],
                [d[1] for d in dealt],
                tracker.ami.name,
            )
            if not claimed:
                return [], poll
            # A bot slot is reserved before the dial: a callee is never connected to silence
            # for lack of capacity.
            await fleet.reserve_slots(
                conn, [c.id for c in claimed], deal_workers(_slots(workers), len(claimed))
            )
            await store.touch_numbers(conn, list({c.caller_id for c in claimed}))
            await store.mark_campaign_dialled(conn, campaign_id)
            dials = [
                Dial(
                    c.id,
                    c.contact_id,
                    campaign_id,
                    c.phone_number,
                    c.caller_id,
                    c.carrier,
                    c.attempts_used,
                    c.counts_toward_max,
                )
                for c in claimed
            ]
            self._claimed_all = len(dials) == len(dealt)
            # Before commit: recovery must never see the attempt without knowing it is ours.
            self.dialling.update(d.attempt_id for d in dials)
        return dials, None

    async def _carrier_room(self, conn: Connection) -> dict[str, int]:
        """Each carrier's dials allowed now: free channels, bounded by its calls per second."""
        in_flight = await store.carriers_in_flight(conn)
        room = {}
        for carrier in self.config.carriers:
            room[carrier.name] = min(
                carrier.max_channels - in_flight.get(carrier.name, 0),
                self.buckets[carrier.name].available(),
            )
        return room

    def _pacing_delay(self, numbers: list[tuple[str, str]]) -> float:
        carriers = {carrier for _n, carrier in numbers}
        waits = [self.buckets[c].seconds_until() for c in carriers if c in self.buckets]
        return min(waits, default=self.config.scheduler.poll_interval) or 0.05

    # -- one call ------------------------------------------------------------------------
    async def _dial_one(self, dial: Dial, rules: CampaignRules, tracker: CallTracker) -> None:
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

    async def _originate(self, dial: Dial, rules: CampaignRules, tracker: CallTracker) -> None:
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
                extra={"attempt_id": str(dial.attempt_id)},
            )
            return
        metrics.ORIGINATIONS.labels(str(dial.campaign_id), dial.carrier).inc()
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

    async def _conclude(self, attempt_id: uuid.UUID, end: Unsettled) -> None:
        """Write a call's end; if that fails, keep it (memory and journal) for the settler."""
        try:
            await self.settle_end(attempt_id, end)
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

    def keep(self, attempt_id: uuid.UUID, end: Unsettled) -> None:
        """Keep a call end that could not be written: in memory, and in the journal (so a
        restart loses nothing either); the settler writes it as soon as it can."""
        self.unsettled[attempt_id] = end
        self._count_kept()
        if self.journal is not None:
            try:
                self.journal.write(attempt_id, end)
            except OSError:
                log.exception(
                    "results journal write failed; the end is kept in memory only",
                    extra={"attempt_id": str(attempt_id)},
                )
        self._kept.set()

    def _forget_kept(self, attempt_id: uuid.UUID) -> None:
        self.unsettled.pop(attempt_id, None)
        self._count_kept()
        if self.journal is not None:
            try:
                self.journal.remove(attempt_id)
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
            self.kept_results.pop(attempt_id, None)
            self._count_kept()
            if self.journal is not None:
                with contextlib.suppress(OSError):
                    self.journal.remove_result(attempt_id)
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

    def keep_result(self, attempt_id: uuid.UUID, result: WorkerResult) -> None:
        """Keep a worker's result the database could not take (memory and journal)."""
        self.kept_results[attempt_id] = result
        self._count_kept()
        if self.journal is not None:
            try:
                self.journal.write_result(attempt_id, result)
            except OSError:
                log.exception(
                    "results journal write failed; the result is kept in memory only",
                    extra={"attempt_id": str(attempt_id)},
                )
        self._kept.set()

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
        if requeue_it:
            decision = requeue(ended + timedelta(seconds=REQUEUE_DELAY))
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
            conn, row.contact_id, decision.contact_state, decision.next_at, uncount
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

    def _settle_window(self, rules: CampaignRules, row: OpenAttempt) -> Window:
        """The window a callback or retry of this attempt's contact is moved into."""
        return rules.window

    async def test_call(
        self, bot: str, to: str, caller_id: str, carrier: str, ring_timeout: float
    ) -> tuple[uuid.UUID, TrackedCall]:
        """Place one call outside any campaign (`dialler test-call`): recorded in the bot's
        test-call campaign, a bot slot reserved like any dial. Raises `UnknownBot`,
        `TestCallInProgress`, `NoFreeWorker` or `DiallingUnavailable`."""
        tracker = self.tracker()
        if tracker is None:
            raise DiallingUnavailable()
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
