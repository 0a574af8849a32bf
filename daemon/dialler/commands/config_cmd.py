"""`dialler config check FILE`: validate a config file and list every problem with its key path."""

from __future__ import annotations

import argparse
import sys

from ..config import load_config
from ..errors import ConfigError


def check(args: argparse.Namespace) -> int:
    """Print `<path>: OK` (exit 0), or each problem as `<path>: <problem>` on stderr (exit 2).

    Beyond what the daemon refuses at start, `config check` refuses secret and token files
    that other users may read or write (docs/security.md) and warns when the FastAGI listener
    has no shared secret."""
    path: str = args.file
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        return exc.exit_code
    if config.exposed:
        for problem in config.exposed:
            print(f"{path}: {problem}", file=sys.stderr)
        return ConfigError(list(config.exposed), path).exit_code
    print(f"{path}: OK")
    return 0
