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

Nothing is decided while an Asterisk's AMI is down: an attempt is never guessed about.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from ..ami.calls import CallTracker
from ..domain.outcomes import DialResult, Outcome
from ..domain.states import Disposition
from ..store import engine as store
from ..store.engine import StaleAttempt
from .engine import Engine

__all__ = ["Recovery"]

log = logging.getLogger(__name__)
ANSWERED_STATE = "6"  # AMI ChannelState "Up"


class Recovery:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._adopted: dict[str, list[str]] = {}  # this pass's adoptions, per Asterisk

    async def run_once(self) -> int:
        """Reconcile every stale open attempt; returns how many were finalised."""
        sched = self.engine.config.scheduler
        async with self.engine.pool.acquire() as conn:
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
        nobody: list again, now that the adopted calls are followed, and close those gone."""
        for name, adopted in self._adopted.items():
            tracker = self.engine.trackers[name]
            try:
                alive = await tracker.ami.live_channels()
            except Exception:
                log.warning("cannot list channels; adopted calls checked later")
                continue
            for attempt_id in adopted:
                if tracker.lost_unless_alive(attempt_id, alive):
                    log.warning(
                        "adopted call had already ended; closed as lost",
                        extra={"attempt_id": attempt_id},
                    )

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
        if tracker is None or alive is None:
            return 0  # that Asterisk is unreachable (or unknown here): decide nothing
        attempt_id = row.id
        key = str(attempt_id)
        sched = self.engine.config.scheduler
        now = datetime.now(UTC)
        if key in alive:
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
        call = tracker.calls.get(key)
        if call is not None and call.ended_at is not None:
            return 0  # its result is being decided right now
        tracker.forget(key)
        if attempt_id in self.engine.unsettled:
            # This daemon saw the end but could not write it: write what it saw.
            decided = await self.engine.write_kept(attempt_id)
            log.warning("call end written late by recovery", extra={"attempt_id": key})
            return int(decided is not None)
        if row.daemon_id == self.engine.daemon_id and self.engine.following(attempt_id):
            return 0  # followed again since the query (or its end is being written now)
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

    def _adopt(self, tracker: CallTracker, row: StaleAttempt, state: str) -> None:
        dialled = row.dialled_at
        call = tracker.adopt(
            str(row.id),
            ring_timeout=row.ring_timeout_ms / 1000.0,
            sent_at=dialled.timestamp() if dialled else time.time(),
            channel_state=state,
        )
        self.engine.follow(row.id, call)
        self._adopted.setdefault(tracker.ami.name, []).append(str(row.id))
        log.info("adopted a live call of a stopped daemon", extra={"attempt_id": str(row.id)})
