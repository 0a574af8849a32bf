"""Claim throughput and latency by table size.

For each size, a fresh database gets one running campaign with SIZE pending contacts (loaded
with COPY), then the engine's own claim transaction (engine.sql: lock the campaign, count its
in-flight contacts and carriers, deal caller IDs, `claim_contacts`, touch numbers) runs
ROUNDS times claiming BATCH contacts each; claimed contacts are settled outside the timed part
so in-flight stays low, as in a running campaign. Prints claims/s and p50/p99/max latency of
the claim transaction.

    .venv/bin/python bench/claim_bench.py --sizes 100000 1000000 [--dsn DSN]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

import asyncpg

from dialler.store.migrate import migrate
from dialler.store.queries import load

Q = load("engine.sql")
LAB_ADMIN = "postgresql://postgres@127.0.0.1:55432/postgres"


async def fresh_db(admin_dsn: str, name: str) -> str:
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}" OWNER dialler')
    await admin.close()
    dsn = admin_dsn.rsplit("/", 1)[0].replace("postgres@", "dialler@") + f"/{name}"
    await migrate(dsn)
    return dsn


async def load_campaign(conn: Any, size: int) -> uuid.UUID:
    bot = await conn.fetchval("INSERT INTO bots (name, prompt) VALUES ('b', 'hi') RETURNING id")
    campaign = await conn.fetchval(
        "INSERT INTO campaigns (name, bot_id, state, concurrency, window_start, window_end,"
        " window_days) VALUES ('bench', $1, 'running', 1000000, '00:00', '24:00',"
        " '{mon,tue,wed,thu,fri,sat,sun}') RETURNING id",
        bot,
    )
    await conn.execute("INSERT INTO numbers (number, carrier) VALUES ('+441632960001', 'lab')")
    await conn.execute("INSERT INTO campaign_numbers VALUES ($1, '+441632960001')", campaign)
    # Contacts generated server side: fastest way to a big table; next_due_at spread over the
    # past hour so the due index is realistic.
    await conn.execute(
        "INSERT INTO contacts (campaign_id, phone_number, variables, line_number, next_due_at)"
        " SELECT $1, '+4477' || lpad(g::text, 9, '0'), json_build_object('Name', 'n' || g),"
        " g + 1, now() - (g % 3600) * interval '1 second'"
        " FROM generate_series(1, $2) g",
        campaign,
        size,
    )
    await conn.execute("ANALYZE contacts")
    return campaign


async def claim_once(conn: Any, campaign: uuid.UUID, batch: int) -> list[Any]:
    async with conn.transaction():
        await conn.fetchval(Q["lock_campaign_for_claim"], campaign)
        await conn.fetchval(Q["campaign_in_flight"], campaign)
        await conn.fetch(Q["carriers_in_flight"])
        numbers = await conn.fetch(Q["campaign_caller_ids"], campaign)
        rows: list[Any] = await conn.fetch(
            Q["claim_contacts"],
            campaign,
            batch,
            "bench",
            60.0,
            [numbers[0]["number"]],
            [numbers[0]["carrier"]],
            ["lab"],
        )
        await conn.execute(Q["touch_numbers"], [numbers[0]["number"]])
        await conn.execute(Q["mark_campaign_dialled"], campaign)
    return rows


async def settle(conn: Any, rows: list[Any]) -> None:
    ids = [r["id"] for r in rows]
    await conn.execute(
        "UPDATE attempts SET state = 'final', outcome = 'answered', disposition = 'completed',"
        " next_action = 'done', finalised_at = now() WHERE id = ANY($1)",
        ids,
    )
    await conn.execute(
        "UPDATE contacts SET state = 'done', lease_owner = NULL, lease_expires_at = NULL"
        " WHERE id = ANY($1)",
        [r["contact_id"] for r in rows],
    )


async def bench(admin_dsn: str, size: int, rounds: int, batch: int) -> dict[str, float]:
    dsn = await fresh_db(admin_dsn, f"dialler_bench_{size}")
    conn = await asyncpg.connect(dsn)
    t0 = time.perf_counter()
    campaign = await load_campaign(conn, size)
    load_s = time.perf_counter() - t0
    latencies = []
    claimed = 0
    timed = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        rows = await claim_once(conn, campaign, batch)
        dt = time.perf_counter() - t
        timed += dt
        latencies.append(dt)
        claimed += len(rows)
        await settle(conn, rows)
    await conn.close()
    latencies.sort()
    return {
        "size": size,
        "load_s": load_s,
        "claimed": claimed,
        "claims_per_s": claimed / timed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "max_ms": latencies[-1] * 1000,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--admin-dsn", default=LAB_ADMIN)
    args = parser.parse_args()
    print(f"claim transaction, batch {args.batch}, {args.rounds} rounds per size")
    print(
        f"{'contacts':>10} {'load s':>7} {'claims/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}"
    )
    base: float | None = None
    for size in args.sizes:
        r = await bench(args.admin_dsn, size, args.rounds, args.batch)
        base = base or r["p99_ms"]
        print(
            f"{size:>10} {r['load_s']:7.1f} {r['claims_per_s']:9.0f} {r['p50_ms']:7.2f} "
            f"{r['p99_ms']:7.2f} {r['max_ms']:7.2f}   p99 x{r['p99_ms'] / base:.2f} "
            f"of the smallest",
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main())
