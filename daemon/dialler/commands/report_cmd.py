"""`dialler report attempts ID [-o FILE]`.

The file is written 0600 (it holds phone numbers and contact data): created so, never
widened by the umask; `chmod` it to share it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..campaigns.lookup import resolve_campaign
from ..config import Config
from ..report import write_report
from ..store import Connection
from .common import with_db


def attempts(args: argparse.Namespace) -> int:
    path = Path(args.output).resolve() if args.output else None

    async def body(conn: Connection, _config: Config) -> int:
        campaign_id = await resolve_campaign(conn, args.campaign)
        if path is not None:
            tmp = path.with_name(path.name + ".partial")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)  # a leftover .partial keeps its mode otherwise
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                count = await write_report(conn, campaign_id, out)
            tmp.replace(path)  # a reader never sees half a report
            print(path)
        else:
            count = await write_report(conn, campaign_id, sys.stdout)
        print(f"report: {count} attempts", file=sys.stderr)
        return 0

    return with_db(args, body)
