"""Fuzzing the readers of untrusted input (issue 11, item 8): the contacts CSV reader, the
config and spec (YAML) readers, API JSON bodies and the FastAGI header parser. Whatever the
input: no crash — only the reader's own refusal, naming its line or field."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialler.api.http import ApiError, parse_json_object
from dialler.config import parse_config
from dialler.contacts.csvfile import read_contacts
from dialler.errors import ConfigError, CsvFileError
from dialler.fleet.attach import AgiHeaderError, parse_headers
from dialler.reader import FileProblem, Parsed, parse_yaml
from dialler.report import neutralise

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text made of the characters that matter to each format, plus anything.
CSV_TEXT = st.text(
    alphabet=st.sampled_from(list(',"\r\n\x00+447700900 ab=é\t')) | st.characters(), max_size=400
)
YAML_TEXT = st.text(
    alphabet=st.sampled_from(list("{}[]:-&*!|>'\"#,\n ab1.")) | st.characters(), max_size=300
)
JSON_BYTES = st.binary(max_size=300) | st.text(
    alphabet=st.sampled_from(list('{}[]:,"\\u0123456789abdnrtf ')), max_size=300
).map(str.encode)
AGI_BYTES = st.binary(max_size=300) | st.text(
    alphabet=st.sampled_from(list("agi_networkscript: \n?=\x1b\x00é")), max_size=300
).map(str.encode)


@FUZZ
@given(body=CSV_TEXT)
def test_csv_reader(body: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "contacts.csv"
        path.write_bytes(("phone_number,Name\n" + body).encode("utf-8", "surrogatepass"))
        try:
            with read_contacts(path, "GB") as stream:
                rows = list(stream)
        except CsvFileError as exc:
            assert str(exc)
            return
        for error in stream.errors:
            assert error.line >= 2 and error.reason
        for row in rows:
            assert row.line >= 2 and row.phone.startswith("+")


@FUZZ
@given(text=YAML_TEXT)
def test_yaml_reader(text: str) -> None:
    parsed = parse_yaml(text, json_fallback=True)
    assert isinstance(parsed, Parsed | FileProblem)
    if isinstance(parsed, FileProblem):
        assert parsed.message


@FUZZ
@given(text=YAML_TEXT)
def test_config_reader(text: str) -> None:
    parsed = parse_yaml(text)
    if isinstance(parsed, FileProblem):
        return
    try:
        parse_config(parsed.data, "fuzz.yaml", {})
    except ConfigError as exc:
        # Every problem names its key path ("top level" for the document itself).
        assert exc.problems and all(": " in problem for problem in exc.problems)


@FUZZ
@given(raw=JSON_BYTES)
def test_api_json_bodies(raw: bytes) -> None:
    try:
        body = parse_json_object(raw)
    except ApiError as exc:
        assert exc.status == 400 and exc.code == "bad_json" and str(exc)
        return
    assert isinstance(body, dict)
    repr(body).encode("utf-8")  # every string in it can be stored and logged


@FUZZ
@given(raw=AGI_BYTES)
def test_agi_header_parser(raw: bytes) -> None:
    try:
        headers = parse_headers(raw)
    except AgiHeaderError as exc:
        assert str(exc)
        return
    for key, value in headers.items():
        assert key.startswith("agi_") and value.isprintable()


@FUZZ
@given(value=st.text(max_size=40))
def test_neutralised_cells_never_start_a_formula(value: str) -> None:
    cell = neutralise(value)
    assert not cell.lstrip().startswith(("=", "+", "-", "@")) or cell.startswith("'")
    assert not cell.startswith(("\t", "\r"))


def test_a_yaml_alias_bomb_is_refused_within_a_second() -> None:
    import time

    levels = ["a: &a [" + ",".join(['"lol"'] * 9) + "]"]
    for n, name in enumerate("bcdefghi"):
        previous = "abcdefghi"[n]
        levels.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    bomb = "\n".join(levels) + "\n"
    started = time.monotonic()
    parsed = parse_yaml(bomb)
    assert time.monotonic() - started < 1
    assert isinstance(parsed, FileProblem)
    assert "aliases expand it to over 100000 values" in parsed.message


def test_neutralise_examples() -> None:
    assert neutralise('=HYPERLINK("x")') == '\'=HYPERLINK("x")'
    assert neutralise("  =1+1") == "'  =1+1"
    assert neutralise("\t@x") == "'\t@x"
    assert neutralise("plain") == "plain"
