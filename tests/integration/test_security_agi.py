"""Issue 11, the FastAGI listener through a real TCP socket and a real PostgreSQL: the shared
secret, the allow-list, timeouts in every phase, the connection cap, values checked before
they reach an AGI command, and worker probes made with no fleet lock held."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dialler.config import Config, parse_config
from dialler.fleet import attach
from dialler.fleet.attach import AttachServer
from dialler.store import fleet
from dialler.store.pool import create_pool

from ..support import free_port

pytestmark = pytest.mark.integration
SECRET = "agi-secret-0123456789abcdef"


def _config(db_dsn: str, **agi: Any) -> Config:
    return parse_config(
        {
            "database": {"dsn": db_dsn},
            "asterisk": [{"name": "pbx", "ami": {"username": "u", "secret_env": "S"}}],
            "carriers": [{"name": "lab"}],
            "listeners": {"agi": {"secret_env": "AGI", **agi}},
        },
        "test",
        env={"S": "secret", "AGI": SECRET},
    )


class Agi:
    """An AttachServer on a free port, and a way to talk to it like Asterisk."""

    def __init__(self, server: AttachServer, port: int, pool: Any) -> None:
        self.server, self.port, self.pool = server, port, pool

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self, script: str, uniqueid: str | None = None) -> list[str]:
        """Send an AGI request, answer every command `200 result=1`; the commands sent."""
        reader, writer = await self.connect()
        writer.write(
            f"agi_network: yes\nagi_network_script: {script}\n"
            f"agi_uniqueid: {uniqueid or uuid.uuid4()}\n\n".encode()
        )
        commands: list[str] = []
        try:
            async with asyncio.timeout(10):
                while line := await reader.readline():
                    commands.append(line.decode().rstrip("\n"))
                    writer.write(b"200 result=1\n")
        except ConnectionResetError:  # closed with our request unread: refused
            pass
        writer.close()
        return commands


@pytest.fixture
async def agi(db_dsn: str) -> AsyncIterator[Agi]:
    pool = await create_pool(db_dsn)
    server = AttachServer(_config(db_dsn), pool)
    port = free_port()
    await server.start("127.0.0.1", port)
    yield Agi(server, port, pool)
    await server.close()
    await pool.close()


async def test_the_secret_is_required(agi: Agi) -> None:
    assert await agi.request("attach") == []
    assert await agi.request("attach?secret=wrong-secret-0123456789") == []
    assert await agi.request("other?secret=" + SECRET) == []
    # With it: an unknown attempt is abandoned (a callee is never left in silence).
    assert await agi.request("attach?secret=" + SECRET) == [
        'SET VARIABLE DIALLER_ATTACH "abandoned"'
    ]


async def test_the_allow_list(agi: Agi) -> None:
    agi.server.config = _config(agi.server.config.database.dsn, allow=["10.0.0.0/8"])
    assert await agi.request("attach?secret=" + SECRET) == []
    agi.server.config = _config(agi.server.config.database.dsn, allow=["127.0.0.0/8"])
    assert len(await agi.request("attach?secret=" + SECRET)) == 1


@pytest.mark.parametrize(
    "headers",
    [
        b"agi_network_script: attach\nagi_network_script: attach\n\n",
        b"not a header\n\n",
        b"agi_uniqueid: a\x1bb\n\n",
        b"agi_x: \xff\n\n",
    ],
)
async def test_malformed_headers_get_no_answer(agi: Agi, headers: bytes) -> None:
    reader, writer = await agi.connect()
    writer.write(headers)
    async with asyncio.timeout(5):
        assert await reader.read() == b""
    writer.close()


async def test_silence_is_cut_in_every_phase(agi: Agi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attach, "HEADER_TIMEOUT", 0.5)
    monkeypatch.setattr(attach, "COMMAND_TIMEOUT", 0.5)
    started = time.monotonic()
    reader, writer = await agi.connect()  # headers never sent
    async with asyncio.timeout(5):
        assert await reader.read() == b""
    writer.close()
    reader, writer = await agi.connect()  # the command is never answered
    writer.write(f"agi_network_script: attach?secret={SECRET}\nagi_uniqueid: x\n\n".encode())
    async with asyncio.timeout(5):
        assert await reader.readline() == b'SET VARIABLE DIALLER_ATTACH "abandoned"\n'
        assert await reader.read() == b""
    writer.close()
    assert time.monotonic() - started < 4


async def test_connections_over_the_cap_are_closed(
    agi: Agi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(attach, "MAX_CONNECTIONS", 3)
    held = [await agi.connect() for _ in range(3)]
    deadline = time.monotonic() + 5
    while agi.server.open_connections < 3:  # the server has taken all three
        assert time.monotonic() < deadline, agi.server.open_connections
        await asyncio.sleep(0.01)
    reader, writer = await agi.connect()
    async with asyncio.timeout(2):
        assert await reader.read() == b""
    writer.close()
    for _reader, held_writer in held:
        held_writer.close()


async def test_a_bad_host_in_the_database_never_reaches_the_dialplan(agi: Agi) -> None:
    async with agi.pool.acquire() as conn:  # stored before hosts were validated
        await fleet.register_worker(conn, "evil", '127.0.0.1" ,x', 1, 1)
    assert await agi.request("attach?secret=" + SECRET) == [
        'SET VARIABLE DIALLER_ATTACH "abandoned"'
    ]


def test_agi_values_are_checked() -> None:
    assert attach.agi_value("127.0.0.1:57000") == "127.0.0.1:57000"
    assert attach.agi_value("[::1]:57000") == "[::1]:57000"
    for bad in ('a"b', "a,b", "a\nb", "a b", "a\\b", ""):
        with pytest.raises(ValueError):
            attach.agi_value(bad)


async def test_probes_hold_no_fleet_lock(agi: Agi) -> None:
    # Twenty workers that never answer: probed at once, and a claim's lock is free meanwhile.
    async with agi.pool.acquire() as conn:
        for n in range(20):
            await fleet.register_worker(conn, f"dead{n}", "127.0.0.1", free_port(), 1)
    started = time.monotonic()
    decided = asyncio.create_task(agi.server.decide(uuid.uuid4()))
    lock_waits: list[float] = []
    while not decided.done():
        async with agi.pool.acquire() as conn, conn.transaction():
            before = time.monotonic()
            await fleet.lock_fleet(conn)
            lock_waits.append(time.monotonic() - before)
    assert await decided is None
    assert time.monotonic() - started < 2
    assert max(lock_waits) < 0.25, lock_waits
