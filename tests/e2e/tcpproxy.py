"""A TCP relay used to break the AMI link on purpose (a fault injector, not a mock: both ends
are the real dialler client and the real Asterisk)."""

from __future__ import annotations

import asyncio
import contextlib


class FaultyLink:
    """Relays 127.0.0.1:<port> to a target; can cut every connection or go silent."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.silent = False  # drop Asterisk → client bytes (a dead but open link)
        self.refusing = False  # close every new connection at once (the far end is down)
        self.connections = 0
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def cut(self) -> None:
        """Close every relayed connection at once (both sides see a reset/EOF)."""
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.refusing:
            client_w.transport.abort()
            return
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self._writers |= {client_w, server_w}

        async def pump(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, downstream: bool
        ) -> None:
            with contextlib.suppress(Exception):
                while data := await reader.read(65536):
                    if downstream and self.silent:
                        continue
                    writer.write(data)
                    await writer.drain()
            with contextlib.suppress(Exception):
                writer.transport.abort()

        try:
            await asyncio.gather(pump(client_r, server_w, False), pump(server_r, client_w, True))
        except asyncio.CancelledError:
            pass  # the test's loop is shutting the relay down
        finally:
            self._writers -= {client_w, server_w}
