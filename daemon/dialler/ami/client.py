"""AMI connection to one Asterisk, on top of panoramisk, with the guarantees panoramisk lacks.

- **Never re-send an action.** panoramisk re-sends, after a reconnect, every action that had no
  response yet; for an Originate that is a double dial. Every action is declared forgettable
  here, and callers learn of the loss instead (`AmiDisconnected`), then reconcile.
- **Detect a dead connection.** panoramisk pings but never notices a missing pong. A watchdog
  sends `Ping` every `ping_interval`; no reply within `ping_timeout` (or no login within
  `connect_timeout`) aborts the transport, which makes panoramisk reconnect.
- **Originate acknowledged early.** An async Originate is completed by its first response
  ("successfully queued"); its `OriginateResponse` then arrives as an ordinary event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from panoramisk import Manager

from .. import metrics
from ..config import AsteriskConfig
from ..errors import OperationalError

log = logging.getLogger(__name__)

AmiEvent = Mapping[str, str]
EventListener = Callable[[AmiEvent], None]


class AmiUnavailable(OperationalError):
    """The AMI connection is down: nothing was sent."""


class AmiDisconnected(OperationalError):
    """The AMI connection dropped before Asterisk answered: the action's fate is unknown."""


class AmiActionFailed(OperationalError):
    """Asterisk refused the action."""


class _ForgetEverything:
    """panoramisk's `forgetable_actions`: no action is ever re-sent after a reconnect."""

    def __contains__(self, _item: object) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class OriginateRequest:
    attempt_id: str  # becomes the channel's Uniqueid (ChannelId)
    channel: str  # e.g. PJSIP/+447700900003@lab
    context: str
    caller_id: str
    ring_timeout: float  # seconds
    variables: Mapping[str, str] | None = None


def _flatten(message: Mapping[str, Any]) -> dict[str, str]:
    """panoramisk gives a list for a repeated header; keep the first value."""
    flat: dict[str, str] = {}
    for key, value in message.items():
        if key == "content":
            continue
        flat[key] = str(value[0]) if isinstance(value, list) and value else str(value)
    return flat


class AmiClient:
    """One Asterisk's AMI: connection, liveness, originate, events."""

    def __init__(self, config: AsteriskConfig) -> None:
        self.config = config
        self.name = config.name
        self._listeners: list[EventListener] = []
        self._on_up: list[Callable[[], None]] = []
        self._ready = asyncio.Event()
        self._pending: set[asyncio.Future[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._connected_at: float | None = None
        self.reconnects = 0
        self._closing = False
        ami = config.ami
        self._manager = Manager(
            host=ami.host,
            port=ami.port,
            username=ami.username,
            secret=ami.secret,
            events="on",
            reconnect_timeout=max(1, round(ami.reconnect_delay)),
            # panoramisk's own ping has no timeout; ours (the watchdog) replaces it.
            ping_delay=10**7,
            ping_interval=10**7,
            forgetable_actions=_ForgetEverything(),
            on_connect=self._on_connect,
            on_login=self._on_login,
            on_disconnect=self._on_disconnect,
        )
        self._manager.register_event("*", self._dispatch)
        metrics.AMI_CONNECTED.labels(self.name).set(0)  # a series from the start: AmiDown fires

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start connecting (and keep reconnecting); returns at once."""
        self._manager.loop = asyncio.get_running_loop()
        self._manager.connect()
        self._watchdog = asyncio.create_task(self._watch(), name=f"ami-watchdog-{self.name}")

    async def wait_ready(self, timeout: float) -> None:
        """Wait until logged in; `AmiUnavailable` after `timeout` seconds."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            raise AmiUnavailable(f"AMI {self.name}: not connected after {timeout:g}s") from None

    async def until_ready(self) -> None:
        """Wait, without limit, until the connection is up and logged in."""
        await self._ready.wait()

    async def close(self) -> None:
        self._closing = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        # Stop panoramisk's automatic reconnect before closing the transport.
        self._manager.connection_lost = lambda _exc: None
        if self._manager.protocol is not None:
            self._manager.protocol.factory = self._manager
        self._manager.close()
        self._fail_pending(AmiUnavailable(f"AMI {self.name}: client closed"))
        self._ready.clear()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def add_listener(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def on_up(self, callback: Callable[[], None]) -> None:
        self._on_up.append(callback)

    # -- actions ---------------------------------------------------------------------------
    async def send(
        self, action: dict[str, str], timeout: float = 10.0, as_list: bool = False
    ) -> Any:
        """Send one action, never re-sent; raises if the link is down or drops meanwhile."""
        if not self.ready:
            raise AmiUnavailable(f"AMI {self.name}: not connected")
        future: asyncio.Future[Any] = self._manager.send_action(action, as_list=as_list)
        self._pending.add(future)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise AmiDisconnected(
                f"AMI {self.name}: no response to {action.get('Action')} in {timeout:g}s"
            ) from None
        finally:
            self._pending.discard(future)

    async def originate(self, request: OriginateRequest) -> None:
        """Ask Asterisk to place the call. Returns once it is queued.

        Raises `AmiUnavailable` (not sent: safe to retry later), `AmiDisconnected` (sent, fate
        unknown: reconcile, never re-send) or `AmiActionFailed` (refused: not placed).
        """
        action = {
            "Action": "Originate",
            "ActionID": f"orig-{request.attempt_id}",
            "Channel": request.channel,
            "Context": request.context,
            "Exten": "s",
            "Priority": "1",
            "CallerID": f'"{request.caller_id}" <{request.caller_id}>',
            "Timeout": str(int(request.ring_timeout * 1000)),
            "ChannelId": request.attempt_id,
            "Async": "true",
        }
        if request.variables:
            action["Variable"] = ",".join(f"{k}={v}" for k, v in request.variables.items())
        response = await self.send(action)
        if str(response.get("Response", "")).lower() != "success":
            raise AmiActionFailed(f"Originate refused: {response.get('Message', '')}")

    async def live_channels(self) -> dict[str, str]:
        """Every channel Asterisk has now: Uniqueid → ChannelState (CoreShowChannels)."""
        replies = await self.send({"Action": "CoreShowChannels"}, timeout=30.0, as_list=True)
        channels: dict[str, str] = {}
        for message in replies if isinstance(replies, list) else [replies]:
            flat = _flatten(message)
            if flat.get("Event") == "CoreShowChannel" and flat.get("Uniqueid"):
                channels[flat["Uniqueid"]] = flat.get("ChannelState", "")
        return channels

    # -- panoramisk callbacks -------------------------------------------------------------
    def _on_connect(self, _manager: Manager) -> None:
        self._connected_at = time.monotonic()

    def _on_login(self, _manager: Manager) -> None:
        self._ready.set()
        metrics.AMI_CONNECTED.labels(self.name).set(1)
        log.info("ami connected", extra={"asterisk": self.name, "reconnects": self.reconnects})
        for callback in self._on_up:
            callback()

    def _on_disconnect(self, _manager: Manager, exc: object) -> None:
        was_ready = self._ready.is_set()
        self._ready.clear()
        metrics.AMI_CONNECTED.labels(self.name).set(0)
        self._connected_at = None
        if was_ready:
            self.reconnects += 1
        self._fail_pending(AmiDisconnected(f"AMI {self.name}: connection lost"))
        if not self._closing:
            log.warning("ami disconnected", extra={"asterisk": self.name})

    def _fail_pending(self, exc: Exception) -> None:
        for future in list(self._pending):
            if not future.done():
                future.set_exception(exc)
        self._pending.clear()

    def _dispatch(self, _manager: Manager, message: Any) -> None:
        event = _flatten(message)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a faulty listener must not kill the AMI reader
                log.exception("ami event listener failed", extra={"asterisk": self.name})

    # -- liveness --------------------------------------------------------------------------
    def _abort(self, why: str) -> None:
        log.warning("ami connection dead, reconnecting: %s", why, extra={"asterisk": self.name})
        protocol = self._manager.protocol
        transport = getattr(protocol, "transport", None)
        if transport is not None:
            # abort(), not protocol.close(): panoramisk only reconnects from connection_lost.
            transport.abort()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(min(self.config.ami.ping_interval, self.config.ami.connect_timeout))
            try:
                await self._check_alive()
            except Exception:  # the watchdog must outlive any one failed check
                log.exception("ami liveness check failed", extra={"asterisk": self.name})

    async def _check_alive(self) -> None:
        ami = self.config.ami
        if self.ready:
            try:
                await self.send({"Action": "Ping"}, timeout=ami.ping_timeout)
            except AmiDisconnected as exc:
                if self.ready:
                    self._abort(str(exc))
            except AmiUnavailable:
                pass
        elif (
            self._connected_at is not None
            and time.monotonic() - self._connected_at > ami.connect_timeout
        ):
            self._connected_at = None
            self._abort(f"no login within {ami.connect_timeout:g}s")
