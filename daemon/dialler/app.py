"""`dialler run`: the composition root of the daemon — the one place that wires the store,
the engine and the adapters (AMI, FastAGI attach, HTTP API, metrics, systemd) together.

Start: database (schema must be current), daemon registration, AMI connections, listeners,
then stale-state recovery *before* the first dial, then the daemon's loops. First
SIGTERM/SIGINT: drain (stop claiming; live calls finish, up to `DRAIN_TIMEOUT`), exit 0; a
second: exit at once (calls cut off are reconciled by the next start, like after a crash).

Supervision (docs/engine.md, "Supervision"): the loops run in one `asyncio.TaskGroup`, each
under `supervise`. A loop that raises is logged with its traceback and, by its `OnFailure`:
restarted after a backoff (1 s, doubling to 30 s; reset after a minute of good running), or
the daemon stops with exit status 1 so that systemd restarts it. No loop ends unnoticed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from . import console, logs, metrics
from .ami.calls import CallTracker
from .ami.client import AmiClient
from .api.http import CONFIG as API_CONFIG
from .api.http import ConfigRef
from .api.server import make_app, start
from .campaigns import repo
from .commands.paths import config_path
from .config import Config, load_config
from .engine.engine import Engine
from .engine.journal import Journal, JournalLocked
from .engine.pacing import TokenBucket
from .engine.recovery import Recovery
from .errors import OperationalError
from .fleet.attach import AttachServer
from .reload import reload_config
from .store import engine as store
from .store import fleet
from .store.conn import Pool
from .store.migrate import available_migrations
from .store.pool import create_pool
from .systemd import Notifier, watchdog_loop

__all__ = [
    "DRAIN_TIMEOUT",
    "Loop",
    "LoopFailed",
    "OnFailure",
    "install_signals",
    "run",
    "run_daemon",
    "supervise",
]

log = logging.getLogger(__name__)
DRAIN_TIMEOUT = 120.0
#: How long the exit waits for the database connections to close cleanly (seconds).
POOL_CLOSE_TIMEOUT = 5.0
#: Each other step of the shutdown (live calls let go, each listener closed, each AMI link,
#: the daemon's row) gets this long; one that takes longer is left behind, named in a warning
#: with what every task still running waits on: the daemon exits within its stop timeout.
SHUTDOWN_STEP_TIMEOUT = 10.0
RECOVERY_INTERVAL = 5.0
METRICS_INTERVAL = 5.0
WAKEUP_PING = 5.0
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
BACKOFF_RESET = 60.0  # a loop that ran this long before failing starts its backoff afresh
#: Overrides `scheduler.state_dir` and systemd's STATE_DIRECTORY (docs/reliability.md).
STATE_DIR_ENV = "DIALLER_STATE_DIR"


def run(args: argparse.Namespace) -> int:
    """`dialler run`: the daemon, in the foreground, until SIGTERM/SIGINT; its exit status."""
    config = load_config(config_path(args))
    logs.setup(config.logging.level, config.logging.format)

    async def main() -> int:
        stop, hard_stop, reload = asyncio.Event(), asyncio.Event(), asyncio.Event()
        install_signals(stop, hard_stop, reload)
        return await run_daemon(config, stop, hard_stop, config_path(args), reload)

    try:
        import uvloop

        return uvloop.run(main())
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(main())


# --- supervision -----------------------------------------------------------------------------


class OnFailure(enum.Enum):
    """What a loop's failure does."""

    RESTART = "restart"  # logged with its traceback; the loop restarts after a backoff
    STOP = "stop"  # logged with its traceback; the daemon exits 1 (systemd restarts it)


@dataclass(frozen=True, slots=True)
class Loop:
    """One of the daemon's long-running loops."""

    name: str
    run: Callable[[], Awaitable[None]]
    on_failure: OnFailure


class LoopFailed(Exception):
    """A loop whose failure stops the daemon failed."""

    def __init__(self, name: str) -> None:
        super().__init__(f"daemon loop {name!r} failed")
        self.name = name


async def supervise(loop: Loop, *, first: float = BACKOFF_FIRST, most: float = BACKOFF_MAX) -> None:
    """Run `loop` until it returns; its failures as its `on_failure` says (`LoopFailed`
    raised for `STOP`). Cancellation passes through."""
    backoff = first
    while True:
        started = time.monotonic()
        try:
            await loop.run()
            return
        except Exception as exc:
            if loop.on_failure is OnFailure.STOP:
                log.critical(
                    "daemon loop failed; stopping the daemon",
                    exc_info=True,
                    extra={"loop": loop.name},
                )
                raise LoopFailed(loop.name) from exc
            if time.monotonic() - started >= BACKOFF_RESET:
                backoff = first
            log.error(
                "daemon loop failed; restarting in %gs",
                backoff,
                exc_info=True,
                extra={"loop": loop.name},
            )
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, most)


# --- the daemon ------------------------------------------------------------------------------


def journal_dir(config: Config, env: dict[str, str] | None = None) -> Path:
    """The results journal of this daemon: `<state dir>/journal-<HTTP port>` — one per daemon
    on a host (each has its own HTTP port), the same across its restarts. The state directory:
    `$DIALLER_STATE_DIR`, else the config's `scheduler.state_dir`, else systemd's
    `$STATE_DIRECTORY` (`StateDirectory=dialler`: the first if several), else
    `~/.local/state/dialler`."""
    environ = os.environ if env is None else env
    base = (
        environ.get(STATE_DIR_ENV)
        or config.scheduler.state_dir
        or environ.get("STATE_DIRECTORY", "").split(":")[0]
    )
    root = Path(base) if base else Path.home() / ".local" / "state" / "dialler"
    return root / f"journal-{config.listeners.http.port}"


async def _check_schema(pool: Pool) -> None:
    async with pool.acquire() as conn:
        applied = await store.schema_versions(conn)
    missing = [m.filename for m in available_migrations() if m.version not in applied]
    if missing:
        raise OperationalError(
            f"database schema is not current (missing {', '.join(missing)})"
            "; run `dialler db migrate`"
        )


async def _forget_own_dead(pool: Pool, hostname: str) -> None:
    """Daemons of this host whose process is gone (a crash, kill -9) are dead now, not after
    their heartbeat ages: their calls are reconciled at once."""
    async with pool.acquire() as conn:
        for daemon in await store.daemons_of_host(conn, hostname):
            try:
                os.kill(daemon.pid, 0)
            except ProcessLookupError:
                await store.mark_daemon_dead(conn, daemon.id)
            except PermissionError:
                pass


async def _sync_fleet(pool: Pool, config: Config) -> None:
    """Static workers of the config into the fleet; ones no longer listed leave rotation."""
    async with pool.acquire() as conn:
        for worker in config.fleet.workers:
            await fleet.upsert_config_worker(
                conn, worker.name, worker.host, worker.port, worker.capacity
            )
        await fleet.disable_unlisted_config_workers(conn, [w.name for w in config.fleet.workers])


def _open_journal(config: Config) -> Journal | None:
    """This daemon's results journal, locked. Raises `JournalLocked` (another daemon runs with
    it); a directory that cannot be created is logged and the daemon runs on without one (call
    ends then wait in memory only): a missing state directory must not stop the dialling."""
    journal = Journal(journal_dir(config))
    try:
        journal.open()
    except JournalLocked:
        raise
    except OperationalError as exc:
        log.error(
            "results journal unavailable; call ends kept in memory only "
            "(set scheduler.state_dir, DIALLER_STATE_DIR or the unit's StateDirectory=): %s",
            exc,
        )
        return None
    return journal


async def _journal_and_pool(config: Config) -> tuple[Journal | None, Pool]:
    """The results journal (first: a second daemon on it stops here) and the pool."""
    journal = _open_journal(config)
    try:
        pool = await create_pool(
            config.database.dsn, config.database.pool_min, config.database.pool_max
        )
    except BaseException:
        if journal is not None:
            journal.close()
        raise
    return journal, pool


async def run_daemon(
    config: Config,
    stop: asyncio.Event,
    hard_stop: asyncio.Event,
    config_path: str | None = None,
    reload: asyncio.Event | None = None,
) -> int:
    """Run until `stop` (drain) or `hard_stop`; `reload` set → re-read `config_path`.
    Returns the exit status: 0 after a stop, 1 when a loop whose failure stops the daemon
    failed. Raises `OperationalError` when it cannot start."""
    notifier = Notifier()
    notifier.status("starting")
    journal, pool = await _journal_and_pool(config)
    hostname = socket.gethostname()
    daemon_id = f"{hostname}:{os.getpid()}:{secrets.token_hex(3)}"
    clients = [AmiClient(pbx) for pbx in config.asterisk]
    closers: list[tuple[str, Callable[[], Awaitable[None]]]] = []
    engine: Engine | None = None
    try:
        await _check_schema(pool)
        await _forget_own_dead(pool, hostname)
        async with pool.acquire() as conn:
            await store.register_daemon(conn, daemon_id, hostname, os.getpid())
        trackers = {c.name: CallTracker(c) for c in clients}
        for client in clients:
            await client.start()
        await _wait_for_servers(clients)
        engine = Engine(config, pool, trackers, daemon_id, journal)
        # Call ends a previous process kept (a database outage, then a restart) go in first:
        # recovery below writes them instead of guessing `timeout`.
        engine.replay_journal()
        await engine.settle_kept()
        await _sync_fleet(pool, config)
        attach = AttachServer(config, pool)
        await attach.start(config.listeners.agi.host, config.listeners.agi.port)
        closers.append(("agi listener", attach.close))

        api = make_app(
            config,
            pool,
            engine.record_result,
            engine.test_call,
            readiness=_ready_checks(engine),
            readiness_detail=lambda: {"asterisk_servers": _server_states(engine)},
        )
        console.setup(api)  # the operator console on the same listener (docs/console.md)
        runner = await start(api, config.listeners.http.host, config.listeners.http.port)
        closers.append(("http listener", runner.cleanup))
        metrics.start_server(config.listeners.metrics.host, config.listeners.metrics.port)
        recovery = Recovery(engine)
        await recovery.run_once()  # reconcile before dialling anything
        log.info("daemon ready", extra={"daemon_id": daemon_id})
        # READY=1 only now: database, AMI (or its absence, said in STATUS), listeners up and
        # stale attempts reconciled.
        notifier.ready(_status_line(engine))
        drained = asyncio.Event()  # the watchdog pings until the drain is over
        loops = _loops(
            engine,
            recovery,
            attach,
            pool,
            notifier,
            daemon_id,
            stop,
            drained,
            reload,
            config_path,
            api[API_CONFIG],
        )
        status = 0
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(supervise(loop), name=loop.name) for loop in loops]
                await _until_stopped(engine, notifier, stop, hard_stop)
                drained.set()
                log.info("drain over; stopping the daemon's loops")
                for task in tasks:
                    task.cancel()
        except* LoopFailed:
            status = 1
        return status
    finally:
        log.info("shutting down: closing listeners and connections")
        if engine is not None:
            await _shutdown_step("live calls", engine.abandon())
        for name, close in reversed(closers):
            await _shutdown_step(name, close())
        for client in clients:
            await _shutdown_step(f"ami {client.name}", client.close())
        await _shutdown_step("daemon row", _unregister(pool, daemon_id))
        try:
            # Every task is done by now; a connection still out would make close() wait for
            # ever (asyncpg waits for it to be released): bounded, then closed regardless.
            await asyncio.wait_for(pool.close(), POOL_CLOSE_TIMEOUT)
        except TimeoutError:
            log.warning("database connections still in use at exit; closed regardless")
            pool.terminate()
        if journal is not None:
            journal.close()
        # What asyncio.run still cancels and awaits on its way out (none of ours should be
        # left): named, so that an exit that hangs after this line says where.
        log.info("daemon stopped", extra={"tasks_left": _waiting_tasks()})


async def _shutdown_step(name: str, step: Awaitable[object]) -> None:
    """Await one step of the shutdown for at most `SHUTDOWN_STEP_TIMEOUT` seconds. A step
    that fails is logged; one that takes longer is cancelled and left behind (never awaited
    again: a step that ignores its cancellation cannot hold the exit), with a warning naming
    it and where every other task still waits."""
    task = asyncio.ensure_future(step)
    # Whatever a left-behind step ends with is read here, never reported as "never retrieved".
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    done, _pending = await asyncio.wait({task}, timeout=SHUTDOWN_STEP_TIMEOUT)
    if not done:
        task.cancel()
        log.warning(
            "shutdown step took too long; left behind",
            extra={"step": name, "seconds": SHUTDOWN_STEP_TIMEOUT, "waiting": _waiting_tasks()},
        )
    elif task.exception() is not None:
        log.warning("shutdown step failed", extra={"step": name}, exc_info=task.exception())


def _waiting_tasks() -> str:
    """Each unfinished task of the loop, with the line it waits at (for a shutdown warning)."""
    found = []
    for task in asyncio.all_tasks():
        if task is asyncio.current_task() or task.done():
            continue
        frames = task.get_stack(limit=1)
        where = f"{frames[-1].f_code.co_filename}:{frames[-1].f_lineno}" if frames else "?"
        found.append(f"{task.get_name()}@{where}")
    return "; ".join(sorted(found))


async def _unregister(pool: Pool, daemon_id: str) -> None:
    async with pool.acquire() as conn:
        await store.unregister_daemon(conn, daemon_id)


def _loops(
    engine: Engine,
    recovery: Recovery,
    attach: AttachServer,
    pool: Pool,
    notifier: Notifier,
    daemon_id: str,
    stop: asyncio.Event,
    drained: asyncio.Event,
    reload: asyncio.Event | None,
    config_path: str | None,
    api_config: ConfigRef,
) -> list[Loop]:
    """The daemon's loops and what each one's failure does (docs/engine.md, "Supervision").

    Only the watchdog's failure stops the daemon: without its pings systemd kills the daemon
    anyway, with no drain; every other loop is worth keeping the daemon (and its live calls)
    for, and restarts.
    """
    restart, fatal = OnFailure.RESTART, OnFailure.STOP
    loops = [
        Loop("scheduler", lambda: engine.run(stop), restart),
        Loop("recovery", lambda: _recovery_loop(recovery, engine, stop), restart),
        Loop("settler", lambda: engine.run_settler(stop), restart),
        Loop("servers", lambda: engine.run_servers(stop), restart),
        Loop("heartbeat", lambda: _heartbeat(pool, daemon_id, engine), restart),
        Loop("wakeups", lambda: _listen_wakeups(pool, engine, stop), restart),
        Loop("metrics", lambda: _metrics_loop(pool, engine, notifier), restart),
        Loop("watchdog", lambda: watchdog_loop(notifier, drained), fatal),
    ]
    if reload is not None and config_path is not None:
        loops.append(
            Loop(
                "reload",
                lambda: _reload_loop(
                    reload, config_path, engine, attach, pool, notifier, stop, api_config
                ),
                restart,
            )
        )
    return loops


async def _until_stopped(
    engine: Engine, notifier: Notifier, stop: asyncio.Event, hard_stop: asyncio.Event
) -> None:
    """Wait for the first stop, then drain until the live calls end, `DRAIN_TIMEOUT` passes
    or the second stop comes."""
    await stop.wait()
    notifier.stopping(f"draining: {len(engine.live)} live calls")
    log.info("draining: no new dials; waiting for live calls", extra={"live": len(engine.live)})
    drain = asyncio.create_task(engine.drain(DRAIN_TIMEOUT), name="drain")
    hard = asyncio.create_task(hard_stop.wait(), name="hard-stop")
    try:
        await asyncio.wait({drain, hard}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (drain, hard):
            task.cancel()
        await asyncio.gather(drain, hard, return_exceptions=True)
    left = len(engine.live)
    if left:
        log.warning("exiting with live calls; the next start reconciles them", extra={"live": left})


def _status_line(engine: Engine) -> str:
    up, total = len(engine.servers.up()), len(engine.trackers)
    ami = "up" if up == total else "DOWN" if up == 0 else f"{up}/{total} up"
    return f"running: {len(engine.live)} live calls, AMI {ami}"


async def _wait_for_servers(clients: list[AmiClient]) -> None:
    """Give every Asterisk its `connect_timeout` to log in, all at once (several servers down
    do not add up their waits); one not up yet gets no dials until it is."""

    async def wait(client: AmiClient) -> None:
        try:
            await client.wait_ready(client.config.ami.connect_timeout)
        except OperationalError:
            log.warning(
                "AMI not up yet; nothing is dialled through it until it is",
                extra={"asterisk": client.name},
            )

    await asyncio.gather(*(wait(client) for client in clients))


def _ready_checks(engine: Engine) -> Callable[[], Awaitable[dict[str, bool]]]:
    """`/readyz`'s checks besides the database: ready while at least one Asterisk is up (the
    engine dials through the others when one goes; each one's state is in the body's
    `asterisk_servers`)."""

    async def checks() -> dict[str, bool]:
        # `results_written`: false while call ends wait to be written (how many: the
        # dialler_results_unwritten metric).
        return {
            "asterisk": engine.servers.any_up(),
            "database_writes": engine.database_up,
            "results_written": not engine.unsettled and not engine.kept_results,
        }

    return checks


def _server_states(engine: Engine) -> list[dict[str, object]]:
    """Each Asterisk server as `/readyz` shows it: AMI up, this daemon's calls on it, cap."""
    return [
        {
            "name": name,
            "up": tracker.ami.ready,
            "in_flight": engine.servers.in_flight(name),
            "max_channels": engine.servers.caps.get(name),
        }
        for name, tracker in engine.trackers.items()
    ]


# --- the loops -------------------------------------------------------------------------------


async def _reload_loop(
    reload: asyncio.Event,
    path: str,
    engine: Engine,
    attach: AttachServer,
    pool: Pool,
    notifier: Notifier,
    stop: asyncio.Event,
    api_config: ConfigRef,
) -> None:
    """SIGHUP: re-read the config. A bad file keeps the old config and says why; a change
    that needs a restart is refused; the rest applies live."""
    while not stop.is_set():
        await reload.wait()
        reload.clear()
        if stop.is_set():
            return
        notifier.reloading("reloading config")
        try:
            new, notes = reload_config(path, engine.config)
            if new is engine.config:
                message = (
                    ("reload refused: " + "; ".join(notes)) if notes else "reloaded: no change"
                )
                (log.warning if notes else log.info)(message)
            else:
                await _apply(new, engine, attach, pool)
                api_config.config = new  # tokens and limits of the HTTP API
                message = "reloaded: " + "; ".join(notes)
                log.info(message)
        except Exception as exc:  # never leave systemd waiting in "reloading"
            log.exception("reload failed")
            message = f"reload failed: {exc}"
        notifier.ready(message)


async def _apply(new: Config, engine: Engine, attach: AttachServer, pool: Pool) -> None:
    old = engine.config
    engine.config = new
    attach.config = new
    for carrier in new.carriers:
        if (
            carrier.name not in engine.buckets
            or old.carrier(carrier.name).calls_per_second != carrier.calls_per_second
        ):
            engine.buckets[carrier.name] = TokenBucket(carrier.calls_per_second)
    await _sync_fleet(pool, new)
    async with pool.acquire() as conn:
        await repo.sync_numbers(conn, new)
    logs.setup(new.logging.level, new.logging.format)
    engine.wake.set()


async def _heartbeat(pool: Pool, daemon_id: str, engine: Engine) -> None:
    while True:
        await asyncio.sleep(engine.config.scheduler.heartbeat_interval)
        try:
            async with pool.acquire() as conn:
                await store.heartbeat(conn, daemon_id)
        except Exception as exc:
            # An outage is said once by the engine (`database unreachable`): no traceback here.
            unreachable = store.database_unreachable(exc)
            log.warning("heartbeat failed", exc_info=not unreachable)


async def _metrics_loop(pool: Pool, engine: Engine, notifier: Notifier) -> None:
    """The database-derived gauges (in flight, contacts, stalled, fleet...) and the systemd
    STATUS line, every 5 s."""
    while True:
        try:
            async with pool.acquire() as conn:
                await metrics.refresh(conn, engine.config)
        except Exception as exc:
            log.warning("metrics refresh failed", exc_info=not store.database_unreachable(exc))
        notifier.status(_status_line(engine))
        await asyncio.sleep(METRICS_INTERVAL)


async def _recovery_loop(recovery: Recovery, engine: Engine, stop: asyncio.Event) -> None:
    """Every `RECOVERY_INTERVAL`, and at once when the database is back after an outage (the
    calls whose ends it hid are reconciled within seconds)."""
    while not stop.is_set():
        back = asyncio.ensure_future(engine.database_back.wait())
        try:
            await asyncio.wait({back}, timeout=RECOVERY_INTERVAL)
        finally:
            back.cancel()
        if not engine.database_up:
            continue  # nothing can be read or decided; the scheduler says when it is back
        try:
            await recovery.run_once()
        except Exception as exc:
            if store.database_unreachable(exc):
                engine.set_database_up(False, exc)
            else:
                log.exception("recovery pass failed")
        engine.database_back.clear()


async def _listen_wakeups(pool: Pool, engine: Engine, stop: asyncio.Event) -> None:
    """LISTEN dialler_wakeup: a started campaign or new contacts are dialled at once; the
    poll interval is the fallback. A LISTEN on a connection the server dropped hears nothing
    and says nothing: the connection is pinged every `WAKEUP_PING` s and, once lost (a
    database restart), listened on again as soon as the database answers."""

    def wake(*_args: object) -> None:
        engine.wake.set()

    while not stop.is_set():
        try:
            async with pool.acquire() as conn:
                await store.listen_wakeups(conn, wake)
                engine.wake.set()  # notifications sent while not listening are lost: look now
                try:
                    while not stop.is_set():
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), timeout=WAKEUP_PING)
                        await store.ping(conn)
                finally:
                    with contextlib.suppress(Exception):  # a dead connection cannot UNLISTEN
                        await store.unlisten_wakeups(conn, wake)
        except Exception as exc:
            if not store.database_unreachable(exc):
                raise
            log.warning("wake-up listener lost the database; listening again when it is back")
            await asyncio.sleep(WAKEUP_PING)


def install_signals(
    stop: asyncio.Event, hard_stop: asyncio.Event, reload: asyncio.Event | None = None
) -> None:
    """SIGTERM/SIGINT: the first drains (`stop`), the second exits (`hard_stop`); SIGHUP sets
    `reload`."""
    loop = asyncio.get_running_loop()
    if reload is not None:
        loop.add_signal_handler(signal.SIGHUP, reload.set)

    def on_signal() -> None:
        if stop.is_set():
            hard_stop.set()
        else:
            stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
