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

from ..ami.calls import CallTracker
from ..ami.client import AmiClient
from ..config import Config
from ..db.migrate import available_migrations
from ..db.pool import create_pool
from ..errors import OperationalError
from ..fleet.attach import AttachServer
from .engine import Engine, F, Q
from .recovery import Recovery

log = logging.getLogger(__name__)
DRAIN_TIMEOUT = 120.0
RECOVERY_INTERVAL = 5.0


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


async def run_daemon(config: Config, stop: asyncio.Event, hard_stop: asyncio.Event) -> int:
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
        async with pool.acquire() as conn:
            for worker in config.fleet.workers:
                await conn.execute(F["upsert_config_worker"], worker.name, worker.host,
                                   worker.port, worker.capacity)
            await conn.execute(F["disable_unlisted_config_workers"],
                               [w.name for w in config.fleet.workers])
        attach = AttachServer(config, pool)
        await attach.start(config.listeners.agi.host, config.listeners.agi.port)
        closers.append(attach.close)
        from ..api.server import make_app, start
        runner = await start(make_app(config, pool, engine.record_result, engine.test_call),
                             config.listeners.http.host, config.listeners.http.port)
        closers.append(runner.cleanup)
        recovery = Recovery(engine)
        await recovery.run_once()  # reconcile before dialling anything
        log.info("daemon ready", extra={"daemon_id": daemon_id})
        tasks = [
            asyncio.create_task(_heartbeat(pool, daemon_id, config), name="heartbeat"),
            asyncio.create_task(_recovery_loop(recovery, stop), name="recovery"),
            asyncio.create_task(_listen_wakeups(pool, engine, stop), name="wakeups"),
        ]
        scheduler = asyncio.create_task(engine.run(stop), name="scheduler")
        await stop.wait()
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


async def _heartbeat(pool: Any, daemon_id: str, config: Config) -> None:
    while True:
        await asyncio.sleep(config.scheduler.heartbeat_interval)
        try:
            async with pool.acquire() as conn:
                await conn.execute(Q["heartbeat"], daemon_id)
        except Exception:
            log.warning("heartbeat failed")


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


def install_signals(stop: asyncio.Event, hard_stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            hard_stop.set()
        else:
            stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
