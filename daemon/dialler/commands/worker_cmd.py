"""`dialler worker`: run the reference bot worker (docs/worker.md) until SIGTERM/SIGINT.

`add_arguments(parser)` adds the options and `worker(args)` runs it. Importing this module is
cheap (the worker, aiohttp and the config loader are imported when it runs), so the CLI can
build its parser without paying for them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from ..durations import parse_duration
from ..errors import InvalidInput

if TYPE_CHECKING:
    from ..config import Config
    from ..fleet.worker import WorkerSettings

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:57000"
DEFAULT_DAEMON = "http://127.0.0.1:8080"
#: After the first signal, live calls get this long beyond their talk time to finish and
#: post their results; a second signal stops at once.
DRAIN_GRACE = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `dialler worker`."""
    parser.add_argument(
        "--name",
        default="ref-worker",
        help="worker name registered with the daemon (default: ref-worker)",
    )
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"AudioSocket listen address (default: {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--advertise",
        metavar="HOST",
        help="host registered with the daemon, for Asterisk to connect to "
        "(default: the --listen host; required if that is a wildcard)",
    )
    parser.add_argument(
        "--capacity", default=10, type=int, metavar="N", help="concurrent calls (default: 10)"
    )
    parser.add_argument(
        "--daemon",
        metavar="URL",
        help="the daemon's HTTP API (default: listeners.http of the config if "
        f"one is given, else {DEFAULT_DAEMON})",
    )
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        help="file holding the bearer token for the daemon's API: its first token (a worker "
        "tokens file's line works too). Default: the config's worker token bound to --name, "
        "else the first token of its api.tokens_file, if any",
    )
    parser.add_argument(
        "--talk",
        default="3s",
        metavar="DURATION",
        help="talk time of each call before the worker hangs up (default: 3s)",
    )
    parser.add_argument(
        "--disposition",
        default="completed",
        metavar="NAME",
        help="disposition reported for every call (default: completed)",
    )
    parser.add_argument(
        "--callback-in",
        metavar="DURATION",
        help="ask for a callback this long after each call (e.g. 1h)",
    )
    parser.add_argument(
        "--record-dir", metavar="DIR", help="write what each call received to DIR/<attempt id>.wav"
    )
    parser.add_argument(
        "--heartbeat", default="5s", metavar="DURATION", help="heartbeat interval (default: 5s)"
    )


def worker(args: argparse.Namespace) -> int:
    """Run the reference worker until SIGTERM/SIGINT (exit 0); 1 if it cannot listen."""
    from .. import logs

    config = _given_config(args)
    settings = settings_from_args(args, config)
    if config is not None:
        logs.setup(config.logging.level, config.logging.format)
    else:
        logs.setup("info", "logfmt")
    asyncio.run(_serve(settings))
    return 0


def _given_config(args: argparse.Namespace) -> Config | None:
    """The config named by --config or $DIALLER_CONFIG; the worker needs none."""
    from ..config import load_config

    path = getattr(args, "config", None) or os.environ.get("DIALLER_CONFIG")
    return load_config(path) if path else None


def settings_from_args(args: argparse.Namespace, config: Config | None = None) -> WorkerSettings:
    """Check the options and build the worker's settings; `InvalidInput` names the option."""
    from ..fleet.worker import WorkerSettings

    host, port = parse_listen(args.listen)
    if args.capacity < 1:
        raise InvalidInput(f"--capacity: must be at least 1, got {args.capacity}")
    advertise = args.advertise
    if advertise is None and _is_wildcard(host):
        raise InvalidInput(
            f"--listen: {host} listens on every address; set --advertise to "
            "the address Asterisk should connect to"
        )
    talk = _duration(args.talk, "--talk")
    if talk <= 0:
        raise InvalidInput("--talk: must be greater than 0")
    heartbeat = _duration(args.heartbeat, "--heartbeat")
    if heartbeat <= 0:
        raise InvalidInput("--heartbeat: must be greater than 0")
    disposition = args.disposition.strip()
    if not disposition:
        raise InvalidInput("--disposition: must not be empty")
    return WorkerSettings(
        name=_name(args.name),
        host=host,
        port=port,
        advertise_host=advertise,
        capacity=args.capacity,
        daemon_url=_daemon_url(args.daemon, config),
        token=_token(args.token_file, config, args.name),
        talk_time=talk,
        disposition=disposition,
        callback_in=None
        if args.callback_in is None
        else _duration(args.callback_in, "--callback-in"),
        record_dir=Path(args.record_dir) if args.record_dir else None,
        heartbeat_interval=heartbeat,
    )


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) → (host, port); port 0 picks a free one."""
    host, sep, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise InvalidInput(f"--listen: expected HOST:PORT, e.g. {DEFAULT_LISTEN}, got {text!r}")
    return host, int(port_text)


def _name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "_.-" for c in name):
        raise InvalidInput(f"--name: {name!r} is not valid: letters, digits, '_', '.', '-'")
    return name


def _duration(text: str, option: str) -> float:
    try:
        return parse_duration(text, option)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _daemon_url(explicit: str | None, config: Config | None) -> str:
    if explicit:
        if not explicit.startswith(("http://", "https://")):
            raise InvalidInput(f"--daemon: expected an http:// or https:// URL, got {explicit!r}")
        return explicit.rstrip("/")
    if config is None:
        return DEFAULT_DAEMON
    http = config.listeners.http
    host = http.host
    if _is_wildcard(host):  # the daemon listens everywhere: loopback reaches it
        host = "::1" if ":" in host else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{http.port}"


def _token(token_file: str | None, config: Config | None, name: str) -> str | None:
    """The bearer token: the first of `token_file`; without one, the config's worker token
    bound to `name`, else its first operator token (docs/worker.md)."""
    if token_file is None:
        if config is None:
            return None
        bound = [w.token for w in config.api.worker_tokens if name in w.workers]
        tokens = bound or list(config.api.tokens)
        return tokens[0] if tokens else None
    try:
        text = Path(token_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InvalidInput(f"--token-file: cannot read {token_file}: {reason}") from None
    # The daemon's tokens file formats: one token per line, `#` starts a comment; a worker
    # tokens file has the worker names after the token on its line.
    found = [
        line.split()[0]
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not found:
        raise InvalidInput(f"--token-file: {token_file} holds no token")
    return found[0]


async def _serve(settings: WorkerSettings) -> None:
    from ..fleet.worker import ReferenceWorker

    worker = ReferenceWorker(settings)
    await worker.start()
    stop, hard_stop = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        (hard_stop if stop.is_set() else stop).set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        await stop.wait()
        log.info(
            "stopping: no new calls; live calls finish (a second signal cuts them off)",
            extra={"worker": settings.name, "live": worker.active_calls},
        )
        drain = asyncio.create_task(worker.stop(settings.talk_time + DRAIN_GRACE), name="drain")
        forced = asyncio.create_task(hard_stop.wait(), name="hard-stop")
        await asyncio.wait({drain, forced}, return_when=asyncio.FIRST_COMPLETED)
        forced.cancel()
        if not drain.done():
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain
            log.warning(
                "stopping at once: live calls cut off",
                extra={"worker": settings.name, "live": worker.active_calls},
            )
    finally:
        await worker.stop(drain_timeout=0)
