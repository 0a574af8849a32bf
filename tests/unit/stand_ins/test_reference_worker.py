"""The reference worker (the real process and its code).

**Faked: the daemon's API and Asterisk** — `FakeDaemon` (a real aiohttp server with the four
worker endpoints, recording every request) and a TCP client that speaks AudioSocket the way
Asterisk does, echoing the media like the lab carrier. The real thing: tests/e2e/test_fleet.py
(the reference worker taking calls from the lab's Asterisk and reporting to a real daemon)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import time
import uuid
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from dialler.commands.worker_cmd import add_arguments, settings_from_args
from dialler.errors import InvalidInput
from dialler.fleet.audiosocket import (
    FRAME_BYTES,
    Frame,
    Kind,
    audio,
    hangup,
    read_frame,
    uuid_frame,
)
from dialler.fleet.greeting import HEARD_THRESHOLD, greeting_frames
from dialler.fleet.worker import ReferenceWorker, WorkerSettings

pytestmark = pytest.mark.stand_in

TOKEN = "test-token-0123456789abcdef"
TALK = 2.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None
    body: Any


@dataclass
class FakeDaemon:
    """The worker endpoints of the daemon's API, recording every request."""

    requests: list[Seen] = field(default_factory=list)
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: For each worker that left rotation: whether its AudioSocket port still accepted a
    #: connection when it said so.
    port_open_at_leave: dict[str, bool] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    runner: web.AppRunner | None = None
    port: int = 0

    def seen(self, method: str, suffix: str) -> list[Seen]:
        return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    @web.middleware
    async def record(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.requests.append(
            Seen(request.method, request.path, request.headers.get("Authorization"), body)
        )
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": {"message": "bad token"}}, status=401)
        return await handler(request)

    async def register(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.workers[body["name"]] = body
        return web.json_response({"name": body["name"], "heartbeat_timeout": 15})

    async def heartbeat(self, request: web.Request) -> web.Response:
        if request.match_info["name"] not in self.workers:
            return web.json_response({"error": {"message": "unknown worker"}}, status=404)
        return web.Response(status=204)

    async def leave(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.workers:
            return web.json_response({"error": {"message": "unknown worker"}}, status=404)
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", self.workers[name]["port"])
        except OSError:
            self.port_open_at_leave[name] = False
        else:
            writer.close()  # a probe: connect and close, as the daemon's attach does
            self.port_open_at_leave[name] = True
        return web.Response(status=204)

    async def context(self, request: web.Request) -> web.Response:
        attempt_id = request.match_info["attempt_id"]
        return web.json_response(
            {
                "attempt_id": attempt_id,
                "campaign_id": str(uuid.uuid4()),
                "bot": {"name": "renewals-bot", "prompt": "Hello {{Name}}", "pipeline": {}},
                "caller_id": "+441632960001",
                "variables": {"Name": "Ada"},
                "prompt": "Hello Ada",
                "unresolved": [],
            }
        )

    async def result(self, request: web.Request) -> web.Response:
        self.results[request.match_info["attempt_id"]] = await request.json()
        return web.Response(status=204)

    async def start(self, port: int = 0) -> None:
        app = web.Application(middlewares=[self.record])
        app.router.add_post("/v1/workers", self.register)
        app.router.add_post("/v1/workers/{name}/heartbeat", self.heartbeat)
        app.router.add_post("/v1/workers/{name}/leave", self.leave)
        app.router.add_get("/v1/calls/{attempt_id}/context", self.context)
        app.router.add_post("/v1/calls/{attempt_id}/result", self.result)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.port = self.runner.addresses[0][1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@dataclass
class Call:
    """What the Asterisk side of one AudioSocket connection saw."""

    frames: list[Frame] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    ended_by: str = ""
    seconds: float = 0.0

    @property
    def audio(self) -> list[bytes]:
        return [f.payload for f in self.frames if f.kind is Kind.AUDIO]


async def asterisk(
    port: int, call_id: uuid.UUID, *, reply: str = "echo", hang_up_after: float | None = None
) -> Call:
    """Connect like AudioSocket(): send the UUID, then answer every audio frame with the same
    audio (`echo`, as the lab carrier's RTP echo does) or with silence."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    call = Call()
    started = time.monotonic()
    writer.write(uuid_frame(call_id))
    try:
        while True:
            timeout = (
                None
                if hang_up_after is None
                else max(0.0, started + hang_up_after - time.monotonic())
            )
            try:
                frame = await asyncio.wait_for(read_frame(reader), timeout)
            except TimeoutError:
                writer.write(hangup())
                call.ended_by = "we hung up"
                break
            if frame is None:
                call.ended_by = "eof"
                break
            call.frames.append(frame)
            call.times.append(time.monotonic() - started)
            if frame.kind is Kind.HANGUP:
                call.ended_by = "hangup"
                break
            if frame.kind is Kind.AUDIO:
                writer.write(audio(frame.payload if reply == "echo" else bytes(FRAME_BYTES)))
    finally:
        call.seconds = time.monotonic() - started
        writer.close()
    return call


def settings(daemon_url: str, **overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = dict(
        name="ref-test",
        host="127.0.0.1",
        port=0,
        capacity=2,
        daemon_url=daemon_url,
        token=TOKEN,
        talk_time=TALK,
        heartbeat_interval=0.2,
        retry_initial=0.05,
        retry_max=0.3,
        result_attempts=3,
    )
    values.update(overrides)
    return WorkerSettings(**values)


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def daemon() -> AsyncIterator[FakeDaemon]:
    fake = FakeDaemon()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def worker(daemon: FakeDaemon, tmp_path: Path) -> AsyncIterator[ReferenceWorker]:
    async with ReferenceWorker(
        settings(
            daemon.url, callback_in=3600.0, disposition="call_me_later", record_dir=tmp_path / "rec"
        )
    ) as running:
        yield running


async def test_echoed_call(daemon: FakeDaemon, worker: ReferenceWorker, tmp_path: Path) -> None:
    call_id = uuid.uuid4()
    call = await asterisk(worker.port, call_id)
    await eventually(lambda: worker.calls_handled == 1)

    # Registered once with its bound address, then heart-beats; every request has the token.
    assert daemon.workers == {
        "ref-test": {"name": "ref-test", "host": "127.0.0.1", "port": worker.port, "capacity": 2}
    }
    assert worker.registered and worker.heartbeats >= 3
    assert len(daemon.seen("POST", "/heartbeat")) >= 3
    assert {r.authorization for r in daemon.requests} == {f"Bearer {TOKEN}"}
    assert len(daemon.seen("GET", f"/v1/calls/{call_id}/context")) == 1

    # The greeting first, then silence, at 50 frames a second, then the hang-up at talk time.
    assert call.ended_by == "hangup"
    assert TALK - 0.1 < call.seconds < TALK + 0.5
    frames = call.audio
    assert len(frames) == pytest.approx(TALK * 50, abs=3)
    assert frames[:75] == greeting_frames()
    assert all(f == bytes(FRAME_BYTES) for f in frames[75:])
    audio_times = [t for f, t in zip(call.frames, call.times, strict=True) if f.kind is Kind.AUDIO]
    rate = (len(audio_times) - 1) / (audio_times[-1] - audio_times[0])
    assert 45 < rate < 55

    stats = worker.last_call
    assert stats is not None and stats.attempt_id == str(call_id)
    assert stats.ended_by == "talk_time"
    assert stats.frames_sent == len(frames)
    assert stats.frames_received >= stats.frames_sent - 5  # the last echoes may be in flight
    assert stats.greeting_score > 0.8
    assert stats.context is not None and stats.context["prompt"] == "Hello Ada"

    result = daemon.results[str(call_id)]
    assert result["disposition"] == "call_me_later"
    callback_at = datetime.fromisoformat(result["callback_at"].replace("Z", "+00:00"))
    assert abs(callback_at - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(seconds=30)
    assert result["callback_at"].endswith("Z")
    assert f"greeting score {stats.greeting_score:.2f}" in result["notes"]
    assert result["audio"] == {
        "frames_sent": stats.frames_sent,
        "frames_received": stats.frames_received,
    }
    assert "frames" not in result["notes"]  # numbers travel in `audio`, not in the text
    assert stats.result_posted

    assert stats.record_path == tmp_path / "rec" / f"{call_id}.wav"
    with wave.open(str(stats.record_path), "rb") as recorded:
        assert (recorded.getnchannels(), recorded.getsampwidth(), recorded.getframerate()) == (
            1,
            2,
            8000,
        )
        assert recorded.getnframes() == stats.frames_received * FRAME_BYTES // 2


async def test_silence_instead_of_echo_scores_low(
    daemon: FakeDaemon, worker: ReferenceWorker
) -> None:
    call_id = uuid.uuid4()
    call = await asterisk(worker.port, call_id, reply="silence")
    await eventually(lambda: worker.calls_handled == 1)
    assert call.ended_by == "hangup"
    stats = worker.last_call
    assert stats is not None and stats.frames_received > 50
    assert stats.greeting_score < HEARD_THRESHOLD
    assert stats.greeting_score < 0.1
    assert daemon.results[str(call_id)]["disposition"] == "call_me_later"


async def test_asterisk_hangs_up_first(daemon: FakeDaemon, worker: ReferenceWorker) -> None:
    call_id = uuid.uuid4()
    call = await asterisk(worker.port, call_id, hang_up_after=0.5)
    assert call.ended_by == "we hung up"
    await eventually(lambda: worker.calls_handled == 1)
    stats = worker.last_call
    assert stats is not None and stats.ended_by == "hangup"
    assert stats.duration < 1.0
    assert str(call_id) in daemon.results

    # Closing the socket without a hang-up message ends the call the same way.
    reader, writer = await asyncio.open_connection("127.0.0.1", worker.port)
    writer.write(uuid_frame(uuid.uuid4()))
    assert await read_frame(reader) is not None  # the greeting has started
    writer.close()
    await eventually(lambda: worker.calls_handled == 2)
    assert worker.last_call is not None and worker.last_call.ended_by == "closed"


async def test_capacity_refusal(daemon: FakeDaemon, worker: ReferenceWorker) -> None:
    first = asyncio.create_task(asterisk(worker.port, uuid.uuid4()))
    second = asyncio.create_task(asterisk(worker.port, uuid.uuid4()))
    await eventually(lambda: worker.active_calls == 2)
    refused = await asyncio.wait_for(asterisk(worker.port, uuid.uuid4()), 2)
    assert refused.audio == []
    assert refused.ended_by in ("hangup", "eof")
    assert refused.seconds < 1
    assert worker.calls_refused == 1
    calls = await asyncio.gather(first, second)
    assert [len(c.audio) for c in calls] == [pytest.approx(TALK * 50, abs=3)] * 2
    await eventually(lambda: worker.calls_handled == 2)
    assert len(daemon.results) == 2


async def test_probe_connection_is_not_a_call(worker: ReferenceWorker) -> None:
    # The daemon's attach route checks the port by connecting and closing at once.
    _reader, writer = await asyncio.open_connection("127.0.0.1", worker.port)
    writer.close()
    await asyncio.sleep(0.1)
    assert (worker.calls_handled, worker.calls_refused, worker.active_calls) == (0, 0, 0)


async def registered_worker(daemon: FakeDaemon, tmp_path: Path) -> ReferenceWorker:
    """A worker started and registered with `daemon`; the test stops it."""
    worker = ReferenceWorker(settings(daemon.url, record_dir=tmp_path / "rec"))
    await worker.start()
    await eventually(lambda: worker.registered)
    return worker


async def test_a_stopping_worker_leaves_rotation_before_closing_its_port(
    daemon: FakeDaemon, tmp_path: Path
) -> None:
    # Closing the port while still in rotation would let the daemon send an answered call to a
    # closed port (Asterisk's AudioSocket failing to connect: docs/asterisk.md).
    worker = await registered_worker(daemon, tmp_path)
    await worker.stop(drain_timeout=5)
    assert len(daemon.seen("POST", "/ref-test/leave")) == 1
    assert daemon.port_open_at_leave == {"ref-test": True}
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", worker.port)  # closed after leaving


async def test_the_leave_grace_counts_in_the_drain_timeout(
    daemon: FakeDaemon, tmp_path: Path
) -> None:
    # `stop(drain_timeout)` bounds the whole stop: a call still talking when it runs out is cut,
    # however long the port stayed open for attaches already on their way.
    worker = await registered_worker(daemon, tmp_path)
    call = asyncio.create_task(asterisk(worker.port, uuid.uuid4()))
    await eventually(lambda: worker.active_calls == 1)
    await worker.stop(drain_timeout=TALK * 0.75)  # 1 s grace + 1.5 s drain would outlast TALK
    heard = await asyncio.wait_for(call, 2)
    assert len(daemon.seen("POST", "/ref-test/leave")) == 1
    assert len(heard.audio) < TALK * 50 * 0.9  # cut before its talk time ended


async def test_a_worker_stopped_at_once_just_closes(daemon: FakeDaemon, tmp_path: Path) -> None:
    async with ReferenceWorker(settings(daemon.url, record_dir=tmp_path / "rec")) as worker:
        await eventually(lambda: worker.registered)
    assert daemon.seen("POST", "/ref-test/leave") == []  # drain_timeout 0: no leave, no wait


async def test_daemon_down_at_start(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with ReferenceWorker(settings(url)) as worker:
        await asyncio.sleep(0.4)
        assert not worker.registered
        # Calls are still served; the result that cannot be posted is given up on.
        call = await asterisk(worker.port, uuid.uuid4())
        assert len(call.audio) == pytest.approx(TALK * 50, abs=3)
        await eventually(lambda: worker.calls_handled == 1)
        assert worker.last_call is not None and not worker.last_call.result_posted
        assert worker.last_call.greeting_score > 0.8

        daemon = FakeDaemon()
        await daemon.start(port)
        try:
            await eventually(lambda: worker.registered, timeout=3)
            assert "ref-test" in daemon.workers
            await eventually(lambda: len(daemon.seen("POST", "/heartbeat")) >= 2)

            # A daemon that forgot the worker (its database reset) gets it registered again.
            daemon.workers.clear()
            await eventually(lambda: "ref-test" in daemon.workers, timeout=3)
            assert len(daemon.seen("POST", "/v1/workers")) == 2
        finally:
            await daemon.stop()


async def test_wrong_token_is_logged_not_fatal(
    daemon: FakeDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    async with ReferenceWorker(settings(daemon.url, token="wrong-token-0123456789")) as worker:
        await eventually(lambda: len(daemon.seen("POST", "/v1/workers")) >= 2)
        assert not worker.registered
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1  # once, not at every retry
    assert "HTTP 401: bad token" in errors[0].error


# --- `dialler worker` ----------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_command_defaults() -> None:
    built = settings_from_args(parse())
    assert (built.name, built.host, built.port, built.capacity) == (
        "ref-worker",
        "127.0.0.1",
        57000,
        10,
    )
    assert (built.daemon_url, built.token, built.talk_time, built.disposition) == (
        "http://127.0.0.1:8080",
        None,
        3.0,
        "completed",
    )
    assert (built.callback_in, built.record_dir, built.heartbeat_interval) == (None, None, 5.0)


def test_command_options(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"# the worker's token\n{TOKEN}\n")
    built = settings_from_args(
        parse(
            "--name",
            "w1",
            "--listen",
            "[::1]:0",
            "--capacity",
            "3",
            "--daemon",
            "http://10.0.0.1:9000/",
            "--token-file",
            str(token_file),
            "--talk",
            "1m30s",
            "--disposition",
            "RNR",
            "--callback-in",
            "1h",
            "--record-dir",
            str(tmp_path),
        )
    )
    assert (built.name, built.host, built.port, built.capacity) == ("w1", "::1", 0, 3)
    assert (built.daemon_url, built.token) == ("http://10.0.0.1:9000", TOKEN)
    assert (built.talk_time, built.disposition, built.callback_in) == (90.0, "RNR", 3600.0)
    assert built.record_dir == tmp_path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--listen", "57000"), "--listen: expected HOST:PORT"),
        (("--listen", "127.0.0.1:70000"), "--listen: expected HOST:PORT"),
        (("--listen", "0.0.0.0:57000"), "set --advertise"),
        (("--capacity", "0"), "--capacity: must be at least 1"),
        (("--talk", "3"), "--talk: missing unit"),
        (("--talk", "0s"), "--talk: must be greater than 0"),
        (("--callback-in", "soon"), "--callback-in"),
        (("--daemon", "127.0.0.1:8080"), "--daemon: expected an http"),
        (("--token-file", "/nonexistent/token"), "--token-file: cannot read /nonexistent/token"),
        (("--name", "a b"), "--name"),
    ],
)
def test_command_refuses_bad_options(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[")) as info:
        settings_from_args(parse(*argv))
    assert info.value.exit_code == 2


async def test_command_runs_until_sigterm(daemon: FakeDaemon, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    port = free_port()
    script = (
        "import argparse, sys\n"
        "from dialler.commands.worker_cmd import add_arguments, worker\n"
        "parser = argparse.ArgumentParser()\nadd_arguments(parser)\n"
        "sys.exit(worker(parser.parse_args(sys.argv[1:])))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DIALLER_CONFIG"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        "--listen",
        f"127.0.0.1:{port}",
        "--daemon",
        daemon.url,
        "--token-file",
        str(token_file),
        "--heartbeat",
        "100ms",
        "--name",
        "cli-worker",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await eventually(lambda: len(daemon.seen("POST", "/cli-worker/heartbeat")) >= 1)
        assert daemon.workers["cli-worker"]["port"] == port
        call = await asterisk(port, uuid.uuid4(), hang_up_after=0.3)
        assert call.audio
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert len(daemon.seen("POST", "/cli-worker/leave")) == 1  # out of rotation, then closed
    assert daemon.port_open_at_leave == {"cli-worker": True}
    assert stdout == b""  # a long-running command: everything it says is a log line
    assert b"registered with the daemon" in stderr and b"+44" not in stderr
