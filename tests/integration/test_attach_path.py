"""Issue 12 item 4, the FastAGI attach path through a real TCP socket and a real PostgreSQL:
one database round trip per attach, no worker probed and no lock taken on the way; the slot
reserved at claim is confirmed, moved off a silent worker, or the call is abandoned; a static
worker whose health check failed is not chosen."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from dialler.config import Config, parse_config
from dialler.fleet.attach import AttachServer
from dialler.store import fleet
from dialler.store.pool import create_pool

from ..support import free_port

pytestmark = pytest.mark.integration
SECRET = "agi-secret-0123456789abcdef"


def ok(address: str) -> list[str]:
    """The answer for a call attached to the worker at `address`: both variables at once."""
    return [f'EXEC MSet "DIALLER_WORKER={address},DIALLER_ATTACH=ok"']


ABANDONED = 'SET VARIABLE DIALLER_ATTACH "abandoned"'


def _config(db_dsn: str, workers: list[dict[str, Any]] | None = None) -> Config:
    return parse_config(
        {
            "database": {"dsn": db_dsn},
            "asterisk": [{"name": "pbx", "ami": {"username": "u", "secret_env": "S"}}],
            "carriers": [{"name": "lab"}],
            "listeners": {"agi": {"secret_env": "AGI"}},
            "fleet": {"workers": workers or [], "heartbeat_timeout": "15s"},
        },
        "test",
        env={"S": "secret", "AGI": SECRET},
    )


class CountingPool:
    """The real pool, counting the statements sent through it (round trips)."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.statements: list[str] = []

    @contextlib.asynccontextmanager
    async def acquire(self, *, timeout: float | None = None) -> AsyncIterator[Any]:
        async with self.pool.acquire(timeout=timeout) as conn:
            yield _CountingConnection(conn, self.statements)

    async def close(self) -> None:
        await self.pool.close()

    def terminate(self) -> None:
        self.pool.terminate()


class _CountingConnection:
    def __init__(self, conn: Any, statements: list[str]) -> None:
        self._conn, self._statements = conn, statements

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._conn, name)
        if name not in ("execute", "executemany", "fetch", "fetchrow", "fetchval"):
            return attribute

        async def counted(query: str, *args: Any, **kwargs: Any) -> Any:
            self._statements.append(query)
            return await attribute(query, *args, **kwargs)

        return counted


class Agi:
    """An AttachServer on a free port (no background health check), talked to like Asterisk."""

    def __init__(self, server: AttachServer, port: int, pool: CountingPool) -> None:
        self.server, self.port, self.pool = server, port, pool

    async def attach(self, attempt: uuid.UUID) -> list[str]:
        """An attach request for `attempt`, every command answered `200 result=1`."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(
            f"agi_network: yes\nagi_network_script: attach?secret={SECRET}\n"
            f"agi_uniqueid: {attempt}\n\n".encode()
        )
        commands: list[str] = []
        async with asyncio.timeout(10):
            while line := await reader.readline():
                commands.append(line.decode().rstrip("\n"))
                writer.write(b"200 result=1\n")
        writer.close()
        return commands

    async def row(self, query: str, *args: Any) -> Any:
        async with self.pool.pool.acquire() as conn:
            return await conn.fetchrow(query, *args)


@pytest.fixture
async def make_agi(db_dsn: str) -> AsyncIterator[Callable[..., Any]]:
    made: list[tuple[AttachServer, CountingPool]] = []

    async def make(workers: list[dict[str, Any]] | None = None, thread: bool = False) -> Agi:
        config = _config(db_dsn, workers)
        pool = CountingPool(await create_pool(db_dsn))
        async with pool.pool.acquire() as conn:  # what the daemon does at start
            for w in config.fleet.workers:
                await fleet.upsert_config_worker(conn, w.name, w.host, w.port, w.capacity)
        server = AttachServer(config, pool)
        port = free_port()
        # On the test's loop by default, so that its statements go through the counting pool.
        await server.start("127.0.0.1", port, health_check=False, thread=thread)
        made.append((server, pool))
        return Agi(server, port, pool)

    yield make
    for server, pool in made:
        await server.close()
        await pool.close()


class Listener:
    """A TCP server on 127.0.0.1 counting the connections it gets (a worker's port)."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Listener:
        self.server = await asyncio.start_server(self._on, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def _on(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


async def _attempt(agi: Agi, reserved_on: str | None) -> uuid.UUID:
    """An answered attempt of a running campaign, its slot reserved on `reserved_on`."""
    attempt = uuid.uuid4()
    async with agi.pool.pool.acquire() as conn:
        bot = await conn.fetchval(
            "INSERT INTO bots (name, prompt) VALUES ($1, 'Hello') RETURNING id",
            f"b-{attempt.hex[:8]}",
        )
        campaign = await conn.fetchval(
            "INSERT INTO campaigns (name, bot_id, state, started_at) "
            "VALUES ($1, $2, 'running', now()) RETURNING id",
            f"c-{attempt.hex[:8]}",
            bot,
        )
        contact = await conn.fetchval(
            "INSERT INTO contacts (campaign_id, phone_number, state, attempts_used) "
            "VALUES ($1, '+447700900001', 'connected', 1) RETURNING id",
            campaign,
        )
        await conn.execute(
            "INSERT INTO attempts (id, contact_id, campaign_id, attempt_number, daemon_id, "
            "deadline_at, state, answered_at) "
            "VALUES ($1, $2, $3, 1, 'attach-test', now() + interval '1 min', 'dialing', now())",
            attempt,
            contact,
            campaign,
        )
        if reserved_on is not None:
            await fleet.reserve_slots(conn, [attempt], [reserved_on])
    return attempt


async def _register(agi: Agi, name: str, port: int, capacity: int = 5) -> None:
    async with agi.pool.pool.acquire() as conn:
        await fleet.register_worker(conn, name, "127.0.0.1", port, capacity)


async def _silence(agi: Agi, name: str) -> None:
    """The worker's last heartbeat an hour ago: out of rotation."""
    async with agi.pool.pool.acquire() as conn:
        await conn.execute(
            "UPDATE workers SET last_heartbeat_at = now() - interval '1 hour' WHERE name = $1",
            name,
        )


async def test_the_reserved_slot_is_confirmed_in_one_round_trip(make_agi: Any) -> None:
    agi: Agi = await make_agi()
    await _register(agi, "w1", 57101)
    attempt = await _attempt(agi, "w1")
    agi.pool.statements.clear()
    assert await agi.attach(attempt) == ok("127.0.0.1:57101")
    assert len(agi.pool.statements) == 1, agi.pool.statements
    row = await agi.row(
        "SELECT a.worker, a.attached_at IS NOT NULL AS attempt_attached, "
        "s.attached_at IS NOT NULL AS slot_attached "
        "FROM attempts a JOIN worker_slots s ON s.attempt_id = a.id WHERE a.id = $1",
        attempt,
    )
    assert (row["worker"], row["attempt_attached"], row["slot_attached"]) == ("w1", True, True)


async def test_a_silent_reserved_worker_hands_the_call_to_a_free_one(make_agi: Any) -> None:
    agi: Agi = await make_agi()
    await _register(agi, "gone", 57102)
    await _register(agi, "full", 57103, capacity=1)
    await _register(agi, "free", 57104, capacity=2)
    await _attempt(agi, "full")  # its one slot is taken
    attempt = await _attempt(agi, "gone")
    await _silence(agi, "gone")
    agi.pool.statements.clear()
    assert await agi.attach(attempt) == ok("127.0.0.1:57104")
    assert len(agi.pool.statements) == 1, agi.pool.statements
    row = await agi.row(
        "SELECT a.worker, s.worker AS slot FROM attempts a "
        "JOIN worker_slots s ON s.attempt_id = a.id WHERE a.id = $1",
        attempt,
    )
    assert (row["worker"], row["slot"]) == ("free", "free")
    # An attempt with no slot at all (its worker was removed) takes one too.
    orphan = await _attempt(agi, None)
    assert await agi.attach(orphan) == ok("127.0.0.1:57104")
    free = {w.name: w.free for w in await _free(agi)}
    assert "free" not in free  # both of its slots are now taken, never more


async def test_an_attempt_row_held_by_the_engine_does_not_hold_the_answer_back(
    make_agi: Any,
) -> None:
    # At the answer the engine records it on the same attempt row and holds it until its
    # commit reaches the disk: the attach answers Asterisk without waiting for that, and
    # writes the row once it is free.
    agi: Agi = await make_agi()
    await _register(agi, "w1", 57107)
    attempt = await _attempt(agi, "w1")
    async with agi.pool.pool.acquire() as engine, engine.transaction():
        await engine.execute("UPDATE attempts SET state = 'connected' WHERE id = $1", attempt)
        reader, writer = await asyncio.open_connection("127.0.0.1", agi.port)
        writer.write(
            f"agi_network: yes\nagi_network_script: attach?secret={SECRET}\n"
            f"agi_uniqueid: {attempt}\n\n".encode()
        )
        async with asyncio.timeout(5):  # not waiting for the row (held until this block ends)
            first = (await reader.readline()).decode().rstrip("\n")
        assert [first] == ok("127.0.0.1:57107")
        writer.write(b"200 result=1\n")
        slot = await agi.row("SELECT attached_at FROM worker_slots WHERE attempt_id = $1", attempt)
        assert slot["attached_at"] is not None  # the slot is confirmed already
    async with asyncio.timeout(10):  # the row is free: the attach writes it, then closes
        assert await reader.read() == b""
    writer.close()
    row = await agi.row(
        "SELECT a.worker, a.attached_at = s.attached_at AS same FROM attempts a "
        "JOIN worker_slots s ON s.attempt_id = a.id WHERE a.id = $1",
        attempt,
    )
    assert (row["worker"], row["same"]) == ("w1", True)


async def _abandon_request(agi: Agi, attempt: uuid.UUID) -> bytes:
    """The dialplan's `abandon` after a failed AudioSocket(): what the daemon sends back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", agi.port)
    writer.write(
        f"agi_network: yes\nagi_network_script: abandon?secret={SECRET}\n"
        f"agi_uniqueid: {attempt}\n\n".encode()
    )
    async with asyncio.timeout(10):
        sent = await reader.read()
    writer.close()
    return sent


async def test_a_failed_audiosocket_connection_marks_the_call_abandoned(make_agi: Any) -> None:
    agi: Agi = await make_agi()
    await _register(agi, "w1", 57108)
    attempt = await _attempt(agi, "w1")
    assert await agi.attach(attempt) == ok("127.0.0.1:57108")
    agi.pool.statements.clear()
    # Nothing is answered (closing lets the dialplan go on to the message): one statement.
    assert await _abandon_request(agi, attempt) == b""
    assert len(agi.pool.statements) == 1, agi.pool.statements
    row = await agi.row("SELECT disposition, notes FROM attempts WHERE id = $1", attempt)
    assert row["disposition"] == "abandoned"
    assert "AudioSocket connection failed" in row["notes"]
    # Long after the attach, the worker had the call and it broke off mid-call: the callee
    # hears the message, but the worker's result (or the result timeout) decides.
    talking = await _attempt(agi, "w1")
    assert await agi.attach(talking) == ok("127.0.0.1:57108")
    async with agi.pool.pool.acquire() as conn:
        await conn.execute(
            "UPDATE attempts SET attached_at = now() - interval '30 seconds' WHERE id = $1",
            talking,
        )
    assert await _abandon_request(agi, talking) == b""
    row = await agi.row("SELECT disposition FROM attempts WHERE id = $1", talking)
    assert row["disposition"] is None
    # A worker's result already in stays: the call was taken before the connection broke.
    taken = await _attempt(agi, "w1")
    async with agi.pool.pool.acquire() as conn:
        await conn.execute("UPDATE attempts SET disposition = 'completed' WHERE id = $1", taken)
    assert await _abandon_request(agi, taken) == b""
    row = await agi.row("SELECT disposition FROM attempts WHERE id = $1", taken)
    assert row["disposition"] == "completed"


async def test_a_held_attempt_row_never_delays_the_abandon_message(make_agi: Any) -> None:
    # No worker in rotation, or the dialplan's `abandon`, while the engine holds the attempt's
    # row: Asterisk is answered (or the connection closed) at once — the callee hears the
    # message — and the row is written once it is free.
    agi: Agi = await make_agi()
    await _register(agi, "gone", 57109)
    no_worker = await _attempt(agi, "gone")
    await _silence(agi, "gone")
    await _register(agi, "w1", 57110)
    failed = await _attempt(agi, "w1")
    async with agi.pool.pool.acquire() as conn:  # w1 is full: no worker takes `no_worker`
        await conn.execute("UPDATE workers SET capacity = 1 WHERE name = 'w1'")
    async with agi.pool.pool.acquire() as engine, engine.transaction():
        await engine.execute(
            "UPDATE attempts SET state = 'connected' WHERE id = ANY($1::uuid[])",
            [no_worker, failed],
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", agi.port)
        writer.write(
            f"agi_network: yes\nagi_network_script: attach?secret={SECRET}\n"
            f"agi_uniqueid: {no_worker}\n\n".encode()
        )
        async with asyncio.timeout(5):
            assert (await reader.readline()).decode().rstrip("\n") == ABANDONED
        writer.write(b"200 result=1\n")
        closed = asyncio.create_task(_abandon_request(agi, failed))
        async with asyncio.timeout(5):  # the connection closes before the row is free
            assert await asyncio.shield(closed) == b""
        rows = await engine.fetch(
            "SELECT disposition FROM attempts WHERE id = ANY($1::uuid[])", [no_worker, failed]
        )
        assert [r["disposition"] for r in rows] == [None, None]  # not yet: the row is held
    async with asyncio.timeout(10):
        assert await reader.read() == b""
    writer.close()
    deadline = time.monotonic() + 10
    seen: Any = None
    while True:
        seen = await _dispositions(agi, [no_worker, failed])
        if all(d == "abandoned" for d, _ in seen.values()):
            break
        assert time.monotonic() < deadline, f"never written; last seen {seen}"
        await asyncio.sleep(0.05)
    assert "no worker" in seen[no_worker][1]
    assert "AudioSocket" in seen[failed][1]


async def _dispositions(agi: Agi, attempts: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    async with agi.pool.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT id, disposition, notes FROM attempts WHERE id = ANY($1::uuid[])", attempts
        )
    return {r["id"]: (r["disposition"], r["notes"]) for r in rows}


async def test_abandon_needs_the_secret(make_agi: Any) -> None:
    agi: Agi = await make_agi()
    attempt = await _attempt(agi, None)
    reader, writer = await asyncio.open_connection("127.0.0.1", agi.port)
    writer.write(
        f"agi_network: yes\nagi_network_script: abandon?secret=wrong\n"
        f"agi_uniqueid: {attempt}\n\n".encode()
    )
    async with asyncio.timeout(10):
        assert await reader.read() == b""
    writer.close()
    row = await agi.row("SELECT disposition FROM attempts WHERE id = $1", attempt)
    assert row["disposition"] is None


async def _free(agi: Agi) -> list[fleet.WorkerFree]:
    async with agi.pool.pool.acquire() as conn:
        return await fleet.fleet_free(conn, 15.0)


async def test_no_worker_in_rotation_abandons_the_call(make_agi: Any) -> None:
    agi: Agi = await make_agi()
    await _register(agi, "gone", 57105)
    await _register(agi, "off", 57106)
    attempt = await _attempt(agi, "gone")
    await _silence(agi, "gone")
    async with agi.pool.pool.acquire() as conn:
        await conn.execute("UPDATE workers SET enabled = false WHERE name = 'off'")
    agi.pool.statements.clear()
    assert await agi.attach(attempt) == [ABANDONED]
    assert len(agi.pool.statements) == 1, agi.pool.statements
    row = await agi.row("SELECT disposition, notes, worker FROM attempts WHERE id = $1", attempt)
    assert row["disposition"] == "abandoned"
    assert row["worker"] is None
    assert "reserved: gone" in row["notes"]


async def test_a_static_worker_that_fails_its_health_check_is_not_chosen(
    make_agi: Any, closed_port: int
) -> None:
    async with Listener() as live:
        agi: Agi = await make_agi(
            [
                {"name": "s-dead", "host": "127.0.0.1", "port": closed_port, "capacity": 5},
                {"name": "s-live", "host": "127.0.0.1", "port": live.port, "capacity": 5},
            ]
        )
        attempt = await _attempt(agi, "s-dead")
        await agi.server.health.check()  # the daemon runs it twice a second
        assert agi.server.health.down == {"s-dead"}  # refused: nothing listens
        assert live.connections == 1  # the health check's probe
        agi.pool.statements.clear()
        assert await agi.attach(attempt) == ok(f"127.0.0.1:{live.port}")
        assert len(agi.pool.statements) == 1
        assert live.connections == 1  # the attach itself connected to no worker
        assert [w.name for w in await _free(agi)] == ["s-live"]  # claims skip it too
        # Back up: the next check puts it back in rotation.
        async with Listener() as revived:
            async with agi.pool.pool.acquire() as conn:
                await conn.execute(
                    "UPDATE workers SET port = $1 WHERE name = 's-dead'", revived.port
                )
            await agi.server.health.check()
            assert agi.server.health.down == set()
            assert {w.name for w in await _free(agi)} == {"s-dead", "s-live"}


async def test_the_background_health_check_runs_off_the_attach_path(
    make_agi: Any, closed_port: int
) -> None:
    agi: Agi = await make_agi(
        [{"name": "s-dead", "host": "127.0.0.1", "port": closed_port, "capacity": 5}]
    )
    agi.server.health.start()
    deadline = time.monotonic() + 10
    seen: Any = None
    while seen != "-infinity":
        assert time.monotonic() < deadline, f"health never recorded; last seen {seen!r}"
        row = await agi.row(
            "SELECT last_heartbeat_at::text AS at FROM workers WHERE name = 's-dead'"
        )
        seen = row["at"]
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("thread", [False, True], ids=["test-loop", "own-thread"])
async def test_attach_answers_without_waiting_on_any_worker(make_agi: Any, thread: bool) -> None:
    # Forty answered calls at once on workers that count connections: every attach is
    # answered at once from the database alone (one statement each); no worker sees a
    # connection. The daemon's way (own thread, own pool) answers the same.
    async with Listener() as w1, Listener() as w2:
        agi: Agi = await make_agi(thread=thread)
        await _register(agi, "w1", w1.port, capacity=20)
        await _register(agi, "w2", w2.port, capacity=20)
        attempts = [await _attempt(agi, "w1" if n % 2 else "w2") for n in range(40)]
        agi.pool.statements.clear()
        started = time.monotonic()
        answers = await asyncio.gather(*(agi.attach(a) for a in attempts))
        elapsed = time.monotonic() - started
        assert all(answer[0].endswith(',DIALLER_ATTACH=ok"') for answer in answers)
        if not thread:
            assert len(agi.pool.statements) == 40
        row = await agi.row(
            "SELECT count(*) AS n FROM worker_slots WHERE attached_at IS NOT NULL "
            "AND attempt_id = ANY($1::uuid[])",
            attempts,
        )
        assert row["n"] == 40
        assert (w1.connections, w2.connections) == (0, 0)
        assert elapsed < 2.0, elapsed
