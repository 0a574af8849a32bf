"""Stale-state handling: open attempts past their deadline, or left by a crashed daemon, are
reconciled with Asterisk before anything is re-dialled.

- channel still alive → keep it (extend the deadline; adopt it if its daemon is dead);
- channel gone → the result was missed: finalise with disposition `timeout` (outcome
  `answered` if it had been answered, else `no_answer` with no SIP code; a worker's result
  already stored wins over `timeout`) and apply the rules — unless this daemon saw the call end
  but could not write it (the database was away): then the end it kept (`Engine.unsettled`,
  the results journal) is written instead.

Calls of this daemon that it no longer follows (their end was lost with a database outage)
are reconciled on every pass, not only once past their deadline: within seconds of the
database being back.

A gone call whose end nobody saw (its daemon was killed, say) is settled from its Asterisk's
own record when there is one (CEL rows written into PostgreSQL by `cel_pgsql`): the answer and
hang-up times, and for an unanswered call the outcome of its Q.850 cause. Only without a
hang-up in that record is it `timeout`.

While an Asterisk's AMI is down, its calls are not guessed about: only those that need no
AMI are decided — ended already (`wrapping`), or past their deadline (no call is still up
then), from Asterisk's record when it has one. Calls this daemon follows on a down server are
closed by the servers loop (engine/servers.py) once they must have ended.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from ..ami.calls import CallTracker
from ..domain.outcomes import DialResult, Outcome, outcome_from_cause
from ..domain.states import AttemptState, Disposition
from ..store import cel
from ..store import engine as store
from ..store.engine import StaleAttempt
from .engine import Engine

__all__ = ["Recovery"]

log = logging.getLogger(__name__)
ANSWERED_STATE = "6"  # AMI ChannelState "Up"
#: Asterisk's CEL rows are kept this long (a call's record matters for minutes after it ends;
#: a day leaves room for a daemon down overnight) and pruned this often.
CEL_KEEP = 86_400.0
CEL_PRUNE_EVERY = 3_600.0
#: How long a gone call whose CEL record has begun (CHAN_START) waits for its hang-up row.
CEL_GRACE = 10.0


class Recovery:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._adopted: dict[str, list[StaleAttempt]] = {}  # this pass's adoptions, per Asterisk
        self._pruned_at: float | None = None  # monotonic time of the last CEL pruning
        #: Gone calls whose CEL record has no hang-up yet: since when (monotonic).
        self._record_pending: dict[uuid.UUID, float] = {}

    async def run_once(self) -> int:
        """Reconcile every stale open attempt; returns how many were finalised."""
        sched = self.engine.config.scheduler
        async with self.engine.pool.acquire() as conn:
            now_mono = time.monotonic()
            for attempt_id, since in list(self._record_pending.items()):
                if now_mono - since > 6 * CEL_GRACE:  # settled some other way meanwhile
                    del self._record_pending[attempt_id]
            if self._pruned_at is None or now_mono - self._pruned_at >= CEL_PRUNE_EVERY:
                await cel.prune(conn, CEL_KEEP)
                self._pruned_at = now_mono
            rows = await store.stale_attempts(
                conn, 3 * sched.heartbeat_interval, self.engine.daemon_id
            )
        now = datetime.now(UTC)
        rows = [row for row in rows if not self._followed(row, now)]
        if not rows:
            return 0
        alive_by_pbx: dict[str, dict[str, str]] = {}
        for name, tracker in self.engine.trackers.items():
            if tracker.ami.ready:
                try:
                    alive_by_pbx[name] = await tracker.ami.live_channels()
                except Exception:
                    log.warning("cannot list channels; reconciling later", extra={"asterisk": name})
        finalised = 0
        self._adopted = {}
        for row in rows:
            finalised += await self._reconcile(row, alive_by_pbx)
        await self._recheck_adopted()
        return finalised

    async def _recheck_adopted(self) -> None:
        """A channel that hung up between the listing and its adoption sent its Hangup to
        nobody: list again, now that the adopted calls are followed, and close those gone —
        from Asterisk's own record of the hang-up when it has one, else as lost."""
        for name, adopted in self._adopted.items():
            tracker = self.engine.trackers[name]
            try:
                alive = await tracker.ami.live_channels()
            except Exception:
                log.warning("cannot list channels; adopted calls checked later")
                continue
            for row in adopted:
                attempt_id = str(row.id)
                call = tracker.calls.get(attempt_id)
                gone = (
                    call is not None
                    and not call.result.done()
                    and call.ended_at is None
                    and attempt_id not in alive
                )
                if gone and await self._settle_adopted_from_record(tracker, row, name):
                    continue
                if tracker.lost_unless_alive(attempt_id, alive):
                    log.warning(
                        "adopted call had already ended; closed as lost",
                        extra={"attempt_id": attempt_id},
                    )

    async def _settle_adopted_from_record(
        self, tracker: CallTracker, row: StaleAttempt, pbx: str
    ) -> bool:
        """An adopted call found gone: when Asterisk recorded its hang-up, stop following it
        (no `lost` conclusion will come) and settle it from the record. False when there is no
        hang-up in the record: the caller closes it as lost."""
        async with self.engine.pool.acquire() as conn:
            record = await cel.call_record(conn, row.id, pbx)
        if record is None or record.hungup_at is None:
            return False
        tracker.forget(str(row.id))
        task = self.engine.live.get(row.id)
        if task is not None:
            task.cancel()  # it awaits a result that will never come
        await self._from_asterisk_record(row, pbx)
        return True

    def _followed(self, row: StaleAttempt, now: datetime) -> bool:
        """One of this daemon's own calls that it follows and that is not overdue: nothing to
        reconcile."""
        own = row.daemon_id == self.engine.daemon_id
        return own and row.deadline_at > now and self.engine.following(row.id)

    async def _reconcile(
        self, row: StaleAttempt, alive_by_pbx: Mapping[str, Mapping[str, str]]
    ) -> int:
        pbx = row.asterisk or ""
        tracker = self.engine.trackers.get(pbx)
        alive = alive_by_pbx.get(pbx)
        attempt_id = row.id
        key = str(attempt_id)
        sched = self.engine.config.scheduler
        now = datetime.now(UTC)
        if tracker is None or alive is None:
            # That Asterisk is unreachable (or no longer configured). Its calls this daemon
            # follows are the servers loop's (engine/servers.py). Another's are decided only
            # once they need no AMI: ended already (`wrapping`), or past their deadline (a
            # call cannot still be up then) — from Asterisk's record if it has one.
            followed = tracker is not None and key in tracker.calls
            overdue = row.deadline_at <= now
            if followed or (row.state != AttemptState.WRAPPING and not overdue):
                return 0
            alive = {}
        if key in alive:
            assert tracker is not None
            ours = row.daemon_id == self.engine.daemon_id and key in tracker.calls
            extend = sched.max_call_length if alive[key] == ANSWERED_STATE else sched.dial_margin
            async with self.engine.pool.acquire() as conn:
                if ours:
                    await store.extend_deadline(conn, attempt_id, now + timedelta(seconds=extend))
                else:
                    await store.adopt_attempt(
                        conn, attempt_id, self.engine.daemon_id, now + timedelta(seconds=extend)
                    )
            if not ours:
                self._adopt(tracker, row, alive[key])
            return 0
        # Gone, and its end was never recorded.
        call = tracker.calls.get(key) if tracker is not None else None
        if call is not None and call.ended_at is not None:
            return 0  # its result is being decided right now
        if tracker is not None:
            tracker.forget(key)
        if attempt_id in self.engine.unsettled:
            # This daemon saw the end but could not write it: write what it saw.
            decided = await self.engine.write_kept(attempt_id)
            log.warning("call end written late by recovery", extra={"attempt_id": key})
            return int(decided is not None)
        if row.daemon_id == self.engine.daemon_id and self.engine.following(attempt_id):
            return 0  # followed again since the query (or its end is being written now)
        if row.ended_at is None:
            # Nobody saw it end: Asterisk's own record (CEL) may say how it did.
            recorded = await self._from_asterisk_record(row, pbx)
            if recorded is not None:
                return recorded
        self._record_pending.pop(attempt_id, None)
        answered_at, ended_at = row.answered_at, row.ended_at
        result = DialResult(
            Outcome.ANSWERED if answered_at else Outcome.NO_ANSWER,
            200 if answered_at else None,
            answered_at=answered_at.timestamp() if answered_at else None,
            # A wrapping call ended at a known time (its bot's result never came).
            ended_at=ended_at.timestamp() if ended_at else time.time(),
            reason="stale: channel gone",
        )
        decision = await self.engine.finalise(
            attempt_id, result, disposition=Disposition.TIMEOUT, expect_state=row.state
        )
        if decision is None:
            return 0
        log.warning(
            "stale attempt finalised as timeout",
            extra={"attempt_id": key, "campaign_id": str(row.campaign_id)},
        )
        return 1

    async def _from_asterisk_record(self, row: StaleAttempt, pbx: str) -> int | None:
        """Settle a call whose end nobody saw from the record its Asterisk wrote (CEL rows in
        PostgreSQL, docs/reliability.md): answered → its worker's result decides, as for any
        hang-up; unanswered → the outcome of its Q.850 cause, no SIP code. None when there is
        no hang-up in the record (no writer, or it was down): the caller decides `timeout`."""
        async with self.engine.pool.acquire() as conn:
            record = await cel.call_record(conn, row.id, pbx)
        if record is not None and record.hungup_at is None:
            # The channel is gone but its hang-up is not written yet: the writer runs behind
            # Asterisk (one INSERT per event). Wait for it, up to CEL_GRACE, before `timeout`.
            first = self._record_pending.setdefault(row.id, time.monotonic())
            if time.monotonic() - first < CEL_GRACE:
                return 0
        if record is None or record.hungup_at is None:
            return None
        self._record_pending.pop(row.id, None)
        answered_at = record.answered_at or row.answered_at
        ended = record.hungup_at.timestamp()
        outcome = outcome_from_cause(answered=answered_at is not None, cause=record.cause)
        key = str(row.id)
        if outcome is Outcome.ANSWERED:
            assert answered_at is not None
            result = DialResult(
                outcome,
                200,
                answered_at=answered_at.timestamp(),
                ended_at=ended,
                reason="from Asterisk's record",
            )
            decided = await self.engine.end_answered(row.id, result)
        else:
            result = DialResult(outcome, None, ended_at=ended, reason="from Asterisk's record")
            decided = await self.engine.finalise(
                row.id, result, disposition=outcome.value, expect_state=row.state
            )
        log.warning(
            "call end nobody saw taken from Asterisk's record",
            extra={"attempt_id": key, "outcome": outcome.value, "cause": record.cause},
        )
        return int(decided is not None)

    def _adopt(self, tracker: CallTracker, row: StaleAttempt, state: str) -> None:
        dialled = row.dialled_at
        call = tracker.adopt(
            str(row.id),
            ring_timeout=row.ring_timeout_ms / 1000.0,
            sent_at=dialled.timestamp() if dialled else time.time(),
            channel_state=state,
        )
        self.engine.follow(row.id, call)
        self._adopted.setdefault(tracker.ami.name, []).append(row)
        log.info("adopted a live call of a stopped daemon", extra={"attempt_id": str(row.id)})
