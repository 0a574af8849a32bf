"""`dialler demo`: the product's main job on the local lab, end to end.

Brings the lab up, creates a bot and a campaign of a few dozen contacts spread over every lab
behaviour (answer, ring-no-answer, never respond, rejections), runs the daemon with live
progress until the campaign completes, then prints what happened (outcomes, SIP codes,
attempts, next actions) and where the attempt report is.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from . import logs
from .app import run_daemon
from .campaigns import repo
from .campaigns.spec import parse_bot, parse_text
from .config import Config, load_config
from .contacts.importer import import_contacts
from .lab.lab import Lab
from .report import write_report
from .stats import campaign_show
from .store.pool import connect

ANSWER = [f"+4477009000{n:02d}" for n in (1, 2, 3, 4)]
RING = [f"+4477009002{n:02d}" for n in (1, 2, 3)]
SILENT = [f"+4477009003{n:02d}" for n in (1, 2)]
REJECT = [f"+447700900{code}" for code in (486, 603, 503, 404, 429, 408, 480)]
DEFAULT = [f"+4477009160{n:02d}" for n in range(1, 21)]
NUMBERS = ANSWER + RING + SILENT + REJECT + DEFAULT
TIMEOUT = 300.0


def _files(workdir: Path, stamp: str) -> tuple[str, str, Path]:
    bot = f'name: demo-bot-{stamp}\nprompt: "Hello {{{{Name}}}}, this is a demo call."\n'
    campaign = f"""name: demo-{stamp}
bot: demo-bot-{stamp}
numbers: ["+441632960001", "+441632960002", "+441632960003"]
concurrency: 10
window: {{start: "00:00", end: "24:00", days: [mon, tue, wed, thu, fri, sat, sun], timezone: UTC}}
ring_timeout: 5s
retry: {{max_attempts: 2, delay: 3s, on_system: [no_answer, rejected], on_custom: []}}
"""
    contacts = workdir / "contacts.csv"
    with contacts.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["phone_number", "Name"])
        for i, number in enumerate(NUMBERS, 1):
            writer.writerow([number, f"Customer {i}"])
    return bot, campaign, contacts


async def _setup(config: Config, workdir: Path, stamp: str) -> str:
    bot_text, campaign_text, contacts = _files(workdir, stamp)
    conn = await connect(config.database.dsn)
    try:
        await repo.create_bot(conn, parse_bot(parse_text(bot_text, "demo bot")))
        spec = await repo.read_campaign_spec(
            conn, config, parse_text(campaign_text, "demo campaign")
        )
        campaign_id = await repo.create_campaign(conn, spec)
        summary = await import_contacts(conn, campaign_id, contacts, config.contacts.default_region)
        await repo.start_campaign(conn, config, campaign_id)
    finally:
        await conn.close()
    print(
        f"demo: campaign {spec.name} ({campaign_id}): {summary.imported} contacts, started",
        file=sys.stderr,
    )
    return str(campaign_id)


async def _watch(config: Config, campaign_id: str, stop: asyncio.Event) -> None:
    """Live progress on stderr until the campaign completes; then stop the daemon."""
    conn = await connect(config.database.dsn)
    started = time.monotonic()
    try:
        while time.monotonic() - started < TIMEOUT:
            data = await campaign_show(conn, config, uuid.UUID(campaign_id))
            s = data["stats"]
            print(
                f"demo: {time.monotonic() - started:5.1f}s  {data['activity']:24} "
                f"pending {s['pending']:2}  dialing {s['dialing']:2}  connected "
                f"{s['connected']:2}  retry {s['retry_scheduled']:2}  done {s['done']:2}  "
                f"exhausted {s['exhausted']:2}",
                file=sys.stderr,
                flush=True,
            )
            if data["state"] == "completed":
                return
            await asyncio.sleep(1)
        print("demo: the campaign did not complete in time", file=sys.stderr)
    finally:
        await conn.close()
        stop.set()


async def _run(config: Config, workdir: Path) -> tuple[str, Path]:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    campaign_id = await _setup(config, workdir, stamp)
    stop, hard_stop = asyncio.Event(), asyncio.Event()
    watcher = asyncio.create_task(_watch(config, campaign_id, stop))
    await run_daemon(config, stop, hard_stop)
    await watcher
    report = workdir / "attempts.csv"
    conn = await connect(config.database.dsn)
    try:
        with report.open("w", newline="", encoding="utf-8") as out:
            await write_report(conn, uuid.UUID(campaign_id), out)
    finally:
        await conn.close()
    return campaign_id, report


def _summary(report: Path) -> None:
    with report.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    contacts = {r["contact_id"] for r in rows}
    print(f"{len(rows)} attempts to {len(contacts)} contacts")
    for title, key in (
        ("outcome", "outcome"),
        ("sip code", "sip_code"),
        ("next action", "next_action"),
    ):
        counts = Counter(r[key] or "-" for r in rows)
        print(f"  {title:12} " + "  ".join(f"{k}: {v}" for k, v in sorted(counts.items())))


def demo(args: argparse.Namespace) -> int:
    lab = Lab()
    path = lab.up()
    config = load_config(str(path))
    logs.setup("warning", config.logging.format)
    logging.getLogger("dialler").setLevel(logging.WARNING)
    workdir = lab.dir / "demo" / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    workdir.mkdir(parents=True, exist_ok=True)
    before = lab.calls()
    campaign_id, report = asyncio.run(_run(config, workdir))
    after = lab.calls()
    print(f"campaign {campaign_id}")
    _summary(report)
    print(f"carrier received {after.total - before.total} calls for this demo")
    print(f"report: {report}")
    return 0
