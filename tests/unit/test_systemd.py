"""sd_notify: a real AF_UNIX datagram socket stands in for systemd's NOTIFY_SOCKET."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dialler.systemd import Notifier, watchdog_loop


class Receiver:
    """systemd's end of NOTIFY_SOCKET: a bound datagram socket; `env` points a Notifier at it."""

    def __init__(self, sock: socket.socket, address: str) -> None:
        self.sock = sock
        self.env = {"NOTIFY_SOCKET": address}

    def message(self, timeout: float = 2.0) -> dict[str, str]:
        """The next datagram as its KEY=VALUE fields."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.split("\n"))

    def pending(self) -> list[dict[str, str]]:
        """Every datagram already queued, without waiting."""
        found = []
        self.sock.setblocking(False)
        while True:
            try:
                data = self.sock.recv(4096).decode()
            except BlockingIOError:
                return found
            found.append(dict(line.split("=", 1) for line in data.split("\n")))


MakeNotifier = Callable[..., Notifier]


@pytest.fixture
def make() -> Iterator[MakeNotifier]:
    """`make(env)` builds a Notifier (no env: os.environ), closed after the test (an open
    socket warns when it is collected)."""
    made: list[Notifier] = []

    def build(environ: dict[str, str] | None = None) -> Notifier:
        made.append(Notifier(environ))
        return made[-1]

    yield build
    for notifier in made:
        notifier.close()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    yield Receiver(sock, str(path))
    sock.close()


@pytest.fixture
def abstract_receiver() -> Iterator[Receiver]:
    name = f"dialler-test-{secrets.token_hex(6)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    yield Receiver(sock, "@" + name)
    sock.close()


def test_ready_status_watchdog_stopping_arrive(make: MakeNotifier, receiver: Receiver) -> None:
    notifier = make(receiver.env)
    assert notifier.enabled
    assert notifier.ready()
    assert receiver.message() == {"READY": "1"}
    assert notifier.status("dialling: 3 campaigns, 12 live calls")
    assert receiver.message() == {"STATUS": "dialling: 3 campaigns, 12 live calls"}
    assert notifier.watchdog()
    assert receiver.message() == {"WATCHDOG": "1"}
    assert notifier.stopping("draining: 4 live calls")
    assert receiver.message() == {"STOPPING": "1", "STATUS": "draining: 4 live calls"}


def test_ready_with_status_is_one_datagram(make: MakeNotifier, receiver: Receiver) -> None:
    make(receiver.env).ready("ready: 1 Asterisk, 2 carriers")
    assert receiver.message() == {"READY": "1", "STATUS": "ready: 1 Asterisk, 2 carriers"}
    assert receiver.pending() == []


def test_status_stays_on_one_line(make: MakeNotifier, receiver: Receiver) -> None:
    # A line break would start a new field: STATUS=a\nREADY=1 must not claim readiness.
    make(receiver.env).status("reload refused:\nREADY=1")
    assert receiver.message() == {"STATUS": "reload refused: READY=1"}


def test_reloading_carries_monotonic_usec(make: MakeNotifier, receiver: Receiver) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert make(receiver.env).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    fields = receiver.message()
    assert fields["RELOADING"] == "1"
    assert before <= int(fields["MONOTONIC_USEC"]) <= after


def test_abstract_socket(make: MakeNotifier, abstract_receiver: Receiver) -> None:
    notifier = make(abstract_receiver.env)
    assert notifier.ready()
    assert abstract_receiver.message() == {"READY": "1"}
    assert notifier.reloading("reloading")
    fields = abstract_receiver.message()
    assert fields["RELOADING"] == "1"
    assert fields["STATUS"] == "reloading"
    assert int(fields["MONOTONIC_USEC"]) > 0


def test_reads_os_environ_by_default(
    make: MakeNotifier, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", receiver.env["NOTIFY_SOCKET"])
    assert make().watchdog()
    assert receiver.message() == {"WATCHDOG": "1"}


def test_no_notify_socket_is_a_no_op(make: MakeNotifier, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    for notifier in (make(), make({}), make({"WATCHDOG_USEC": "2000000"})):
        assert not notifier.enabled
        assert not notifier.ready()
        assert not notifier.status("x")
        assert not notifier.watchdog()
        assert not notifier.reloading()
        assert not notifier.stopping()
        assert notifier.watchdog_interval() is None


def test_unsupported_address_is_a_no_op(
    make: MakeNotifier, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="dialler.systemd"):
        notifier = make({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.enabled
    assert not notifier.ready()
    assert "NOTIFY_SOCKET" in caplog.text


def test_failure_never_raises_and_is_logged_once(
    make: MakeNotifier, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = make({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    with caplog.at_level(logging.WARNING, logger="dialler.systemd"):
        for _ in range(5):
            assert not notifier.watchdog()
        assert not notifier.ready()
    assert len([r for r in caplog.records if r.name == "dialler.systemd"]) == 1


def test_recovers_when_the_socket_appears(make: MakeNotifier, tmp_path: Path) -> None:
    path = tmp_path / "late"
    notifier = make({"NOTIFY_SOCKET": str(path)})
    assert not notifier.ready()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        assert notifier.ready()
        receiver = Receiver(sock, str(path))
        assert receiver.message() == {"READY": "1"}
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "2000000"}, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "{pid}"}, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(
    make: MakeNotifier, receiver: Receiver, env: dict[str, str], expected: float | None
) -> None:
    env = {k: v.format(pid=os.getpid()) for k, v in env.items()}
    assert make({**receiver.env, **env}).watchdog_interval() == expected


async def test_watchdog_loop_pings_at_the_interval_and_stops(
    make: MakeNotifier, receiver: Receiver
) -> None:
    notifier = make({**receiver.env, "WATCHDOG_USEC": "200000"})  # a ping every 0.1 s
    stop = asyncio.Event()
    task = asyncio.create_task(watchdog_loop(notifier, stop))
    await asyncio.sleep(0.55)
    stop.set()
    await asyncio.wait_for(task, 1)  # returns promptly, mid-interval
    pings = receiver.pending()
    assert all(p == {"WATCHDOG": "1"} for p in pings)
    assert 4 <= len(pings) <= 7, pings  # at 0, 0.1 … 0.5 s; a slow machine may miss one
    await asyncio.sleep(0.25)
    assert receiver.pending() == []  # nothing after the stop


async def test_blocked_loop_stops_the_pings(make: MakeNotifier, receiver: Receiver) -> None:
    notifier = make({**receiver.env, "WATCHDOG_USEC": "100000"})  # every 0.05 s
    stop = asyncio.Event()
    task = asyncio.create_task(watchdog_loop(notifier, stop))
    await asyncio.sleep(0.01)
    receiver.pending()
    time.sleep(0.3)  # noqa: ASYNC251 - blocks the event loop on purpose: no ping can go out
    assert receiver.pending() == []
    stop.set()
    await task


async def test_watchdog_loop_returns_at_once_without_a_watchdog(
    make: MakeNotifier, receiver: Receiver
) -> None:
    stop = asyncio.Event()
    await asyncio.wait_for(watchdog_loop(make(receiver.env), stop), 0.5)
    await asyncio.wait_for(watchdog_loop(make({}), stop), 0.5)
    assert receiver.pending() == []
