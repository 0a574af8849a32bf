"""Bot and campaign files (CONTRACT.md, "Files"): read them and turn them into typed specs.

A file is YAML (JSON is YAML too; a JSON file PyYAML cannot read, e.g. one indented with tabs,
is read as JSON). Every problem is collected before anything is reported, each naming the key
path (``retry.on_system[1]``) and, when the key is in the file, its line. Unknown keys are
errors; types are strict (``true`` is not an integer, ``"10"`` is not a number).

What is checked here is what `campaign create` must refuse: wrong types, values the database
refuses in every state (ring timeout > 0, max attempts >= 1, delays >= 0, system disposition
names) and references to things that do not exist (the bot, caller IDs outside the configured
pool). What only matters for dialling (a bot chosen, a non-empty pool, concurrency >= 1, a valid
window) is left to the start checks (`dialler.campaigns.checks`), so that a draft may be
incomplete.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

# The config file's reader: the same duplicate-key check and the same wording of problems.
from ..config import _StrictLoader, _suggestion, _yaml_problem
from ..domain.messages import describe as _describe
from ..domain.messages import shown as _shown
from ..domain.rules import COMPLETED, SYSTEM_DISPOSITIONS, RedialPolicy, RetryPolicy
from ..durations import format_duration, parse_duration
from ..errors import InvalidInput

__all__ = [
    "DEFAULT_CONCURRENCY",
    "BotSpec",
    "CampaignSpec",
    "Document",
    "SpecError",
    "parse_bot",
    "parse_campaign",
    "parse_text",
    "read_document",
    "system_dispositions",
]

DEFAULT_CONCURRENCY = 50
DEFAULT_WINDOW_START = "09:00"
DEFAULT_WINDOW_END = "18:00"
DEFAULT_WINDOW_DAYS = ("mon", "tue", "wed", "thu", "fri")
DEFAULT_TIMEZONE = "UTC"
DEFAULT_RING_TIMEOUT = 30.0
DEFAULT_MAX_ATTEMPTS = 1
DEFAULT_RETRY_DELAY = 1800.0

# Durations are stored as bigint milliseconds; far beyond any sensible value, a year keeps the
# scheduler's `now + delay` arithmetic away from datetime's limits.
MAX_DURATION = 365 * 86400.0
# Integer columns are PostgreSQL `integer`.
_MAX_INT = 2**31 - 1
_MAX_NAME = 200

# The order CONTRACT.md lists them in, for messages.
_CONTRACT_ORDER = ("no_answer", "rejected", "RNR", "error", "timeout", "abandoned")
# E.164 as the database checks it: '+', then 2 to 15 digits, no leading zero.
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
# `9:00` is zero-padded to `09:00`: the database compares the zero-padded text.
_UNPADDED_TIME = re.compile(r"[0-9]:[0-9]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_BOT_KEYS = ("name", "prompt", "pipeline")
_CAMPAIGN_KEYS = ("name", "bot", "numbers", "concurrency", "window", "always_on", "ring_timeout",
                  "retry", "redial")
_WINDOW_KEYS = ("start", "end", "days", "timezone")
_RETRY_KEYS = ("max_attempts", "delay", "on_system", "on_custom")
_REDIAL_KEYS = ("stop_after_connect_longer_than", "redial_after_connect_shorter_than")


def system_dispositions() -> tuple[str, ...]:
    """The dispositions `retry.on_system` may list, in the contract's order."""
    known = [name for name in _CONTRACT_ORDER if name in SYSTEM_DISPOSITIONS]
    return (*known, *sorted(set(SYSTEM_DISPOSITIONS) - set(known)))


# --- the specs -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BotSpec:
    name: str
    prompt: str
    pipeline: dict[str, Any] = field(default_factory=dict)  # opaque, passed to workers


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    """A campaign's settings as written in its file, defaults filled in.

    The window is kept as text (times zero-padded, days in lower case): a draft may hold an
    invalid one, and `campaign start` names the bad value. Durations are float seconds,
    rounded to the millisecond (what the database stores).
    """

    name: str
    bot: str | None = None
    numbers: tuple[str, ...] = ()
    concurrency: int = DEFAULT_CONCURRENCY
    window_start: str = DEFAULT_WINDOW_START
    window_end: str = DEFAULT_WINDOW_END
    window_days: tuple[str, ...] = DEFAULT_WINDOW_DAYS
    timezone: str = DEFAULT_TIMEZONE
    always_on: bool = False
    ring_timeout: float = DEFAULT_RING_TIMEOUT
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(
        max_attempts=DEFAULT_MAX_ATTEMPTS, delay=DEFAULT_RETRY_DELAY, on_system=frozenset(),
        on_custom=frozenset()))
    redial: RedialPolicy = field(default_factory=lambda: RedialPolicy(
        stop_after_connect_longer_than=None, redial_after_connect_shorter_than=None))


# --- errors and documents --------------------------------------------------------------------

class SpecError(InvalidInput):
    """The bot or campaign file is invalid."""

    def __init__(self, problems: list[str], source: str) -> None:
        #: Each problem as ``<file>[:<line>]: <key path>: <what is wrong>``.
        self.problems = problems
        self.source = source
        if len(problems) == 1:
            message = problems[0]
        else:
            message = f"{source}: {len(problems)} problems:\n  - " + "\n  - ".join(problems)
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed bot or campaign file: its data and the line of every key path in it."""

    source: str
    data: object
    lines: Mapping[str, int] = field(default_factory=dict)

    def line_of(self, path: str) -> int:
        """The line of `path` (or of the nearest enclosing key in the file); 0 if none."""
        candidate = path
        while candidate:
            line = self.lines.get(candidate)
            if line is not None:
                return line
            candidate = _parent(candidate)
        return 0

    def where(self, path: str) -> str:
        """``file:line`` of `path` (see `line_of`), else ``file``."""
        line = self.line_of(path)
        return f"{self.source}:{line}" if line else self.source

    def error(self, problems: list[tuple[str, str]]) -> SpecError:
        """A `SpecError` for (key path, message) pairs, each located in the file."""
        # In file order: a problem without a line (a missing key) first.
        ordered = sorted(problems, key=lambda problem: self.line_of(problem[0]))
        located = [f"{self.where(path)}: {path}: {message}" if path
                   else f"{self.source}: {message}" for path, message in ordered]
        return SpecError(located, self.source)


def _parent(path: str) -> str:
    """``a.b[2]`` → ``a.b``; ``a.b`` → ``a``; ``a`` → ``''``."""
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


def read_document(path: str) -> Document:
    """Read the file at `path`; `SpecError` (exit 2) if it is missing, not text or not YAML."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise SpecError([f"{path}: file not found"], path) from None
    except IsADirectoryError:
        raise SpecError([f"{path}: is a directory, not a file"], path) from None
    except OSError as exc:
        raise SpecError([f"{path}: cannot read file: {exc.strerror or exc}"], path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError([f"{path}: not UTF-8 text (bad byte at offset {exc.start})"],
                        path) from None
    return parse_text(text, path)


def parse_text(text: str, source: str) -> Document:
    """Parse YAML (or JSON) `text`; `source` names it in messages."""
    loader = _FileLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.constructor.ConstructorError as exc:  # e.g. a duplicate key: YAML says where
        raise SpecError([f"{source}: {_yaml_problem(exc)}"], source) from None
    except yaml.YAMLError as exc:
        as_json = _json_fallback(text, source)
        if as_json is not None:
            return as_json
        raise SpecError([f"{source}: {_yaml_problem(exc)}"], source) from None
    finally:
        loader.dispose()
    if data is None:
        raise SpecError([f"{source}: the file is empty"], source)
    lines: dict[str, int] = {}
    if node is not None:
        _index_lines(node, "", lines)
    return Document(source, data, lines)


def _json_fallback(text: str, source: str) -> Document | None:
    """`text` read as JSON when it looks like JSON, e.g. indented with tabs (YAML refuses tabs)."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(text, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError as exc:
        raise SpecError([f"{source}:{exc.lineno}: invalid JSON: {exc.msg} "
                         f"(column {exc.colno})"], source) from None
    except ValueError as exc:
        raise SpecError([f"{source}: invalid JSON: {exc}"], source) from None
    return Document(source, data)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _index_lines(node: yaml.Node, path: str, lines: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            child = f"{path}.{key_node.value}" if path else str(key_node.value)
            lines.setdefault(child, key_node.start_mark.line + 1)
            _index_lines(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = f"{path}[{index}]"
            lines.setdefault(child, item.start_mark.line + 1)
            _index_lines(item, child, lines)


_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


class _FileLoader(_StrictLoader):
    """The strict loader without YAML 1.1's base-60 numbers.

    PyYAML reads an unquoted ``18:00`` as the integer 1080 and ``9:30`` as 570; in a file full
    of times of day that is never what was meant, so here they stay strings (as in YAML 1.2).
    """


# Its own copy of the resolvers, without YAML 1.1's int and float (which take base 60) ...
_FileLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
    for first, resolvers in _StrictLoader.yaml_implicit_resolvers.items()
}
# ... and the same int and float without the base-60 forms.
_FileLoader.add_implicit_resolver(
    _INT_TAG,
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)"
               r"|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"))
_FileLoader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?"
               r"|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


# --- reading values --------------------------------------------------------------------------

class _Reader:
    """One mapping of the file at key path `path`, read with typed accessors.

    Accessors record a problem instead of raising and return a usable value (the default), so
    that every problem of the file is found in one pass.
    """

    def __init__(self, data: object, path: str, problems: list[tuple[str, str]],
                 keys: Collection[str]) -> None:
        self.path = path
        self.problems = problems
        self._data: dict[str, object] = {}
        if data is None:  # absent or blank: every key takes its default
            return
        if not isinstance(data, dict):
            where = path or ""
            what = "expected a mapping" if path else "expected a mapping of keys to values"
            self.problems.append((where, f"{what}, got {_describe(data)}"))
            return
        for key, value in data.items():
            if isinstance(key, str) and key in keys:
                self._data[key] = value
            else:
                self.add(str(key), "unknown key" + _suggestion(str(key), keys))

    def path_of(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def add(self, key: str, message: str) -> None:
        self.problems.append((self.path_of(key), message))

    def get(self, key: str) -> object:
        """The value at `key`; None when absent or blank (which take the default)."""
        return self._data.get(key)

    def section(self, key: str, keys: Collection[str]) -> _Reader:
        return _Reader(self.get(key), self.path_of(key), self.problems, keys)

    def name(self, key: str, *, not_an_id: bool = False) -> str:
        value = self.get(key)
        if value is None:
            self.add(key, "missing required key")
            return ""
        if not isinstance(value, str):
            self.add(key, f"expected a string, got {_describe(value)}")
        elif not value.strip():
            self.add(key, "must not be empty")
        elif _CONTROL.search(value):
            self.add(key, "must be one line without control characters")
        elif len(value) > _MAX_NAME:
            self.add(key, f"is {len(value)} characters long; at most {_MAX_NAME}")
        elif not_an_id and _is_uuid(value):
            self.add(key, f"{_shown(value)} looks like an id; commands would read it as one")
        else:
            return value
        return ""

    def text(self, key: str, default: str, *, required: bool = False) -> str:
        value = self.get(key)
        if value is None:
            if required:
                self.add(key, "missing required key")
            return default
        if not isinstance(value, str):
            self.add(key, f"expected a string, got {_describe(value)}{_quote_hint(value)}")
            return default
        if required and not value.strip():
            self.add(key, "must not be empty")
        return value

    def integer(self, key: str, default: int, *, minimum: int = -_MAX_INT - 1) -> int:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(key, f"expected an integer, got {_describe(value)}")
        elif value < minimum:
            self.add(key, f"must be at least {minimum}, got {value}")
        elif value > _MAX_INT:
            self.add(key, f"{value} is too large (at most {_MAX_INT})")
        else:
            return value
        return default

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.add(key, f"expected true or false, got {_describe(value)}")
            return default
        return value

    def duration(self, key: str, default: float | None, *, positive: bool) -> float | None:
        """A duration in seconds rounded to the millisecond; ``>= 0``, or ``> 0`` if positive."""
        value = self.get(key)
        if value is None:
            return default
        try:
            seconds = round(parse_duration(value, self.path_of(key)), 3)
        except ValueError as exc:
            path, _, message = str(exc).partition(": ")
            self.problems.append((path, message))
            return default
        if positive and seconds <= 0:
            self.add(key, f"must be greater than 0, got {_shown_duration(value)}")
        elif seconds > MAX_DURATION:
            self.add(key, f"{_shown_duration(value)} is too long "
                          f"(at most {format_duration(MAX_DURATION)})")
        else:
            return seconds
        return default

    def strings(self, key: str) -> Iterator[tuple[str, str]]:
        """(key path, value) of each string in the list at `key`; others are problems."""
        value = self.get(key)
        if value is None:
            return
        if not isinstance(value, list):
            self.add(key, f"expected a list, got {_describe(value)}")
            return
        for index, item in enumerate(value):
            path = f"{self.path_of(key)}[{index}]"
            if not isinstance(item, str):
                self.problems.append(
                    (path, f"expected a string, got {_describe(item)}{_quote_hint(item)}"))
            else:
                yield path, item


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _quote_hint(value: object) -> str:
    # YAML reads an unquoted +441632960001 as an integer and `no` as false.
    if isinstance(value, bool | int | float):
        return " (put the value in quotes)"
    return ""


def _some(names: list[str], limit: int = 8) -> str:
    """`names` joined for a message; a long list is cut short."""
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", ... ({len(names)} in all)"


def _shown_duration(value: object) -> str:
    return _shown(value) if isinstance(value, str) else repr(value)


# --- bots ------------------------------------------------------------------------------------

def parse_bot(document: Document) -> BotSpec:
    """The bot described by `document`; `SpecError` with every problem."""
    problems: list[tuple[str, str]] = []
    root = _Reader(document.data, "", problems, _BOT_KEYS)
    if not isinstance(document.data, dict):  # nothing else is worth saying
        raise document.error(problems)
    name = root.name("name")
    prompt = root.text("prompt", "", required=True)
    pipeline = _pipeline(root)
    if problems:
        raise document.error(problems)
    return BotSpec(name=name, prompt=prompt, pipeline=pipeline)


def _pipeline(root: _Reader) -> dict[str, Any]:
    value = root.get("pipeline")
    if value is None:
        return {}
    if not isinstance(value, dict):
        root.add("pipeline", f"expected a mapping, got {_describe(value)}")
        return {}
    before = len(root.problems)
    _check_json(value, "pipeline", root.problems)
    return value if len(root.problems) == before else {}


def _check_json(value: object, path: str, problems: list[tuple[str, str]]) -> None:
    """Record a problem for anything in `value` that JSON (the jsonb column) cannot hold."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append((path, f"keys must be strings, got {_describe(key)}"))
            else:
                _check_json(item, f"{path}.{key}", problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]", problems)
    elif isinstance(value, float) and not math.isfinite(value):
        problems.append((path, f"{value!r} is not a JSON number"))
    elif value is not None and not isinstance(value, str | int | float | bool):
        problems.append((path, f"expected JSON data (a string, number, boolean, null, list "
                               f"or mapping), got {type(value).__name__}"))


# --- campaigns -------------------------------------------------------------------------------

def parse_campaign(document: Document, *, bots: Collection[str] | None = None,
                   numbers: Collection[str] | None = None) -> CampaignSpec:
    """The campaign described by `document`; `SpecError` with every problem.

    `bots` (the existing bots' names) and `numbers` (the configured caller IDs), when given,
    are what `bot` and `numbers` may refer to; None skips that check.
    """
    problems: list[tuple[str, str]] = []
    root = _Reader(document.data, "", problems, _CAMPAIGN_KEYS)
    if not isinstance(document.data, dict):  # nothing else is worth saying
        raise document.error(problems)
    name = root.name("name", not_an_id=True)
    bot = _bot(root, bots)
    pool = _numbers(root, numbers)
    concurrency = root.integer("concurrency", DEFAULT_CONCURRENCY)
    window = root.section("window", _WINDOW_KEYS)
    start = _time(window.text("start", DEFAULT_WINDOW_START))
    end = _time(window.text("end", DEFAULT_WINDOW_END))
    days = _days(window)
    timezone = window.text("timezone", DEFAULT_TIMEZONE)
    always_on = root.boolean("always_on", False)
    ring_timeout = root.duration("ring_timeout", DEFAULT_RING_TIMEOUT, positive=True)
    retry = _retry(root.section("retry", _RETRY_KEYS))
    redial = _redial(root.section("redial", _REDIAL_KEYS))
    if problems:
        raise document.error(problems)
    assert ring_timeout is not None  # it has a default
    return CampaignSpec(
        name=name, bot=bot, numbers=pool, concurrency=concurrency, window_start=start,
        window_end=end, window_days=days, timezone=timezone, always_on=always_on,
        ring_timeout=ring_timeout, retry=retry, redial=redial)


def _bot(root: _Reader, bots: Collection[str] | None) -> str | None:
    value = root.get("bot")
    if value is None:
        return None  # allowed in a draft; `campaign start` asks for one
    if not isinstance(value, str):
        root.add("bot", f"expected a bot name, got {_describe(value)}")
        return None
    if bots is not None and value not in bots:
        known = _some(sorted(bots)) or "none yet"
        root.add("bot", f"no bot named {_shown(value)} (known: {known}; "
                        "create one with `dialler bot create FILE`)")
        return None
    return value


def _numbers(root: _Reader, configured: Collection[str] | None) -> tuple[str, ...]:
    pool: list[str] = []
    seen: dict[str, str] = {}
    for path, number in root.strings("numbers"):
        if not _E164.fullmatch(number):
            root.problems.append((path, f"{_shown(number)} is not an E.164 number "
                                        "('+', then the country code and number)"))
        elif configured is not None and number not in configured:
            known = _some(list(configured)) or "none"
            root.problems.append((path, f"{number} is not a configured number "
                                        f"(configured: {known})"))
        elif number in seen:
            root.problems.append((path, f"{number} is listed twice (first at {seen[number]})"))
        else:
            seen[number] = path
            pool.append(number)
    return tuple(pool)


def _time(value: str) -> str:
    text = value.strip()
    return f"0{text}" if _UNPADDED_TIME.fullmatch(text) else value


def _days(window: _Reader) -> tuple[str, ...]:
    if window.get("days") is None:
        return DEFAULT_WINDOW_DAYS
    return tuple(day.strip().lower() for _, day in window.strings("days"))


def _retry(retry: _Reader) -> RetryPolicy:
    max_attempts = retry.integer("max_attempts", DEFAULT_MAX_ATTEMPTS, minimum=1)
    delay = retry.duration("delay", DEFAULT_RETRY_DELAY, positive=False)
    system = system_dispositions()
    on_system: list[str] = []
    for path, name in retry.strings("on_system"):
        if name not in system:
            retry.problems.append((path, f"{_shown(name)} is not one of {', '.join(system)}"))
        elif name in on_system:
            retry.problems.append((path, f"{_shown(name)} is listed twice"))
        else:
            on_system.append(name)
    on_custom: list[str] = []
    for path, name in retry.strings("on_custom"):
        if not name.strip():
            retry.problems.append((path, "must not be empty"))
        elif name in system:
            retry.problems.append((path, f"{_shown(name)} is a system disposition; list it "
                                         f"under {retry.path_of('on_system')}"))
        elif name == COMPLETED:
            retry.problems.append((path, f"{_shown(name)} is the bot's finished-conversation "
                                         "disposition, not a custom one; it never re-dials"))
        elif name in on_custom:
            retry.problems.append((path, f"{_shown(name)} is listed twice"))
        else:
            on_custom.append(name)
    assert delay is not None  # it has a default
    return RetryPolicy(max_attempts=max_attempts, delay=delay, on_system=frozenset(on_system),
                       on_custom=frozenset(on_custom))


def _redial(redial: _Reader) -> RedialPolicy:
    return RedialPolicy(
        stop_after_connect_longer_than=redial.duration(
            "stop_after_connect_longer_than", None, positive=False),
        redial_after_connect_shorter_than=redial.duration(
            "redial_after_connect_shorter_than", None, positive=False))
