"""Time from the daemon being ready to every running campaign's first dial, for 10, 100 and
1,000 campaigns with one due contact each (issue 12, item 5; target: 1,000 within 3 s).

    flock /tmp/dialler-lab.lock .venv/bin/python bench/many_campaigns.py [--sizes 10 100 1000]

For each size, on a database of its own on the lab's PostgreSQL (the lab's own is untouched),
SIZE campaigns are created and started through the services (as the CLI does), each with one
contact — one of the lab's reject numbers, so the call ends at once — then a daemon of its own
starts (`dialler run`, the lab's config with the carrier's channels and calls per second and the
fleet opened wide: the lab carrier's 100 calls/s alone would take 10 s for 1,000 dials). Time 0 is
its `READY=1` (sd_notify, on a socket of this script). A campaign's first dial is when Asterisk
created its channel: the `Newchannel` event of its attempt (Uniqueid = attempt id) on this
script's own AMI connection; `attempts.dialled_at` (the claim transaction's start, on the
database's clock) is printed too. Prints, per size: the campaigns dialled, max and p95 of the
time to the first dial, and the setup time. Needs root and the lab lock; bounded (60 s a size).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from dial_rate import (
    REJECT_NUMBERS,
    bench_config,
    cli,
    fresh_database,
    make_campaigns,
    start_daemon,
    top_frames,
)
from panoramisk import Manager

from dialler.config import load_config

SIZE_TIMEOUT = 60.0  # seconds from READY for every campaign's first dial


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    return values[max(0, math.ceil(p / 100 * len(values)) - 1)]


class ChannelWatch:
    """This script's own AMI connection: when each channel was created (Newchannel)."""

    def __init__(self, host: str, port: int, username: str, secret: str) -> None:
        self.created: dict[str, float] = {}
        self.manager = Manager(
            host=host,
            port=port,
            username=username,
            secret=secret,
            events="on",
            ping_delay=10**7,
            ping_interval=10**7,
        )
        self.manager.register_event("Newchannel", self._newchannel)

    def _newchannel(self, _manager: Any, event: Any) -> None:
        self.created.setdefault(event.get("Uniqueid", ""), time.time())

    async def start(self) -> None:
        await self.manager.connect()

    def close(self) -> None:
        self.manager.close()


async def one_size(lab_config: Path, size: int, profile: Path | None = None) -> str:
    lab = load_config(str(lab_config))
    tmp = Path(tempfile.mkdtemp(prefix=f"many-campaigns-{size}-"))
    dsn = await fresh_database(lab.database.dsn, "dialler_bench_many_campaigns")
    config_path = bench_config(lab_config, dsn, tmp)
    settings = load_config(str(config_path))
    started = time.monotonic()
    numbers = [[REJECT_NUMBERS[i % len(REJECT_NUMBERS)]] for i in range(size)]
    campaigns = await make_campaigns(settings, numbers, uuid.uuid4().hex[:6], ring_timeout="30s")
    setup = time.monotonic() - started
    ami = settings.asterisk[0].ami
    watch = ChannelWatch(ami.host, ami.port, ami.username, ami.secret)
    await watch.start()
    daemon = await start_daemon(config_path, tmp, profile)
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + SIZE_TIMEOUT
        while True:
            rows = await conn.fetch(
                "SELECT DISTINCT ON (campaign_id) campaign_id, id::text AS id,"
                " extract(epoch FROM dialled_at)::float8 AS dialled"
                " FROM attempts WHERE campaign_id = ANY($1) ORDER BY campaign_id, dialled_at",
                campaigns,
            )
            seen = [r for r in rows if r["id"] in watch.created]
            if len(seen) == size:
                break
            if daemon.proc.returncode is not None:
                raise SystemExit(f"daemon exited {daemon.proc.returncode}; log {daemon.log}")
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"{size} campaigns: {len(rows)} claimed, {len(seen)} dialled after "
                    f"{SIZE_TIMEOUT:g} s; log {daemon.log}"
                )
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
        await daemon.stop()
        watch.close()
    first = sorted(watch.created[r["id"]] - daemon.ready_at for r in rows)
    claimed = sorted(r["dialled"] - daemon.ready_at for r in rows)
    return (
        f"{size:>6} campaigns: first dial (Asterisk's Newchannel) after READY: "
        f"max {first[-1]:.3f} s, p95 {percentile(first, 95):.3f} s, "
        f"min {first[0]:.3f} s; claim (dialled_at) max {claimed[-1]:.3f} s; "
        f"setup {setup:.1f} s"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--profile", type=Path, help="py-spy the daemon (the last size's run)")
    args = parser.parse_args()
    if any(not 1 <= size <= 2000 for size in args.sizes):
        raise SystemExit("--sizes 1..2000: bounded, so the lab lock is held briefly")
    lab_config = Path(cli(None, "lab", "up").split()[-1])
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    for size in args.sizes:
        print(await one_size(lab_config, size, args.profile), flush=True)
    if args.profile is not None:
        print(top_frames(args.profile / "daemon.txt"))


if __name__ == "__main__":
    asyncio.run(main())
