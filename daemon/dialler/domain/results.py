"""What a bot worker reports at the end of a call, as the engine receives it (docs/worker.md).

The HTTP route parses the worker's JSON into a `WorkerResult`; the engine records it on the
attempt and says whether that decided the attempt now or at hang-up (`ResultRecorded`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

__all__ = ["AudioStats", "ResultRecorded", "WorkerResult"]


@dataclass(frozen=True, slots=True)
class AudioStats:
    """AudioSocket audio frames the worker sent to and received from the call."""

    frames_sent: int
    frames_received: int


@dataclass(frozen=True, slots=True)
class WorkerResult:
    disposition: str  # `completed`, `RNR` or a custom name
    callback_at: datetime | None = None
    notes: str | None = None  # free text, stored as given, never parsed
    audio: AudioStats | None = None


class ResultRecorded(enum.StrEnum):
    """A result accepted: `final` — the call had ended, the attempt is decided now;
    `stored` — the call is still up, the result decides it at hang-up."""

    FINAL = "final"
    STORED = "stored"
