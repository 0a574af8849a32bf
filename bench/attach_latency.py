"""Answer-to-attach latency on the lab, measured outside the daemon: from Asterisk's answer of
each call to the reference worker accepting its AudioSocket connection.

    flock /tmp/dialler-lab.lock .venv/bin/python bench/attach_latency.py \
        [--calls 300] [--concurrency 40] [--runs 3] [--profile DIR]

The answer time is Asterisk's own clock: the `Timestamp` header (manager.conf
`timestampevents = yes`, which the lab sets) of the AMI `Newstate` (state Up) of the call's
channel, read on the lab's read-only observer AMI user. The accept time is the reference
worker's own clock (its `call accepted` log line, `accepted_at`). The daemon's own figure
(`attempts.attached_at`) is not used for the headline. Both clocks are this machine's.

Runs `dialler lab up`, then `--runs` campaigns of N answered calls each (answer after ~1 s,
hold 2 s) at the given concurrency, each with a daemon of its own started first (the campaign
starts once its `/readyz` answers: a running daemon, the steady state), and prints each run's
p50/p95/p99/max in ms and the median of the runs. `--profile DIR` records each run's daemon
with py-spy (all threads, the FastAGI thread included) into DIR. Needs root and the lab lock;
the lab's Asterisk must have `timestampevents` (`dialler lab down; dialler lab up` after an
upgrade).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panoramisk import Manager

from dialler.config import load_config
from dialler.lab.asterisk import observer_user
from dialler.store.pool import connect

#: The worker's log line for an accepted AudioSocket connection (logfmt).
_ACCEPTED = re.compile(
    r'msg="call accepted" attempt_id=(?P<id>[0-9a-f-]{36}) accepted_at=(?P<at>[0-9.]+)'
)


def cli(config: Path | None, *args: str) -> str:
    """Run the dialler CLI; its standard output."""
    head = ["--config", str(config)] if config else []
    return subprocess.run(
        [sys.executable, "-m", "dialler.cli", *head, *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    return values[max(0, math.ceil(p / 100 * len(values)) - 1)]


class AnswerWatch:
    """This script's own AMI connection: the answer time of every channel that goes Up."""

    def __init__(self, host: str, port: int, username: str, secret: str) -> None:
        self.answered: dict[str, float] = {}  # Uniqueid -> Asterisk's Timestamp of Up
        self.unstamped = 0  # Up events without a Timestamp
        self.manager = Manager(
            host=host,
            port=port,
            username=username,
            secret=secret,
            events="on",
            ping_delay=10**7,
            ping_interval=10**7,
        )
        self.manager.register_event("Newstate", self._newstate)

    def _newstate(self, _manager: Any, event: Any) -> None:
        if event.get("ChannelStateDesc") != "Up":
            return
        stamp = event.get("Timestamp")
        if not stamp:
            self.unstamped += 1  # an Asterisk without `timestampevents`: no figure from it
            return
        self.answered.setdefault(event.get("Uniqueid", ""), float(stamp))

    async def start(self) -> None:
        await self.manager.connect()

    def close(self) -> None:
        self.manager.close()


def write_campaign(tmp: Path, name: str, calls: int, concurrency: int) -> None:
    (tmp / "bot.yaml").write_text(f"name: {name}\nprompt: Hello\n")
    (tmp / "campaign.yaml").write_text(
        f"name: {name}\nbot: {name}\nnumbers: ['+441632960001', '+441632960002']\n"
        f"concurrency: {concurrency}\nring_timeout: 10s\n"
        "window: {start: '00:00', end: '24:00', days: [mon, tue, wed, thu, fri, sat, sun]}\n"
    )
    with (tmp / "contacts.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["phone_number"])
        for n in range(calls):
            writer.writerow([f"+44770092{n:04d}"])  # answer after ~1 s, hold 2 s


async def wait_ready(url: str, timeout: float = 30.0) -> None:
    """Until the daemon's `/readyz` answers 200."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with await asyncio.to_thread(urllib.request.urlopen, url, None, 2) as answer:
                if answer.status == 200:
                    return
                last = f"HTTP {answer.status}"
        except OSError as exc:  # refused while it starts; urllib's HTTPError for a 503
            last = str(exc)
        await asyncio.sleep(0.2)
    raise SystemExit(f"the daemon was not ready within {timeout:.0f} s (last: {last})")


@dataclass(frozen=True, slots=True)
class Figures:
    """One run: answer-to-accept per call (ms, sorted) and where the time goes."""

    ms: list[float]
    answered: int
    elapsed: float
    before: list[float]  # answer to the attach statement (the database's clock), ms
    after: list[float]  # the attach statement to the accept, ms

    def line(self) -> str:
        ms = self.ms
        return (
            f"p50 {percentile(ms, 50):.1f} ms, p95 {percentile(ms, 95):.1f} ms, "
            f"p99 {percentile(ms, 99):.1f} ms, max {ms[-1]:.1f} ms over {len(ms)} calls "
            f"({self.elapsed:.0f} s; answered but never accepted: {self.answered - len(ms)})"
        )


async def run_once(
    config: Path,
    calls: int,
    concurrency: int,
    dump: Path | None,
    profile: Path | None,
) -> Figures:
    """One campaign with a daemon of its own; the figures of its calls."""
    settings = load_config(str(config))
    worker_log = config.parent / "worker.log"
    tmp = Path(tempfile.mkdtemp(prefix="attach-bench-"))
    name = f"bench-attach-{uuid.uuid4().hex[:6]}"
    write_campaign(tmp, name, calls, concurrency)
    cli(config, "bot", "create", str(tmp / "bot.yaml"))
    campaign = cli(config, "campaign", "create", str(tmp / "campaign.yaml"))
    cli(config, "contacts", "import", campaign, str(tmp / "contacts.csv"))

    ami = settings.asterisk[0].ami
    watch = AnswerWatch(ami.host, ami.port, observer_user(ami.username), ami.secret)
    await watch.start()
    log_offset = worker_log.stat().st_size
    daemon_cmd = [sys.executable, "-m", "dialler.cli", "--config", str(config), "run"]
    with (tmp / "daemon.log").open("ab") as log:
        daemon = await asyncio.create_subprocess_exec(*daemon_cmd, stdout=log, stderr=log)
    # The campaign starts on a running daemon (the steady state), not with its start-up.
    http = settings.listeners.http
    await wait_ready(f"http://{http.host}:{http.port}/readyz")
    cli(config, "campaign", "start", campaign)
    started = time.monotonic()
    spy = None
    if profile is not None:
        # py-spy attached to the daemon: every thread (the FastAGI thread is one), raw
        # collapsed stacks; it writes its file when interrupted.
        out = profile / f"{name}.txt"
        spy = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("py-spy")),
            *("record", "--format", "raw", "-r", "250", "-o", str(out)),
            *("--pid", str(daemon.pid)),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
    try:
        while True:
            shown = await asyncio.to_thread(cli, config, "campaign", "show", campaign, "--json")
            if json.loads(shown).get("state") == "completed":
                break
            if time.monotonic() - started > 240:
                raise SystemExit(f"campaign did not complete in 4 minutes; see {tmp}")
            await asyncio.sleep(0.5)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            await asyncio.wait_for(spy.wait(), 60)
        daemon.terminate()
        await asyncio.wait_for(daemon.wait(), 60)
        watch.close()
    elapsed = time.monotonic() - started

    with worker_log.open("rb") as fh:
        fh.seek(log_offset)
        text = fh.read().decode("utf-8", "replace")
    accepted = {m["id"]: float(m["at"]) for m in _ACCEPTED.finditer(text)}
    if watch.unstamped and not watch.answered:
        raise SystemExit(
            "the lab's Asterisk sends events without `Timestamp` (no timestampevents): it runs "
            "an older config; restart the lab (dialler lab down; dialler lab up) under the lock"
        )
    if not accepted and watch.answered:
        raise SystemExit(
            "the lab's reference worker logs no `call accepted` lines: it runs older code; "
            "restart it (dialler lab down; dialler lab up) under the lab lock"
        )
    conn = await connect(settings.database.dsn)
    try:
        rows = await conn.fetch(
            "SELECT id, extract(epoch FROM attached_at) AS attached FROM attempts "
            "WHERE campaign_id = $1",
            uuid.UUID(campaign),
        )
        ids = {str(r["id"]) for r in rows}
        # Only to say where the time goes: the attach statement's time (the database's
        # clock, this machine's) splits each figure into before and after the daemon's answer.
        attached = {str(r["id"]): float(r["attached"]) for r in rows if r["attached"]}
    finally:
        await conn.close()
    answered = {i: t for i, t in watch.answered.items() if i in ids}
    ms = sorted((accepted[i] - t) * 1000 for i, t in answered.items() if i in accepted)
    if dump is not None:  # per call, for a closer look (Unix seconds)
        text = json.dumps(
            {
                i: {"answered": t, "accepted": accepted.get(i), "attached": attached.get(i)}
                for i, t in answered.items()
            }
        )
        await asyncio.to_thread(dump.write_text, text)
    if not ms:
        raise SystemExit(f"no call both answered and accepted ({len(answered)} answered)")
    both = [i for i in answered if i in accepted and i in attached]
    return Figures(
        ms,
        len(answered),
        elapsed,
        sorted((attached[i] - answered[i]) * 1000 for i in both),
        sorted((accepted[i] - attached[i]) * 1000 for i in both),
    )


async def run(
    calls: int, concurrency: int, runs: int, dump: Path | None, profile: Path | None
) -> None:
    config = Path(cli(None, "lab", "up").split()[-1])
    if profile is not None:
        await asyncio.to_thread(profile.mkdir, parents=True, exist_ok=True)
    results: list[Figures] = []
    for n in range(1, runs + 1):
        figures = await run_once(config, calls, concurrency, dump, profile)
        results.append(figures)
        print(f"run {n}: answer-to-accept {figures.line()}", flush=True)
        if figures.before:
            b, a = figures.before, figures.after
            print(
                f"  where it goes: answer to the attach statement p50 {percentile(b, 50):.1f} / "
                f"p95 {percentile(b, 95):.1f} ms; attach statement to accept "
                f"p50 {percentile(a, 50):.1f} / p95 {percentile(a, 95):.1f} ms",
                flush=True,
            )
    med = statistics.median
    print(
        f"median of {runs} runs (concurrency {concurrency}, {calls} contacts each; answer from "
        f"Asterisk's AMI Timestamp, accept from the worker's clock): "
        f"p50 {med(percentile(f.ms, 50) for f in results):.1f} ms, "
        f"p95 {med(percentile(f.ms, 95) for f in results):.1f} ms, "
        f"max {med(f.ms[-1] for f in results):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dump", type=Path, help="write the last run's call times here (JSON)")
    parser.add_argument("--profile", type=Path, help="py-spy each run's daemon into this dir")
    args = parser.parse_args()
    asyncio.run(run(args.calls, args.concurrency, args.runs, args.dump, args.profile))


if __name__ == "__main__":
    main()
