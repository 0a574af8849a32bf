"""The daemon's loops under supervision (`dialler.app.supervise`): a failure is logged with its
traceback, then the loop restarts after a backoff or the daemon stops; never silent."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from dialler import app
from dialler.app import Loop, LoopFailed, OnFailure, supervise


async def test_a_failing_loop_is_logged_and_restarted_with_backoff(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = 0
    sleeps: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await real_sleep(0)

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 4:
            raise RuntimeError(f"boom {runs}")

    monkeypatch.setattr("dialler.app.asyncio.sleep", fake_sleep)
    with caplog.at_level(logging.ERROR, logger="dialler.app"):
        await supervise(Loop("flaky", flaky, OnFailure.RESTART), first=1.0, most=3.0)
    assert runs == 4  # returned normally the fourth time: done
    assert sleeps == [1.0, 2.0, 3.0]  # doubling, capped
    failures = [r for r in caplog.records if r.getMessage().startswith("daemon loop failed")]
    assert len(failures) == 3
    assert all(r.exc_info is not None for r in failures)  # with the traceback
    assert failures[0].loop == "flaky"  # type: ignore[attr-defined]


async def test_a_loop_whose_failure_stops_the_daemon_raises_loop_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    with (
        caplog.at_level(logging.CRITICAL, logger="dialler.app"),
        pytest.raises(LoopFailed) as failed,
    ):
        await supervise(Loop("watchdog", broken, OnFailure.STOP))
    assert failed.value.name == "watchdog"
    assert isinstance(failed.value.__cause__, RuntimeError)
    assert "stopping the daemon" in caplog.text


async def test_a_fatal_loop_in_a_task_group_ends_the_group_and_cancels_the_others() -> None:
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    async def broken() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("boom")

    with pytest.raises(ExceptionGroup) as group:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(supervise(Loop("metrics", forever, OnFailure.RESTART)))
            tasks.create_task(supervise(Loop("watchdog", broken, OnFailure.STOP)))
    assert group.group_contains(LoopFailed)  # type: ignore[attr-defined]
    assert cancelled.is_set()


async def test_cancelling_a_supervised_loop_is_not_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = asyncio.create_task(supervise(Loop("idle", asyncio.Event().wait, OnFailure.STOP)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "daemon loop failed" not in caplog.text


async def test_a_shutdown_step_that_hangs_is_left_behind_and_named(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A stop must end within its timeout whatever one step does (an e2e daemon once sat 60 s
    # after "shutting down"): each step is bounded, and the one that hung is named with where
    # the tasks still running wait.
    monkeypatch.setattr(app, "SHUTDOWN_STEP_TIMEOUT", 0.2)

    async def deaf() -> None:  # ignores its cancellation once
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(0.5)
            raise RuntimeError("late failure, after the shutdown went on") from None

    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    started = loop.time()
    try:
        with caplog.at_level(logging.WARNING, logger="dialler.app"):
            await app._shutdown_step("http listener", deaf())
            await app._shutdown_step("daemon row", asyncio.sleep(0))
        assert loop.time() - started < 0.5  # not held by the deaf step
        await asyncio.sleep(0.6)  # the deaf step fails late, after the shutdown went on
        gc.collect()  # a task whose failure nobody read reports it when collected
    finally:
        loop.set_exception_handler(None)
    [warning] = caplog.records
    assert warning.getMessage() == "shutdown step took too long; left behind"
    assert warning.__dict__["step"] == "http listener"
    assert "test_supervision.py" in warning.__dict__["waiting"]  # where the deaf step waits
    assert unhandled == []  # its late failure was read, not "never retrieved"


async def test_a_failing_shutdown_step_is_logged_and_the_next_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken() -> None:
        raise OSError("connection refused")

    ran: list[str] = []

    async def next_step() -> None:
        ran.append("next")

    with caplog.at_level(logging.WARNING, logger="dialler.app"):
        await app._shutdown_step("daemon row", broken())
        await app._shutdown_step("ami lab", next_step())
    assert ran == ["next"]
    assert [r.getMessage() for r in caplog.records] == ["shutdown step failed"]
