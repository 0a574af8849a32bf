"""The engine against a real PostgreSQL: a worker's result (typed answers and refusals, audio
counts stored as columns), and a call's end that cannot be written (kept, logged, never a
"Task exception was never retrieved")."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dialler.ami.calls import TrackedCall
from dialler.config import Config
from dialler.domain.outcomes import DialResult, Outcome
from dialler.domain.results import AudioStats, ResultRecorded, WorkerResult
from dialler.engine.engine import Engine, Unsettled
from dialler.errors import AlreadyFinal, UnknownCall
from dialler.store import Pool, create_pool, testcall

pytestmark = pytest.mark.integration


async def open_attempt(conn: Any, state: str) -> uuid.UUID:
    """A running campaign with one contact in a call, and its open attempt in `state`."""
    bot = await conn.fetchval(
        "INSERT INTO bots (name, prompt) VALUES ($1, 'hi') RETURNING id", f"bot-{uuid.uuid4()}"
    )
    campaign = await conn.fetchval(
        """INSERT INTO campaigns (name, bot_id, state, window_start, window_end, window_days,
                                  timezone, started_at)
           VALUES ($1, $2, 'running', '00:00', '24:00', '{mon,tue,wed,thu,fri,sat,sun}',
                   'UTC', now())
           RETURNING id""",
        f"c-{uuid.uuid4()}",
        bot,
    )
    contact_state = "wrapping" if state == "wrapping" else state
    contact = await conn.fetchval(
        """INSERT INTO contacts (campaign_id, phone_number, state, attempts_used)
           VALUES ($1, '+447700900001', $2, 1) RETURNING id""",
        campaign,
        contact_state,
    )
    attempt = uuid.uuid4()
    ended = "now()" if state == "wrapping" else "NULL"
    await conn.execute(
        f"""INSERT INTO attempts (id, contact_id, campaign_id, attempt_number, daemon_id, state,
                                  dialled_at, answered_at, ended_at, duration_ms, deadline_at)
            VALUES ($1, $2, $3, 1, 'test', $4, now() - interval '20 s',
                    now() - interval '15 s', {ended}, 15000, now() + interval '1 hour')""",
        attempt,
        contact,
        campaign,
        state,
    )
    return attempt


async def test_an_unknown_call_is_refused(config: Config, pool: Pool) -> None:
    engine = Engine(config, pool, {}, "test")
    with pytest.raises(UnknownCall):
        await engine.record_result(uuid.uuid4(), WorkerResult("completed"))


async def test_a_result_during_the_call_is_stored_with_its_audio(
    config: Config, pool: Pool, conn: Any
) -> None:
    engine = Engine(config, pool, {}, "test")
    attempt = await open_attempt(conn, "connected")
    recorded = await engine.record_result(
        attempt,
        WorkerResult(
            "completed",
            notes="frames sent 1, received 2 (a note, never parsed)",
            audio=AudioStats(frames_sent=250, frames_received=248),
        ),
    )
    assert recorded is ResultRecorded.STORED
    async with pool.acquire() as c:
        progress = await testcall.test_progress(c, attempt)
    assert progress is not None
    assert (progress.state, progress.disposition) == ("connected", "completed")
    assert (progress.audio_frames_sent, progress.audio_frames_received) == (250, 248)
    assert progress.notes == "frames sent 1, received 2 (a note, never parsed)"


async def test_a_result_after_the_hang_up_decides_the_attempt(
    config: Config, pool: Pool, conn: Any
) -> None:
    engine = Engine(config, pool, {}, "test")
    attempt = await open_attempt(conn, "wrapping")
    assert await engine.record_result(attempt, WorkerResult("completed")) is ResultRecorded.FINAL
    row = await conn.fetchrow(
        """SELECT a.state, a.disposition, a.next_action, a.audio_frames_sent, c.state AS contact
           FROM attempts a JOIN contacts c ON c.id = a.contact_id WHERE a.id = $1""",
        attempt,
    )
    assert dict(row) == {
        "state": "final",
        "disposition": "completed",
        "next_action": "done",
        "audio_frames_sent": None,
        "contact": "done",
    }
    with pytest.raises(AlreadyFinal):
        await engine.record_result(attempt, WorkerResult("completed"))


@pytest.fixture
async def down_pool(closed_port: int) -> AsyncIterator[Pool]:
    """A real pool whose database is not there: every connection is refused (nothing listens
    on the port), as while PostgreSQL restarts."""
    pool = await create_pool(f"postgresql://dialler@127.0.0.1:{closed_port}/dialler", min_size=0)
    try:
        yield pool
    finally:
        await pool.close()


async def test_a_call_end_that_cannot_be_written_is_logged_and_kept(
    config: Config, down_pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    engine = Engine(config, down_pool, {}, "test")
    loop = asyncio.get_running_loop()
    call = TrackedCall("x", 30.0, time.time(), loop.create_future())
    attempt = uuid.uuid4()
    engine.follow(attempt, call)
    result = DialResult(Outcome.REJECTED, 486, ended_at=time.time())
    call.result.set_result(result)
    task = engine.live[attempt]
    with caplog.at_level(logging.ERROR, logger="dialler.engine.engine"):
        await asyncio.wait({task})
    assert task.exception() is None  # the failure is the task's own business: logged
    assert engine.unsettled == {attempt: Unsettled(result, "rejected")}
    assert "call ends are kept" in caplog.text
    assert attempt not in engine.live


async def test_an_answer_write_that_fails_is_logged_not_lost(
    config: Config, down_pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    engine = Engine(config, down_pool, {}, "test")
    call = TrackedCall(
        str(uuid.uuid4()), 30.0, time.time(), asyncio.get_running_loop().create_future()
    )
    call.answered_at = time.time()
    with caplog.at_level(logging.WARNING, logger="dialler.engine.engine"):
        engine._on_stage(call, "answered")
        tasks = list(engine._background)
        assert len(tasks) == 1  # referenced until it ends
        await asyncio.gather(*tasks)  # raises nothing: the failure is logged
    assert "background write failed" in caplog.text
    assert engine.database_up is False  # an outage, said once: no traceback per call
    assert not engine._background
