"""Reading a contacts CSV (CONTRACT.md, "Contacts CSV"): streaming, pure, no database.

`read_contacts(path, region)` checks the file as a whole first (readable, UTF-8 text, a header
with a `phone_number` column) and raises `CsvFileError` when it cannot be imported at all.
The `ContactStream` it returns then yields the valid rows one by one and reports every bad
row as a `RowError` (line number, the row's fields, the reason); nothing is dropped silently
except blank lines.

Memory does not grow with the file: rows are read one at a time, and the only thing kept
across rows is the set of numbers seen so far with their first line (about 32 bytes a number,
see `_SeenNumbers`), which duplicate detection needs.

Line numbers are physical lines of the file (the header is line 1 when it comes first), also
when a quoted field spans several lines: the file is split into lines here, not by the `csv`
module, so a decoding error can name its line too.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import re
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from ..errors import CsvFileError, InvalidNumber
from .phone import normalise_phone
from .zones import TIMEZONE_VARIABLE, timezone_problem

__all__ = [
    "MAX_FIELD_BYTES",
    "MAX_LINE_BYTES",
    "PHONE_COLUMN",
    "ContactStream",
    "CsvFileError",
    "ParsedRow",
    "RowError",
    "read_contacts",
]

PHONE_COLUMN = "phone_number"
#: Longest field accepted, in UTF-8 bytes; a longer one rejects its row.
MAX_FIELD_BYTES = 64 * 1024
# The csv module's own limit (process-wide) sits far above ours so that an over-long field is
# *our* row error. Beyond it the csv module gives up on the field (an unclosed quote swallowing
# the rest of a big file, typically) and we report that instead; it also bounds the memory one
# row may take.
_CSV_FIELD_LIMIT = 16 * 1024 * 1024
#: Longest physical line read, in bytes: a longer one rejects the row it belongs to without
#: ever being held in memory (a file with no line breaks at all is read in bounded pieces).
MAX_LINE_BYTES = 2 * 1024 * 1024
_SKIP_BYTES = 64 * 1024
# A field of at most this many characters cannot exceed MAX_FIELD_BYTES in UTF-8 (4 bytes per
# character at most), so only longer ones are encoded to be measured.
_SURELY_SHORT = MAX_FIELD_BYTES // 4
_SNIFF_BYTES = 8192
# Lines end with LF or CRLF; a lone CR (classic Mac) also ends one, as for Python's universal
# newlines. Split after every CR not followed by LF.
_LONE_CR = re.compile(r"(?<=\r)(?!\n)")
_MAGIC = (
    (b"PK\x03\x04", "a ZIP archive (an .xlsx or .ods spreadsheet?)"),
    (b"\xd0\xcf\x11\xe0", "an old Office document (an .xls spreadsheet?)"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
)


class ParsedRow(NamedTuple):
    """A valid row: its line, its number in E.164, its variables in column order."""

    line: int
    phone: str
    variables: dict[str, str]
    #: The `phone_number` field as written (for the errors file).
    raw_phone: str


@dataclass(frozen=True, slots=True)
class RowError:
    """A rejected row: where it starts, its fields (None when they could not be split), why."""

    line: int
    raw: list[str] | None
    reason: str


class ContactStream:
    """The valid rows of a contacts file, read lazily; iterate it once.

    Rejected rows go to `on_error` when given, else they are collected in `errors` (fine for
    tests and small files; the importer passes a callback to keep memory flat). `valid` and
    `rejected` count the rows so far. Use as a context manager, or `close()` it.
    """

    def __init__(
        self,
        path: Path,
        handle: io.BufferedReader,
        default_region: str,
        on_error: Callable[[RowError], None] | None,
    ) -> None:
        self.path = path
        self.default_region = default_region
        self.errors: list[RowError] = []
        self.valid = 0
        self.rejected = 0
        self._handle = handle
        self._on_error = on_error or self.errors.append
        self._lines_read = 0
        # The text of the record being read, for rows the csv module cannot split.
        self._record_lines: list[str] = []
        self._at_end = False  # the file has no more lines
        self._overlong_line = False  # the record being read has a line over MAX_LINE_BYTES
        self._reader = csv.reader(self._text_lines(), strict=True)
        self._iterated = False
        self.columns, self.header_line = self._read_header()
        self.phone_index = self.columns.index(PHONE_COLUMN)

    # --- public ------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[ParsedRow]:
        if self._iterated:
            raise RuntimeError("a ContactStream can be iterated only once")
        self._iterated = True
        try:
            yield from self._rows()
        finally:
            self.close()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ContactStream:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- lines -------------------------------------------------------------------------------

    def _physical_lines(self) -> Iterator[bytes | None]:
        """The file's lines as bytes, each at most `MAX_LINE_BYTES`; None for a longer one,
        whose bytes are skipped in pieces (memory stays flat whatever the line length)."""
        read = self._handle.readline
        while True:
            raw = read(MAX_LINE_BYTES + 1)
            if not raw:
                return
            if len(raw) <= MAX_LINE_BYTES or raw.endswith(b"\n"):
                yield raw
                continue
            while raw and not raw.endswith(b"\n"):
                raw = read(_SKIP_BYTES)
            yield None

    def _text_lines(self) -> Iterator[str]:
        """The file's physical lines, decoded; file-level errors name their line."""
        first = True
        self._at_end = False
        for raw in self._physical_lines():
            self._lines_read += 1
            if raw is None:
                # Text the (strict) csv module refuses in any state, inside a quoted field or
                # not: the record with this line becomes a row error (`_overlong_line` says
                # why; the csv module's message is not looked at).
                self._overlong_line = True
                self._record_lines.append("")
                yield '"x"x\n'
                continue
            if first:
                first = False
                if raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8) :]
            if b"\x00" in raw:
                raise CsvFileError(
                    self.path,
                    "contains a NUL byte: this is not CSV text (a binary file?)",
                    self._lines_read,
                )
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CsvFileError(
                    self.path,
                    f"not UTF-8 text: byte 0x{raw[exc.start]:02x} (byte "
                    f"{exc.start + 1} of the line) cannot be decoded; save the file as UTF-8 CSV",
                    self._lines_read,
                ) from None
            if text.find("\r", 0, len(text) - 2) >= 0:
                pieces = _LONE_CR.split(text)
                self._lines_read += len(pieces) - 1
                self._record_lines.extend(pieces)
                yield from pieces
            else:
                self._record_lines.append(text)
                yield text
        self._at_end = True  # the csv module's errors after this are about the file's end

    # --- header ------------------------------------------------------------------------------

    def _read_header(self) -> tuple[tuple[str, ...], int]:
        end = 0
        while True:
            try:
                fields = next(self._reader)
            except StopIteration:
                raise CsvFileError(self.path, "the file is empty (no header row)") from None
            except csv.Error as exc:
                raise CsvFileError(self.path, f"not CSV: {exc}", end + 1) from None
            line, end = end + 1, self._reader.line_num
            if any(field.strip() for field in fields):
                break
        for number, name in enumerate(fields, start=1):
            if not name.strip():
                raise CsvFileError(self.path, f"column {number} of the header has no name", line)
        first_seen: dict[str, int] = {}
        for number, name in enumerate(fields, start=1):
            if name in first_seen:
                raise CsvFileError(
                    self.path,
                    f"column {name!r} appears twice in the header "
                    f"(columns {first_seen[name]} and {number})",
                    line,
                )
            first_seen[name] = number
        if PHONE_COLUMN not in first_seen:
            raise CsvFileError(self.path, _missing_phone_column(fields), line)
        return tuple(fields), line

    # --- rows --------------------------------------------------------------------------------

    def _rows(self) -> Iterator[ParsedRow]:
        reader = self._reader
        width = len(self.columns)
        phone_at = self.phone_index
        variable_columns = [
            (index, name) for index, name in enumerate(self.columns) if index != phone_at
        ]
        region = self.default_region
        # A `timezone` column overrides the number's zones (contacts/zones.py): a value that is
        # not an IANA name rejects its row; it stays a variable too.
        zone_at = (
            self.columns.index(TIMEZONE_VARIABLE) if TIMEZONE_VARIABLE in self.columns else None
        )
        seen = _SeenNumbers()
        end = reader.line_num
        while True:
            self._record_lines.clear()
            self._overlong_line = False
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                start, end = end + 1, reader.line_num
                if self._overlong_line:
                    self._reject(
                        start,
                        None,
                        f"a line is over {MAX_LINE_BYTES} bytes (2 MiB), far over what a row "
                        f"needs: a field may be at most {MAX_FIELD_BYTES} bytes (64 KiB)",
                    )
                    continue
                raw = "".join(self._record_lines)
                problem = _csv_problem(exc, raw, self._at_end)
                # The errors file gets the reason and the start of the record, not 16 MiB.
                self._reject(start, [raw[:MAX_FIELD_BYTES]], problem)
                continue
            start, end = end + 1, reader.line_num
            if not fields or (not fields[0].strip() and not any(field.strip() for field in fields)):
                continue  # a blank line, or one of empty fields only (",,,")
            if len(fields) != width:
                self._reject(
                    start, fields, f"expected {width} fields (as in the header), got {len(fields)}"
                )
                continue
            if max(map(len, fields)) > _SURELY_SHORT:
                too_long = _overlong_column(fields, self.columns)
                if too_long is not None:
                    self._reject(start, fields, too_long)
                    continue
            raw_phone = fields[phone_at]
            try:
                phone = normalise_phone(raw_phone, region)
            except InvalidNumber as exc:
                self._reject(start, fields, str(exc))
                continue
            if zone_at is not None:
                zone = timezone_problem(fields[zone_at])
                if zone is not None:
                    self._reject(start, fields, zone)
                    continue
            first = seen.first_line(int(phone[1:]), start)
            if first != start:
                self._reject(start, fields, f"duplicate: {phone} is already on line {first}")
                continue
            self.valid += 1
            yield ParsedRow(
                start, phone, {name: fields[index] for index, name in variable_columns}, raw_phone
            )

    def _reject(self, line: int, raw: list[str] | None, reason: str) -> None:
        self.rejected += 1
        self._on_error(RowError(line, raw, reason))


class _SeenNumbers:
    """The numbers seen so far, each with the line it was first seen on.

    An open-addressing hash table in two flat arrays: 16 bytes a slot, at most half of the
    slots used, so about 32 bytes a number where a dict of ints takes about 100 (a million
    numbers: some 30 MB instead of 100). The price, about 1 µs a row in Python, is small next
    to parsing the number.
    """

    def __init__(self) -> None:
        self._allocate(1 << 16)

    def _allocate(self, capacity: int) -> None:
        self._mask = capacity - 1
        # A number is the digits of its E.164 form as an int: never 0, so 0 marks a free slot.
        self._numbers = array("Q", bytes(8 * capacity))
        self._lines = array("Q", bytes(8 * capacity))
        self._count = 0

    def first_line(self, number: int, line: int) -> int:
        """The line `number` was first seen on; `line` (and remembered) when it is new."""
        numbers, mask = self._numbers, self._mask
        # Fibonacci hashing: numbers of a list are often consecutive, or share their last
        # digits; multiplying spreads both over the table.
        slot = ((number * 0x9E3779B97F4A7C15) >> 32) & mask
        while True:
            found = numbers[slot]
            if found == number:
                return self._lines[slot]
            if not found:
                numbers[slot] = number
                self._lines[slot] = line
                self._count += 1
                if 2 * self._count > mask:
                    self._grow()
                return line
            slot = (slot + 1) & mask

    def _grow(self) -> None:
        numbers, lines = self._numbers, self._lines
        self._allocate(2 * len(numbers))
        for number, line in zip(numbers, lines, strict=True):
            if number:
                self.first_line(number, line)


def read_contacts(
    path: Path, default_region: str, on_error: Callable[[RowError], None] | None = None
) -> ContactStream:
    """Open the contacts CSV at `path` and check its header; the rows come by iterating.

    Raises `CsvFileError` (exit 2) for a file that cannot be imported at all: unreadable,
    empty, binary, not UTF-8, no `phone_number` column, a header column without a name or
    twice. The same error can come later while iterating, for a line that is not UTF-8 text.
    Numbers without a country code are read as numbers of `default_region` (e.g. `GB`).
    """
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise CsvFileError(path, "file not found") from None
    except IsADirectoryError:
        raise CsvFileError(path, "is a directory, not a file") from None
    except OSError as exc:
        raise CsvFileError(path, f"cannot read the file: {exc.strerror or exc}") from None
    try:
        _check_text(path, handle.peek(_SNIFF_BYTES)[:_SNIFF_BYTES])
        return ContactStream(path, handle, default_region, on_error)
    except BaseException:
        handle.close()
        raise


def _check_text(path: Path, head: bytes) -> None:
    """Refuse the usual non-CSV files up front, with a name for what they are."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise CsvFileError(path, "is UTF-16 text; save it as UTF-8 CSV")
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise CsvFileError(path, f"is {what}, not CSV text")
    if b"\x00" in head:
        raise CsvFileError(path, "contains NUL bytes: this is a binary file, not CSV text")


def _missing_phone_column(fields: list[str]) -> str:
    shown = ", ".join(repr(name) for name in fields[:20])
    if len(fields) > 20:
        shown += f", … ({len(fields) - 20} more)"
    message = f"no {PHONE_COLUMN!r} column (columns found: {shown})"
    suggestion = _closest_to_phone_column(fields)
    if suggestion is not None:
        message += (
            f"; did you mean {suggestion!r}? The column must be named exactly {PHONE_COLUMN!r}"
        )
    return message


def _closest_to_phone_column(fields: list[str]) -> str | None:
    """A header name that differs from `phone_number` only in case, spacing or punctuation,
    else one close to it in spelling."""
    for name in fields:
        if re.sub(r"[\s_.-]+", "_", name.strip()).lower() == PHONE_COLUMN:
            return name
    lowered = {name.strip().lower(): name for name in fields}
    close = difflib.get_close_matches(PHONE_COLUMN, list(lowered), n=1, cutoff=0.8)
    return lowered[close[0]] if close else None


def _overlong_column(fields: list[str], columns: tuple[str, ...]) -> str | None:
    for field, name in zip(fields, columns, strict=True):
        if len(field) > _SURELY_SHORT:
            size = len(field.encode("utf-8"))
            if size > MAX_FIELD_BYTES:
                return (
                    f"field {name!r} is {size} bytes long, over the limit of "
                    f"{MAX_FIELD_BYTES} (64 KiB)"
                )
    return None


def _csv_problem(exc: csv.Error, raw: str, at_end: bool) -> str:
    """Why the csv module could not split a record into fields. `csv.Error` has no subclasses,
    so the case is told from what was read, never from the error's text: a record longer than
    the csv module's field limit, one that ran into the end of the file (a quote never
    closed), or else bad quoting (the module's own words then, as given)."""
    if len(raw) > _CSV_FIELD_LIMIT:
        return f"a field is over {MAX_FIELD_BYTES} bytes (64 KiB) — far over: an unclosed quote?"
    if at_end:
        return "unclosed quote: the quoted field runs to the end of the file"
    return f"bad CSV quoting: {exc}"
