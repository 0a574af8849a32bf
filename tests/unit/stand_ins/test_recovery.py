"""Recovery's reading of Asterisk's live channels, over a real PostgreSQL.

**Faked: Asterisk's AMI** (`_QuietAmi`: an Asterisk that is up with no channel; `_VanishingAmi`:
one whose only channel hangs up right after the first listing). Those exact instants cannot be
staged on the lab on demand. The real thing:
tests/e2e/test_campaign_rules.py::test_kill_9_and_restart_recovers_without_double_dial and
tests/e2e/test_recovery_cel.py (a daemon SIGKILLed with live calls on the lab's Asterisk), the
chaos suite's Asterisk kills (bench/chaos.py); the suppressed test call with the carrier's count:
tests/e2e/test_security.py."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from dialler.ami.calls import CallTracker
from dialler.config import Config
from dialler.domain.outcomes import DialResult, Outcome
from dialler.domain.results import WorkerResult
from dialler.engine.engine import Engine, Unsettled
from dialler.engine.recovery import Recovery
from dialler.errors import NumberSuppressed, TestCallRefused
from dialler.store import Pool

from ...support import attempt_row, call_of, open_attempt, query, wait_for

pytestmark = pytest.mark.stand_in


class _QuietAmi:
    """An Asterisk that is up with no channel (every call of the test has ended)."""

    name = "pbx"
    ready = True

    def add_listener(self, _listener: Any) -> None:
        pass

    def on_up(self, _callback: Any) -> None:
        pass

    async def live_channels(self) -> dict[str, str]:
        return {}


async def test_calls_lost_during_an_outage_are_reconciled_at_once_not_at_their_deadline(
    db_dsn: str, config: Config, pool: Pool
) -> None:
    dsn = db_dsn
    lost = await open_attempt(dsn, "connected", daemon_id="me")
    followed = await open_attempt(dsn, "connected", daemon_id="me")
    engine = Engine(config, pool, {"pbx": CallTracker(_QuietAmi())}, "me")  # type: ignore[arg-type]
    call = call_of(followed)
    engine.follow(followed, call)
    try:
        assert await Recovery(engine).run_once() == 1  # deadlines are an hour away
        row = await attempt_row(dsn, lost)
        assert (row["state"], row["disposition"], row["next_action"]) == (
            "final",
            "timeout",
            "retry",
        )
        assert (await attempt_row(dsn, followed))["state"] == "connected"  # left to its call
    finally:
        call.result.cancel()
        await engine.abandon()


async def test_a_lost_call_keeps_its_workers_result_instead_of_timeout(
    db_dsn: str, config: Config, pool: Pool
) -> None:
    dsn = db_dsn
    attempt = await open_attempt(dsn, "connected", daemon_id="me")
    engine = Engine(config, pool, {"pbx": CallTracker(_QuietAmi())}, "me")  # type: ignore[arg-type]
    await engine.record_result(attempt, WorkerResult("completed"))  # while the call was up
    assert await Recovery(engine).run_once() == 1  # then Asterisk crashed with the call
    row = await attempt_row(dsn, attempt)
    assert (row["state"], row["outcome"], row["disposition"], row["contact"]) == (
        "final",
        "answered",
        "completed",
        "done",
    )


async def test_a_test_call_to_a_suppressed_number_is_refused_and_never_dialled(
    db_dsn: str, config: Config, pool: Pool
) -> None:
    dsn = db_dsn
    await query(dsn, "INSERT INTO bots (name, prompt) VALUES ('sales', 'hi')")
    await query(dsn, "INSERT INTO suppressions (phone_number) VALUES ('+447700900009')")
    # A tracker whose AMI has no `originate`: reaching the dial would fail loudly.
    engine = Engine(config, pool, {"pbx": CallTracker(_QuietAmi())}, "test")  # type: ignore[arg-type]
    with pytest.raises(NumberSuppressed) as refused:
        await engine.test_call("sales", "+447700900009", "+441234567890", "lab", 10.0)
    assert isinstance(refused.value, TestCallRefused)  # answered like any refused test call
    assert refused.value.field == "to"
    assert await query(dsn, "SELECT id FROM attempts") == []
    assert await query(dsn, "SELECT id FROM contacts") == []


class _VanishingAmi(_QuietAmi):
    """An Asterisk whose one channel hangs up right after the first listing (its Hangup goes
    by before anyone follows the call)."""

    def __init__(self, channel: str) -> None:
        self.listings = [{channel: "6"}]

    async def live_channels(self) -> dict[str, str]:
        return self.listings.pop(0) if self.listings else {}


async def test_a_call_that_ends_while_being_adopted_is_not_followed_forever(
    db_dsn: str, config: Config, pool: Pool
) -> None:
    dsn = db_dsn
    attempt = await open_attempt(dsn, "connected", daemon_id="dead")
    await query(dsn, "UPDATE daemons SET heartbeat_at = '-infinity' WHERE id = 'dead'")
    engine = Engine(config, pool, {"pbx": CallTracker(_VanishingAmi(str(attempt)))}, "me")  # type: ignore[arg-type]
    await Recovery(engine).run_once()  # adopts it, then finds it gone
    await wait_for(lambda: _open(dsn, attempt), "the adopted call closed")
    row = await attempt_row(dsn, attempt)
    assert (row["state"], row["outcome"], row["disposition"]) == ("final", "answered", "timeout")
    assert not engine.live


async def _open(dsn: str, attempt: uuid.UUID) -> bool | str:
    state = (await attempt_row(dsn, attempt))["state"]
    return state == "final" or state


async def test_recovery_writes_the_end_it_kept_instead_of_a_timeout(
    db_dsn: str, config: Config, pool: Pool
) -> None:
    engine = Engine(config, pool, {"pbx": CallTracker(_QuietAmi())}, "test")  # type: ignore[arg-type]
    attempt = await open_attempt(db_dsn, "dialing")
    await query(
        db_dsn, "UPDATE attempts SET deadline_at = now() - interval '1 s' WHERE id = $1", attempt
    )
    ended = time.time()
    engine.unsettled[attempt] = Unsettled(
        DialResult(Outcome.REJECTED, 486, ended_at=ended), "rejected"
    )
    assert await Recovery(engine).run_once() == 1
    row = await attempt_row(db_dsn, attempt)
    assert (row["state"], row["outcome"], row["sip_code"], row["disposition"]) == (
        "final",
        "rejected",
        486,
        "rejected",
    )
    assert engine.unsettled == {}
