"""Follow each originated call through its AMI events to a `DialResult`.

The attempt's UUID is the channel's Uniqueid (Originate `ChannelId`), so every event of the call
is matched by that id alone. Verified on Asterisk 22.10 (see docs/asterisk.md):

- `Newchannel` → the call was placed; `Newstate` 5 → ringing; `Newstate` 6 → answered;
- `Hangup` → `Cause` (Q.850) and `TechCause` (the SIP code; a synthesised 480 when our own
  ring timeout fired);
- `OriginateResponse` → `Reason` 4 answered, 3 our ring timeout expired, 0 failed; a failure
  with no channel ever created means the call could not be placed.

A result is final once the channel hung up and the OriginateResponse arrived (or the call was
answered, whose OriginateResponse comes at answer time). A failed OriginateResponse with no
channel event yet is judged "not placed" only after `ORIGINATE_RESPONSE_GRACE`: the channel's
events may trail it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..domain.outcomes import (
    DialResult,
    Outcome,
    classify,
    parse_tech_cause,
    sip_code_from_q850,
)
from .client import AmiActionFailed, AmiClient, AmiDisconnected, AmiEvent, OriginateRequest

log = logging.getLogger(__name__)

REASON_RING_TIMEOUT = "3"
# The OriginateResponse normally follows the Hangup within milliseconds; if it never comes
# (connection lost meanwhile) the result is decided without it after this grace period.
ORIGINATE_RESPONSE_GRACE = 2.0


class CallResultLost(Exception):
    """The AMI connection dropped and the call ended meanwhile: its result is unknown."""


@dataclass(slots=True)
class TrackedCall:
    """One dial in progress, as seen on AMI."""

    attempt_id: str
    ring_timeout: float
    sent_at: float  # wall clock (time.time) when the Originate was sent
    result: asyncio.Future[DialResult]
    placed: bool = False
    channel: str | None = None
    ringing_at: float | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    cause: int | None = None
    tech_cause: int | None = None
    has_tech_cause: bool = False
    originate_reason: str | None = None
    originate_failed: bool = False
    stages: list[tuple[str, float]] = field(default_factory=list)
    _grace: asyncio.TimerHandle | None = None

    def stage(self, name: str, at: float) -> None:
        self.stages.append((name, at))


class CallTracker:
    """Places calls through one Asterisk and resolves each to a `DialResult`."""

    def __init__(
        self,
        ami: AmiClient,
        clock: Callable[[], float] = time.time,
        on_stage: Callable[[TrackedCall, str], None] | None = None,
    ) -> None:
        self.ami = ami
        self.clock = clock
        self.on_stage = on_stage
        self.calls: dict[str, TrackedCall] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        ami.add_listener(self.on_event)
        ami.on_up(self._on_reconnect)

    async def dial(self, request: OriginateRequest) -> TrackedCall:
        """Originate and track the call; its `result` resolves to a `DialResult`, or to
        `CallResultLost` when the AMI link dropped and the call's end was missed.

        Raises `AmiUnavailable` only when nothing was sent (safe to try again later). A refusal
        by Asterisk resolves to an `error` result (not placed). An Originate whose response was
        lost is *not* raised and never re-sent: the call may be up, so it stays tracked and is
        reconciled against Asterisk's live channels once the link is back.
        """
        loop = asyncio.get_running_loop()
        call = TrackedCall(
            request.attempt_id, request.ring_timeout, self.clock(), loop.create_future()
        )
        # Registered before sending: events can arrive before the Originate's own response.
        self.calls[request.attempt_id] = call
        try:
            await self.ami.originate(request)
        except AmiActionFailed as exc:
            self._finish(
                call, DialResult(Outcome.ERROR, None, ended_at=self.clock(), reason=str(exc))
            )
        except AmiDisconnected:
            call.stage("originate-unacknowledged", self.clock())
            self._spawn(self._reconcile_when_ready(), "ami-reconcile-unacked")
        except BaseException:
            self.calls.pop(request.attempt_id, None)
            raise
        else:
            call.stage("originated", self.clock())
        return call

    async def _reconcile_when_ready(self) -> None:
        await self.ami.until_ready()
        await asyncio.sleep(ORIGINATE_RESPONSE_GRACE)  # let a just-queued originate show up
        await self.reconcile()

    def forget(self, attempt_id: str) -> None:
        call = self.calls.pop(attempt_id, None)
        if call is not None and call._grace is not None:
            call._grace.cancel()

    # -- events ----------------------------------------------------------------------------
    def on_event(self, event: AmiEvent) -> None:
        name = event.get("Event", "")
        uid = event.get("Uniqueid", "")
        call = self.calls.get(uid)
        if call is None:
            return
        now = self.clock()
        if name == "Newchannel":
            call.placed = True
            call.channel = event.get("Channel")
        elif name == "Newstate":
            self._on_newstate(call, event.get("ChannelState", ""), now)
        elif name == "Hangup":
            self._on_hangup(call, event, now)
        elif name == "OriginateResponse":
            call.originate_reason = event.get("Reason", "")
            call.originate_failed = event.get("Response", "").lower() != "success"
            self._try_finish(call)

    def _on_newstate(self, call: TrackedCall, state: str, now: float) -> None:
        call.placed = True
        if state == "5" and call.ringing_at is None:
            call.ringing_at = now
            self._stage(call, "ringing", now)
        elif state == "6" and call.answered_at is None:
            call.answered_at = now
            self._stage(call, "answered", now)

    def _stage(self, call: TrackedCall, name: str, now: float) -> None:
        call.stage(name, now)
        if self.on_stage is not None:
            self.on_stage(call, name)

    def adopt(
        self, attempt_id: str, ring_timeout: float, sent_at: float, channel_state: str
    ) -> TrackedCall:
        """Follow a live call placed by someone else (a crashed daemon) from now on."""
        call = TrackedCall(
            attempt_id,
            ring_timeout,
            sent_at,
            asyncio.get_running_loop().create_future(),
            placed=True,
        )
        call.stage("adopted", self.clock())
        self.calls[attempt_id] = call
        self._on_newstate(call, channel_state, self.clock())
        return call

    def lost_unless_alive(self, attempt_id: str, alive: Mapping[str, str]) -> bool:
        """An adopted call checked against a channel listing taken *after* its adoption: if
        its channel is gone and no Hangup came, the Hangup went by before the call was
        followed — resolve it as lost (`CallResultLost`) rather than wait for an event that
        will never come. True when it was."""
        call = self.calls.get(attempt_id)
        if call is None or call.result.done() or attempt_id in alive or call.ended_at is not None:
            return False
        self.forget(attempt_id)
        call.result.set_exception(
            CallResultLost(f"attempt {attempt_id}: channel gone before it was adopted")
        )
        return True

    def _on_hangup(self, call: TrackedCall, event: AmiEvent, now: float) -> None:
        call.placed = True
        call.ended_at = now
        cause = event.get("Cause", "")
        call.cause = int(cause) if cause.isdigit() else None
        call.has_tech_cause = "TechCause" in event
        call.tech_cause = parse_tech_cause(event.get("TechCause"))
        call.stage("hangup", now)
        self._try_finish(call)
        if not call.result.done():
            loop = asyncio.get_running_loop()
            call._grace = loop.call_later(ORIGINATE_RESPONSE_GRACE, self._try_finish, call, True)

    def _try_finish(self, call: TrackedCall, grace_over: bool = False) -> None:
        if call.result.done():
            return
        if call.originate_failed and not call.placed:
            if not grace_over:
                # The channel's own events (Newchannel, Hangup) travel apart from the
                # OriginateResponse inside Asterisk and can trail it when it is busy (seen at
                # 500 dials at once: the carrier got the INVITE of a call taken as never
                # placed, and requeued). A call placed must never pass for one that was not —
                # it would be dialled again: decided once its events had time to arrive.
                if call._grace is None:
                    call._grace = asyncio.get_running_loop().call_later(
                        ORIGINATE_RESPONSE_GRACE, self._try_finish, call, True
                    )
                return
            # Asterisk could not even create the channel (unknown endpoint, no resources).
            self._finish(
                call,
                DialResult(
                    Outcome.ERROR,
                    None,
                    ended_at=self.clock(),
                    reason=f"not placed (reason {call.originate_reason})",
                ),
            )
            return
        if call.ended_at is None:
            return
        if call.originate_reason is None and call.answered_at is None and not grace_over:
            return
        self._finish(call, self._result(call))

    def _our_ring_timeout(self, call: TrackedCall) -> bool:
        """Did the dial end because our own ring timeout fired (not a callee's response)?"""
        assert call.ended_at is not None
        elapsed = call.ended_at - call.sent_at
        long_enough = elapsed >= call.ring_timeout * 0.98 - 0.05
        if call.originate_reason is not None:
            return call.originate_reason == REASON_RING_TIMEOUT and long_enough
        # No OriginateResponse (connection lost): Asterisk reports its own timeout as 480/19.
        return long_enough and call.tech_cause in (None, 480) and call.cause in (None, 19)

    def _result(self, call: TrackedCall) -> DialResult:
        answered = call.answered_at is not None
        code = call.tech_cause if call.has_tech_cause else sip_code_from_q850(call.cause)
        our_timeout = not answered and self._our_ring_timeout(call)
        outcome, sip_code = classify(
            placed=call.placed, answered=answered, sip_code=code, our_ring_timeout=our_timeout
        )
        reason = (
            "answered"
            if answered
            else (
                "ring timeout"
                if our_timeout
                else f"SIP {sip_code}"
                if sip_code
                else "no final code"
            )
        )
        return DialResult(
            outcome, sip_code, answered_at=call.answered_at, ended_at=call.ended_at, reason=reason
        )

    def _finish(self, call: TrackedCall, result: DialResult) -> None:
        self.forget(call.attempt_id)
        if not call.result.done():
            call.result.set_result(result)

    # -- reconnect -------------------------------------------------------------------------
    def _on_reconnect(self) -> None:
        if self.calls:
            self._spawn(self.reconcile(), "ami-reconcile")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run `work` in a task kept until it ends; a failure is logged, never left unseen."""

        async def logged() -> None:
            try:
                await work
            except Exception:
                log.exception("ami reconciliation failed", extra={"asterisk": self.ami.name})

        task = asyncio.get_running_loop().create_task(logged(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reconcile(self) -> None:
        """After a reconnect: calls whose channel is gone and whose end we missed are lost.

        Their outcome cannot be known any more; the attempt layer records them as such and never
        re-dials them blindly (at-most-once).
        """
        try:
            alive = await self.ami.live_channels()
        except Exception:
            log.warning("reconcile after reconnect failed; will retry on the next reconnect")
            return
        now = self.clock()
        for attempt_id, call in list(self.calls.items()):
            if call.result.done():
                continue
            if attempt_id in alive:
                # Catch up on what the outage hid (answered meanwhile: the answer time is when
                # we learnt it, the best bound we have).
                self._on_newstate(call, alive[attempt_id], now)
                continue
            if call.ended_at is not None:
                self._try_finish(call, grace_over=True)
                continue
            self.forget(attempt_id)
            call.result.set_exception(
                CallResultLost(f"attempt {attempt_id}: channel gone while AMI was disconnected")
            )
