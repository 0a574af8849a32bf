"""Helpers for end-to-end tests: the CLI as a user runs it, the lab carrier's count, and the
check every daemon log (and every CLI run's output) must pass."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import subprocess
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

#: What asyncio logs when a task died unseen or was dropped while pending: a daemon must
#: supervise, reference and await every task it starts (issue 8), so either fails the test.
TASK_ERRORS = ("Task exception was never retrieved", "Task was destroyed but it is pending")


def assert_no_task_errors(text: str, source: str) -> None:
    """Fail when `text` (a daemon's log, a command's output) shows a task that died unseen."""
    for marker in TASK_ERRORS:
        at = text.find(marker)
        if at >= 0:
            raise AssertionError(f"{source}: {marker!r}:\n{text[max(0, at - 500) : at + 2500]}")


def dialler(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the `dialler` CLI as a user would (its output free of task errors)."""
    proc = subprocess.run(
        [sys.executable, "-m", "dialler.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert_no_task_errors(proc.stdout + proc.stderr, f"dialler {' '.join(args)}")
    if check and proc.returncode != 0:
        raise AssertionError(
            f"dialler {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}"
        )
    return proc


def lab_calls() -> dict[str, int]:
    """Calls the lab carrier received, per dialled number (the independent count)."""
    data = json.loads(dialler("lab", "calls", "--json").stdout)
    by_number: dict[str, int] = data["by_number"]
    return by_number


T = TypeVar("T")


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion from synchronous test code, on a fresh event loop in a thread
    of its own: the session's loop may be running already (pytest-asyncio sets up async
    tests' fixtures inside it), and `asyncio.run` refuses to start a second loop there."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
