"""Helpers shared by the test tiers (no fixtures here: those are in the conftest files): a free
loopback port, and rows of a test database written and read with plain asyncpg."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from typing import Any

import asyncpg

from dialler.ami.calls import TrackedCall
from dialler.config import Config, parse_config


def free_port() -> int:
    """A TCP port free right now on loopback (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def query(dsn: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def open_attempt(dsn: str, state: str, daemon_id: str = "test", attempts: int = 1) -> Any:
    """A running campaign (retries on everything, 3 attempts) with one contact in a call on
    Asterisk `pbx`; its open attempt, in `state`, with its deadline an hour away."""
    conn = await asyncpg.connect(dsn)
    try:
        bot = await conn.fetchval(
            "INSERT INTO bots (name, prompt) VALUES ($1, 'hi') RETURNING id", f"b-{uuid.uuid4()}"
        )
        campaign = await conn.fetchval(
            """INSERT INTO campaigns (name, bot_id, state, window_start, window_end, window_days,
                                      timezone, started_at, retry_max_attempts, retry_on_system)
               VALUES ($1, $2, 'running', '00:00', '24:00', '{mon,tue,wed,thu,fri,sat,sun}',
                       'UTC', now(), 3, '{no_answer,rejected,error,timeout}')
               RETURNING id""",
            f"c-{uuid.uuid4()}",
            bot,
        )
        contact = await conn.fetchval(
            """INSERT INTO contacts (campaign_id, phone_number, state, attempts_used)
               VALUES ($1, '+447700900001', $2, $3) RETURNING id""",
            campaign,
            state,
            attempts,
        )
        attempt = uuid.uuid4()
        answered = "now() - interval '15 s'" if state == "connected" else "NULL"
        await conn.execute(
            f"""INSERT INTO attempts (id, contact_id, campaign_id, attempt_number, daemon_id,
                                      asterisk, state, dialled_at, answered_at, attached_at,
                                      deadline_at)
                VALUES ($1, $2, $3, $4, $5, 'pbx', $6, now() - interval '20 s', {answered},
                        {answered}, now() + interval '1 hour')""",
            attempt,
            contact,
            campaign,
            attempts,
            daemon_id,
            state,
        )
        await conn.execute(
            "INSERT INTO daemons (id, hostname, pid) VALUES ($1, 'h', 1) ON CONFLICT DO NOTHING",
            daemon_id,
        )
        return attempt
    finally:
        await conn.close()


async def attempt_row(dsn: str, attempt: uuid.UUID) -> dict[str, Any]:
    rows = await query(
        dsn,
        """SELECT a.state, a.outcome, a.sip_code, a.disposition, a.next_action,
                  c.state AS contact, c.attempts_used
           FROM attempts a JOIN contacts c ON c.id = a.contact_id WHERE a.id = $1""",
        attempt,
    )
    return dict(rows[0])


async def wait_for(condition: Any, what: str, timeout: float = 15.0) -> None:
    """Wait until `condition()` (a coroutine function) is true; fail with the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await condition()
        if last is True:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not after {timeout}s; last seen {last!r}")


def call_of(attempt: uuid.UUID, *, placed: bool = True) -> TrackedCall:
    loop = asyncio.get_running_loop()
    return TrackedCall(str(attempt), 30.0, time.time(), loop.create_future(), placed=placed)


def index_reads(plan: dict[str, Any], table: str) -> dict[str | None, dict[str, Any]]:
    """Every read of `table` that ran in an `EXPLAIN (ANALYZE, FORMAT JSON)` plan, by the index
    it went through (None: a sequential scan). A Bitmap Heap Scan's index is its Bitmap Index
    Scan child's; nodes planned but never run (0 loops) are left out."""
    nodes, stack = [], [plan]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.get("Plans", []))
    run = [n for n in nodes if n.get("Actual Loops", 0) > 0]
    reads: dict[str | None, dict[str, Any]] = {
        n.get("Index Name"): n
        for n in run
        if n.get("Relation Name") == table
        and n["Node Type"].endswith("Scan")
        and n["Node Type"] != "Bitmap Heap Scan"
    }
    reads |= {
        n["Index Name"]: n
        for n in run
        if n["Node Type"] == "Bitmap Index Scan" and n["Index Name"].startswith(table)
    }
    return reads


class CountingConnection:
    """A real connection that counts the statements sent through it."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.statements: list[str] = []

    async def fetch(self, query: str, *args: Any) -> Any:
        self.statements.append(query)
        return await self.conn.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> Any:
        self.statements.append(query)
        return await self.conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        self.statements.append(query)
        return await self.conn.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> Any:
        self.statements.append(query)
        return await self.conn.execute(query, *args)

    def transaction(self, **options: Any) -> Any:
        return self.conn.transaction(**options)


#: The FastAGI secret and AMI secret of `daemon_config` (read from these variables).
CONFIG_ENV = {"S": "secret", "A": "agi-secret-0123456789"}


def daemon_config(dsn: str, **sections: Any) -> Config:
    """The smallest valid config around a test database: one Asterisk `pbx`, the FastAGI
    secret, one carrier `lab`; `sections` add or replace top-level sections."""
    data: dict[str, Any] = {
        "database": {"dsn": dsn},
        "asterisk": [{"name": "pbx", "ami": {"username": "u", "secret_env": "S"}}],
        "listeners": {"agi": {"secret_env": "A"}},
        "carriers": [{"name": "lab"}],
    }
    data.update(sections)
    return parse_config(data, "test", env=CONFIG_ENV)
