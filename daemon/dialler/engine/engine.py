"""The dialling engine of one daemon: claims due contacts, dials them, decides what follows.

Per tick, for each running campaign inside its window: in one transaction (campaign row locked,
so several daemons never race past `concurrency`) count the campaign's in-flight contacts,
claim up to the free slots — bounded by each carrier's channels and calls per second — with
`FOR UPDATE SKIP LOCKED`, and create their attempts; then originate each over AMI and follow
it. When a call's result is final, the attempt and the decision taken on it (retry, callback,
stop, exhaustion) are written in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import metrics
from ..ami.calls import CallResultLost, CallTracker, TrackedCall
from ..ami.client import AmiUnavailable, OriginateRequest
from ..config import Config
from ..store.queries import load
from ..domain.outcomes import DialResult, Outcome
from ..domain.rules import AttemptFacts, Decision, NextAction, decide, requeue
from .campaigns import CampaignRules, rules_from_row
from .pacing import TokenBucket, deal_caller_ids, deal_workers

log = logging.getLogger(__name__)
Q = load("engine.sql")
F = load("fleet.sql")
T = load("testcall.sql")


class TestCallRefused(Exception):
    """A test call that cannot be placed: HTTP status, message and the field at fault."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.field = status, field
REQUEUE_DELAY = 5.0  # after our own failure, before the contact is due again


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
    def __init__(self, config: Config, pool: Any, trackers: Mapping[str, CallTracker],
                 daemon_id: str) -> None:
        self.config = config
        self.pool = pool
        self.trackers = dict(trackers)
        self.daemon_id = daemon_id
        self.buckets = {c.name: TokenBucket(c.calls_per_second) for c in config.carriers}
        self.wake = asyncio.Event()
        self.draining = False
        self.live: dict[uuid.UUID, asyncio.Task[None]] = {}
        self.dials = 0
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
        poll = self.config.scheduler.poll_interval
        while not stop.is_set():
            try:
                delay = await self.tick()
            except Exception:
                log.exception("scheduler tick failed; retrying")
                delay = poll
            self.wake.clear()
            waiter = asyncio.ensure_future(self.wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, timeout=min(delay, poll),
                               return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()

    async def tick(self) -> float:
        """One pass over running campaigns; returns how soon the next pass is worth doing."""
        async with self.pool.acquire() as conn:
            completed = await conn.fetch(Q["complete_finished_campaigns"])
            for row in completed:
                log.info("campaign completed", extra={"campaign_id": str(row["id"])})
            if self.draining:
                return self.config.scheduler.poll_interval
            tracker = self.tracker()
            if tracker is None:
                return self.config.scheduler.poll_interval  # AMI down: claim nothing
            campaigns = await conn.fetch(Q["running_campaigns"])
        next_in = self.config.scheduler.poll_interval
        now = datetime.now(UTC)
        for row in campaigns:
            rules = rules_from_row(row)
            if not rules.window.is_open(now):
                continue
            next_in = min(next_in, await self._fill(row, rules, tracker))
        return next_in

    async def _fill(self, row: Mapping[str, Any], rules: CampaignRules,
                    tracker: CallTracker) -> float:
        """Claim and dial for one campaign; returns the delay until pacing allows more."""
        campaign_id: uuid.UUID = row["id"]
        dials: list[Dial] = []
        with metrics.CLAIM_DURATION.time():
            delay = await self._claim(campaign_id, rules, tracker, dials)
        if delay is not None:
            return delay
        for dial in dials:
            self.buckets[dial.carrier].take(1)
        await asyncio.gather(*(self._originate(dial, rules, tracker) for dial in dials))
        self.dials += len(dials)
        return 0.0 if self._claimed_all else self.config.scheduler.poll_interval

    async def _claim(self, campaign_id: uuid.UUID, rules: CampaignRules, tracker: CallTracker,
                     dials: list[Dial]) -> float | None:
        """The claim transaction; fills `dials`. Returns a delay when nothing was claimed."""
        async with self.pool.acquire() as conn, conn.transaction():
            concurrency = await conn.fetchval(Q["lock_campaign_for_claim"], campaign_id)
            if concurrency is None:
                return self.config.scheduler.poll_interval
            free = concurrency - await conn.fetchval(Q["campaign_in_flight"], campaign_id)
            if free <= 0:
                return self.config.scheduler.poll_interval
            # Fleet slots and carrier channels are shared by every campaign and daemon.
            await conn.execute(F["lock_fleet"])
            fleet = [(r["name"], r["free"]) for r in await conn.fetch(
                F["fleet_free"], self.config.fleet.heartbeat_timeout)]
            free = min(free, sum(n for _w, n in fleet))
            if free <= 0:
                return self.config.scheduler.poll_interval  # no bot free: never dial
            in_flight = {r["carrier"]: r["n"] for r in await conn.fetch(Q["carriers_in_flight"])}
            room = {}
            for carrier in self.config.carriers:
                room[carrier.name] = min(carrier.max_channels - in_flight.get(carrier.name, 0),
                                         self.buckets[carrier.name].available())
            numbers = [(r["number"], r["carrier"])
                       for r in await conn.fetch(Q["campaign_caller_ids"], campaign_id)]
            dealt = deal_caller_ids(numbers, room, free)
            if not dealt:
                return self._pacing_delay(numbers)
            deadline = rules.ring_timeout + self.config.scheduler.dial_margin
            claimed = await conn.fetch(
                Q["claim_contacts"], campaign_id, len(dealt), self.daemon_id, deadline,
                [d[0] for d in dealt], [d[1] for d in dealt], tracker.ami.name)
            if not claimed:
                return self.config.scheduler.poll_interval
            # A bot slot is reserved before the dial: a callee is never connected to silence
            # for lack of capacity.
            await conn.execute(F["reserve_slots"], [r["id"] for r in claimed],
                               deal_workers(fleet, len(claimed)))
            await conn.execute(Q["touch_numbers"], list({r["caller_id"] for r in claimed}))
            await conn.execute(Q["mark_campaign_dialled"], campaign_id)
            for r in claimed:
                dials.append(Dial(r["id"], r["contact_id"], campaign_id, r["phone_number"],
                                  r["caller_id"], r["carrier"], r["attempts_used"],
                                  r["counts_toward_max"]))
            self._claimed_all = len(dials) == len(dealt)
        return None

    def _pacing_delay(self, numbers: list[tuple[str, str]]) -> float:
        carriers = {carrier for _n, carrier in numbers}
        waits = [self.buckets[c].seconds_until() for c in carriers if c in self.buckets]
        return min(waits, default=self.config.scheduler.poll_interval) or 0.05

    # -- one call ------------------------------------------------------------------------
    async def _originate(self, dial: Dial, rules: CampaignRules, tracker: CallTracker) -> None:
        endpoint = self.config.carrier(dial.carrier).endpoint
        request = OriginateRequest(
            attempt_id=str(dial.attempt_id), channel=f"PJSIP/{dial.phone}@{endpoint}",
            context=tracker.ami.config.originate_context, caller_id=dial.caller_id,
            ring_timeout=rules.ring_timeout)
        try:
            call = await tracker.dial(request)
        except AmiUnavailable:
            # Nothing was sent: as if never claimed (no attempt used, nothing to report).
            async with self.pool.acquire() as conn:
                await conn.execute(Q["unclaim"], dial.attempt_id)
            log.warning("ami down before dialling; contact requeued",
                        extra={"attempt_id": str(dial.attempt_id)})
            return
        metrics.ORIGINATIONS.labels(str(dial.campaign_id), dial.carrier).inc()
        self._carriers[dial.attempt_id] = dial.carrier
        self._follow(dial.attempt_id, call)

    def _follow(self, attempt_id: uuid.UUID, call: TrackedCall) -> None:
        task = asyncio.create_task(self._await_result(attempt_id, call),
                                   name=f"call-{attempt_id}")
        self.live[attempt_id] = task
        task.add_done_callback(lambda _t: self.live.pop(attempt_id, None))

    async def _await_result(self, attempt_id: uuid.UUID, call: TrackedCall) -> None:
        try:
            result = await call.result
        except CallResultLost:
            answered = call.answered_at is not None
            result = DialResult(Outcome.ANSWERED if answered else Outcome.NO_ANSWER,
                                200 if answered else None, answered_at=call.answered_at,
                                ended_at=time.time(), reason="result lost")
            await self.finalise(attempt_id, result, disposition="timeout")
            return
        if result.outcome is Outcome.ANSWERED:
            await self.end_answered(attempt_id, result)
        else:
            await self.finalise(attempt_id, result, disposition=result.outcome.value)

    def _on_stage(self, call: TrackedCall, stage: str) -> None:
        if stage == "answered" and call.answered_at is not None:
            carrier = self._carriers.get(uuid.UUID(call.attempt_id))
            if carrier is not None:
                metrics.ORIGINATE_TO_ANSWER.labels(carrier).observe(
                    max(0.0, call.answered_at - call.sent_at))
            task = asyncio.get_running_loop().create_task(
                self._mark_answered(uuid.UUID(call.attempt_id), call.answered_at))
            task.add_done_callback(_log_failure)

    async def _mark_answered(self, attempt_id: uuid.UUID, at: float) -> None:
        async with self.pool.acquire() as conn:
            waited = await conn.fetchval(Q["mark_answered"], attempt_id, utc(at),
                                         self.config.scheduler.max_call_length)
        if waited is not None:
            metrics.ANSWER_TO_ATTACH.observe(max(0.0, waited))

    # -- results -------------------------------------------------------------------------
    async def finalise(self, attempt_id: uuid.UUID, result: DialResult, disposition: str,
                       *, requeue_it: bool = False) -> Decision | None:
        """Write the attempt's result and the decision on it; None if already final."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(Q["lock_open_attempt"], attempt_id)
            if row is None:
                return None
            ended = utc(result.ended_at) or datetime.now(UTC)
            return await self._settle(conn, row, result.outcome, result.sip_code,
                                      utc(result.answered_at), ended, result.talk_seconds,
                                      disposition, row["callback_at"], requeue_it)

    async def end_answered(self, attempt_id: uuid.UUID, result: DialResult) -> None:
        """An answered call hung up: final now if its worker's result (or `abandoned`) is in,
        else `wrapping` until the result arrives or `result_timeout` passes."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(Q["lock_open_attempt"], attempt_id)
            if row is None:
                return
            answered, ended = utc(result.answered_at), utc(result.ended_at) or datetime.now(UTC)
            if row["disposition"] is not None:
                await self._settle(conn, row, Outcome.ANSWERED, 200, answered, ended,
                                   result.talk_seconds, row["disposition"], row["callback_at"])
                return
            await conn.execute(Q["mark_wrapping"], attempt_id, answered, ended,
                               int(result.talk_seconds * 1000),
                               self.config.scheduler.result_timeout)

    async def record_result(self, attempt_id: uuid.UUID, disposition: str,
                            callback_at: datetime | None, notes: str | None) -> str:
        """A worker's result: `final` (decided now), `stored` (the call is still up: decided
        at hang-up), `already_final` or `unknown`."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(Q["lock_open_attempt"], attempt_id)
            if row is None:
                exists = await conn.fetchval("SELECT 1 FROM attempts WHERE id = $1", attempt_id)
                return "already_final" if exists else "unknown"
            await conn.execute(Q["store_result"], attempt_id, disposition, callback_at, notes)
            if row["state"] != "wrapping":
                return "stored"
            talk = (row["duration_ms"] or 0) / 1000.0
            await self._settle(conn, row, Outcome.ANSWERED, 200, row["answered_at"],
                               row["ended_at"], talk, disposition, callback_at)
            return "final"

    async def _settle(self, conn: Any, row: Mapping[str, Any], outcome: Outcome,
                      sip_code: int | None, answered_at: datetime | None, ended: datetime,
                      talk_seconds: float, disposition: str, callback_at: datetime | None,
                      requeue_it: bool = False) -> Decision:
        """Decide what follows and write it all (attempt, contact, slot) in the caller's
        transaction, the attempt row being locked."""
        attempt_id = row["id"]
        rules = rules_from_row(await conn.fetchrow(Q["campaign_rules"], row["campaign_id"]))
        used = row["attempts_used"]
        if requeue_it:
            decision = requeue(ended + timedelta(seconds=REQUEUE_DELAY))
        else:
            decision = decide(AttemptFacts(
                outcome=outcome.value, disposition=disposition, talk_seconds=talk_seconds,
                ended_at=ended, callback_at=callback_at, attempts_used=used),
                rules.retry, rules.redial, rules.window)
            if rules.cancelled and decision.action in (NextAction.RETRY, NextAction.CALLBACK):
                decision = Decision(NextAction.CANCELLED, None, "cancelled")
        await conn.execute(
            Q["finalise_attempt"], attempt_id, answered_at, ended, sip_code, outcome.value,
            disposition, int(talk_seconds * 1000), decision.action.value, decision.next_at)
        uncount = int(requeue_it and row["counts_toward_max"])
        await conn.execute(Q["settle_contact"], row["contact_id"], decision.contact_state,
                           decision.next_at, uncount)
        await conn.execute(F["release_slot"], attempt_id)
        campaign = str(row["campaign_id"])
        metrics.ATTEMPT_OUTCOMES.labels(campaign, outcome.value).inc()
        carrier = self._carriers.pop(attempt_id, None)
        if outcome is not Outcome.ANSWERED and carrier is not None:
            metrics.SIP_RESPONSES.labels(carrier, metrics.sip_code_label(sip_code)).inc()
        log.info("attempt final", extra={
            "attempt_id": str(attempt_id), "campaign_id": str(row["campaign_id"]),
            "outcome": outcome.value, "sip_code": sip_code, "disposition": disposition,
            "next_action": decision.action.value})
        self.wake.set()
        return decision

    async def test_call(self, bot: str, to: str, caller_id: str, carrier: str,
                        ring_timeout: float) -> tuple[uuid.UUID, TrackedCall]:
        """Place one call outside any campaign (`dialler test-call`): recorded in the bot's
        test-call campaign, a bot slot reserved like any dial. Raises `TestCallRefused`."""
        tracker = self.tracker()
        if tracker is None:
            raise TestCallRefused(503, "AMI is down: nothing can be dialled")
        attempt_id = uuid.uuid4()
        deadline = ring_timeout + self.config.scheduler.dial_margin
        async with self.pool.acquire() as conn, conn.transaction():
            bot_row = await conn.fetchrow(T["bot_by_name"], bot)
            if bot_row is None:
                raise TestCallRefused(404, f"no bot named {bot!r}", "bot")
            campaign_id = await conn.fetchval(T["test_campaign"], f"test-call: {bot}",
                                              bot_row["id"], int(ring_timeout * 1000))
            contact_id = await conn.fetchval(T["test_contact"], campaign_id, to,
                                             self.daemon_id, deadline)
            if contact_id is None:
                raise TestCallRefused(409, "a test call to this number is in progress", "to")
            await conn.execute(F["lock_fleet"])
            fleet = [(r["name"], r["free"]) for r in await conn.fetch(
                F["fleet_free"], self.config.fleet.heartbeat_timeout)]
            if not fleet:
                raise TestCallRefused(503, "no bot worker has a free slot")
            await conn.execute(T["test_attempt"], attempt_id, contact_id, campaign_id,
                               caller_id, carrier, tracker.ami.name, self.daemon_id, deadline)
            await conn.execute(F["reserve_slots"], [attempt_id], deal_workers(fleet, 1))
        endpoint = self.config.carrier(carrier).endpoint
        try:
            call = await tracker.dial(OriginateRequest(
                attempt_id=str(attempt_id), channel=f"PJSIP/{to}@{endpoint}",
                context=tracker.ami.config.originate_context, caller_id=caller_id,
                ring_timeout=ring_timeout))
        except AmiUnavailable:
            async with self.pool.acquire() as conn:
                await conn.execute(Q["unclaim"], attempt_id)
            raise TestCallRefused(503, "AMI is down: nothing can be dialled") from None
        self._follow(attempt_id, call)
        return attempt_id, call

    async def drain(self, timeout: float) -> int:
        """Stop claiming and wait for live calls to finish (up to `timeout` s); returns how
        many were still live."""
        self.draining = True
        if self.live:
            await asyncio.wait(list(self.live.values()), timeout=timeout)
        return len(self.live)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background write failed", exc_info=task.exception())
