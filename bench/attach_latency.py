"""Answer-to-attach latency: from the callee's answer (AMI Newstate Up, seen by the daemon) to
the FastAGI `attach` handing the call to its worker (`attempts.attached_at`), over a lab
campaign of N answered calls (default 150) with the reference worker.

    .venv/bin/python bench/attach_latency.py [--calls 150] [--concurrency 40]

Needs root and the lab (`dialler lab up`, run by this script). Prints p50/p95/max in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from dialler.config import load_config
from dialler.store.pool import connect


def cli(config: Path, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "dialler.cli", "--config", str(config), *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=150)
    parser.add_argument("--concurrency", type=int, default=40)
    args = parser.parse_args()
    config = Path(
        subprocess.run(
            [sys.executable, "-m", "dialler.cli", "lab", "up"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()[-1]
    )
    tmp = Path(tempfile.mkdtemp(prefix="attach-bench-"))
    name = f"bench-attach-{uuid.uuid4().hex[:6]}"
    (tmp / "bot.yaml").write_text(f"name: {name}\nprompt: Hello\n")
    (tmp / "campaign.yaml").write_text(
        f"name: {name}\nbot: {name}\nnumbers: ['+441632960001', '+441632960002']\n"
        f"concurrency: {args.concurrency}\nring_timeout: 10s\n"
        "window: {start: '00:00', end: '24:00', days: [mon, tue, wed, thu, fri, sat, sun]}\n"
    )
    with (tmp / "contacts.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["phone_number"])
        for n in range(args.calls):
            writer.writerow([f"+44770092{n:04d}"])  # answer after ~1 s, hold 2 s
    cli(config, "bot", "create", str(tmp / "bot.yaml"))
    campaign = cli(config, "campaign", "create", str(tmp / "campaign.yaml"))
    cli(config, "contacts", "import", campaign, str(tmp / "contacts.csv"))
    cli(config, "campaign", "start", campaign)
    with (tmp / "daemon.log").open("ab") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "dialler.cli", "--config", str(config), "run"],
            stdout=log,
            stderr=log,
        )
    started = time.monotonic()
    try:
        while '"completed"' not in cli(config, "campaign", "show", campaign, "--json"):
            if time.monotonic() - started > 600:
                raise SystemExit("campaign did not complete in 10 minutes")
            time.sleep(1)
    finally:
        daemon.terminate()
        daemon.wait(60)

    async def latencies() -> list[float]:
        conn = await connect(load_config(str(config)).database.dsn)
        try:
            rows = await conn.fetch(
                "SELECT extract(epoch FROM attached_at - answered_at) AS s FROM attempts "
                "WHERE campaign_id = $1 AND attached_at IS NOT NULL",
                uuid.UUID(campaign),
            )
        finally:
            await conn.close()
        return sorted(float(r["s"]) * 1000 for r in rows)

    ms = asyncio.run(latencies())
    p95 = ms[max(0, int(len(ms) * 0.95) - 1)]
    print(
        f"answer-to-attach over {len(ms)} calls (concurrency {args.concurrency}): "
        f"p50 {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, max {ms[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
