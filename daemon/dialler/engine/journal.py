"""The results journal: call ends that could not be written to the database, kept on local disk
until they are (docs/reliability.md).

One file per attempt and kind — `<attempt id>.json` for a call's end, `<attempt id>.result.json`
for its worker's result received while the database was away — in the daemon's own directory,
written atomically
(temporary file, fsync, rename, fsync of the directory): a crash leaves either the whole entry
or none. The directory is locked (`flock` on `.lock`) for the life of the daemon, so two daemons
never share one journal; a restarted daemon takes over the journal of the process it replaces
and replays it. An entry is removed once its end is in the database; replaying one twice is
harmless (an attempt is decided once: `lock_open_attempt`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar

from ..domain.outcomes import DialResult, Outcome
from ..domain.results import AudioStats, WorkerResult
from ..errors import OperationalError

__all__ = ["Journal", "JournalLocked", "Unsettled"]

log = logging.getLogger(__name__)
_SUFFIX = ".json"
_RESULT_SUFFIX = ".result.json"
_VERSION = 1
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Unsettled:
    """A call's end that could not be written yet: its result, and the disposition it decides
    (None: an answered call, decided by its worker's result). `requeue`: our side failed before
    the call was placed — the attempt is recorded as `requeue` and uses no attempt."""

    result: DialResult
    disposition: str | None
    requeue: bool = False


class JournalLocked(OperationalError):
    """Another running daemon holds this results journal."""


class Journal:
    """The call ends of one daemon still to be written, on disk."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._lock: IO[bytes] | None = None

    def open(self) -> None:
        """Create the directory (0700) and lock it; `JournalLocked` when a live daemon holds
        it, `OperationalError` when it cannot be created."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock = (self.directory / ".lock").open("ab")
        except OSError as exc:
            raise OperationalError(f"results journal {self.directory}: {exc}") from None
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise JournalLocked(
                f"results journal {self.directory} is in use by another daemon "
                "(give each daemon on a host its own directory)"
            ) from None
        self._lock = lock

    def close(self) -> None:
        """Release the lock (the entries stay for the next start)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def write(self, attempt_id: uuid.UUID, end: Unsettled) -> None:
        """Keep `end` on disk (replacing an older entry of the attempt). Raises `OSError`."""
        self._write(self._path(attempt_id), _encode(attempt_id, end))

    def _write(self, path: Path, entry: dict[str, object]) -> None:
        tmp = path.with_name(path.name + ".tmp")
        data = json.dumps(entry).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        self._sync_directory()

    def write_result(self, attempt_id: uuid.UUID, result: WorkerResult) -> None:
        """Keep a worker's result on disk. Raises `OSError`."""
        self._write(self._path(attempt_id, _RESULT_SUFFIX), _encode_result(attempt_id, result))

    def remove(self, attempt_id: uuid.UUID) -> None:
        """The attempt's end is in the database: forget it."""
        with contextlib.suppress(FileNotFoundError):
            self._path(attempt_id).unlink()

    def remove_result(self, attempt_id: uuid.UUID) -> None:
        """The worker's result is in the database (or refused there): forget it."""
        with contextlib.suppress(FileNotFoundError):
            self._path(attempt_id, _RESULT_SUFFIX).unlink()

    def load(self) -> dict[uuid.UUID, Unsettled]:
        """Every call end kept; one that cannot be read is set aside (`.bad`) and logged."""
        entries: dict[uuid.UUID, Unsettled] = {}
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")):
            if path.name.endswith(_RESULT_SUFFIX):
                continue
            entry = self._read(path, _decode)
            if entry is not None:
                entries[entry[0]] = entry[1]
        return entries

    def load_results(self) -> dict[uuid.UUID, WorkerResult]:
        """Every worker's result kept."""
        entries: dict[uuid.UUID, WorkerResult] = {}
        for path in sorted(self.directory.glob(f"*{_RESULT_SUFFIX}")):
            entry = self._read(path, _decode_result)
            if entry is not None:
                entries[entry[0]] = entry[1]
        return entries

    def _read(
        self, path: Path, decode: Callable[[dict[str, Any]], tuple[uuid.UUID, _T]]
    ) -> tuple[uuid.UUID, _T] | None:
        try:
            return decode(json.loads(path.read_bytes()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error(
                "unreadable results journal entry set aside",
                extra={"path": str(path), "error": str(exc)},
            )
            with contextlib.suppress(OSError):
                path.rename(path.with_name(path.name + ".bad"))
            return None

    def _path(self, attempt_id: uuid.UUID, suffix: str = _SUFFIX) -> Path:
        return self.directory / f"{attempt_id}{suffix}"

    def _sync_directory(self) -> None:
        # The rename itself must survive a power cut, not only the file's bytes.
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _encode(attempt_id: uuid.UUID, end: Unsettled) -> dict[str, object]:
    r = end.result
    return {
        "version": _VERSION,
        "attempt_id": str(attempt_id),
        "outcome": r.outcome.value,
        "sip_code": r.sip_code,
        "answered_at": r.answered_at,
        "ended_at": r.ended_at,
        "reason": r.reason,
        "disposition": end.disposition,
        "requeue": end.requeue,
    }


def _decode(data: dict[str, Any]) -> tuple[uuid.UUID, Unsettled]:
    if data.get("version") != _VERSION:
        raise ValueError(f"unknown journal version {data.get('version')!r}")

    def number(key: str) -> float | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, int | float):
            raise TypeError(f"{key}: not a number")
        return float(value)

    sip = data.get("sip_code")
    if sip is not None and not isinstance(sip, int):
        raise TypeError("sip_code: not an integer")
    disposition = data.get("disposition")
    if disposition is not None and not isinstance(disposition, str):
        raise TypeError("disposition: not a string")
    result = DialResult(
        Outcome(str(data["outcome"])),
        sip,
        answered_at=number("answered_at"),
        ended_at=number("ended_at"),
        reason=str(data.get("reason", "")),
    )
    return uuid.UUID(str(data["attempt_id"])), Unsettled(
        result, disposition, requeue=bool(data.get("requeue", False))
    )


def _encode_result(attempt_id: uuid.UUID, result: WorkerResult) -> dict[str, object]:
    audio = result.audio
    return {
        "version": _VERSION,
        "attempt_id": str(attempt_id),
        "disposition": result.disposition,
        "callback_at": result.callback_at.isoformat() if result.callback_at else None,
        "notes": result.notes,
        "frames_sent": audio.frames_sent if audio else None,
        "frames_received": audio.frames_received if audio else None,
    }


def _decode_result(data: dict[str, Any]) -> tuple[uuid.UUID, WorkerResult]:
    if data.get("version") != _VERSION:
        raise ValueError(f"unknown journal version {data.get('version')!r}")
    callback = data.get("callback_at")
    sent, received = data.get("frames_sent"), data.get("frames_received")
    audio = (
        AudioStats(int(sent), int(received)) if sent is not None and received is not None else None
    )
    notes = data.get("notes")
    return uuid.UUID(str(data["attempt_id"])), WorkerResult(
        str(data["disposition"]),
        callback_at=datetime.fromisoformat(callback) if callback else None,
        notes=None if notes is None else str(notes),
        audio=audio,
    )
