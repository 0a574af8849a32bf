"""`dialler campaign show ID [--json]` and `dialler calls ID [--json]`."""

from __future__ import annotations

import argparse
import json

from ..campaigns.lookup import resolve_campaign
from ..config import Config
from ..stats import call_items, campaign_show
from ..store import Connection
from .common import with_db

_LABELS = {
    "live": "Live Activity",
    "idle_waiting_for_retries": "Idle — Waiting for retries",
    "paused_outside_window": "Paused — Outside time window",
}


def show(args: argparse.Namespace) -> int:
    async def body(conn: Connection, config: Config) -> int:
        data = await campaign_show(conn, config, await resolve_campaign(conn, args.campaign))
        if args.json:
            print(json.dumps(data, indent=2))
            return 0
        s = data["stats"]
        print(f"{data['name']}  ({data['id']})")
        print(f"state      {data['state']}")
        print(
            f"activity   {_LABELS.get(data['activity'], data['activity'])}"
            + ("   STALLED" if data["stalled"] else "")
        )
        capped = f" (capped by {data['capped_by']})" if data["capped_by"] else ""
        print(f"concurrency {data['effective_concurrency']}{capped}")
        print(
            f"pending {s['pending']}  dialing {s['dialing']}  connected {s['connected']}  "
            f"wrapping {s['wrapping']}"
        )
        print(
            f"retry_scheduled {s['retry_scheduled']}  callback_scheduled "
            f"{s['callback_scheduled']}  retries_left {s['retries_left']}"
        )
        print(f"done {s['done']}  exhausted {s['exhausted']}  cancelled {s['cancelled']}")
        print(f"answer rate {s['answer_rate']:.1%}  last dial {s['last_dial_at'] or '-'}")
        print("outcomes   " + "  ".join(f"{k} {v}" for k, v in data["outcomes"].items()))
        print(f"abandon rate (30 days) {data['abandon_rate_30d']:.1%}")
        settings = data["settings"]
        window = settings["window"]
        print(
            f"window     {window['start']}-{window['end']} {','.join(window['days'])} "
            f"{window['timezone']}" + ("  always_on" if settings["always_on"] else "")
        )
        retry = settings["retry"]
        print(
            f"retry      max {retry['max_attempts']} every {retry['delay']} on "
            + (", ".join([*retry["on_system"], *retry["on_custom"]]) or "-")
        )
        return 0

    return with_db(args, body)


def calls(args: argparse.Namespace) -> int:
    async def body(conn: Connection, _config: Config) -> int:
        campaign_id = await resolve_campaign(conn, args.campaign)
        async with conn.transaction():  # the call list is read with a cursor
            items = [item async for item in call_items(conn, campaign_id)]
        if args.json:
            print(json.dumps(items, indent=2))
            return 0
        print(f"{'phone_number':16} {'state':19} {'attempts':8} {'last':10} {'sip':>4} {'next':10}")
        for it in items:
            print(
                f"{it['phone_number']:16} {it['state']:19} {it['attempts']:8} "
                f"{it['last_outcome'] or '-':10} {it['last_sip_code'] or '-':>4} "
                f"{it['next_action'] or '-':10}"
            )
        return 0

    return with_db(args, body)
