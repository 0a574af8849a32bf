"""`dialler run`: the composition root of the daemon.

Start: database (schema must be current), daemon registration and heartbeat, AMI connections,
then stale-state recovery *before* the first dial, then the scheduler. First SIGTERM/SIGINT:
drain (stop claiming; live calls finish, up to `drain_timeout`); a second: exit at once (calls
cut off are reconciled by the next start, like after a crash).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from .. import logs, metrics
from ..ami.calls import CallTracker
from ..ami.client import AmiClient
from ..campaigns import repo
from ..config import Config
from ..store.migrate import available_migrations
from ..store.pool import create_pool
from ..errors import OperationalError
from ..fleet.attach import AttachServer
from ..reload import reload_config
from ..systemd import Notifier, watchdog_loop
from .engine import Engine, F, Q
from .pacing import TokenBucket
from .recovery import Recovery

log = logging.getLogger(__name__)
DRAIN_TIMEOUT = 120.0
RECOVERY_INTERVAL = 5.0
METRICS_INTERVAL = 5.0


async def _check_schema(pool: Any) -> None:
    async with pool.acquire() as conn:
        try:
            applied = {r["version"] for r in await conn.fetch(
                "SELECT version FROM schema_migrations")}
        except Exception:
            applied = set()
    missing = [m.filename for m in available_migrations() if m.version not in applied]
    if missing:
        raise OperationalError(f"database schema is not current (missing {', '.join(missing)})"
                               "; run `dialler db migrate`")


async def _forget_own_dead(pool: Any, hostname: str) -> None:
    """Daemons of this host whose process is gone (a crash, kill -9) are dead now, not after
    their heartbeat ages: their calls are reconciled at once."""
    async with pool.acquire() as conn:
        for row in await conn.fetch("SELECT id, pid FROM daemons WHERE hostname = $1", hostname):
            try:
                os.kill(row["pid"], 0)
            except ProcessLookupError:
                await conn.execute(
                    "UPDATE daemons SET heartbeat_at = '-infinity' WHERE id = $1", row["id"])
            except PermissionError:
                pass


async def _sync_fleet(pool: Any, config: Config) -> None:
    """Static workers of the config into the fleet; ones no longer listed leave rotation."""
    async with pool.acquire() as conn:
        for worker in config.fleet.workers:
            await conn.execute(F["upsert_config_worker"], worker.name, worker.host,
                               worker.port, worker.capacity)
        await conn.execute(F["disable_unlisted_config_workers"],
                           [w.name for w in config.fleet.workers])


async def run_daemon(config: Config, stop: asyncio.Event, hard_stop: asyncio.Event,
                     config_path: str | None = None,
                     reload: asyncio.Event | None = None) -> int:
    """Run until `stop` (drain) or `hard_stop`; `reload` set → re-read `config_path`."""
    notifier = Notifier()
    notifier.status("starting")
    pool = await create_pool(config.database.dsn, config.database.pool_min,
                             config.database.pool_max)
    hostname = socket.gethostname()
    daemon_id = f"{hostname}:{os.getpid()}:{secrets.token_hex(3)}"
    clients = [AmiClient(pbx) for pbx in config.asterisk]
    tasks: list[asyncio.Task[Any]] = []
    closers: list[Callable[[], Awaitable[None]]] = []
    try:
        await _check_schema(pool)
        await _forget_own_dead(pool, hostname)
        async with pool.acquire() as conn:
            await conn.execute(Q["register_daemon"], daemon_id, hostname, os.getpid())
        trackers = {c.name: CallTracker(c) for c in clients}
        for client in clients:
            await client.start()
        for client in clients:
            try:
                await client.wait_ready(config.asterisk[0].ami.connect_timeout)
            except OperationalError:
                log.warning("AMI not up yet; nothing is dialled until it is",
                            extra={"asterisk": client.name})
        engine = Engine(config, pool, trackers, daemon_id)
        await _sync_fleet(pool, config)
        attach = AttachServer(config, pool)
        await attach.start(config.listeners.agi.host, config.listeners.agi.port)
        closers.append(attach.close)
        from ..api.server import CONFIG as API_CONFIG
        from ..api.server import make_app, start

        async def ami_ready() -> dict[str, bool]:
            return {f"ami:{c.name}": c.ready for c in clients}

        app = make_app(config, pool, engine.record_result, engine.test_call,
                       readiness=ami_ready)
        runner = await start(app, config.listeners.http.host, config.listeners.http.port)
        closers.append(runner.cleanup)
        metrics.start_server(config.listeners.metrics.host, config.listeners.metrics.port)
        recovery = Recovery(engine)
        await recovery.run_once()  # reconcile before dialling anything
        log.info("daemon ready", extra={"daemon_id": daemon_id})
        # READY=1 only now: database, AMI (or its absence, said in STATUS), listeners up and
        # stale attempts reconciled.
        notifier.ready(_status_line(engine))
        watchdog_done = asyncio.Event()
        tasks = [
            asyncio.create_task(_heartbeat(pool, daemon_id, engine), name="heartbeat"),
            asyncio.create_task(_recovery_loop(recovery, stop), name="recovery"),
            asyncio.create_task(_listen_wakeups(pool, engine, stop), name="wakeups"),
            asyncio.create_task(_metrics_loop(pool, engine, notifier), name="metrics"),
            asyncio.create_task(watchdog_loop(notifier, watchdog_done), name="watchdog"),
        ]
        if reload is not None and config_path is not None:
            tasks.append(asyncio.create_task(
                _reload_loop(reload, config_path, engine, attach, pool, notifier, stop,
                             app[API_CONFIG]),
                name="reload"))
        scheduler = asyncio.create_task(engine.run(stop), name="scheduler")
        await stop.wait()
        notifier.stopping(f"draining: {len(engine.live)} live calls")
        log.info("draining: no new dials; waiting for live calls", extra={
            "live": len(engine.live)})
        drain = asyncio.create_task(engine.drain(DRAIN_TIMEOUT))
        await asyncio.wait({drain, asyncio.ensure_future(hard_stop.wait())},
                           return_when=asyncio.FIRST_COMPLETED)
        left = len(engine.live)
        if left:
            log.warning("exiting with live calls; the next start reconciles them",
                        extra={"live": left})
        scheduler.cancel()
        watchdog_done.set()
        return 0
    finally:
        for task in tasks:
            task.cancel()
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                await close()
        for client in clients:
            await client.close()
        with contextlib.suppress(Exception):
            async with pool.acquire() as conn:
                await conn.execute(Q["unregister_daemon"], daemon_id)
        await pool.close()


def _status_line(engine: Engine) -> str:
    ami = "up" if all(t.ami.ready for t in engine.trackers.values()) else "DOWN"
    return f"running: {len(engine.live)} live calls, AMI {ami}"


async def _reload_loop(reload: asyncio.Event, path: str, engine: Engine, attach: AttachServer,
                       pool: Any, notifier: Notifier, stop: asyncio.Event,
                       api_config: Any) -> None:
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
                message = ("reload refused: " + "; ".join(notes)) if notes else \
                    "reloaded: no change"
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


async def _apply(new: Config, engine: Engine, attach: AttachServer, pool: Any) -> None:
    old = engine.config
    engine.config = new
    attach.config = new
    for carrier in new.carriers:
        if carrier.name not in engine.buckets or \
                old.carrier(carrier.name).calls_per_second != carrier.calls_per_second:
            engine.buckets[carrier.name] = TokenBucket(carrier.calls_per_second)
    await _sync_fleet(pool, new)
    async with pool.acquire() as conn:
        await repo.sync_numbers(conn, new)
    logs.setup(new.logging.level, new.logging.format)
    engine.wake.set()


async def _heartbeat(pool: Any, daemon_id: str, engine: Engine) -> None:
    while True:
        await asyncio.sleep(engine.config.scheduler.heartbeat_interval)
        try:
            async with pool.acquire() as conn:
                await conn.execute(Q["heartbeat"], daemon_id)
        except Exception:
            log.warning("heartbeat failed")


async def _metrics_loop(pool: Any, engine: Engine, notifier: Notifier) -> None:
    """The database-derived gauges (in flight, contacts, stalled, fleet...) and the systemd
    STATUS line, every 5 s."""
    while True:
        try:
            async with pool.acquire() as conn:
                await metrics.refresh(conn, engine.config)
        except Exception:
            log.warning("metrics refresh failed", exc_info=True)
        notifier.status(_status_line(engine))
        await asyncio.sleep(METRICS_INTERVAL)


async def _recovery_loop(recovery: Recovery, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(RECOVERY_INTERVAL)
        try:
            await recovery.run_once()
        except Exception:
            log.exception("recovery pass failed")


async def _listen_wakeups(pool: Any, engine: Engine, stop: asyncio.Event) -> None:
    """LISTEN dialler_wakeup: a started campaign or new contacts are dialled at once; the
    poll interval is the fallback."""
    def wake(*_args: object) -> None:
        engine.wake.set()

    async with pool.acquire() as conn:
        await conn.add_listener("dialler_wakeup", wake)
        try:
            await stop.wait()
        finally:
            await conn.remove_listener("dialler_wakeup", wake)


def install_signals(stop: asyncio.Event, hard_stop: asyncio.Event,
                    reload: asyncio.Event | None = None) -> None:
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
