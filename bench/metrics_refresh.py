"""The metrics refresh's cost by number of running campaigns (every 5 s in each daemon).

For each size, a fresh database on a private PostgreSQL 15 (fsync on, started by this script
as an unprivileged user; nothing of the lab is touched) gets SIZE running campaigns of 50
contacts each (pending, due, some in a call, some done with an answered or abandoned attempt)
and a worker. Then, ROUNDS times each, in a read-only snapshot as the refresh takes it:

- baseline: one `campaign show` per running campaign (`stats.campaign_show` in a loop: what
  the refresh did before `stats.campaigns_show`);
- today: `stats.campaigns_show` for all of them (each concern one statement);
- refresh: the whole `metrics.refresh` of today.

Prints the median and max milliseconds of each and the ratio baseline / today.

    .venv/bin/python bench/metrics_refresh.py [--sizes 10 100 1000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from dialler import metrics
from dialler.config import Config, parse_config
from dialler.lab.postgres import PgCluster, throwaway_cluster
from dialler.stats import campaign_show, campaigns_show
from dialler.store import connect
from dialler.store.migrate import migrate

OWNER = "dialler"


def config_for(dsn: str) -> Config:
    return parse_config(
        {
            "database": {"dsn": dsn},
            "asterisk": [{"name": "pbx", "ami": {"username": "u", "secret_env": "S"}}],
            "listeners": {"agi": {"secret_env": "A"}},
            "carriers": [{"name": "lab", "max_channels": 100, "calls_per_second": 50}],
            "numbers": [{"number": "+441632960001", "carrier": "lab"}],
        },
        "bench",
        env={"S": "secret", "A": "agi-secret-0123456789"},
    )


async def load(conn: Any, size: int) -> None:
    """SIZE running campaigns of 50 contacts, one caller ID, one worker, made server side."""
    await conn.execute(
        "INSERT INTO numbers (number, carrier) VALUES ('+441632960001', 'lab')"
        " ON CONFLICT DO NOTHING"
    )
    await conn.execute(
        "INSERT INTO workers (name, host, port, capacity, source)"
        " VALUES ('w1', '127.0.0.1', 57001, 40, 'config')"
    )
    bot = await conn.fetchval("INSERT INTO bots (name, prompt) VALUES ('b', 'hi') RETURNING id")
    await conn.execute(
        "INSERT INTO campaigns (name, bot_id, state, concurrency, window_start, window_end,"
        " window_days, timezone, started_at, last_dial_at)"
        " SELECT 'c' || g, $1, 'running', 10, '00:00', '24:00',"
        " '{mon,tue,wed,thu,fri,sat,sun}', 'UTC', now() - interval '1 hour',"
        " now() - (g % 600) * interval '1 second'"
        " FROM generate_series(1, $2) g",
        bot,
        size,
    )
    await conn.execute(
        "INSERT INTO campaign_numbers (campaign_id, number)"
        " SELECT id, '+441632960001' FROM campaigns"
    )
    await conn.execute(
        "INSERT INTO contacts (campaign_id, phone_number, state, attempts_used, next_due_at,"
        " line_number)"
        " SELECT c.id, '+4477' || lpad((row_number() OVER ())::text, 9, '0'),"
        " (ARRAY['pending','pending','retry_scheduled','done','done','exhausted'])[1 + g % 6],"
        " CASE WHEN g % 6 >= 2 THEN 1 ELSE 0 END,"
        " now() - (g % 7) * interval '1 minute', g"
        " FROM campaigns c CROSS JOIN generate_series(1, 50) g"
    )
    await conn.execute(
        "INSERT INTO attempts (id, contact_id, campaign_id, attempt_number, daemon_id, state,"
        " dialled_at, answered_at, ended_at, deadline_at, finalised_at, outcome, disposition,"
        " next_action, carrier)"
        " SELECT gen_random_uuid(), ct.id, ct.campaign_id, 1, 'd1', 'final',"
        " now() - interval '2 minutes', now() - interval '110 seconds', now(), now(), now(),"
        " 'answered', CASE WHEN ct.line_number % 12 = 3 THEN 'abandoned' ELSE 'completed' END,"
        " 'done', 'lab'"
        " FROM contacts ct WHERE ct.state IN ('done', 'exhausted')"
    )
    await conn.execute("ANALYZE")


async def timed(rounds: int, step: Callable[[], Awaitable[object]]) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        await step()
        out.append((time.perf_counter() - t) * 1000)
    return out


async def bench(cluster: PgCluster, size: int, rounds: int) -> dict[str, list[float]]:
    name = f"metrics_bench_{size}"
    await asyncio.to_thread(cluster.ensure_database, name, OWNER)
    dsn = cluster.dsn(name, OWNER)
    await migrate(dsn)
    conn = await connect(dsn)
    try:
        await load(conn, size)
        config = config_for(dsn)
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM campaigns")]

        async def baseline(now: datetime | None = None) -> object:
            now = now or datetime.now(UTC)
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return {c: await campaign_show(conn, config, c, now) for c in ids}

        async def today(now: datetime | None = None) -> object:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return await campaigns_show(conn, config, ids, now or datetime.now(UTC))

        async def refresh() -> object:
            await metrics.refresh(conn, config)
            return None

        at = datetime.now(UTC)  # one instant for both: "live" and "stalled" depend on it
        assert await baseline(at) == await today(at), "campaigns_show differs from campaign_show"
        return {
            "baseline": await timed(rounds, baseline),
            "today": await timed(rounds, today),
            "refresh": await timed(rounds, refresh),
        }
    finally:
        await conn.close()


async def run(cluster: PgCluster, sizes: list[int], rounds: int) -> None:
    await asyncio.to_thread(cluster.ensure_database, OWNER, OWNER)
    print(f"running campaigns' `campaign show`, {rounds} rounds per size (ms)")
    print(
        f"{'campaigns':>9} {'baseline p50':>12} {'max':>7} {'today p50':>10} {'max':>7}"
        f" {'ratio':>6} {'refresh p50':>11} {'max':>7}"
    )
    for size in sizes:
        r = await bench(cluster, size, rounds)
        b, t, f = (statistics.median(r[k]) for k in ("baseline", "today", "refresh"))
        print(
            f"{size:>9} {b:12.1f} {max(r['baseline']):7.1f} {t:10.1f} {max(r['today']):7.1f}"
            f" {b / t:5.1f}x {f:11.1f} {max(r['refresh']):7.1f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with throwaway_cluster("dialler-metrics-bench-", fast=False) as cluster:
        asyncio.run(run(cluster, args.sizes, args.rounds))


if __name__ == "__main__":
    main()
