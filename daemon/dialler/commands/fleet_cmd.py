"""`dialler fleet list [--json]`: the bot workers, their slots and heartbeats, and the free
slots against the running campaigns' concurrency (docs/fleet.md, "Listing the fleet")."""

from __future__ import annotations

import argparse
import json
import sys

from ..config import Config
from ..store import Connection
from ..workers import FleetStatus, fleet_status
from .common import format_table, with_db


def list_fleet(args: argparse.Namespace) -> int:
    """A table of every worker, then the totals (`--json`: `GET /v1/fleet`'s JSON)."""

    async def body(conn: Connection, config: Config) -> FleetStatus:
        return await fleet_status(conn, config)

    fleet = with_db(args, body)
    if args.json:
        print(json.dumps(fleet.to_json(), indent=2))
        return 0
    rows = [
        (
            worker.name,
            f"{worker.host}:{worker.port}",
            worker.source,
            str(worker.capacity),
            str(worker.in_use),
            str(worker.free),
            "-" if worker.heartbeat_age_seconds is None else f"{worker.heartbeat_age_seconds:.0f}s",
            "yes" if worker.in_rotation else "no",
        )
        for worker in fleet.workers
    ]
    headers = ("NAME", "ADDRESS", "SOURCE", "CAPACITY", "IN_USE", "FREE", "HEARTBEAT", "ROTATION")
    print(format_table(headers, rows))
    print(
        f"capacity {fleet.capacity}  in use {fleet.in_use}  free {fleet.free}  "
        f"running campaigns' concurrency {fleet.running_concurrency}"
    )
    if fleet.running_concurrency > fleet.capacity:
        print(
            f"dialler: warning: the running campaigns' concurrency ({fleet.running_concurrency}) "
            f"is higher than the fleet's capacity ({fleet.capacity}): calls are capped by the "
            "fleet",
            file=sys.stderr,
        )
    return 0
