"""`dialler lab up|status|down|calls`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..lab.lab import Lab


def _lab(args: argparse.Namespace) -> Lab:
    return Lab(Path(args.state_dir) if args.state_dir else None)


def up(args: argparse.Namespace) -> int:
    path = _lab(args).up(asterisk_servers=args.asterisk_servers)
    print(path)  # the last line of stdout, every time (CONTRACT.md)
    return 0


def status(args: argparse.Namespace) -> int:
    info = _lab(args).status()
    servers = info["asterisk_servers"]
    assert isinstance(servers, list)
    # One line per part; the Asterisk servers each on their own (`asterisk` is the first).
    parts: dict[str, dict[str, object]] = {
        k: v for k, v in info.items() if isinstance(v, dict) and k != "asterisk"
    }
    lines = {"postgres": parts.pop("postgres")}
    lines |= {f"asterisk {server['name']}": server for server in servers}
    lines |= parts
    all_up = all(part["up"] for part in lines.values())
    if args.json:
        print(json.dumps(info | {"up": all_up}, indent=2))
    else:
        for name, part in lines.items():
            state = "up" if part["up"] else "down"
            details = ", ".join(f"{k}={v}" for k, v in part.items() if k not in ("up", "name"))
            print(f"{name:14} {state:5} {details}")
        print(f"config         {info['config'] or '-'}")
    return 0 if all_up else 1


def down(args: argparse.Namespace) -> int:
    _lab(args).down()
    return 0


def calls(args: argparse.Namespace) -> int:
    count = _lab(args).calls()
    if args.json:
        print(json.dumps(count.as_json(), indent=2))
    else:
        print(f"total {count.total}")
        for number, n in sorted(count.by_number.items()):
            print(f"{number} {n}")
        for server, n in sorted(count.by_asterisk.items()):
            print(f"via {server} {n}")
    return 0
