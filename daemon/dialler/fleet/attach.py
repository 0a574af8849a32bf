"""FastAGI `attach`: the answered call asks which worker takes it.

The dialplan (agi/dialler.conf) runs `AGI(agi://<daemon>/attach)` when the callee answers.
This route confirms the slot reserved at dial time — the worker is in rotation and its
AudioSocket port accepts connections — or moves the call to another worker with a free slot;
it answers with channel variables: `DIALLER_ATTACH` = `ok` and `DIALLER_WORKER` = host:port, or
`DIALLER_ATTACH` = `abandoned` (the dialplan then plays a short message and hangs up; the
attempt ends `abandoned`). A callee is never left in silence.

The server reads the AGI request headers itself (bounded in size and time; panoramisk's
handler spins on a connection closed early) and uses panoramisk's `Request` for the commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from panoramisk.fast_agi import Request

from .. import metrics
from ..config import Config
from ..store import fleet
from ..store.conn import Connection, Pool

__all__ = ["AttachServer", "port_open"]

log = logging.getLogger(__name__)
HEADER_LIMIT = 16 * 1024
PROBE_TIMEOUT = 0.3


async def port_open(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """Does the worker's AudioSocket port accept a connection right now?"""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class AttachServer:
    def __init__(self, config: Config, pool: Pool) -> None:
        self.config = config
        self.pool = pool
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        self.server = await asyncio.start_server(self.handle, host, port)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            raw = await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            writer.close()
            return
        try:
            headers = dict(
                line.split(": ", 1)
                for line in raw[:HEADER_LIMIT].decode(errors="replace").splitlines()
                if ": " in line
            )
            request = Request(app=None, headers=headers, reader=reader, writer=writer)
            if headers.get("agi_network_script") == "attach":
                await self._attach(request, headers.get("agi_uniqueid", ""))
        except Exception:
            log.exception("attach failed")
        finally:
            writer.close()

    async def _attach(self, request: Request, uniqueid: str) -> None:
        try:
            attempt_id = uuid.UUID(uniqueid)
        except ValueError:
            attempt_id = None
        address = await self.decide(attempt_id) if attempt_id else None
        if address is None:
            await request.send_command('SET VARIABLE DIALLER_ATTACH "abandoned"')
        else:
            await request.send_command(f'SET VARIABLE DIALLER_WORKER "{address}"')
            await request.send_command('SET VARIABLE DIALLER_ATTACH "ok"')

    async def _attached(self, conn: Connection, attempt_id: uuid.UUID) -> None:
        waited = await fleet.mark_attached(conn, attempt_id)
        if waited is not None:
            metrics.ANSWER_TO_ATTACH.observe(max(0.0, waited))

    async def decide(self, attempt_id: uuid.UUID) -> str | None:
        """The worker address for this answered call, or None (abandoned)."""
        timeout = self.config.fleet.heartbeat_timeout
        async with self.pool.acquire() as conn:
            slot = await fleet.slot_of_attempt(conn, attempt_id, timeout)
            if (
                slot is not None
                and slot.enabled
                and slot.alive
                and await port_open(slot.host, slot.port)
            ):
                await self._attached(conn, attempt_id)
                return f"{slot.host}:{slot.port}"
            reserved = slot.worker if slot is not None else ""
            async with conn.transaction():
                # The same "lock the fleet, then count" as a claim: the slot taken here is
                # free for the rest of this transaction.
                others = [
                    w for w in await fleet.locked_fleet_free(conn, timeout) if w.name != reserved
                ]
                for other in others:
                    if await port_open(other.host, other.port):
                        if slot is None:
                            await fleet.reserve_slots(conn, [attempt_id], [other.name])
                        else:
                            await fleet.move_slot(conn, attempt_id, other.name)
                        await self._attached(conn, attempt_id)
                        log.warning(
                            "reserved worker unavailable; call moved",
                            extra={"attempt_id": str(attempt_id), "worker": other.name},
                        )
                        return f"{other.host}:{other.port}"
                campaign = await fleet.mark_abandoned(
                    conn, attempt_id, f"no worker could take the call (reserved: {reserved or '-'})"
                )
                if campaign is not None:
                    metrics.CALLS_ABANDONED.labels(str(campaign)).inc()
        log.warning("answered call abandoned: no worker", extra={"attempt_id": str(attempt_id)})
        return None
