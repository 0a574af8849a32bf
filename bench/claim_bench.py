"""Claim throughput and latency by table size.

For each size, a fresh database gets one running campaign with SIZE pending contacts (made
server side), then the engine's own claim transaction (store/engine.py, as Engine._claim_many
runs it: lock the campaigns, count their in-flight contacts and the carriers', list caller IDs,
`claim_contacts`, touch the numbers, mark the campaigns) runs ROUNDS times claiming BATCH
contacts each; claimed contacts are settled outside the timed part so in-flight stays low, as
in a running campaign. Prints claims/s and p50/p99/max latency of the claim transaction.

With `--baseline REV`, each size is run first with the claim statement of git revision REV
(its engine.sql's `claim_contacts_many`, or its batch `claim_contacts`), then with today's,
on the same database, and the ratio is printed.

    .venv/bin/python bench/claim_bench.py --sizes 100000 1000000 [--baseline REV]

On a private PostgreSQL 15 this script starts (fsync on, as an unprivileged user), or with
`--admin-dsn` on another (a superuser DSN; a role `dialler` must exist there).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import time
import uuid
from typing import Any

import asyncpg

from dialler.lab.postgres import throwaway_cluster
from dialler.store import connect
from dialler.store import engine as store
from dialler.store.migrate import migrate


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


def statement_of(rev: str) -> str:
    """The batch claim statement of git revision `rev` (8 parameters or more: the first 8 are
    today's)."""
    text = subprocess.run(
        ["git", "show", f"{rev}:daemon/dialler/store/sql/engine.sql"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    parts = re.split(r"^--\s*name:\s*([a-z_0-9]+)\s*$", text, flags=re.MULTILINE)
    queries = dict(zip(parts[1::2], parts[2::2], strict=True))
    many = queries.get("claim_contacts_many") or queries["claim_contacts"]
    return many.strip().rstrip(";")


async def claim_once(
    conn: Any, campaign: uuid.UUID, batch: int, statement: str | None
) -> list[Any]:
    """The engine's claim transaction for one campaign of `batch` dials; with `statement`, the
    claim step runs that (a baseline's) statement instead of today's."""
    async with conn.transaction():
        await store.lock_campaigns_for_claim(conn, [campaign])
        await store.campaigns_in_flight(conn, [campaign])
        await store.carriers_in_flight(conn)
        numbers = (await store.campaigns_caller_ids(conn, [campaign]))[campaign]
        callers = [numbers[0].number] * batch
        carriers = [numbers[0].carrier] * batch
        servers = ["lab"] * batch
        rows: list[Any]
        if statement is None:
            claim = store.CampaignClaim(campaign, 60.0, callers, carriers, servers)
            rows = (await store.claim_contacts(conn, "bench", [claim])).get(campaign, [])
        else:
            params = ([campaign], [batch], "bench", [60.0], callers, carriers, servers, [1])
            extra = ([False], [], []) if "$9" in statement else ()
            rows = await conn.fetch(statement, *params, *extra)
        await store.touch_numbers(conn, [numbers[0].number])
        await store.mark_campaigns_dialled(conn, [campaign])
    return rows


async def settle(conn: Any, rows: list[Any]) -> None:
    """Claimed rows (`Claimed`, or a baseline statement's records) made final and done."""
    ids = [r.id if isinstance(r, store.Claimed) else r["id"] for r in rows]
    contacts = [r.contact_id if isinstance(r, store.Claimed) else r["contact_id"] for r in rows]
    await conn.execute(
        "UPDATE attempts SET state = 'final', outcome = 'answered', disposition = 'completed',"
        " next_action = 'done', finalised_at = now() WHERE id = ANY($1)",
        ids,
    )
    await conn.execute(
        "UPDATE contacts SET state = 'done', lease_owner = NULL, lease_expires_at = NULL"
        " WHERE id = ANY($1)",
        contacts,
    )


async def bench(
    admin_dsn: str, size: int, rounds: int, batch: int, statement: str | None = None
) -> dict[str, float]:
    """One size on a fresh database; `statement`: a baseline's claim statement."""
    dsn = await fresh_db(admin_dsn, f"dialler_bench_{size}")
    conn = await connect(dsn)
    t0 = time.perf_counter()
    campaign = await load_campaign(conn, size)
    load_s = time.perf_counter() - t0
    latencies = []
    claimed = 0
    timed = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        rows = await claim_once(conn, campaign, batch, statement)
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
        "p99_ms": latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1000,
        "max_ms": latencies[-1] * 1000,
    }


def row(label: str, size: int, r: dict[str, float]) -> str:
    return (
        f"{label:>9} {size:>10} {r['load_s']:7.1f} {r['claims_per_s']:9.0f} {r['p50_ms']:7.2f} "
        f"{r['p99_ms']:7.2f} {r['max_ms']:7.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--admin-dsn", help="a superuser DSN (default: a private cluster)")
    parser.add_argument("--baseline", metavar="REV", help="also run REV's claim statement")
    args = parser.parse_args()
    if args.admin_dsn:
        asyncio.run(run(args, args.admin_dsn))
        return
    with throwaway_cluster("dialler-claim-bench-", fast=False) as cluster:
        cluster.ensure_database("dialler", "dialler")
        asyncio.run(run(args, cluster.dsn("postgres", cluster.superuser)))


async def run(args: argparse.Namespace, admin_dsn: str) -> None:
    baseline = statement_of(args.baseline) if args.baseline else None
    print(f"claim transaction, batch {args.batch}, {args.rounds} rounds per size")
    print(
        f"{'statement':>9} {'contacts':>10} {'load s':>7} {'claims/s':>9} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'max ms':>7}"
    )
    smallest: float | None = None
    for size in args.sizes:
        if baseline is not None:
            old = await bench(admin_dsn, size, args.rounds, args.batch, baseline)
            print(row(args.baseline[:9], size, old), flush=True)
        r = await bench(admin_dsn, size, args.rounds, args.batch)
        smallest = smallest or r["p99_ms"]
        line = row("today", size, r) + f"   p99 x{r['p99_ms'] / smallest:.2f} of the smallest"
        if baseline is not None:
            line += (
                f"; vs {args.baseline}: claims/s x{r['claims_per_s'] / old['claims_per_s']:.2f},"
                f" p50 x{r['p50_ms'] / old['p50_ms']:.2f}"
            )
        print(line, flush=True)


if __name__ == "__main__":
    main()
