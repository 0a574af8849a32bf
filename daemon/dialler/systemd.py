"""sd_notify without libsystemd: tell systemd the daemon is ready, reloading, stopping, alive.

The protocol (sd_notify(3)) is one datagram of ``KEY=VALUE`` lines sent to the AF_UNIX socket
named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace). Without the
variable — not started by systemd, or a unit type other than notify — every call is a no-op.
Sending never raises into the caller and never blocks: a lost datagram must not stop the
daemon, so a failure is logged once and later ones are dropped quietly.

`watchdog_loop` pings from the event loop itself, so a blocked loop stops the pings and systemd
restarts the daemon (`WatchdogSec=` in the unit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Mapping

__all__ = ["Notifier", "watchdog_loop"]

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages to ``$NOTIFY_SOCKET``; does nothing when it is unset.

    `environ` defaults to `os.environ`, read once here: `NOTIFY_SOCKET`, `WATCHDOG_USEC` and
    `WATCHDOG_PID`. Methods return True when the datagram was sent (False: disabled or failed).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self._address = _address(raw)
        self._watchdog_usec = env.get("WATCHDOG_USEC", "")
        self._watchdog_pid = env.get("WATCHDOG_PID", "")
        self._socket: socket.socket | None = None
        self._failed = False  # a failure is logged once: the watchdog would repeat it forever
        if raw and self._address is None:
            log.warning(
                "NOTIFY_SOCKET is not an AF_UNIX socket address; not notifying systemd",
                extra={"notify_socket": raw},
            )

    @property
    def enabled(self) -> bool:
        """True when there is a socket to notify (the daemon runs under systemd)."""
        return self._address is not None

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: start-up (or a reload) is complete; with `status`, STATUS too."""
        return self.notify("READY=1", *_status(status))

    def status(self, text: str) -> bool:
        """``STATUS=text``: one line shown by `systemctl status`."""
        return self.notify(*_status(text))

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the keep-alive ping (`watchdog_loop` sends it on a timer)."""
        return self.notify("WATCHDOG=1")

    def reloading(self, status: str | None = None) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC`` (systemd ≥ 253 matches the reload by it);
        send `ready` when the reload is done, applied or refused."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", *_status(status))

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: the daemon is shutting down (draining)."""
        return self.notify("STOPPING=1", *_status(status))

    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings: half of ``WATCHDOG_USEC``, as sd_watchdog_enabled(3)
        advises; None when there is no watchdog, it is meant for another process
        (``WATCHDOG_PID``), or there is no socket to ping."""
        if not self.enabled:
            return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        if usec <= 0:
            return None
        if self._watchdog_pid:
            try:
                pid = int(self._watchdog_pid)
            except ValueError:
                return None
            if pid != os.getpid():
                return None
        return usec / 2 / 1_000_000

    def notify(self, *fields: str) -> bool:
        """Send `fields` (``KEY=VALUE`` each) as one datagram; never raises."""
        if self._address is None or not fields:
            return False
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.setblocking(False)  # a full socket buffer drops, never blocks
            self._socket.sendto("\n".join(fields).encode("utf-8"), self._address)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning(
                    "cannot notify systemd; later failures are not logged",
                    extra={"error": str(exc)},
                )
            return False
        return True

    def close(self) -> None:
        """Close the socket (a later message opens it again)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _address(value: str) -> str | bytes | None:
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode("utf-8")  # Linux abstract namespace
    return None  # unset, or a kind we do not speak (vsock:)


def _status(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    # A line break would end the STATUS field and start another: keep it on one line.
    return ("STATUS=" + " ".join(text.split()),)


async def watchdog_loop(notifier: Notifier, stop: asyncio.Event) -> None:
    """Send ``WATCHDOG=1`` every `notifier.watchdog_interval()` seconds until `stop` is set.

    Runs on the event loop on purpose: if the loop blocks, the pings stop and systemd restarts
    the daemon. Returns at once when there is no watchdog.
    """
    interval = notifier.watchdog_interval()
    if interval is None:
        return
    while not stop.is_set():
        notifier.watchdog()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
