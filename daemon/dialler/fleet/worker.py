"""The reference worker: a bot worker of the fleet that proves the audio path end to end.

It listens for Asterisk's AudioSocket connections and, for every answered call:
1. reads the call's id (the attempt id) from the first message;
2. fetches the call context from the daemon (`GET /v1/calls/{id}/context`);
3. plays its greeting (fleet.greeting) paced at 20 ms per frame on a monotonic schedule, then
   silence, while recording everything it receives;
4. hangs up after the talk time (or stops when Asterisk hangs up or closes the socket);
5. scores how clearly its own greeting came back (the lab carrier echoes media), writes the
   recording as a WAV file if asked, and posts the result (`POST /v1/calls/{id}/result`):
   the disposition, the frame counts as numbers (`audio`) and a summary for people (`notes`).

It registers with the daemon at start (`POST /v1/workers`) and heart-beats
(`POST /v1/workers/{name}/heartbeat`); a daemon that is down or restarting never stops it: it
retries with backoff and registers again when a heartbeat says it is unknown. Logs carry ids,
never phone numbers (the context holds the caller ID and the contact's variables; neither is
logged). The reference for operators is docs/worker.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import time
import wave
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from ..errors import OperationalError
from .audiosocket import (
    FRAME_BYTES,
    SAMPLE_RATE,
    AudioSocketError,
    Kind,
    audio,
    error,
    hangup,
    read_frame,
)
from .greeting import detect_greeting, greeting_frames

__all__ = ["CallStats", "ControlClient", "ControlError", "ReferenceWorker", "WorkerSettings"]

log = logging.getLogger(__name__)

FRAME_SECONDS = 0.02
#: A sender this far behind its schedule (the event loop stalled) starts a new schedule
#: instead of sending a burst of late frames.
MAX_LATENESS = 0.2
#: Audio kept per call, for the WAV file and the greeting score (10 minutes).
MAX_RECORDING_BYTES = 600 * SAMPLE_RATE * 2
#: Time allowed after the talk time for a sender stuck on a peer that does not read.
STUCK_GRACE = 1.0
#: A stopping worker keeps its port open this long after the daemon took it out of rotation:
#: an attach that chose it just before reaches the port within milliseconds (the FastAGI
#: answer, then Asterisk's connect).
LEAVE_GRACE = 1.0


#: The scoring process's niceness: scoring a recording is background work, the accept loop,
#: Asterisk and the daemon come first on a busy machine.
SCORER_NICENESS = 10


def _lower_priority() -> None:
    with contextlib.suppress(OSError):
        os.nice(SCORER_NICENESS)


class Scorer:
    """Scores recordings (`detect_greeting`, ~30 ms of pure Python each) in one child process
    at a lower CPU priority, never on the worker's own process: in a thread it would hold the
    GIL away from the event loop, and a burst of calls ending together then delays the accept
    of the calls being answered by hundreds of milliseconds (bench/attach_latency.py). Falls
    back to a thread when the process cannot be started or died."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the scoring process now, so the first call's result does not wait for it."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_lower_priority,
            )
            self._pool.submit(int)  # spawns the process in the background

    async def score(self, audio_bytes: bytes) -> float:
        """How clearly `audio_bytes` holds the greeting (`detect_greeting`)."""
        self.start()
        assert self._pool is not None
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, detect_greeting, audio_bytes
            )
        except (BrokenProcessPool, OSError, RuntimeError):
            log.warning("scoring process unavailable; scoring in a thread")
            self.close()
            return await asyncio.to_thread(detect_greeting, audio_bytes)

    def close(self) -> None:
        """Stop the scoring process (without waiting for it)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """What `dialler worker` configures; the defaults are the command's."""

    name: str = "ref-worker"
    host: str = "127.0.0.1"  # AudioSocket listen address
    port: int = 57000  # 0: any free port (see `ReferenceWorker.port`)
    advertise_host: str | None = None  # registered address; None: `host`
    capacity: int = 10
    daemon_url: str = "http://127.0.0.1:8080"
    token: str | None = field(default=None, repr=False)
    talk_time: float = 3.0
    disposition: str = "completed"
    callback_in: float | None = None  # callback_at = end of call + this
    record_dir: Path | None = None
    heartbeat_interval: float = 5.0
    http_timeout: float = 5.0
    retry_initial: float = 0.5  # backoff of registration and result posting
    retry_max: float = 10.0
    result_attempts: int = 4
    uuid_timeout: float = 5.0  # a connection must name its call within this


@dataclass(slots=True)
class CallStats:
    """What happened on one call, kept for tests and reported in the result (`audio`, and a
    summary in `notes`)."""

    attempt_id: str
    started_at: datetime
    #: When the AudioSocket connection was accepted (Unix seconds, the worker's own clock).
    accepted_at: float = 0.0
    context: dict[str, Any] | None = None
    frames_sent: int = 0
    frames_received: int = 0
    bytes_received: int = 0
    dtmf_digits: int = 0
    schedule_resets: int = 0
    #: talk_time, hangup (Asterisk's hang-up message), closed (Asterisk closed the socket),
    #: error (Asterisk's error message), protocol_error, connection_lost
    ended_by: str = ""
    duration: float = 0.0
    greeting_score: float = 0.0
    record_path: Path | None = None
    result: dict[str, Any] | None = None
    result_posted: bool = False

    def notes(self) -> str:
        """The result's `notes`: free text for people (the daemon stores it, never parses it;
        the frame counts travel as numbers in `audio`)."""
        # Variable names (never their values: they may be personal data) and the unresolved
        # placeholders show what context the bot worked with.
        context = self.context or {}
        names = ",".join(sorted(context.get("variables") or {})) or "none"
        unresolved = ",".join(context.get("unresolved") or []) or "none"
        return (
            f"reference worker: greeting score {self.greeting_score:.2f}; "
            f"ended by {self.ended_by}; talk {self.duration:.1f}s; "
            f"variables {names}; unresolved {unresolved}"
        )

    def audio(self) -> dict[str, int]:
        """The result's `audio`: AudioSocket audio frames sent and received."""
        return {"frames_sent": self.frames_sent, "frames_received": self.frames_received}


class ControlError(OperationalError):
    """The daemon's HTTP API could not be reached or refused the request."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)

    @property
    def retryable(self) -> bool:
        """Worth trying again: the daemon was unreachable, busy or failing, not refusing."""
        return self.status is None or self.status >= 500 or self.status in (408, 429)


class ControlClient:
    """The worker's side of the daemon's HTTP API; every request carries the bearer token."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def register(self, name: str, host: str, port: int, capacity: int) -> Any:
        """`POST /v1/workers`; returns the daemon's answer (JSON) if any."""
        return await self._request(
            "POST", "/v1/workers", {"name": name, "host": host, "port": port, "capacity": capacity}
        )

    async def heartbeat(self, name: str) -> None:
        """`POST /v1/workers/{name}/heartbeat`; a 404 means: register again."""
        await self._request("POST", f"/v1/workers/{quote(name, safe='')}/heartbeat")

    async def leave(self, name: str) -> None:
        """`POST /v1/workers/{name}/leave`: out of rotation before the port closes."""
        await self._request("POST", f"/v1/workers/{quote(name, safe='')}/leave")

    async def context(self, attempt_id: str) -> dict[str, Any]:
        """`GET /v1/calls/{attempt_id}/context`: bot, rendered prompt, variables."""
        body = await self._request("GET", f"/v1/calls/{quote(attempt_id, safe='')}/context")
        if not isinstance(body, dict):
            raise ControlError(f"GET context of {attempt_id}: expected a JSON object")
        return body

    async def post_result(self, attempt_id: str, result: dict[str, Any]) -> None:
        """`POST /v1/calls/{attempt_id}/result` with disposition, callback_at, notes, audio."""
        await self._request("POST", f"/v1/calls/{quote(attempt_id, safe='')}/result", result)

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:  # created on first use: it needs the running loop
            headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=headers)
        return self._session

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = self.base_url + path
        try:
            async with self._session_now().request(method, url, json=body) as response:
                if response.status >= 400:
                    raise ControlError(
                        f"{method} {path}: HTTP {response.status}{await _error_message(response)}",
                        response.status,
                    )
                if response.status == 204 or response.content_length == 0:
                    return None
                return await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ControlError(
                f"{method} {path}: cannot reach the daemon at {self.base_url} "
                f"({type(exc).__name__}: {exc})"
            ) from None
        except ValueError:
            raise ControlError(
                f"{method} {path}: the daemon's answer is not valid JSON", 502
            ) from None


async def _error_message(response: aiohttp.ClientResponse) -> str:
    """The daemon's error message (`{"error": {"message": ...}}`), if it sent one."""
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return f": {message}" if isinstance(message, str) else ""


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ReferenceWorker:
    """An AudioSocket server taking up to `capacity` calls at once (see the module doc).

    `start` binds and starts registering; `stop` stops accepting, lets live calls finish
    (up to `drain_timeout`) and cancels the rest. Counters for tests and logs:
    `active_calls`, `calls_handled`, `calls_refused`, `last_call`, `registered`,
    `heartbeats`.
    """

    def __init__(self, settings: WorkerSettings, control: ControlClient | None = None) -> None:
        self.settings = settings
        self.control = control or ControlClient(
            settings.daemon_url, settings.token, settings.http_timeout
        )
        self.active_calls = 0
        self.calls_handled = 0
        self.calls_refused = 0
        self.last_call: CallStats | None = None
        self.registered = False
        self.heartbeats = 0
        self._server: asyncio.Server | None = None
        self._control_task: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._accepting = False
        self._port = settings.port
        self._scorer = Scorer()

    @property
    def port(self) -> int:
        """The AudioSocket port, the bound one when `settings.port` was 0."""
        return self._port

    async def __aenter__(self) -> ReferenceWorker:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop(drain_timeout=0)

    async def start(self) -> None:
        """Listen for AudioSocket connections and start registering with the daemon.

        Raises `OperationalError` if the address cannot be bound.
        """
        try:
            self._server = await asyncio.start_server(
                self._on_connection, self.settings.host, self.settings.port
            )
        except OSError as exc:
            raise OperationalError(
                f"cannot listen on {self.settings.host}:{self.settings.port}: {exc.strerror or exc}"
            ) from None
        self._port = self._server.sockets[0].getsockname()[1]
        self._accepting = True
        self._scorer.start()
        self._control_task = asyncio.create_task(self._control_loop(), name="registration")
        log.info(
            "reference worker listening",
            extra={
                "worker": self.settings.name,
                "address": f"{self.settings.host}:{self._port}",
                "capacity": self.settings.capacity,
            },
        )

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Leave rotation, then stop accepting calls; wait up to `drain_timeout` seconds (None:
        no limit) for live calls to end and post their results; cancel what is left. Safe to
        call again.

        The port stays open until the daemon has taken the worker out of rotation (and
        `LEAVE_GRACE` after, for an attach already on its way): from then on an answered call
        reserved for it is attached to another worker, so Asterisk's AudioSocket never meets a
        closed port (a failed connect is the path of Asterisk 22.10's double close,
        docs/asterisk.md). The grace counts in `drain_timeout` (calls go on meanwhile), so a
        stop takes at most `drain_timeout` plus the leave request itself. With `drain_timeout`
        0 the port closes at once."""
        loop = asyncio.get_running_loop()
        deadline = None if drain_timeout is None else loop.time() + drain_timeout
        if self._control_task is not None:
            self._control_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._control_task
        if self._accepting and self.registered and drain_timeout != 0:
            grace = LEAVE_GRACE if drain_timeout is None else min(LEAVE_GRACE, drain_timeout)
            await self._leave_rotation(grace)
        self._accepting = False
        if self._server is not None:
            self._server.close()
        pending = {task for task in self._connections if not task.done()}
        left = None if deadline is None else max(0.0, deadline - loop.time())
        if pending and (left is None or left > 0):
            await asyncio.wait(pending, timeout=left)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        self._scorer.close()
        await self.control.close()

    async def _leave_rotation(self, grace: float) -> None:
        """Tell the daemon this worker is leaving (best effort: a daemon that is away takes it
        out when its heartbeats stop), then keep serving `grace` seconds."""
        try:
            await self.control.leave(self.settings.name)
        except ControlError as exc:
            log.warning(
                "could not leave rotation: out when its heartbeats stop",
                extra={"worker": self.settings.name, "error": str(exc)},
            )
            return
        self.registered = False
        log.info("left rotation", extra={"worker": self.settings.name})
        await asyncio.sleep(grace)

    # --- registration ----------------------------------------------------------------------

    async def _control_loop(self) -> None:
        """Register, then heart-beat; never gives up and never raises."""
        settings = self.settings
        host = settings.advertise_host or settings.host
        delay = settings.retry_initial
        down_logged = False
        while True:
            if not self.registered:
                try:
                    answer = await self.control.register(
                        settings.name, host, self._port, settings.capacity
                    )
                except ControlError as exc:
                    # Unreachable: a warning once. Refused (a wrong token, say): an error
                    # once; retried all the same, the daemon's side may be fixed meanwhile.
                    level = logging.WARNING if exc.retryable else logging.ERROR
                    log.log(
                        logging.DEBUG if down_logged else level,
                        "cannot register with the daemon; retrying",
                        extra={
                            "worker": settings.name,
                            "error": str(exc),
                            "retry_in": round(delay, 2),
                        },
                    )
                    down_logged = True
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, settings.retry_max)
                    continue
                self.registered, down_logged, delay = True, False, settings.retry_initial
                log.info(
                    "registered with the daemon",
                    extra={"worker": settings.name, "daemon": self.control.base_url},
                )
                self._check_heartbeat_timeout(answer)
            await asyncio.sleep(settings.heartbeat_interval)
            down_logged = await self._heartbeat(down_logged)

    def _check_heartbeat_timeout(self, answer: Any) -> None:
        """The daemon says how long a silent worker stays in rotation: warn if the heartbeat
        interval leaves no room for one lost heartbeat."""
        timeout = answer.get("heartbeat_timeout") if isinstance(answer, dict) else None
        if isinstance(timeout, int | float) and self.settings.heartbeat_interval * 2 > timeout:
            log.warning(
                "heartbeat interval too long for the daemon's heartbeat timeout",
                extra={
                    "worker": self.settings.name,
                    "interval": self.settings.heartbeat_interval,
                    "heartbeat_timeout": timeout,
                },
            )

    async def _heartbeat(self, down_logged: bool) -> bool:
        try:
            await self.control.heartbeat(self.settings.name)
        except ControlError as exc:
            if exc.status == 404:  # the daemon forgot us (its database was reset): register
                log.warning(
                    "the daemon does not know this worker; registering again",
                    extra={"worker": self.settings.name},
                )
                self.registered = False
                return False
            if not down_logged:
                log.warning(
                    "heartbeat failed", extra={"worker": self.settings.name, "error": str(exc)}
                )
            return True
        if down_logged:
            log.info("heartbeats reach the daemon again", extra={"worker": self.settings.name})
        self.heartbeats += 1
        return False

    # --- calls -----------------------------------------------------------------------------

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # The accept time on the worker's own clock: bench/attach_latency.py measures from
        # Asterisk's answer to this moment, independently of the daemon's bookkeeping.
        accepted_at = time.time()
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await self._serve_connection(reader, writer, accepted_at)
        except Exception:
            log.exception("call handling failed", extra={"worker": self.settings.name})
        finally:
            await _close(writer)
            if task is not None:
                self._connections.discard(task)

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, accepted_at: float
    ) -> None:
        try:
            first = await asyncio.wait_for(read_frame(reader), self.settings.uuid_timeout)
        except (AudioSocketError, TimeoutError, OSError) as exc:
            log.warning(
                "AudioSocket connection dropped before its call id",
                extra={"error": str(exc) or type(exc).__name__},
            )
            return
        if first is None:  # the daemon's attach route probes the port this way
            log.debug("connection closed without a call (a probe)")
            return
        if first.kind is not Kind.UUID:
            log.warning(
                "AudioSocket connection did not start with the call id",
                extra={"kind": first.kind.name.lower()},
            )
            return
        attempt_id = str(first.call_id)
        if not self._accepting or self.active_calls >= self.settings.capacity:
            self.calls_refused += 1
            log.warning(
                "call refused: worker at capacity or stopping",
                extra={
                    "attempt_id": attempt_id,
                    "active": self.active_calls,
                    "capacity": self.settings.capacity,
                },
            )
            # An error message, not a hang-up: Asterisk's AudioSocket() then fails and the
            # dialplan plays the abandon message (a hang-up would end the call in silence).
            with contextlib.suppress(OSError):
                writer.write(error())
            return
        stats = CallStats(attempt_id, datetime.now(UTC), accepted_at=accepted_at)
        log.info(
            "call accepted",
            extra={"attempt_id": attempt_id, "accepted_at": f"{accepted_at:.6f}"},
        )
        recording = bytearray()
        self.active_calls += 1
        try:
            await self._converse(stats, reader, writer, recording)
        finally:
            self.active_calls -= 1
            await _close(writer)
        await self._wrap_up(stats, recording)

    async def _converse(
        self,
        stats: CallStats,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        recording: bytearray,
    ) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.settings.talk_time
        listener = asyncio.create_task(
            self._listen(reader, stats, recording), name=f"listen-{stats.attempt_id}"
        )
        # Record from the first moment, while the context is fetched.
        fetch = asyncio.create_task(
            self._fetch_context(stats.attempt_id), name=f"context-{stats.attempt_id}"
        )
        player: asyncio.Task[str] | None = None
        try:
            await asyncio.wait(
                {fetch, listener},
                return_when=asyncio.FIRST_COMPLETED,
                timeout=max(0.0, deadline - loop.time()),
            )
            if fetch.done() and not listener.done():
                stats.context = fetch.result()
                player = asyncio.create_task(
                    self._play(writer, stats, deadline), name=f"play-{stats.attempt_id}"
                )
                await asyncio.wait(
                    {listener, player},
                    return_when=asyncio.FIRST_COMPLETED,
                    timeout=max(0.0, deadline - loop.time()) + STUCK_GRACE,
                )
        finally:
            tasks = [task for task in (listener, fetch, player) if task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        stats.duration = loop.time() - started
        stats.ended_by = _ended_by(listener, player)
        if stats.ended_by == "talk_time":
            with contextlib.suppress(OSError):
                writer.write(hangup())

    async def _fetch_context(self, attempt_id: str) -> dict[str, Any] | None:
        try:
            context = await self.control.context(attempt_id)
        except ControlError as exc:
            # A bot needs its prompt; the reference worker greets anyway, so that the audio
            # path is still proved, and the result still reaches the daemon if it can.
            log.warning(
                "cannot fetch the call context; greeting anyway",
                extra={"attempt_id": attempt_id, "error": str(exc)},
            )
            return None
        bot = context.get("bot")
        unresolved = context.get("unresolved")
        log.info(
            "call context",
            extra={
                "attempt_id": attempt_id,
                "campaign_id": str(context.get("campaign_id", "")),
                "bot": str(bot.get("name", "")) if isinstance(bot, dict) else "",
                "unresolved": len(unresolved) if isinstance(unresolved, list) else 0,
            },
        )
        return context

    async def _play(self, writer: asyncio.StreamWriter, stats: CallStats, deadline: float) -> str:
        """Send the greeting then silence, one frame every 20 ms until `deadline`.

        Frame k is due at start + k × 20 ms on the loop's monotonic clock, so the pace does not
        drift with the time each write takes (as repeated `sleep(0.02)` would).
        """
        loop = asyncio.get_running_loop()
        messages = [audio(frame) for frame in greeting_frames()]
        silence = audio(bytes(FRAME_BYTES))
        start = loop.time()
        k = 0
        while (due := start + k * FRAME_SECONDS) < deadline:
            lateness = loop.time() - due
            if lateness < 0:
                await asyncio.sleep(-lateness)
            elif lateness > MAX_LATENESS:
                stats.schedule_resets += 1
                start += lateness
            writer.write(messages[k] if k < len(messages) else silence)
            stats.frames_sent += 1
            k += 1
            await writer.drain()
        return "talk_time"

    async def _listen(
        self, reader: asyncio.StreamReader, stats: CallStats, recording: bytearray
    ) -> str:
        """Record what Asterisk sends until it hangs up; returns how the call ended."""
        while True:
            try:
                frame = await read_frame(reader)
            except AudioSocketError as exc:
                log.warning(
                    "AudioSocket protocol error",
                    extra={"attempt_id": stats.attempt_id, "error": str(exc)},
                )
                return "protocol_error"
            except OSError:
                return "connection_lost"
            if frame is None:
                return "closed"
            if frame.kind is Kind.AUDIO:
                stats.frames_received += 1
                stats.bytes_received += len(frame.payload)
                if len(recording) < MAX_RECORDING_BYTES:
                    recording += frame.payload
            elif frame.kind is Kind.HANGUP:
                return "hangup"
            elif frame.kind is Kind.ERROR:
                log.warning(
                    "Asterisk reported an AudioSocket error",
                    extra={"attempt_id": stats.attempt_id, "code": frame.error_code},
                )
                return "error"
            elif frame.kind is Kind.DTMF:
                stats.dtmf_digits += 1  # counted, never logged: callers type card numbers
            else:
                log.warning(
                    "unexpected AudioSocket message ignored",
                    extra={"attempt_id": stats.attempt_id, "kind": frame.kind.name.lower()},
                )

    async def _wrap_up(self, stats: CallStats, recording: bytearray) -> None:
        audio_bytes = bytes(recording)
        stats.greeting_score = await self._scorer.score(audio_bytes)
        if self.settings.record_dir is not None:
            stats.record_path = await asyncio.to_thread(
                _write_wav, self.settings.record_dir, stats.attempt_id, audio_bytes
            )
        stats.result = self._result(stats)
        stats.result_posted = await self._post_result(stats.attempt_id, stats.result)
        self.calls_handled += 1
        self.last_call = stats
        log.info(
            "call ended",
            extra={
                "attempt_id": stats.attempt_id,
                "ended_by": stats.ended_by,
                "frames_sent": stats.frames_sent,
                "frames_received": stats.frames_received,
                "greeting_score": round(stats.greeting_score, 3),
                "result_posted": stats.result_posted,
            },
        )

    def _result(self, stats: CallStats) -> dict[str, Any]:
        result: dict[str, Any] = {
            "disposition": self.settings.disposition,
            "notes": stats.notes(),
            "audio": stats.audio(),
        }
        if self.settings.callback_in is not None:
            callback_at = datetime.now(UTC) + timedelta(seconds=self.settings.callback_in)
            result["callback_at"] = rfc3339(callback_at)
        return result

    async def _post_result(self, attempt_id: str, result: dict[str, Any]) -> bool:
        delay = self.settings.retry_initial
        for attempt in range(1, self.settings.result_attempts + 1):
            try:
                await self.control.post_result(attempt_id, result)
                return True
            except ControlError as exc:
                last = attempt == self.settings.result_attempts or not exc.retryable
                log.log(
                    logging.ERROR if last else logging.WARNING,
                    "result not posted" + ("" if last else "; retrying"),
                    extra={"attempt_id": attempt_id, "error": str(exc), "attempt": attempt},
                )
                if last:
                    return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.retry_max)
        return False


def _ended_by(listener: asyncio.Task[str], player: asyncio.Task[str] | None) -> str:
    """How the call ended: the peer's doing wins over our talk time when both happened."""
    if listener.done() and not listener.cancelled() and listener.exception() is None:
        return listener.result()
    if player is not None and player.done() and not player.cancelled():
        return "connection_lost" if player.exception() is not None else player.result()
    return "talk_time"  # the sender was stuck on a peer that does not read


def _write_wav(directory: Path, attempt_id: str, pcm: bytes) -> Path | None:
    path = directory / f"{attempt_id}.wav"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            out.writeframes(pcm)
    except OSError as exc:
        log.warning(
            "cannot write the recording",
            extra={"attempt_id": attempt_id, "path": str(path), "error": exc.strerror or str(exc)},
        )
        return None
    return path


async def _close(writer: asyncio.StreamWriter) -> None:
    if writer.is_closing():
        return
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 1.0)
