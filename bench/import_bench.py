"""Benchmark: `dialler contacts import` against `psql \\copy` of the same rows.

    .venv/bin/python bench/import_bench.py [--rows 1000000] [--dsn DSN]

Generates a CSV of N rows (phone_number + 5 variables) in a temporary directory, then:

(a) imports it into a fresh campaign with `import_contacts` — the code path of `dialler
    contacts import` — in a child process, so that the peak RSS reported is the import's own;
(b) as the baseline, loads the same file with `psql \\copy` into a plain table of six text
    columns (no parsing, no normalisation, no index);

and prints the rows per second of each, their ratio, the import's stages and its peak RSS.
The database needs the dialler's schema (`dialler db migrate`); the campaign, its contacts and
the baseline table are removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

DEFAULT_DSN = "postgresql://dialler@127.0.0.1:55432/dialler"
PSQL = "/usr/bin/psql"
COLUMNS = ("phone_number", "FirstName", "LastName", "Plan", "City", "AccountId")
FIRST = ("Ann", "Bob", "Chloé", "Dev", "Eve", "Farid", "Gita", "Hugo")
LAST = ("Smith", "Jones", "O'Brien", "Nguyen", "Müller", "Kowalski")
PLANS = ("gold", "silver", "bronze")
CITIES = ("London", "Leeds", "Cardiff", "Belfast", "Glasgow, Scotland")  # one needs quoting


def generate(path: Path, rows: int) -> None:
    """`rows` distinct UK mobile numbers (E.164, a tenth in national format) + 5 variables."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(COLUMNS) + "\n")
        for i in range(rows):
            phone = f"07700 {i:06d}" if i % 10 == 0 else f"+447700{i:06d}"
            city = CITIES[i % len(CITIES)]
            city = f'"{city}"' if "," in city else city
            out.write(
                f"{phone},{FIRST[i % len(FIRST)]},{LAST[i % len(LAST)]},"
                f"{PLANS[i % len(PLANS)]},{city},ACC-{i:08d}\n"
            )


# --- (a) the import, in a child process ------------------------------------------------------


async def child_import(dsn: str, campaign_id: uuid.UUID, path: Path) -> dict[str, Any]:
    from dialler.contacts.importer import import_contacts
    from dialler.store.pool import connect

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    conn = await connect(dsn)
    try:
        start = time.perf_counter()
        summary = await import_contacts(conn, campaign_id, path, "GB")
        seconds = time.perf_counter() - start
    finally:
        await conn.close()
    return {
        "seconds": seconds,
        "imported": summary.imported,
        "rejected": summary.rejected,
        "rss_before_kib": rss_before,
        "rss_peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def child_read(path: Path) -> dict[str, Any]:
    """The reader alone (decode, split, normalise, duplicate check): the CPU-bound part."""
    from dialler.contacts.csvfile import read_contacts

    start = time.perf_counter()
    with read_contacts(path, "GB") as stream:
        count = sum(1 for _ in stream)
    return {
        "seconds": time.perf_counter() - start,
        "rows": count,
        "rss_peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def run_child(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"child {args[0]} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# --- (b) the baseline ------------------------------------------------------------------------


def psql(dsn: str, command: str) -> None:
    subprocess.run(
        [PSQL, "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", "--dbname", dsn, "-c", command],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def psql_copy(dsn: str, path: Path) -> float:
    table = f"bench_copy_{uuid.uuid4().hex[:12]}"
    columns = ", ".join(f'"{name}" text' for name in COLUMNS)
    psql(dsn, f"CREATE TABLE {table} ({columns})")
    try:
        start = time.perf_counter()
        psql(dsn, f"\\copy {table} FROM '{path}' WITH (FORMAT csv, HEADER true)")
        return time.perf_counter() - start
    finally:
        psql(dsn, f"DROP TABLE {table}")


# --- setup and report ------------------------------------------------------------------------


async def make_campaign(dsn: str) -> uuid.UUID:
    from dialler.store.pool import connect

    conn = await connect(dsn)
    try:
        if await conn.fetchval("SELECT to_regclass('campaigns')") is None:
            sys.exit(f"{dsn}: no dialler schema; run `dialler db migrate` first")
        name = f"bench-{uuid.uuid4().hex[:8]}"
        bot = await conn.fetchval(
            "INSERT INTO bots (name, prompt) VALUES ($1, 'bench') RETURNING id", name
        )
        campaign: uuid.UUID = await conn.fetchval(
            "INSERT INTO campaigns (name, bot_id) VALUES ($1, $2) RETURNING id", name, bot
        )
        return campaign
    finally:
        await conn.close()


async def drop_campaign(dsn: str, campaign_id: uuid.UUID) -> None:
    from dialler.store.pool import connect

    conn = await connect(dsn)
    try:
        bot = await conn.fetchval(
            "DELETE FROM campaigns WHERE id = $1 RETURNING bot_id", campaign_id
        )
        await conn.execute("DELETE FROM bots WHERE id = $1", bot)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--child", choices=("import", "read"), help=argparse.SUPPRESS)
    parser.add_argument("--campaign", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "import":
        print(
            json.dumps(
                asyncio.run(child_import(args.dsn, uuid.UUID(args.campaign), Path(args.file)))
            )
        )
        return
    if args.child == "read":
        print(json.dumps(child_read(Path(args.file))))
        return

    with tempfile.TemporaryDirectory(prefix="dialler-bench-") as directory:
        path = Path(directory) / "contacts.csv"
        start = time.perf_counter()
        generate(path, args.rows)
        print(
            f"generated {args.rows:,} rows ({path.stat().st_size / 2**20:.0f} MiB) in "
            f"{time.perf_counter() - start:.1f} s",
            file=sys.stderr,
        )

        campaign_id = asyncio.run(make_campaign(args.dsn))
        try:
            imported = run_child(
                "--child",
                "import",
                "--dsn",
                args.dsn,
                "--campaign",
                str(campaign_id),
                "--file",
                str(path),
            )
        finally:
            asyncio.run(drop_campaign(args.dsn, campaign_id))
        reader = run_child("--child", "read", "--file", str(path))
        baseline = psql_copy(args.dsn, path)

    rows = args.rows
    ours = rows / imported["seconds"]
    theirs = rows / baseline
    print(
        f"rows:                          {rows:,} (imported {imported['imported']:,}, "
        f"rejected {imported['rejected']:,})"
    )
    print(f"dialler contacts import:       {imported['seconds']:7.2f} s  {ours:>10,.0f} rows/s")
    print(
        f"  (its reader alone, no DB:    {reader['seconds']:7.2f} s  "
        f"{rows / reader['seconds']:>10,.0f} rows/s)"
    )
    print(f"psql \\copy (6 text columns):   {baseline:7.2f} s  {theirs:>10,.0f} rows/s")
    print(f"ratio psql/import:             {theirs / ours:7.1f}x")
    print(
        f"import peak RSS:               {imported['rss_peak_kib'] / 1024:7.1f} MiB "
        f"(at start: {imported['rss_before_kib'] / 1024:.1f} MiB; reader alone: "
        f"{reader['rss_peak_kib'] / 1024:.1f} MiB)"
    )


if __name__ == "__main__":
    main()
