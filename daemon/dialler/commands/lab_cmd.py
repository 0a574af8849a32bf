"""`dialler lab up|status|down|calls`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..lab.lab import Lab


def _lab(args: argparse.Namespace) -> Lab:
    return Lab(Path(args.state_dir) if args.state_dir else None)


def up(args: argparse.Namespace) -> int:
    path = _lab(args).up()
    print(path)  # the last line of stdout, every time (CONTRACT.md)
    return 0


def status(args: argparse.Namespace) -> int:
    info = _lab(args).status()
    parts = {k: v for k, v in info.items() if isinstance(v, dict)}
    all_up = all(part["up"] for part in parts.values())
    if args.json:
        print(json.dumps(info | {"up": all_up}, indent=2))
    else:
        for name, part in parts.items():
            state = "up" if part["up"] else "down"
            details = ", ".join(f"{k}={v}" for k, v in part.items() if k != "up")
            print(f"{name:9} {state:5} {details}")
        print(f"config    {info['config'] or '-'}")
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
    return 0
