"""`dialler run`: the daemon."""

from __future__ import annotations

import argparse
import asyncio

from .. import logs
from ..cli import config_path
from ..engine.daemon import install_signals, run_daemon
from .common import config_of


def run(args: argparse.Namespace) -> int:
    config = config_of(args)
    logs.setup(config.logging.level, config.logging.format)

    async def main() -> int:
        stop, hard_stop, reload = asyncio.Event(), asyncio.Event(), asyncio.Event()
        install_signals(stop, hard_stop, reload)
        return await run_daemon(config, stop, hard_stop, config_path(args), reload)

    try:
        import uvloop
        return uvloop.run(main())
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(main())
