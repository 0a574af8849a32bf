"""Pacing limits: calls per second per carrier (a token bucket) and caller-ID dealing."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence


class TokenBucket:
    """At most `rate` dials per second, with bursts of up to one second's worth."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.clock = clock
        self.stamp = clock()

    def available(self) -> int:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return int(self.tokens)

    def take(self, n: int) -> None:
        self.tokens -= n

    def seconds_until(self, n: int = 1) -> float:
        """How long until `n` tokens are available."""
        missing = n - self.available()
        return 0.0 if missing <= 0 else missing / self.rate


def deal_caller_ids(
    numbers: Sequence[tuple[str, str]], room: dict[str, int], wanted: int
) -> list[tuple[str, str]]:
    """Caller IDs (number, carrier) for up to `wanted` dials: least recently used first (the
    order of `numbers`), only carriers with room, spreading dials round robin over numbers.
    `room` (carrier → free channels) is decremented as dials are dealt."""
    dealt: list[tuple[str, str]] = []
    candidates = [n for n in numbers if room.get(n[1], 0) > 0]
    while len(dealt) < wanted and candidates:
        still = []
        for number, carrier in candidates:
            if len(dealt) >= wanted:
                break
            if room.get(carrier, 0) > 0:
                dealt.append((number, carrier))
                room[carrier] -= 1
                still.append((number, carrier))
        candidates = [c for c in still if room.get(c[1], 0) > 0]
    return dealt


def deal_workers(fleet: Sequence[tuple[str, int]], wanted: int) -> list[str]:
    """Workers for `wanted` calls from (worker, free slots), spreading calls over the
    emptiest first, never past a worker's free slots."""
    free = dict(fleet)
    dealt: list[str] = []
    while len(dealt) < wanted:
        name = max(free, key=lambda w: free[w], default=None)
        if name is None or free[name] <= 0:
            raise ValueError(f"not enough free slots for {wanted} calls")
        dealt.append(name)
        free[name] -= 1
    return dealt
