"""Importing a contacts CSV into a campaign (`dialler contacts import`).

The valid rows land atomically: in one transaction, a chunk at a time, they are COPYed into a
temporary staging table and moved from there into `contacts` by an INSERT ... SELECT that
leaves out the numbers the campaign already has. Any failure rolls everything back.

Rejected rows (see `csvfile`) and the rows whose number the campaign already has go to the
errors file: CSV with `line`, `reason`, then the row's original fields, sorted by line; every
cell, header included, neutralised like the report's (`report.neutralise`: a spreadsheet
never evaluates one), except cells of digits and phone punctuation only (a number as written,
so the fixed file imports again). While
importing, rejected rows are spooled to temporary files (memory stays flat); the errors file is
assembled next to its final place and renamed into it once the transaction has committed, so
an import that fails leaves no errors file behind. No errors file is written when every row was
imported.

Every contact gets its zone key (contacts/zones.py: the zones its number may be in, or its
`timezone` column). In a campaign whose window is read per contact (`window.per_contact`),
contacts whose zones never share an open instant of the window are cancelled at the end of the
import (`state_reason` `no_common_window`) and reported in the summary: they could never be
dialled.

Once imported, the file's columns are compared with the variables the campaign's bot prompt
uses (`dialler.domain.prompt`): each one no column provides becomes a warning in the summary
(the import itself is not affected).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import heapq
import itertools
import json
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from ..domain.prompt import prompt_warnings
from ..domain.states import CampaignState
from ..domain.window import Window, WindowError
from ..domain.zones import ZonedWindow, key_zones
from ..errors import InvalidInput, OperationalError, UnknownCampaign, WrongState
from ..report import neutralise
from ..store import Connection
from ..store import contacts as store
from ..store import zones as zones_store
from ..store.contacts import CampaignForContacts, StagingRecord
from ..store.prompts import campaign_prompt
from ..store.zones import ZoneCount
from .csvfile import PHONE_COLUMN, ContactStream, ParsedRow, RowError, read_contacts
from .zones import contact_zone_key

__all__ = [
    "ImportSummary",
    "accepts_contacts",
    "campaign_prompt",
    "cancel_never_open",
    "check_accepts_contacts",
    "default_errors_path",
    "import_contacts",
    "never_open_keys",
    "never_open_warning",
]

# Rows staged then inserted at a time (see `_load`); a chunk takes some 20 MB in memory.
_CHUNK_ROWS = 50_000
#: The states a campaign takes contacts in (unless cancelled).
_TAKES_CONTACTS = (CampaignState.DRAFT, CampaignState.RUNNING, CampaignState.PAUSED)

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What an import did. `rejected` includes `duplicates_in_campaign`; `suppressed` are
    among `imported` (imported as cancelled: on the do-not-call list)."""

    campaign: str
    imported: int
    rejected: int
    duplicates_in_campaign: int
    suppressed: int
    #: The errors file written, or None when no row was rejected (nothing written then).
    errors_path: Path | None
    #: One line per prompt variable no column of the file provides (with a suggestion when a
    #: column looks meant for it), then per malformed placeholder; see `prompt_warnings`.
    warnings: list[str] = field(default_factory=list)
    #: Imported as cancelled because their zones never share an open instant of the window
    #: (per-contact windows only); among `imported`, and each zone set is in `warnings`.
    no_common_window: int = 0

    def describe(self) -> str:
        """The one-line summary printed after `contacts import`."""
        text = f"imported {self.imported} contacts into {self.campaign}"
        if self.suppressed:
            text += (
                f" ({self.suppressed} on the do-not-call list, imported as cancelled: "
                "they will not be dialled)"
            )
        if self.no_common_window:
            text += (
                f" ({self.no_common_window} cancelled: their time zones never share an open "
                "moment of the calling window)"
            )
        if self.errors_path is None:
            return text + "; no rows rejected (no errors file written)"
        in_campaign = (
            f", {self.duplicates_in_campaign} of them already in the campaign"
            if self.duplicates_in_campaign
            else ""
        )
        return f"{text}; {self.rejected} rows rejected{in_campaign} (see {self.errors_path})"


def default_errors_path(path: Path) -> Path:
    """`<FILE>.errors.csv` (CONTRACT)."""
    return path.with_name(path.name + ".errors.csv")


def accepts_contacts(row: CampaignForContacts | None, campaign_id: uuid.UUID) -> str:
    """The campaign's name if contacts may be added to it: `UnknownCampaign` when `row` is
    None, `WrongState` when it is cancelled or completed."""
    if row is None:
        raise UnknownCampaign(str(campaign_id))
    if row.cancelled_at is not None:
        raise WrongState(
            f"campaign {row.name!r} was cancelled: contacts can no longer be added",
            state=row.state,
            allowed=_TAKES_CONTACTS,
        )
    if row.state == CampaignState.COMPLETED:
        raise WrongState(
            f"campaign {row.name!r} is completed: contacts can no longer be added",
            state=row.state,
            allowed=_TAKES_CONTACTS,
        )
    return row.name


async def check_accepts_contacts(
    conn: Connection, campaign_id: uuid.UUID, *, lock: bool = False
) -> str:
    """The campaign's name if contacts may be added to it; `UnknownCampaign`, `WrongState`
    otherwise. `lock`: hold a share lock on the campaign until the transaction commits (a
    `campaign cancel` then waits for it; `campaign_for_contacts_locked`)."""
    row = await store.campaign_for_contacts(conn, campaign_id, lock=lock)
    return accepts_contacts(row, campaign_id)


async def import_contacts(
    conn: Connection,
    campaign_id: uuid.UUID,
    path: Path,
    default_region: str,
    errors_path: Path | None = None,
    *,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import the contacts CSV at `path` into the campaign; see the module docstring.

    `errors_path` defaults to `<path>.errors.csv`. `progress`, when given, receives a short
    status text after every chunk (`_CHUNK_ROWS` rows) and before the commit. Raises `CsvFileError`
    (`InvalidInput`, exit 2) when the file cannot be imported at all, `WrongState` when the
    campaign takes no more contacts, `OperationalError` (exit 1) when the database fails;
    nothing is imported in every one of those cases. The summary's `warnings` compare the
    file's columns with the variables of the campaign's bot prompt.
    """
    errors_path = errors_path or default_errors_path(path)
    _check_errors_path(errors_path, path)
    campaign = await check_accepts_contacts(conn, campaign_id)
    # Read now: once the import has committed, a failing query must not make it look failed.
    prompt = await campaign_prompt(conn, campaign_id)
    with contextlib.ExitStack() as cleanup:
        rejected = cleanup.enter_context(_ErrorSpool())
        stream = cleanup.enter_context(
            await asyncio.to_thread(read_contacts, path, default_region, rejected.add)
        )
        in_campaign = cleanup.enter_context(_ErrorSpool())
        try:
            async with store.import_transaction(conn):
                imported, suppressed, keys = await _load(
                    conn, campaign_id, stream, in_campaign, progress
                )
                never = await cancel_never_open(conn, campaign_id, keys)
                written = await asyncio.to_thread(
                    _write_errors, errors_path, path, stream.columns, rejected, in_campaign
                )
                cleanup.callback(_remove, written)  # until the rename below
        except OSError as exc:
            raise OperationalError(
                f"import failed, nothing imported: {exc.strerror or exc}"
            ) from None
        if written is not None:
            os.replace(written, errors_path)
    variables = [column for column in stream.columns if column != PHONE_COLUMN]
    return ImportSummary(
        campaign=campaign,
        imported=imported,
        rejected=rejected.count + in_campaign.count,
        duplicates_in_campaign=in_campaign.count,
        suppressed=suppressed,
        errors_path=errors_path if written is not None else None,
        warnings=[
            *([] if prompt is None else prompt_warnings(prompt, variables)),
            *never_open_warning(never),
        ],
        no_common_window=sum(count.n for count in never),
    )


def never_open_keys(window: Window, keys: Iterable[str], now: datetime | None = None) -> list[str]:
    """The zone keys among `keys` whose zones never share an open instant of `window`."""
    at = now or datetime.now(UTC)
    return sorted(
        key for key in set(keys) if not ZonedWindow.for_key(window, key).shares_open_instant(at)
    )


def never_open_warning(cancelled: Iterable[ZoneCount], fallback: str = "") -> list[str]:
    """One line per zone set whose contacts were cancelled (the report at import and start)."""
    return [
        f"{count.n} contact(s) cancelled: the calling window is never open at the same time "
        f"in all of {', '.join(key_zones(count.zone_key, fallback))} (the zones their number "
        "may be in; give each its own with a `timezone` column)"
        for count in cancelled
    ]


async def cancel_never_open(
    conn: Connection, campaign_id: uuid.UUID, keys: set[str]
) -> list[ZoneCount]:
    """Cancel the campaign's waiting contacts whose zones (among `keys`, those just imported)
    never share an open instant of its window, when it is read per contact; per key, how
    many. An invalid window (a draft's) is left to `campaign start`."""
    facts = await zones_store.campaign_zone_window(conn, campaign_id)
    if facts is None or not facts.per_contact:
        return []
    try:
        window = Window.parse(
            facts.window_start, facts.window_end, list(facts.window_days), facts.timezone
        )
    except WindowError:
        return []
    never = await asyncio.to_thread(never_open_keys, window, keys)
    return await zones_store.cancel_never_open(conn, campaign_id, never)


async def _load(
    conn: Connection,
    campaign_id: uuid.UUID,
    stream: ContactStream,
    in_campaign: _ErrorSpool,
    progress: Progress | None,
) -> tuple[int, int, set[str]]:
    """Move the file's valid rows, with their zone keys, into `contacts` inside the caller's
    transaction, a chunk at a time; spool the rows whose number the campaign already has.
    (imported, suppressed, the zone keys of the rows)

    Parsing (about 20 µs a row, mostly `phonenumbers`) runs in a worker thread: the next chunk
    is parsed while the server inserts the current one (about as long: constraints, a foreign
    key, four indexes), so the two overlap instead of adding up, and the event loop is never
    blocked. Not while COPY runs: a thread parsing then would make the event loop wait for the
    GIL at every step. Two chunks in memory at most.
    """
    await store.create_import_staging(conn)
    rows = iter(stream)
    imported = suppressed = 0
    keys: set[str] = set()
    parsing = asyncio.create_task(asyncio.to_thread(_parse_chunk, rows), name="parse-chunk")
    try:
        while (parsed := await parsing)[0]:
            chunk, chunk_keys = parsed
            await store.stage_rows(conn, chunk)
            del chunk, parsed
            parsing = asyncio.create_task(asyncio.to_thread(_parse_chunk, rows), name="parse-chunk")
            result = await store.import_staged(conn, campaign_id)
            keys |= chunk_keys
            imported += result.imported
            suppressed += result.suppressed
            for duplicate in result.duplicates:
                in_campaign.add(
                    RowError(
                        duplicate.line,
                        _original_fields(
                            stream.phone_index,
                            duplicate.raw_phone or duplicate.phone,
                            duplicate.variables,
                        ),
                        f"duplicate in campaign: {duplicate.phone} is already a contact of the "
                        "campaign",
                    )
                )
            await store.truncate_import_staging(conn)
            if progress is not None:
                progress(
                    f"{imported:,} contacts added, {stream.valid + stream.rejected:,} rows read"
                )
    finally:
        # On failure, let the worker finish its chunk before the file is closed under it.
        if not parsing.done():
            with contextlib.suppress(Exception):
                await parsing
    if progress is not None:
        progress(
            f"{imported:,} contacts added, {stream.valid + stream.rejected:,} rows read; committing"
        )
    # Last, so the lock lasts only until the commit (see the query).
    await check_accepts_contacts(conn, campaign_id, lock=True)
    return imported, suppressed, keys


def _parse_chunk(rows: Iterator[ParsedRow]) -> tuple[list[StagingRecord], set[str]]:
    """The next `_CHUNK_ROWS` valid rows as staging records, each with its zone key (empty
    at the end of the file), and the set of their keys."""
    records: list[StagingRecord] = []
    keys: set[str] = set()
    for row in itertools.islice(rows, _CHUNK_ROWS):
        key = contact_zone_key(row.phone, row.variables)
        keys.add(key)
        records.append(
            (
                row.line,
                row.phone,
                None if row.raw_phone == row.phone else row.raw_phone,
                json.dumps(row.variables, ensure_ascii=False),
                key,
            )
        )
    return records, keys


def _original_fields(phone_index: int, raw_phone: str, variables: dict[str, str]) -> list[str]:
    """A staged row's fields in file order again (variables keep the column order)."""
    fields = list(variables.values())
    fields.insert(phone_index, raw_phone)
    return fields


class _ErrorSpool:
    """Rejected rows, in line order, in an anonymous temporary file (CSV: line, reason,
    fields...)."""

    def __init__(self) -> None:
        self.count = 0
        # Closed by __exit__: the spool lives as long as the import.
        self._file: IO[str] = tempfile.TemporaryFile(  # noqa: SIM115
            "w+", encoding="utf-8", newline=""
        )
        self._writer = csv.writer(self._file)

    def add(self, error: RowError) -> None:
        self.count += 1
        self._writer.writerow([error.line, error.reason, *(error.raw or ())])

    def rows(self) -> Iterator[list[str]]:
        self._file.flush()
        self._file.seek(0)
        return csv.reader(self._file)

    def __enter__(self) -> _ErrorSpool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._file.close()


def _check_errors_path(errors_path: Path, path: Path) -> None:
    """Refuse an errors file that could not be written, before doing any work."""
    if errors_path.resolve() == path.resolve():
        raise InvalidInput(f"--errors {errors_path}: that is the file being imported")
    directory = errors_path.parent
    if not directory.is_dir():
        raise InvalidInput(f"--errors {errors_path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InvalidInput(f"--errors {errors_path}: directory {directory} is not writable")
    if errors_path.is_dir():
        raise InvalidInput(f"--errors {errors_path}: is a directory")


def _write_errors(
    errors_path: Path, path: Path, columns: Iterable[str], *spools: _ErrorSpool
) -> Path | None:
    """Merge the spools by line into a temporary file beside `errors_path` (renamed into
    place once the import has committed); its path, or None when there is nothing to write.

    The file gets the permissions of the contacts file (`path`), at most 0640: it holds the
    same data.
    """
    if not any(spool.count for spool in spools):
        return None
    handle, name = tempfile.mkstemp(
        prefix=f".{errors_path.name}.", suffix=".tmp", dir=errors_path.parent
    )
    try:
        os.fchmod(handle, path.stat().st_mode & 0o640)
        with open(handle, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            # Every cell neutralised (header included): the file is opened in spreadsheets.
            writer.writerow(["line", "reason", *map(neutralise, columns)])
            merged = heapq.merge(*(spool.rows() for spool in spools), key=_line_of)
            writer.writerows([_neutralised(cell) for cell in row] for row in merged)
    except BaseException:
        _remove(Path(name))
        raise
    return Path(name)


#: A cell of digits and phone punctuation only: no formula a spreadsheet could run, and the
#: errors file is meant to be fixed and imported again, so `+44 7700 900004` stays as written.
_PHONE_LIKE = re.compile(r"[+\d\s().-]*")


def _neutralised(cell: str) -> str:
    return cell if _PHONE_LIKE.fullmatch(cell) else neutralise(cell)


def _line_of(fields: list[str]) -> int:
    return int(fields[0])


def _remove(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
