"""Which Asterisk server each dial goes through (docs/asterisk.md, "Several Asterisk servers").

Every server whose AMI is up takes dials; each dial goes to the server with the fewest calls in
flight, within that server's own channel cap (`asterisk[].max_channels`, none by default).
"In flight" is counted by this daemon, in memory, for nothing per claim: the calls its tracker
follows on that server (adopted ones included) plus the dials claimed for it whose Originate is
not sent yet. Calls other daemons place through the same server are not seen: where daemons
share a server, give each its share of the server's channels (docs/scaling.md).

A server whose AMI goes down gets no new dials at once (the next claim deals over the others);
when it comes back it is dealt to again. Its calls are handled by `Engine.close_lost_calls`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..ami.calls import CallTracker

__all__ = ["PENDING_EXPIRY", "ServerLoad", "Servers", "deal_servers"]

#: A claimed dial's reservation on its server lapses after this long (seconds) if its
#: Originate was never tried: its claim was rolled back (the Originate follows the commit
#: within milliseconds otherwise).
PENDING_EXPIRY = 30.0


@dataclass(frozen=True, slots=True)
class ServerLoad:
    """One server as the next claim sees it."""

    name: str
    in_flight: int
    cap: int | None  # None: no cap of its own


def deal_servers(servers: Sequence[ServerLoad], count: int) -> list[str]:
    """Up to `count` dials dealt one by one, each to the server with the fewest calls in flight
    (those dealt so far included) that is below its cap; ties go to the earlier server in the
    config. Fewer than `count` when every server is full."""
    load = {s.name: s.in_flight for s in servers}
    dealt: list[str] = []
    for _ in range(count):
        open_ = [s for s in servers if s.cap is None or load[s.name] < s.cap]
        if not open_:
            break
        chosen = min(open_, key=lambda s: load[s.name])
        load[chosen.name] += 1
        dealt.append(chosen.name)
    return dealt


class Servers:
    """This daemon's Asterisk servers: which are up, how loaded, where the next dials go."""

    def __init__(
        self,
        trackers: Mapping[str, CallTracker],
        caps: Mapping[str, int | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.trackers = trackers
        self.caps = dict(caps)
        self.clock = clock
        #: Dials claimed for a server, Originate not yet tried: attempt id → (server, since).
        self._pending: dict[uuid.UUID, tuple[str, float]] = {}

    def up(self) -> list[str]:
        """The servers whose AMI is logged in, in config order."""
        return [name for name, tracker in self.trackers.items() if tracker.ami.ready]

    def any_up(self) -> bool:
        return any(tracker.ami.ready for tracker in self.trackers.values())

    def in_flight(self, name: str) -> int:
        """Calls this daemon has on `name`: followed, plus claimed and not yet sent."""
        tracker = self.trackers.get(name)
        followed = len(tracker.calls) if tracker is not None else 0
        return followed + sum(1 for server, _ in self._pending.values() if server == name)

    def loads(self) -> list[ServerLoad]:
        """The servers that may take dials now (AMI up), with their load and cap."""
        return [ServerLoad(n, self.in_flight(n), self.caps.get(n)) for n in self.up()]

    def deal(self, count: int) -> list[str]:
        """Servers for up to `count` dials (fewer when every server up is at its cap)."""
        self._expire()
        return deal_servers(self.loads(), count)

    def reserve(self, dials: Iterable[tuple[uuid.UUID, str]]) -> None:
        """Claimed dials count on their server until their Originate is tried."""
        now = self.clock()
        for attempt_id, name in dials:
            self._pending[attempt_id] = (name, now)

    def release(self, attempt_id: uuid.UUID) -> None:
        """The dial's Originate was tried: it is counted by its tracker now (or not at all)."""
        self._pending.pop(attempt_id, None)

    def _expire(self) -> None:
        cutoff = self.clock() - PENDING_EXPIRY
        for attempt_id, (_name, since) in list(self._pending.items()):
            if since < cutoff:
                del self._pending[attempt_id]
