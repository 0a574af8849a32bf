"""PostgreSQL outages against a real, private PostgreSQL that the tests stop and start: a call's
end is kept (memory and the results journal on disk) until it is written, survives a daemon
restart, is written once the database is back and is never guessed as `timeout`; an answered call no
worker took is abandoned at its end; an Originate Asterisk refused is requeued without using an
attempt. (Recovery's reading of Asterisk's channels, with a stand-in for it, is in
tests/unit/stand_ins/test_recovery.py.)"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dialler import metrics
from dialler.app import journal_dir
from dialler.config import Config, parse_config
from dialler.domain.outcomes import DialResult, Outcome
from dialler.domain.results import ResultRecorded, WorkerResult
from dialler.engine.engine import MAX_REQUEUES, Engine, Unsettled
from dialler.engine.journal import Journal, JournalLocked
from dialler.lab.postgres import PgCluster, throwaway_cluster
from dialler.store import Pool, create_pool
from dialler.store.migrate import migrate

from ..support import attempt_row, call_of, open_attempt, query, wait_for

pytestmark = pytest.mark.integration

OWNER = "dialler"


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL of this module's own: the tests stop and start it."""
    with throwaway_cluster("dialler-pg-faults-", fast=True) as cluster:
        yield cluster


@pytest.fixture
async def dsn(own_cluster: PgCluster) -> str:
    own_cluster.start()  # a test that failed half-way may have left it stopped
    await asyncio.to_thread(own_cluster.ensure_database, OWNER, OWNER)
    name = f"faults_{uuid.uuid4().hex[:12]}"
    await asyncio.to_thread(own_cluster.ensure_database, name, OWNER)
    url = own_cluster.dsn(name, OWNER)
    await migrate(url)
    return url


@pytest.fixture
def config(dsn: str) -> Config:
    return parse_config(
        {
            "database": {"dsn": dsn},
            "asterisk": [{"name": "pbx", "ami": {"username": "u", "secret_env": "S"}}],
            "listeners": {"agi": {"secret_env": "A"}},
            "carriers": [{"name": "lab"}],
        },
        "test",
        env={"S": "secret", "A": "agi-secret-0123456789"},
    )


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[Pool]:
    pool = await create_pool(dsn)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def journal_path() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dialler-journal-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --- the journal -----------------------------------------------------------------------------


def test_the_journal_keeps_ends_across_processes_and_is_one_daemons_alone(
    journal_path: Path,
) -> None:
    first = Journal(journal_path)
    first.open()
    attempt = uuid.uuid4()
    end = Unsettled(DialResult(Outcome.REJECTED, 486, ended_at=1.5, reason="SIP 486"), "rejected")
    first.write(attempt, end)
    with pytest.raises(JournalLocked):
        Journal(journal_path).open()  # a second daemon on the same directory is refused
    first.close()
    (journal_path / "garbage.json").write_text("{not json")
    second = Journal(journal_path)
    second.open()
    assert second.load() == {attempt: end}
    assert (journal_path / "garbage.json.bad").exists()  # set aside, not fatal
    second.remove(attempt)
    assert second.load() == {}
    second.close()


def test_each_daemon_has_its_own_journal_under_the_state_directory() -> None:
    config = parse_config(
        {
            "database": {"dsn": "postgresql://x@127.0.0.1/x"},
            "asterisk": [{"name": "pbx", "ami": {"username": "u", "secret_env": "S"}}],
            "carriers": [{"name": "lab"}],
            "listeners": {"agi": {"secret_env": "A"}, "http": {"port": 58123}},
        },
        "test",
        env={"S": "secret", "A": "agi-secret-0123456789"},
    )
    systemd = {"STATE_DIRECTORY": "/var/lib/dialler:/var/lib/other"}
    assert journal_dir(config, systemd) == Path("/var/lib/dialler/journal-58123")
    chosen = systemd | {"DIALLER_STATE_DIR": "/srv/state"}
    assert journal_dir(config, chosen) == Path("/srv/state/journal-58123")
    configured = dataclasses.replace(
        config, scheduler=dataclasses.replace(config.scheduler, state_dir="/data/dialler")
    )
    assert journal_dir(configured, systemd) == Path("/data/dialler/journal-58123")
    assert journal_dir(configured, chosen) == Path("/srv/state/journal-58123")  # env wins


# --- outages ---------------------------------------------------------------------------------


async def test_a_call_end_during_an_outage_is_written_when_the_database_is_back(
    own_cluster: PgCluster, dsn: str, config: Config, pool: Pool, journal_path: Path
) -> None:
    attempt = await open_attempt(dsn, "dialing")
    journal = Journal(journal_path)
    journal.open()
    engine = Engine(config, pool, {}, "test", journal)
    stop = asyncio.Event()
    settler = asyncio.create_task(engine.run_settler(stop))
    try:
        call = call_of(attempt)
        engine.follow(attempt, call)
        await asyncio.to_thread(own_cluster.stop)
        call.result.set_result(DialResult(Outcome.REJECTED, 486, ended_at=time.time()))
        await asyncio.wait({engine.live[attempt]})
        assert engine.database_up is False
        assert attempt in engine.unsettled
        assert metrics.RESULTS_UNWRITTEN._value.get() == 1
        assert metrics.DATABASE_UP._value.get() == 0
        assert journal.load() == {attempt: engine.unsettled[attempt]}
        await asyncio.sleep(1.5)  # the settler retries meanwhile, and nothing dies
        assert not settler.done()

        await asyncio.to_thread(own_cluster.start)
        await wait_for(lambda: _done(engine), "the kept end written")
        assert await attempt_row(dsn, attempt) == {
            "state": "final",
            "outcome": "rejected",
            "sip_code": 486,
            "disposition": "rejected",
            "next_action": "retry",
            "contact": "retry_scheduled",
            "attempts_used": 1,
        }
        assert journal.load() == {}
        assert engine.database_up is True
        assert metrics.RESULTS_UNWRITTEN._value.get() == 0
    finally:
        stop.set()
        settler.cancel()
        await asyncio.gather(settler, return_exceptions=True)
        journal.close()


async def test_a_workers_result_during_an_outage_is_kept_and_decides_the_call(
    own_cluster: PgCluster, dsn: str, config: Config, pool: Pool, journal_path: Path
) -> None:
    attempt = await open_attempt(dsn, "connected")
    journal = Journal(journal_path)
    journal.open()
    engine = Engine(config, pool, {}, "test", journal)
    try:
        call = call_of(attempt)
        engine.follow(attempt, call)
        await asyncio.to_thread(own_cluster.stop)
        # The bot reports, then the callee hangs up — both while the database is down.
        recorded = await engine.record_result(attempt, WorkerResult("completed", notes="ok"))
        assert recorded is ResultRecorded.STORED  # accepted: the worker need not retry
        now = time.time()
        call.result.set_result(DialResult(Outcome.ANSWERED, 200, answered_at=now - 9, ended_at=now))
        await asyncio.wait({engine.live[attempt]})
        assert set(journal.load_results()) == {attempt}
        assert metrics.RESULTS_UNWRITTEN._value.get() == 2

        await asyncio.to_thread(own_cluster.start)
        assert await engine.settle_kept() == 0
        row = await attempt_row(dsn, attempt)
        assert (row["state"], row["outcome"], row["disposition"], row["contact"]) == (
            "final",
            "answered",
            "completed",
            "done",
        )
        assert journal.load() == {} and journal.load_results() == {}
    finally:
        journal.close()


async def _done(engine: Engine) -> bool | int:
    return not engine.unsettled or len(engine.unsettled)


async def test_a_daemon_restarted_during_an_outage_loses_no_end(
    own_cluster: PgCluster, dsn: str, config: Config, journal_path: Path
) -> None:
    attempt = await open_attempt(dsn, "connected", daemon_id="old")
    # The first process: the answered call ends, the database is down, the process dies.
    pool = await create_pool(dsn)
    journal = Journal(journal_path)
    journal.open()
    engine = Engine(config, pool, {}, "old", journal)
    call = call_of(attempt)
    engine.follow(attempt, call)
    await asyncio.to_thread(own_cluster.stop)
    now = time.time()
    call.result.set_result(
        DialResult(Outcome.ANSWERED, 200, answered_at=now - 15, ended_at=now, reason="answered")
    )
    await asyncio.wait({engine.live[attempt]})
    assert attempt in engine.unsettled
    await pool.close()
    journal.close()  # what the process's death does to the lock

    # The next process, once the database is back: the journal replayed before recovery.
    await asyncio.to_thread(own_cluster.start)
    pool = await create_pool(dsn)
    try:
        journal = Journal(journal_path)
        journal.open()
        engine = Engine(config, pool, {}, "new", journal)
        assert engine.replay_journal() == 1
        assert await engine.settle_kept() == 0
        row = await attempt_row(dsn, attempt)
        assert (row["state"], row["contact"]) == ("wrapping", "wrapping")  # the bot decides
        # The worker's result arrives: the real outcome, never a `timeout`.
        await engine.record_result(attempt, WorkerResult("completed"))
        row = await attempt_row(dsn, attempt)
        assert (row["state"], row["disposition"], row["contact"]) == ("final", "completed", "done")
        assert journal.load() == {}
        journal.close()
    finally:
        await pool.close()


async def test_an_answered_call_no_worker_took_is_abandoned_at_its_end_not_left_waiting(
    dsn: str, config: Config, pool: Pool
) -> None:
    attempt = await open_attempt(dsn, "connected", daemon_id="me")
    # The attach failed (the database was down at the answer): no worker has the call.
    await query(dsn, "UPDATE attempts SET attached_at = NULL WHERE id = $1", attempt)
    engine = Engine(config, pool, {}, "me")
    now = time.time()
    ended = DialResult(Outcome.ANSWERED, 200, answered_at=now - 5, ended_at=now)
    await engine.settle_end(attempt, Unsettled(ended, None))
    row = await attempt_row(dsn, attempt)
    assert (row["state"], row["outcome"], row["disposition"], row["next_action"]) == (
        "final",
        "answered",
        "abandoned",
        "done",  # `abandoned` is not in this campaign's retry rules
    )


# --- Asterisk refusing -----------------------------------------------------------------------


async def test_an_originate_asterisk_refused_is_requeued_without_using_an_attempt(
    dsn: str, config: Config, pool: Pool
) -> None:
    attempt = await open_attempt(dsn, "dialing", attempts=3)  # the last attempt allowed
    engine = Engine(config, pool, {}, "test")
    call = call_of(attempt, placed=False)
    engine.follow(attempt, call)
    refused = DialResult(Outcome.ERROR, None, ended_at=time.time(), reason="not placed")
    call.result.set_result(refused)
    await asyncio.wait({engine.live[attempt]})
    assert await attempt_row(dsn, attempt) == {
        "state": "final",
        "outcome": "error",
        "sip_code": None,
        "disposition": "error",
        "next_action": "requeue",
        "contact": "pending",
        "attempts_used": 2,  # given back: it still has its third attempt
    }


async def test_an_originate_refused_again_and_again_stops_being_requeued(
    dsn: str, config: Config, pool: Pool
) -> None:
    first = await open_attempt(dsn, "dialing", attempts=1)
    engine = Engine(config, pool, {}, "test")
    contact = (await query(dsn, "SELECT contact_id FROM attempts WHERE id = $1", first))[0][0]
    refused = DialResult(Outcome.ERROR, None, ended_at=time.time(), reason="not placed")
    attempt = first
    for n in range(MAX_REQUEUES + 1):
        if n:
            attempt = uuid.uuid4()
            await query(
                dsn,
                """INSERT INTO attempts (id, contact_id, campaign_id, attempt_number, daemon_id,
                                         asterisk, state, dialled_at, deadline_at)
                   SELECT $1, id, campaign_id, $3, 'test', 'pbx', 'dialing', now(),
                          now() + interval '1 hour'
                   FROM contacts WHERE id = $2""",
                attempt,
                contact,
                n + 1,
            )
            # As the claim does: the attempt counts until it is requeued.
            await query(
                dsn, "UPDATE contacts SET attempts_used = attempts_used + 1 WHERE id = $1", contact
            )
        await engine.settle_end(attempt, Unsettled(refused, "error", requeue=True))
    row = await attempt_row(dsn, attempt)
    assert (row["next_action"], row["contact"]) == ("retry", "retry_scheduled")
