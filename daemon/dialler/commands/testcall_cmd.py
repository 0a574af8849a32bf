"""`dialler test-call --bot B --to N [--from N]`: one call outside any campaign, placed by the
running daemon, printing each stage with its time since the start (the triage guide's "run a
test call against the same bot").

Stages: `originated`, `ringing`, `answered`, `attached` (worker), `audio` (the frames sent and
received that the worker reported in its result's `audio`; its notes when it reported none),
`result` (disposition) — or `failed` with the reason (`rejected: SIP 486`). Exit 0 when a
result came back, 1 when the call failed, no daemon runs or the daemon cannot place it (no
free worker, AMI down: HTTP 503), 2 when the request is refused (unknown bot, bad number, a
test call to the number in progress: HTTP 404, 409, 422) — the exit codes of
`errors.ANSWERS` for the same refusals.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import aiohttp

from ..config import Config
from ..errors import InvalidInput, OperationalError
from .common import config_of


def _line(event: dict[str, Any]) -> str:
    stage = event["stage"]
    details = {k: v for k, v in event.items() if k not in ("stage", "t", "notes")}
    if stage == "failed":
        text = event["reason"]
    elif stage == "attached":
        text = f"worker {event['worker']}"
    elif stage == "audio":
        text = (
            f"frames sent {event['frames_sent']}, received {event['frames_received']}"
            if event.get("frames_sent") is not None
            else event.get("notes") or ""
        )
    elif stage == "result":
        text = f"disposition {event['disposition']}"
    else:
        text = " ".join(f"{k}={v}" for k, v in details.items())
    return f"{event['t']:8.3f}s  {stage:10} {text}".rstrip()


async def _error_message(response: aiohttp.ClientResponse) -> str:
    """The daemon's `{"error": {"message"}}`, else the HTTP reason."""
    try:
        data = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) else str(response.reason)


async def _run(config: Config, body: dict[str, Any]) -> int:
    listener = config.listeners.http
    host = "127.0.0.1" if listener.host in ("0.0.0.0", "::") else listener.host
    url = f"http://{host}:{listener.port}/v1/test-calls"
    headers = {"Authorization": f"Bearer {config.api.tokens[0]}"} if config.api.tokens else {}
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, json=body, headers=headers) as response,
        ):
            if response.status != 200:
                message = await _error_message(response)
                if response.status in (404, 409, 422):
                    raise InvalidInput(f"test call refused: {message}")
                raise OperationalError(f"test call refused: {message}")
            ok = False
            async for raw in response.content:
                event = json.loads(raw)
                print(_line(event), flush=True)
                ok = event["stage"] == "result"
            return 0 if ok else 1
    except aiohttp.ClientConnectionError:
        raise OperationalError(
            f"no daemon is running at {url.rsplit('/v1', 1)[0]} (start it with `dialler run`)"
        ) from None


def test_call(args: argparse.Namespace) -> int:
    config = config_of(args)
    body: dict[str, Any] = {"bot": args.bot, "to": args.to}
    if args.caller_id:
        body["from"] = args.caller_id
    print(f"test call to {args.to} with bot {args.bot}", file=sys.stderr)
    return asyncio.run(_run(config, body))
