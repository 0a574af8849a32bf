"""The contacts CSV reader: file-level checks, row errors, line numbers, normalisation."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from dialler.contacts.csvfile import (
    MAX_FIELD_BYTES,
    CsvFileError,
    ParsedRow,
    RowError,
    _SeenNumbers,
    read_contacts,
)
from dialler.contacts.phone import InvalidNumber, normalise_phone
from dialler.errors import InvalidInput


def read(
    tmp_path: Path, content: str | bytes, region: str = "GB"
) -> tuple[list[ParsedRow], list[RowError]]:
    path = tmp_path / "contacts.csv"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with read_contacts(path, region) as stream:
        rows = list(stream)
    return rows, stream.errors


def file_error(tmp_path: Path, content: str | bytes) -> CsvFileError:
    path = tmp_path / "contacts.csv"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(CsvFileError) as info, read_contacts(path, "GB") as stream:
        list(stream)
    assert str(path) in str(info.value)
    return info.value


# --- the file as a whole ---------------------------------------------------------------------


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_bom_and_line_endings(tmp_path: Path, bom: bytes, newline: bytes) -> None:
    content = bom + newline.join(
        [b"phone_number,Name", b"+447700900001,Ann", b"+447700900002,Bob", b""]
    )
    rows, errors = read(tmp_path, content)
    assert errors == []
    assert rows == [
        ParsedRow(2, "+447700900001", {"Name": "Ann"}, "+447700900001"),
        ParsedRow(3, "+447700900002", {"Name": "Bob"}, "+447700900002"),
    ]


def test_headers_kept_exactly_in_column_order(tmp_path: Path) -> None:
    rows, _ = read(
        tmp_path, "CustomerName,phone_number,plan,PLAN, Spaced \nAnn,+447700900001,gold,GOLD,x\n"
    )
    assert list(rows[0].variables.items()) == [
        ("CustomerName", "Ann"),
        ("plan", "gold"),
        ("PLAN", "GOLD"),
        (" Spaced ", "x"),
    ]


def test_file_error_is_invalid_input(tmp_path: Path) -> None:
    assert isinstance(file_error(tmp_path, ""), InvalidInput)


def test_missing_phone_column_lists_columns_and_suggests(tmp_path: Path) -> None:
    error = file_error(tmp_path, "Name,Phone_Number\nAnn,+447700900001\n")
    message = str(error)
    assert "no 'phone_number' column" in message
    assert "'Name', 'Phone_Number'" in message
    assert "did you mean 'Phone_Number'" in message
    assert error.line == 1


@pytest.mark.parametrize("header", ["phone number", " phone_number", "PHONE-NUMBER", "phone_numbr"])
def test_missing_phone_column_suggestions(tmp_path: Path, header: str) -> None:
    assert f"did you mean {header!r}" in str(file_error(tmp_path, f"{header},x\n1,2\n"))


def test_missing_phone_column_without_a_near_name(tmp_path: Path) -> None:
    message = str(file_error(tmp_path, "name,plan\nAnn,gold\n"))
    assert "columns found: 'name', 'plan'" in message
    assert "did you mean" not in message


@pytest.mark.parametrize("content", ["", "\ufeff", "\n\n  \n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    assert "empty" in str(file_error(tmp_path, content))


def test_header_only_is_fine(tmp_path: Path) -> None:
    assert read(tmp_path, "phone_number,Name\n") == ([], [])


def test_duplicate_header_name(tmp_path: Path) -> None:
    error = file_error(tmp_path, "phone_number,Name,plan,Name\n")
    assert "'Name' appears twice" in str(error)
    assert "columns 2 and 4" in str(error)


def test_empty_header_name(tmp_path: Path) -> None:
    assert "column 3 of the header has no name" in str(
        file_error(tmp_path, "phone_number,Name,\n+447700900001,Ann,\n")
    )


def test_undecodable_bytes_name_their_line(tmp_path: Path) -> None:
    error = file_error(tmp_path, b"phone_number,Name\n+447700900001,Ann\n+447700900002,Ren\xe9e\n")
    assert error.line == 3
    assert "not UTF-8" in str(error)
    assert "0xe9" in str(error)


def test_undecodable_line_after_a_multiline_field(tmp_path: Path) -> None:
    error = file_error(tmp_path, b'phone_number,Note\n+447700900001,"a\nb\nc"\n\xff,x\n')
    assert error.line == 5


@pytest.mark.parametrize(
    "content",
    [
        b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00",  # an .xlsx
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"phone_number\n\x00\x01\x02\x03binary",
    ],
)
def test_binary_file(tmp_path: Path, content: bytes) -> None:
    message = str(file_error(tmp_path, content))
    assert "not CSV" in message or "binary" in message


def test_nul_byte_deep_in_the_file(tmp_path: Path) -> None:
    content = ("phone_number\n" + "+447700900001\n" * 2000).encode() + b"+4477\x00\n"
    error = file_error(tmp_path, content)
    assert error.line == 2002
    assert "NUL" in str(error)


def test_utf16_file(tmp_path: Path) -> None:
    content = "phone_number\n+447700900001\n".encode("utf-16")
    assert "UTF-16" in str(file_error(tmp_path, content))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CsvFileError, match="file not found"):
        read_contacts(tmp_path / "nope.csv", "GB")


# --- rows ------------------------------------------------------------------------------------


def test_ragged_rows(tmp_path: Path) -> None:
    rows, errors = read(
        tmp_path,
        "phone_number,Name,plan\n+447700900001,Ann\n"
        "+447700900002,Bob,gold,extra\n+447700900003,Cy,x\n",
    )
    assert [row.line for row in rows] == [4]
    assert errors == [
        RowError(2, ["+447700900001", "Ann"], "expected 3 fields (as in the header), got 2"),
        RowError(
            3,
            ["+447700900002", "Bob", "gold", "extra"],
            "expected 3 fields (as in the header), got 4",
        ),
    ]


def test_field_over_64_kib(tmp_path: Path) -> None:
    fits = "x" * MAX_FIELD_BYTES
    over = "x" * (MAX_FIELD_BYTES + 1)
    # Characters of several bytes count as bytes: 30,000 × "é" is 60,000 B; 40,000 is 80,000.
    rows, errors = read(
        tmp_path,
        f"phone_number,Note\n+447700900001,{fits}\n"
        f"+447700900002,{over}\n+447700900003,{'é' * 30_000}\n"
        f"+447700900004,{'é' * 40_000}\n+447700900005,ok\n",
    )
    assert [row.line for row in rows] == [2, 4, 6]
    assert [(error.line, error.reason) for error in errors] == [
        (3, "field 'Note' is 65537 bytes long, over the limit of 65536 (64 KiB)"),
        (5, "field 'Note' is 80000 bytes long, over the limit of 65536 (64 KiB)"),
    ]
    assert errors[0].raw == ["+447700900002", over]


def test_field_beyond_the_csv_module_limit_is_a_row_error(tmp_path: Path) -> None:
    huge = "y" * (17 * 1024 * 1024)
    rows, errors = read(tmp_path, f"phone_number,Note\n+447700900001,{huge}\n+447700900002,ok\n")
    assert [row.line for row in rows] == [3]
    assert [error.line for error in errors] == [2]
    assert "64 KiB" in errors[0].reason


def test_duplicates_in_the_file_name_the_first_line(tmp_path: Path) -> None:
    rows, errors = read(
        tmp_path,
        "phone_number,Name\n+447700900001,Ann\n07700 900002,Bob\n"
        "07700900001,Ann again\n+44 7700 900002,Bob again\n",
    )
    assert [row.line for row in rows] == [2, 3]
    assert [(error.line, error.reason) for error in errors] == [
        (4, "duplicate: +447700900001 is already on line 2"),
        (5, "duplicate: +447700900002 is already on line 3"),
    ]


def test_line_numbers_with_quoted_multiline_fields(tmp_path: Path) -> None:
    content = (
        "phone_number,Address\r\n"
        '+447700900001,"1 High St\r\nLondon"\r\n'
        '+447700900002,"a\nb\nc\nd"\n'
        "\n"
        'bad,"x\ny"\n'
        "+447700900003,plain\n"
    )
    rows, errors = read(tmp_path, content)
    assert [(row.line, row.variables["Address"]) for row in rows] == [
        (2, "1 High St\r\nLondon"),
        (4, "a\nb\nc\nd"),
        (11, "plain"),
    ]
    assert [error.line for error in errors] == [9]


def test_bad_numbers(tmp_path: Path) -> None:
    rows, errors = read(
        tmp_path,
        "phone_number,Name\nhello,a\n12,b\n+44 20 7946 0958 ext. 4,c\n"
        "+999 1234 5678,d\n,e\n+447700900001,f\n",
    )
    assert [row.line for row in rows] == [7]
    reasons = {error.line: error.reason for error in errors}
    assert reasons[2] == "invalid phone number 'hello': not a phone number"
    assert reasons[3].startswith("invalid phone number '12': too short")
    assert "extension" in reasons[4]
    assert "unknown country code" in reasons[5]
    assert reasons[6] == "phone_number is empty"


def test_national_numbers_use_the_default_region(tmp_path: Path) -> None:
    rows, errors = read(
        tmp_path, "phone_number\n07700 900123\n0044 1632 960001\n+1 202 555 0144\n", region="GB"
    )
    assert errors == []
    assert [row.phone for row in rows] == ["+447700900123", "+441632960001", "+12025550144"]
    rows, _ = read(tmp_path, "phone_number\n(202) 555-0143\n", region="US")
    assert [row.phone for row in rows] == ["+12025550143"]


def test_blank_lines_are_skipped_silently(tmp_path: Path) -> None:
    rows, errors = read(
        tmp_path, "\nphone_number,Name\n\n+447700900001,Ann\n\n,\n  \n+447700900002,Bob\n\n"
    )
    assert errors == []
    assert [row.line for row in rows] == [4, 8]


def test_bad_quoting_is_a_row_error_with_the_raw_text(tmp_path: Path) -> None:
    rows, errors = read(
        tmp_path,
        'phone_number,Name\n+447700900001,"Ann"x\n'
        '+447700900002,Bob\n+447700900003,"unclosed\nmore\n',
    )
    assert [row.line for row in rows] == [3]
    assert errors[0] == RowError(
        2, ['+447700900001,"Ann"x\n'], "bad CSV quoting: ',' expected after '\"'"
    )
    assert errors[1].line == 4
    assert errors[1].raw == ['+447700900003,"unclosed\nmore\n']
    assert "unclosed quote" in errors[1].reason


def test_a_field_over_the_csv_modules_limit_is_a_row_error_and_the_rest_imports(
    tmp_path: Path,
) -> None:
    # A quoted field of 17 MiB: the csv module gives up on it (its limit is 16 MiB); that row
    # is rejected with a reason, and the rows around it are read.
    huge = "x" * (17 * 1024 * 1024)
    rows, errors = read(
        tmp_path,
        f'phone_number,Name\n+447700900001,Ann\n+447700900002,"{huge}"\n+447700900003,Bob\n',
    )
    assert [row.phone for row in rows] == ["+447700900001", "+447700900003"]
    assert len(errors) == 1
    assert errors[0].line == 3
    assert "a field may be at most 65536 bytes" in errors[0].reason


def test_errors_go_to_the_callback_when_given(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("phone_number\nbad\n+447700900001\n")
    seen: list[RowError] = []
    with read_contacts(path, "GB", seen.append) as stream:
        assert [row.line for row in stream] == [3]
    assert [error.line for error in seen] == [2]
    assert stream.errors == []
    assert (stream.valid, stream.rejected) == (1, 1)


def test_many_rows_stream(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone_number", "n"])
        writer.writerows([f"+4477009{i:05d}", str(i)] for i in range(20_000))
    with read_contacts(path, "GB") as stream:
        count = sum(1 for _ in stream)
    assert count == 20_000


# --- number normalisation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "e164"),
    [
        ("+447700900123", "+447700900123"),  # lab callee range (Ofcom drama numbers)
        ("07700 900123", "+447700900123"),
        ("+441632960001", "+441632960001"),  # lab caller-ID range
        ("01632 960001", "+441632960001"),
        ("0044 20 7946 0958", "+442079460958"),
        (" +1 (202) 555-0143 ", "+12025550143"),
    ],
)
def test_normalise_phone(text: str, e164: str) -> None:
    assert normalise_phone(text, "GB") == e164


@pytest.mark.parametrize("text", ["", "   ", "abc", "123", "+4477009001234567", "+999123456"])
def test_normalise_phone_refuses(text: str) -> None:
    with pytest.raises(InvalidNumber):
        normalise_phone(text, "GB")


def test_seen_numbers_table_grows_and_remembers_first_lines() -> None:
    seen = _SeenNumbers()
    # Consecutive numbers, and numbers sharing their last six digits.
    numbers = [447700000000 + i for i in range(100_000)] + [
        330000000000 + i * 1_000_000 for i in range(50_000)
    ]
    for line, number in enumerate(numbers, start=2):
        assert seen.first_line(number, line) == line
    for line, number in enumerate(numbers, start=2):
        assert seen.first_line(number, 10**9) == line
