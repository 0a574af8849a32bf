"""The one reader of config, bot and campaign files: parsing, typed getters, problems."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dialler.reader import (
    FileProblem,
    Parsed,
    Problem,
    Section,
    line_of,
    matches,
    parse_yaml,
    read_text,
    suggestion,
)

KEYS = ("name", "count", "rate", "on", "wait", "level", "items", "tags", "sub")


def section(data: object, keys: tuple[str, ...] = KEYS) -> Section:
    return Section(data, keys)


def parsed(text: str, *, json_fallback: bool = False) -> Parsed:
    result = parse_yaml(text, json_fallback=json_fallback)
    assert isinstance(result, Parsed), result
    return result


def problem(text: str, *, json_fallback: bool = False) -> FileProblem:
    result = parse_yaml(text, json_fallback=json_fallback)
    assert isinstance(result, FileProblem), result
    return result


# --- sections and keys -----------------------------------------------------------------------


def test_unknown_keys_are_problems_with_a_suggestion() -> None:
    root = section({"nme": "x", "zzz": 1, 5: 2})
    assert root.problems == [
        Problem("nme", "unknown key (did you mean 'name'?)"),
        Problem("zzz", "unknown key"),
        Problem("5", "unknown key"),
    ]
    assert suggestion("cout", KEYS) == " (did you mean 'count'?)"


def test_a_problem_is_a_key_path_and_a_message() -> None:
    path, message = Problem("retry.on_system[1]", "is listed twice")
    assert (path, message) == ("retry.on_system[1]", "is listed twice")


def test_blank_or_absent_sections_read_as_empty() -> None:
    for data in (None, {}):
        root = section(data)
        assert root.problems == []
        assert root.integer("count", 7) == 7
        assert not root.has("count")


def test_a_section_that_is_not_a_mapping() -> None:
    assert section([1]).problems == [Problem("", "expected a mapping, got list")]
    root = Section("x", KEYS, expected="a mapping of keys to values")
    assert root.problems == [Problem("", "expected a mapping of keys to values, got str 'x'")]


def test_nested_sections_share_the_problems_and_carry_the_path() -> None:
    root = section({"sub": {"count": "x", "extra": 1}})
    sub = root.section("sub", ("count",))
    sub.integer("count", 1)
    assert root.problems == [
        Problem("sub.extra", "unknown key"),
        Problem("sub.count", "expected an integer, got str 'x'"),
    ]
    assert sub.path_of("count") == "sub.count"
    assert not sub.valid("count")
    assert root.valid("count")


def test_problem_with_the_section_itself_and_at_a_path() -> None:
    root = section({"sub": {}})
    sub = root.section("sub", ())
    sub.problem(None, "set one of a and b")
    sub.problem_at("sub.x[2]", "is wrong")
    assert root.problems == [Problem("sub", "set one of a and b"), Problem("sub.x[2]", "is wrong")]


# --- scalars ---------------------------------------------------------------------------------


def test_string_required_blank_and_wrong_type() -> None:
    root = section({"name": "  ", "level": 441632960001})
    assert root.string("name") == ""
    assert root.string("level", "info") == "info"
    assert root.string("tags") == ""
    assert root.problems == [
        Problem("name", "must not be empty"),
        Problem("level", "expected a string, got int 441632960001 (put the value in quotes)"),
        Problem("tags", "missing required key"),
    ]


def test_string_may_allow_blank_and_drop_the_quote_hint() -> None:
    root = section({"name": "", "level": 5})
    assert root.string("name", "x", allow_blank=True) == ""
    assert root.string("level", quote_hint=False) == ""
    assert root.problems == [Problem("level", "expected a string, got int 5")]


def test_string_pattern_and_rules_in_order() -> None:
    word = matches(re.compile(r"[a-z]+"), "lower-case letters")

    def short(value: str) -> str | None:
        return "too long" if len(value) > 3 else None

    root = section({"name": "A b", "level": "abcd", "tags": "ab"})
    assert root.string("name", rules=[word, short]) == ""
    assert root.string("level", "x", rules=[word, short]) == "x"
    assert root.string("tags", rules=[word, short]) == "ab"
    assert root.problems == [
        Problem("name", "'A b' is not valid: lower-case letters"),
        Problem("level", "too long"),
    ]


def test_a_secret_string_is_never_echoed() -> None:
    secret = "postgresql://u:hunter2@db/x"
    word = matches(re.compile(r"[a-z]+"), "lower-case letters", echo=False)
    root = section({"name": secret, "level": 12345})
    root.string("name", rules=[word], echo=False)
    root.string("level", echo=False)
    assert root.problems == [
        Problem("name", "not valid: lower-case letters"),
        Problem("level", "expected a string, got int (put the value in quotes)"),
    ]
    assert "hunter2" not in repr(root.problems)


def test_integer_is_strict_and_takes_rules() -> None:
    def positive(value: int) -> str | None:
        return None if value > 0 else f"{value} must be positive"

    root = section({"count": True, "rate": 2.0, "name": 0, "level": 3})
    assert root.integer("count", 1) == 1
    assert root.integer("rate", 1) == 1
    assert root.integer("name", 1, rules=[positive]) == 1
    assert root.integer("level", 1, rules=[positive]) == 3
    assert root.problems == [
        Problem("count", "expected an integer, got bool true"),
        Problem("rate", "expected an integer, got float 2.0"),
        Problem("name", "0 must be positive"),
    ]


def test_number_takes_integers_and_floats_not_booleans() -> None:
    root = section({"count": 2, "rate": 0.5, "on": False, "name": "1"})
    assert root.number("count", 9.0) == 2.0
    assert root.number("rate", 9.0) == 0.5
    assert root.number("on", 9.0) == 9.0
    assert root.number("name", 9.0) == 9.0
    assert root.problems == [
        Problem("on", "expected a number, got bool false"),
        Problem("name", "expected a number, got str '1'"),
    ]


def test_boolean() -> None:
    root = section({"on": "yes", "count": True})
    assert root.boolean("on", False) is False
    assert root.boolean("count", False) is True
    assert root.problems == [Problem("on", "expected true or false, got str 'yes'")]


def test_choice() -> None:
    root = section({"level": "loud", "name": 3})
    assert root.choice("level", "info", ("debug", "info")) == "info"
    assert root.choice("name", "a", ("a", "b")) == "a"
    assert root.choice("tags", "b", ("a", "b")) == "b"
    assert root.problems == [
        Problem("level", "unknown value 'loud' (expected one of: debug, info)"),
        Problem("name", "expected a string, got int 3 (put the value in quotes)"),
    ]


def test_duration_in_seconds_rounded_to_the_millisecond() -> None:
    root = section(
        {"wait": "1m30.0004s", "count": 0, "rate": "0.1ms", "name": "2d", "level": "5x", "on": 1.5}
    )
    assert root.duration("wait", 1.0, positive=True) == 90.0
    assert root.duration("count", 1.0, positive=False) == 0.0
    assert root.duration("rate", 1.0, positive=True) == 1.0
    assert root.duration("name", None, positive=True, maximum=86400.0) is None
    assert root.duration("level", 1.0, positive=False) == 1.0
    assert root.duration("on", None, positive=False) is None
    assert root.duration("tags", None, positive=False) is None
    assert root.problems == [
        Problem("rate", "must be greater than 0, got '0.1ms'"),
        Problem("name", "'2d' is too long (at most 1d)"),
        Problem("level", "unknown unit 'x' (use ms, s, m, h, d) in duration '5x'"),
        Problem(
            "on",
            "expected a duration such as 90 or '1h30m', got float 1.5 (write a string "
            "with a unit, e.g. '1.5s')",
        ),
    ]


# --- lists -----------------------------------------------------------------------------------


def test_entries_of_a_list_of_mappings() -> None:
    root = section({"items": [{"name": "a"}, None, {"name": 1, "x": 2}], "tags": "a"})
    names = [entry.string("name") for entry in root.entries("items", ("name",), required=True)]
    assert names == ["a", ""]
    assert list(root.entries("tags", ("name",), required=False)) == []
    assert list(root.entries("sub", ("name",), required=True)) == []
    assert root.problems == [
        Problem("items[1]", "empty entry"),
        Problem("items[2].x", "unknown key"),
        Problem("items[2].name", "expected a string, got int 1 (put the value in quotes)"),
        Problem("tags", "expected a list, got str 'a'"),
        Problem("sub", "at least one entry is required"),
    ]


def test_strings_of_a_list() -> None:
    root = section({"tags": ["a", 5, None, "b"], "items": {"a": 1}})
    assert list(root.strings("tags")) == [("tags[0]", "a"), ("tags[3]", "b")]
    assert list(root.strings("items")) == []
    assert list(root.strings("name")) == []
    assert root.problems == [
        Problem("tags[1]", "expected a string, got int 5 (put the value in quotes)"),
        Problem("tags[2]", "expected a string, got null"),
        Problem("items", "expected a list, got mapping"),
    ]


# --- parsing ---------------------------------------------------------------------------------


def test_lines_of_every_key_path() -> None:
    result = parsed("name: x\nretry:\n  on_system:\n    - a\n    - b\n")
    assert result.data == {"name": "x", "retry": {"on_system": ["a", "b"]}}
    assert dict(result.lines) == {
        "name": 1,
        "retry": 2,
        "retry.on_system": 3,
        "retry.on_system[0]": 4,
        "retry.on_system[1]": 5,
    }
    assert line_of(result.lines, "retry.on_system[1]") == 5
    assert line_of(result.lines, "retry.delay") == 2  # the nearest enclosing key
    assert line_of(result.lines, "window.start") == 0  # not in the file


def test_times_stay_strings_not_base_60_numbers() -> None:
    assert parsed("a: 18:00\nb: 9:30\nc: 1_000\nd: 0x1f\ne: 1.5\n").data == {
        "a": "18:00",
        "b": "9:30",
        "c": 1000,
        "d": 31,
        "e": 1.5,
    }


def test_an_empty_file_is_no_data() -> None:
    assert parsed("# nothing\n") == Parsed(None, {})


def test_duplicate_keys_are_refused_with_their_line() -> None:
    assert problem("name: x\nname: y\n") == FileProblem(
        "line 2, column 1: invalid YAML: found duplicate key 'name' (while reading a mapping "
        "on line 1)"
    )


def test_syntax_errors_have_a_line_and_column() -> None:
    found = problem("database:\n  dsn: x\n pool_min: [\n")
    assert found.message.startswith("line 3, column 2: invalid YAML")
    assert found.line == 0  # the message says where


def test_only_plain_data() -> None:
    assert problem("a: !!python/object:os.system x\n").message.startswith("line 1, column 4:")


def test_json_fallback_for_json_that_yaml_refuses() -> None:
    text = '{\n\t"name": "x",\n\t"count": 3\n}\n'
    assert problem(text).message.startswith("line 2, column 1: invalid YAML")
    assert parsed(text, json_fallback=True) == Parsed({"name": "x", "count": 3}, {})
    assert problem('{\n\t"name": "x",\n\t"count": \n}\n', json_fallback=True) == FileProblem(
        "invalid JSON: Expecting value (column 1)", 4
    )
    assert problem('{\n\t"a": 1,\n\t"a": 2}', json_fallback=True) == FileProblem(
        "invalid JSON: duplicate key 'a'"
    )


# --- files -----------------------------------------------------------------------------------


def test_read_text(tmp_path: Path) -> None:
    assert read_text(str(tmp_path / "nope.yaml")) == FileProblem("file not found")
    assert read_text(str(tmp_path)) == FileProblem("is a directory, not a file")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"name: \xff\n")
    assert read_text(str(binary)) == FileProblem("not UTF-8 text (bad byte at offset 6)")
    bom = tmp_path / "bom.yaml"
    bom.write_bytes("\ufeffname: x\n".encode())
    assert read_text(str(bom)) == "name: x\n"


@pytest.mark.parametrize("text", ["a: [1, 2", "a: b: c", "- a\nb: c"])
def test_any_yaml_error_is_one_problem(text: str) -> None:
    assert "invalid YAML" in problem(text).message
