"""FastAGI `attach`: the answered call asks which worker takes it.

The dialplan (agi/dialler.conf) runs `AGI(agi://<daemon>/attach?secret=<secret>)` when the
callee answers. One database statement (`store.fleet.attach`) confirms the slot reserved at
claim when its worker is in rotation, or moves the call to the emptiest other worker in
rotation with a free slot, or marks the call abandoned; the route answers with channel
variables: `DIALLER_ATTACH` = `ok` and `DIALLER_WORKER` = host:port, or `DIALLER_ATTACH` =
`abandoned` (the dialplan then plays a short message and hangs up; the attempt ends
`abandoned`). A daemon that is unreachable or silent leaves `DIALLER_ATTACH` unset: the same
message. The statement never waits for another transaction's commit: when the attempt's row is
held (the engine recording the answer, until its commit reaches the disk) it writes the slot
only, answers Asterisk, and then writes the row (`store.fleet.attach_late`, or
`store.fleet.mark_abandoned` when no worker could take the call).

If the AudioSocket connection itself then fails, the dialplan (`TryExec`) runs
`AGI(agi://<daemon>/abandon?secret=<secret>)`: the connection is closed at once (the same
message plays — never silence) and the attempt marked `abandoned` when that came right after the
attach (`socket_failed`, one statement; later, the call broke off mid-call).

No worker is probed and no lock is taken on this path: a worker is in rotation by its
heartbeats (registered workers) or by the health check (`HealthCheck`, static workers of the
config), which every daemon runs in the background: it probes each static worker's AudioSocket
port every `HEALTH_INTERVAL` seconds and records the verdict in the database.

Hardening (docs/security.md): a request must carry the shared secret of
`listeners.agi.secret_file`/`secret_env` (required by the config; compared in constant time) and
come from `listeners.agi.allow` when that is set; at most `MAX_CONNECTIONS` at once; every
phase has a timeout (headers, each command's answer); every value written into an AGI command
is checked first (`agi_value`: no quote, comma, backslash, control character).

The daemon runs the server on a thread of its own, with its own event loop and a small pool of
its own (`POOL_SIZE`): an attach never waits behind the engine's work on the main loop or for a
connection of the main pool; while it runs there, the interpreter switches threads every
`SWITCH_INTERVAL` (1 ms, not 5), so that its steps do not queue behind the main loop for the
GIL. The server reads the AGI request headers itself (`parse_headers`:
bounded in size and time) and speaks the command protocol itself (`_commands`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import re
import sys
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from .. import metrics
from ..config import Config, is_host
from ..store import fleet
from ..store.conn import Pool

__all__ = [
    "AgiHeaderError",
    "AttachServer",
    "HealthCheck",
    "agi_value",
    "parse_headers",
    "port_open",
]

log = logging.getLogger(__name__)
#: Largest AGI request header block (Asterisk sends about 1 KiB).
HEADER_LIMIT = 16 * 1024
#: How long Asterisk may take to send the headers, and to answer each command.
HEADER_TIMEOUT = 5.0
COMMAND_TIMEOUT = 5.0
#: Open FastAGI connections at once; more are closed on arrival.
MAX_CONNECTIONS = 256
#: Connections of the attach server's own pool (its thread's), all opened at start: a burst
#: of answers (a campaign's first wave) never waits for a connection to be opened.
POOL_SIZE = 8
#: An AGI answer line: the code, then a space (a line with a dash after the code continues).
_AGI_ANSWER_END = re.compile(rb"\d{3} ")
#: The health check: a static worker's AudioSocket port must accept a connection within this.
PROBE_TIMEOUT = 0.5
#: Seconds between health checks of the static workers (at most: a third of the heartbeat
#: timeout, so that a healthy static worker never looks silent).
HEALTH_INTERVAL = 0.5
#: Unanswered checks in a row that take a static worker out of rotation (a refusal: one).
FAILURES_TO_DOWN = 2
#: The interpreter's thread switch interval while the server runs on its thread (Python's
#: default is 5 ms): the FastAGI thread shares the GIL with the daemon's main loop, and each
#: step of an attach (accept, headers, the statement's answer, Asterisk's reply) may wait that
#: long for it while the main loop is busy — in a burst of answers, when it is.
SWITCH_INTERVAL = 0.001

_HEADER_KEY = re.compile(r"agi_[a-z0-9_]{1,64}")
#: The notes of an abandoned call: its AudioSocket connection failed; no worker could take it.
SOCKET_FAILED = "the worker's AudioSocket connection failed"
NO_WORKER = "no worker could take the call"
#: An `abandon` this soon after the attach: the connection was refused, or the worker refused
#: the call, at once — abandoned. Later, the worker had the call and it broke off mid-call: the
#: callee hears the message all the same, the worker's result (or its absence) decides.
SOCKET_FAILED_WITHIN = 0.5
#: What may go between the double quotes of an AGI command's argument.
_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.:\[\]-]{1,300}")


class AgiHeaderError(ValueError):
    """An AGI request header block that is not one: says which line and why."""


def parse_headers(raw: bytes) -> dict[str, str]:
    """The `agi_*` headers of a FastAGI request (the bytes up to the blank line).

    Each line is ``agi_<name>: <value>``; a line of another shape, a key outside
    ``agi_[a-z0-9_]``, a key twice, a value with control characters, or a block over
    `HEADER_LIMIT` raise `AgiHeaderError` naming the line."""
    if len(raw) > HEADER_LIMIT:
        raise AgiHeaderError(f"the headers are over {HEADER_LIMIT} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AgiHeaderError(f"the headers are not UTF-8 (byte {exc.start})") from None
    headers: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        key, colon, value = line.partition(": ")
        if not colon or not _HEADER_KEY.fullmatch(key):
            raise AgiHeaderError(f"line {number}: not an 'agi_<name>: <value>' header")
        if key in headers:
            raise AgiHeaderError(f"line {number}: {key} appears twice")
        if not value.isprintable():
            raise AgiHeaderError(f"line {number}: {key} holds a control character")
        headers[key] = value
    return headers


def agi_value(value: str) -> str:
    """`value` checked for a double-quoted AGI argument (a worker's host:port): no quote,
    comma (it would split the `AudioSocket()` arguments), backslash, space or control
    character; `ValueError` otherwise. Written, never escaped: nothing legitimate needs them."""
    if not _SAFE_VALUE.fullmatch(value):
        raise ValueError("not a safe AGI value")
    return value


def _script(headers: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The script of `agi_network_script` and its query (``attach?secret=…``)."""
    script, _, query = headers.get("agi_network_script", "").partition("?")
    return script, dict(urllib.parse.parse_qsl(query, max_num_fields=8))


async def port_open(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool | None:
    """Does the worker's AudioSocket port accept a connection right now? True; False when it
    refuses (nothing listens: the worker is gone); None when it does not answer in time or
    cannot be reached (maybe a slow moment)."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except ConnectionRefusedError:
        return False
    except (OSError, TimeoutError, UnicodeError):
        return None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _address(host: str, port: int) -> str | None:
    """host:port for `DIALLER_WORKER`, or None for a host that must not reach the dialplan
    (one stored before hosts were validated)."""
    if not is_host(host):
        return None
    shown = f"[{host}]" if ":" in host else host
    try:
        return agi_value(f"{shown}:{port}")
    except ValueError:
        return None


class HealthCheck:
    """The static workers' health, off the attach path: every `interval` seconds, each static
    worker in rotation is probed (all at once) and the verdict recorded in the database
    (`store.fleet.record_health`); one that refuses leaves rotation until it accepts again."""

    def __init__(self, config: Callable[[], Config], pool: Pool) -> None:
        self.config = config  # the current one: a reload replaces it
        self.pool = pool
        self.down: set[str] = set()  # logged once per change
        self.failures: dict[str, int] = {}  # failed rounds in a row, per worker
        self._task: asyncio.Task[None] | None = None

    @property
    def interval(self) -> float:
        """Seconds between checks."""
        return min(HEALTH_INTERVAL, self.config().fleet.heartbeat_timeout / 3)

    def start(self) -> None:
        """Run the checks in the background until `close`."""
        self._task = asyncio.create_task(self._loop(), name="worker-health-check")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # a database outage: the next round tries again
                log.warning("worker health check failed", exc_info=True)
            await asyncio.sleep(self.interval)

    async def check(self) -> None:
        """One round: probe every static worker in rotation, record who is up, and who failed
        `FAILURES_TO_DOWN` rounds in a row without an answer (one slow handshake on a loaded
        machine is not a dead worker) or whose port refused (nothing listens)."""
        async with self.pool.acquire() as conn:
            workers = await fleet.config_workers(conn)
        probes = await asyncio.gather(*(port_open(w.host, w.port) for w in workers))
        for worker, ok in zip(workers, probes, strict=True):
            # A refused connection is certain (nothing listens): out at once.
            failed = FAILURES_TO_DOWN if ok is False else self.failures.get(worker.name, 0) + 1
            self.failures[worker.name] = 0 if ok else failed
        up = [w.name for w, ok in zip(workers, probes, strict=True) if ok]
        down = [w.name for w in workers if self.failures[w.name] >= FAILURES_TO_DOWN]
        async with self.pool.acquire() as conn:
            await fleet.record_health(conn, up, down)
        for name in sorted(set(down) - self.down):
            log.warning("static worker down: its AudioSocket port refuses", extra={"worker": name})
        for name in sorted(self.down - set(down)):
            log.info("static worker up again", extra={"worker": name})
        self.down = set(down)


class AttachServer:
    """The FastAGI listener. `start` runs it on its own thread (the daemon's way) or on the
    caller's loop with the caller's pool (`thread=False`, for tests that count statements)."""

    def __init__(self, config: Config, pool: Pool) -> None:
        self.config = config
        self.pool = pool  # the caller's: the health check, and `decide` called directly
        self.server: asyncio.Server | None = None
        self.open_connections = 0
        self.health = HealthCheck(lambda: self.config, pool)
        self._serving_pool: Pool = pool  # the pool of the loop the server runs on
        self._loop: asyncio.AbstractEventLoop | None = None  # the server thread's
        self._thread: threading.Thread | None = None
        self._main: asyncio.Task[Any] | None = None  # the server thread's one task

    async def start(
        self, host: str, port: int, health_check: bool = True, thread: bool = True
    ) -> None:
        """Listen for FastAGI requests, on a thread of its own with `thread`; with
        `health_check`, run the static workers' health check in the background on the
        caller's loop (the daemon does; tests may drive `health.check`). Raises what binding
        or connecting the pool raises."""
        if thread:
            sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
            started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._thread = threading.Thread(
                target=self._run_thread, args=(host, port, started), name="fastagi", daemon=True
            )
            self._thread.start()
            await started
        else:
            self.server = await asyncio.start_server(self.handle, host, port, limit=HEADER_LIMIT)
        if health_check:
            self.health.start()

    def _run_thread(self, host: str, port: int, started: asyncio.Future[None]) -> None:
        caller = started.get_loop()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def report(error: BaseException | None) -> None:
            if not started.done():
                if error is None:
                    started.set_result(None)
                else:
                    started.set_exception(error)

        async def serve() -> None:
            pool = await fleet.attach_pool(self.config.database.dsn, POOL_SIZE)
            try:
                self._serving_pool = pool
                self.server = await asyncio.start_server(
                    self.handle, host, port, limit=HEADER_LIMIT
                )
            except BaseException:
                await pool.close()
                raise
            caller.call_soon_threadsafe(report, None)
            try:
                await self.server.serve_forever()
            except asyncio.CancelledError:
                pass
            finally:
                self.server.close()
                await self.server.wait_closed()
                await pool.close()

        try:
            loop.run_until_complete(self._track(serve()))
        except BaseException as exc:  # binding or the pool failed: the caller raises it
            caller.call_soon_threadsafe(report, exc)
        finally:
            loop.close()

    async def _track(self, work: Coroutine[Any, Any, None]) -> None:
        self._main = asyncio.current_task()
        await work

    async def close(self) -> None:
        await self.health.close()
        if self._thread is not None:
            loop, main = self._loop, self._main
            if loop is not None and main is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                    loop.call_soon_threadsafe(main.cancel)
            await asyncio.to_thread(self._thread.join, 10)
            self._thread = None
        elif self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def _allowed(self, writer: asyncio.StreamWriter) -> bool:
        networks = self.config.listeners.agi.allow
        if not networks:
            return True
        peer = writer.get_extra_info("peername")
        try:
            address = ipaddress.ip_address(peer[0])
        except (TypeError, ValueError, IndexError):
            return False
        return any(address in network for network in networks)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One FastAGI connection: refused over the cap or from outside the allow-list."""
        if self.open_connections >= MAX_CONNECTIONS or not self._allowed(writer):
            log.warning("FastAGI connection refused (over the cap or not allowed)")
            writer.close()
            return
        self.open_connections += 1
        try:
            await self._serve(reader, writer)
        finally:
            self.open_connections -= 1
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            raw = await asyncio.wait_for(reader.readuntil(b"\n\n"), HEADER_TIMEOUT)
            headers = parse_headers(raw)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            return
        except AgiHeaderError as exc:
            log.warning("FastAGI request refused: %s", exc)
            return
        script, query = _script(headers)
        if script not in ("attach", "abandon"):
            log.warning("FastAGI request for an unknown script refused")
            return
        if not self._secret_ok(query.get("secret", "")):
            log.warning("FastAGI request refused: missing or wrong secret")
            return
        try:
            if script == "abandon":
                # Nothing to answer: closing the connection lets the dialplan go on to the
                # message at once, whatever holds the attempt's row meanwhile.
                writer.close()
                await self._socket_failed(headers.get("agi_uniqueid", ""))
                return
            await self._attach(reader, writer, headers.get("agi_uniqueid", ""))
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            log.warning("FastAGI connection lost or silent during the answer")
        except Exception:
            log.exception("attach failed")

    def _secret_ok(self, given: str) -> bool:
        expected = self.config.listeners.agi.secret
        if not expected:  # the config requires one: never reached, and never open if it were
            return False
        return hmac.compare_digest(given.encode(), expected.encode())

    async def _commands(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, commands: list[str]
    ) -> None:
        """Send the AGI commands one at a time, each after the answer to the one before
        (Asterisk reads a command only once it answered the last: sent together, the second
        would wait unread), reading each answer in full (`520-…` up to `520 …`); each within
        `COMMAND_TIMEOUT`."""
        for command in commands:
            writer.write(f"{command}\n".encode())
            async with asyncio.timeout(COMMAND_TIMEOUT):
                await writer.drain()
                while True:
                    line = await reader.readline()
                    if not line:
                        raise asyncio.IncompleteReadError(b"", None)
                    if _AGI_ANSWER_END.match(line):
                        break

    async def _attach(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, uniqueid: str
    ) -> None:
        try:
            attempt_id = uuid.UUID(uniqueid)
        except ValueError:
            attempt_id = None
        pool = self._serving_pool
        address, late = await self._decide(attempt_id, pool) if attempt_id else (None, False)
        try:
            if address is None:
                await self._commands(reader, writer, ['SET VARIABLE DIALLER_ATTACH "abandoned"'])
            else:
                # Both variables in one command (one exchange with a busy Asterisk): MSet is in
                # Asterisk's core; `agi_value` keeps commas out of the address.
                await self._commands(
                    reader,
                    writer,
                    [f'EXEC MSet "DIALLER_WORKER={agi_value(address)},DIALLER_ATTACH=ok"'],
                )
        finally:
            if late and attempt_id is not None:  # Asterisk has its answer: now the row
                if address is not None:
                    await self._attach_late(attempt_id, pool)
                else:
                    await self.abandon(attempt_id, pool, NO_WORKER)

    async def _attach_late(self, attempt_id: uuid.UUID, pool: Pool) -> None:
        async with pool.acquire() as conn:
            waited = await fleet.attach_late(conn, attempt_id)
        if waited is not None:
            metrics.ANSWER_TO_ATTACH.observe(max(0.0, waited))

    async def _socket_failed(self, uniqueid: str) -> None:
        try:
            attempt_id = uuid.UUID(uniqueid)
        except ValueError:
            return
        await self.socket_failed(attempt_id, self._serving_pool)

    async def socket_failed(self, attempt_id: uuid.UUID, pool: Pool | None = None) -> None:
        """The dialplan's `abandon`: the call's AudioSocket() failed and the callee hears the
        abandon message. Right after the attach (the connection refused: the worker died
        since its last heartbeat; or the worker refused the call) the call is `abandoned`;
        later it broke off mid-call and its worker's result, or the result timeout, decides.
        One statement."""
        async with (pool or self.pool).acquire() as conn:
            campaign = await fleet.mark_socket_failed(
                conn, attempt_id, SOCKET_FAILED, SOCKET_FAILED_WITHIN
            )
        if campaign is not None:
            metrics.CALLS_ABANDONED.labels(str(campaign)).inc()
            log.warning(
                "answered call abandoned",
                extra={"attempt_id": str(attempt_id), "why": SOCKET_FAILED},
            )
        else:
            log.warning(
                "AudioSocket connection broke off mid-call", extra={"attempt_id": str(attempt_id)}
            )

    async def abandon(
        self, attempt_id: uuid.UUID, pool: Pool | None = None, why: str = NO_WORKER
    ) -> None:
        """Mark the answered call `abandoned` (`why` in its notes), unless its worker's result
        is in already: an attach that found no worker while the attempt's row was held. The
        callee hears the abandon message; the attempt ends `abandoned` at its hang-up. One
        statement."""
        async with (pool or self.pool).acquire() as conn:
            campaign = await fleet.mark_abandoned(conn, attempt_id, why)
        if campaign is not None:
            metrics.CALLS_ABANDONED.labels(str(campaign)).inc()
            log.warning(
                "answered call abandoned", extra={"attempt_id": str(attempt_id), "why": why}
            )

    async def decide(self, attempt_id: uuid.UUID, pool: Pool | None = None) -> str | None:
        """The worker address for this answered call, or None (abandoned): one statement
        (two when the attempt row was held: see `_decide`). `pool`: the one of the running
        loop (default: the caller's, given at construction)."""
        pool = pool or self.pool
        address, late = await self._decide(attempt_id, pool)
        if late and address is not None:
            await self._attach_late(attempt_id, pool)
        elif late:
            await self.abandon(attempt_id, pool, NO_WORKER)
        return address

    async def _decide(self, attempt_id: uuid.UUID, pool: Pool) -> tuple[str | None, bool]:
        """The worker address (None: abandoned), and whether the attempt row is still to be
        written (`attach_late`, or `abandon` when no worker: it was held by the engine
        recording the answer, and the callee waits for no one's commit but this one)."""
        async with pool.acquire() as conn:
            chosen = await fleet.attach(conn, attempt_id, self.config.fleet.heartbeat_timeout)
            campaign = chosen.abandoned_campaign
            if chosen.worker is not None and chosen.host is not None and chosen.port is not None:
                address = _address(chosen.host, chosen.port)
                if address is not None:
                    if chosen.waited is not None:
                        metrics.ANSWER_TO_ATTACH.observe(max(0.0, chosen.waited))
                    if chosen.moved:
                        log.warning(
                            "reserved worker unavailable; call moved",
                            extra={"attempt_id": str(attempt_id), "worker": chosen.worker},
                        )
                    return address, not chosen.written
                # A host stored before hosts were validated never reaches the dialplan.
                campaign = await fleet.mark_abandoned(
                    conn, attempt_id, f"worker {chosen.worker} has an unusable address"
                )
        if campaign is not None:
            metrics.CALLS_ABANDONED.labels(str(campaign)).inc()
        if not chosen.written:
            return None, True  # `abandon` once Asterisk has its answer: it logs then
        log.warning("answered call abandoned: no worker", extra={"attempt_id": str(attempt_id)})
        return None, False
