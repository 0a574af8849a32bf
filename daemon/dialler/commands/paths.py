"""Where the CLI finds its config file (cheap to import: the parser uses it for its help)."""

from __future__ import annotations

import argparse
import os

__all__ = ["DEFAULT_CONFIG", "config_path"]

DEFAULT_CONFIG = "/etc/dialler/dialler.yaml"


def config_path(args: argparse.Namespace) -> str:
    """The config file to use: --config, then $DIALLER_CONFIG, then the default path."""
    explicit: str | None = args.config
    return explicit or os.environ.get("DIALLER_CONFIG") or DEFAULT_CONFIG
