"""Stale-state handling: open attempts past their deadline, or left by a crashed daemon, are
reconciled with Asterisk before anything is re-dialled.

- channel still alive → keep it (extend the deadline; adopt it if its daemon is dead);
- channel gone → the result was missed: finalise with disposition `timeout` (outcome
  `answered` if it had been answered, else `no_answer` with no SIP code) and apply the rules.

Nothing is decided while an Asterisk's AMI is down: an attempt is never guessed about.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ..ami.calls import CallTracker
from ..domain.outcomes import DialResult, Outcome
from .engine import Engine, Q

log = logging.getLogger(__name__)


class Recovery:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.recovered = 0
        self.adopted = 0

    async def run_once(self) -> int:
        """Reconcile every stale open attempt; returns how many were finalised."""
        sched = self.engine.config.scheduler
        async with self.engine.pool.acquire() as conn:
            rows = await conn.fetch(Q["stale_attempts"], 3 * sched.heartbeat_interval)
        if not rows:
            return 0
        alive_by_pbx: dict[str, dict[str, str]] = {}
        for name, tracker in self.engine.trackers.items():
            if tracker.ami.ready:
                try:
                    alive_by_pbx[name] = await tracker.ami.live_channels()
                except Exception:
                    log.warning("cannot list channels; reconciling later",
                                extra={"asterisk": name})
        finalised = 0
        for row in rows:
            finalised += await self._reconcile(row, alive_by_pbx)
        return finalised

    async def _reconcile(self, row: Mapping[str, Any],
                         alive_by_pbx: Mapping[str, Mapping[str, str]]) -> int:
        pbx = row["asterisk"]
        tracker = self.engine.trackers.get(pbx)
        alive = alive_by_pbx.get(pbx)
        if tracker is None or alive is None:
            return 0  # that Asterisk is unreachable (or unknown here): decide nothing
        attempt_id: uuid.UUID = row["id"]
        key = str(attempt_id)
        sched = self.engine.config.scheduler
        now = datetime.now(UTC)
        if key in alive:
            ours = row["daemon_id"] == self.engine.daemon_id and key in tracker.calls
            extend = sched.max_call_length if alive[key] == "6" else sched.dial_margin
            async with self.engine.pool.acquire() as conn:
                if ours:
                    await conn.execute(Q["extend_deadline"], attempt_id,
                                       now + timedelta(seconds=extend))
                else:
                    await conn.execute(Q["adopt_attempt"], attempt_id, self.engine.daemon_id,
                                       now + timedelta(seconds=extend))
            if not ours:
                self._adopt(tracker, row, alive[key])
            return 0
        # Gone, and its end was never recorded.
        call = tracker.calls.get(key)
        if call is not None and call.ended_at is not None:
            return 0  # its result is being decided right now
        tracker.forget(key)
        answered_at, ended_at = row["answered_at"], row["ended_at"]
        result = DialResult(
            Outcome.ANSWERED if answered_at else Outcome.NO_ANSWER,
            200 if answered_at else None,
            answered_at=answered_at.timestamp() if answered_at else None,
            # A wrapping call ended at a known time (its bot's result never came).
            ended_at=ended_at.timestamp() if ended_at else time.time(),
            reason="stale: channel gone")
        decision = await self.engine.finalise(attempt_id, result, disposition="timeout")
        if decision is not None:
            self.recovered += 1
            log.warning("stale attempt finalised as timeout", extra={
                "attempt_id": key, "campaign_id": str(row["campaign_id"])})
            return 1
        return 0

    def _adopt(self, tracker: CallTracker, row: Mapping[str, Any], state: str) -> None:
        dialled = row["dialled_at"]
        call = tracker.adopt(str(row["id"]), ring_timeout=row["ring_timeout_ms"] / 1000.0,
                             sent_at=dialled.timestamp() if dialled else time.time(),
                             channel_state=state)
        self.engine._follow(row["id"], call)
        self.adopted += 1
        log.info("adopted a live call of a stopped daemon", extra={"attempt_id": str(row["id"])})
