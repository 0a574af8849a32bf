"""Answer-to-attach latency on the lab, measured outside the daemon: from Asterisk's answer of
each call to the reference worker accepting its AudioSocket connection.

    flock /tmp/dialler-lab.lock .venv/bin/python bench/attach_latency.py \
        [--calls 300] [--concurrency 40]

The answer time is the AMI `Newstate` (state Up) of the call's channel, read by this script's
own AMI connection: the event's `Timestamp` header when manager.conf has `timestampevents =
yes`, else the moment this script receives the event. The accept time is the reference
worker's own clock (its `call accepted` log line, `accepted_at`). The daemon's own figure
(`attempts.attached_at`) is not used. Both clocks are this machine's.

Runs `dialler lab up`, a campaign of N answered calls (answer after ~1 s, hold 2 s) at the given
concurrency with a daemon of its own, and prints p50/p95/p99/max in ms and the count. Needs
root and the lab lock; the lab's reference worker must run code that logs `call accepted`
(`dialler lab down; dialler lab up` after an upgrade).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from panoramisk import Manager

from dialler.config import load_config
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
        self.answered: dict[str, float] = {}
        self.stamped = 0  # events carrying Asterisk's own Timestamp
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
        received = time.time()
        if event.get("ChannelStateDesc") != "Up":
            return
        stamp = event.get("Timestamp")
        if stamp:
            self.stamped += 1
        self.answered.setdefault(event.get("Uniqueid", ""), float(stamp) if stamp else received)

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


async def run(calls: int, concurrency: int, dump: Path | None) -> None:
    config = Path(cli(None, "lab", "up").split()[-1])
    settings = load_config(str(config))
    worker_log = config.parent / "worker.log"
    tmp = Path(tempfile.mkdtemp(prefix="attach-bench-"))
    name = f"bench-attach-{uuid.uuid4().hex[:6]}"
    write_campaign(tmp, name, calls, concurrency)
    cli(config, "bot", "create", str(tmp / "bot.yaml"))
    campaign = cli(config, "campaign", "create", str(tmp / "campaign.yaml"))
    cli(config, "contacts", "import", campaign, str(tmp / "contacts.csv"))

    ami = settings.asterisk[0].ami
    watch = AnswerWatch(ami.host, ami.port, ami.username, ami.secret)
    await watch.start()
    log_offset = worker_log.stat().st_size
    cli(config, "campaign", "start", campaign)
    started = time.monotonic()
    with (tmp / "daemon.log").open("ab") as log:
        daemon = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dialler.cli",
            "--config",
            str(config),
            "run",
            stdout=log,
            stderr=log,
        )
    try:
        while True:
            shown = await asyncio.to_thread(cli, config, "campaign", "show", campaign, "--json")
            if '"completed"' in shown:
                break
            if time.monotonic() - started > 240:
                raise SystemExit("campaign did not complete in 4 minutes")
            await asyncio.sleep(1)
    finally:
        daemon.terminate()
        await asyncio.wait_for(daemon.wait(), 60)
        watch.close()
    elapsed = time.monotonic() - started

    with worker_log.open("rb") as fh:
        fh.seek(log_offset)
        text = fh.read().decode("utf-8", "replace")
    accepted = {m["id"]: float(m["at"]) for m in _ACCEPTED.finditer(text)}
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
    print(f"daemon log: {tmp / 'daemon.log'}")
    if not ms:
        raise SystemExit(f"no call both answered and accepted ({len(answered)} answered)")
    source = "AMI Timestamp" if watch.stamped else "AMI event receipt (no timestampevents)"
    print(
        f"answer-to-accept over {len(ms)} calls (concurrency {concurrency}, {calls} contacts, "
        f"{elapsed:.0f} s; answer from {source}; accept from the worker's clock): "
        f"p50 {percentile(ms, 50):.1f} ms, p95 {percentile(ms, 95):.1f} ms, "
        f"p99 {percentile(ms, 99):.1f} ms, max {ms[-1]:.1f} ms; "
        f"answered but never accepted: {len(answered) - len(ms)}"
    )
    both = [i for i in answered if i in accepted and i in attached]
    if both:
        before = sorted((attached[i] - answered[i]) * 1000 for i in both)
        after = sorted((accepted[i] - attached[i]) * 1000 for i in both)
        print(
            f"  where it goes: answer to the attach statement p50 {percentile(before, 50):.1f} / "
            f"p95 {percentile(before, 95):.1f} ms; attach statement to accept "
            f"p50 {percentile(after, 50):.1f} / p95 {percentile(after, 95):.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=40)
    parser.add_argument("--dump", type=Path, help="write each call's times here (JSON)")
    args = parser.parse_args()
    asyncio.run(run(args.calls, args.concurrency, args.dump))


if __name__ == "__main__":
    main()
