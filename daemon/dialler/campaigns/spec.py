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

import math
import re
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..domain.messages import describe as _describe
from ..domain.messages import shown as _shown
from ..domain.numbers import is_e164
from ..domain.rules import RedialPolicy, RetryPolicy
from ..domain.states import SYSTEM_DISPOSITIONS, Disposition
from ..errors import SpecError
from ..reader import FileProblem, Problem, Rule, Section, line_of, parse_yaml, read_text

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

# `9:00` is zero-padded to `09:00`: the database compares the zero-padded text.
_UNPADDED_TIME = re.compile(r"[0-9]:[0-9]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What the document itself must be.
_A_MAPPING = "a mapping of keys to values"

_BOT_KEYS = ("name", "prompt", "pipeline")
_CAMPAIGN_KEYS = (
    "name",
    "bot",
    "numbers",
    "concurrency",
    "window",
    "always_on",
    "ring_timeout",
    "retry",
    "redial",
)
_WINDOW_KEYS = ("start", "end", "days", "timezone", "per_contact")
_RETRY_KEYS = ("max_attempts", "delay", "on_system", "on_custom")
_REDIAL_KEYS = ("stop_after_connect_longer_than", "redial_after_connect_shorter_than")


def system_dispositions() -> tuple[str, ...]:
    """The dispositions `retry.on_system` may list, in the contract's order (`Disposition`'s),
    as plain strings (for messages, JSON and YAML documents)."""
    return tuple(name.value for name in Disposition if name in SYSTEM_DISPOSITIONS)


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
    #: `window.per_contact`: the window is read on each contact's own zones (CONTRACT,
    #: "Campaign window per contact"), `timezone` being the fallback.
    window_per_contact: bool = False
    always_on: bool = False
    ring_timeout: float = DEFAULT_RING_TIMEOUT
    retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(
            max_attempts=DEFAULT_MAX_ATTEMPTS,
            delay=DEFAULT_RETRY_DELAY,
            on_system=frozenset(),
            on_custom=frozenset(),
        )
    )
    redial: RedialPolicy = field(
        default_factory=lambda: RedialPolicy(
            stop_after_connect_longer_than=None, redial_after_connect_shorter_than=None
        )
    )


# --- documents -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed bot or campaign file: its data and the line of every key path in it.

    A request body read with the same checks is `Document.request_body(data)`: its problems
    are ``<key path>: <what is wrong>``, without a file name or line.
    """

    source: str
    data: object
    lines: Mapping[str, int] = field(default_factory=dict)
    #: Problems start with the file name (and line); False for a request body.
    in_file: bool = True

    @classmethod
    def request_body(cls, data: object, source: str = "body") -> Document:
        """A request body (e.g. the JSON of `POST /v1/campaigns`) read as a file would be."""
        return cls(source, data, in_file=False)

    def line_of(self, path: str) -> int:
        """The line of `path` (or of the nearest enclosing key in the file); 0 if none."""
        return line_of(self.lines, path)

    def where(self, path: str) -> str:
        """``file:line`` of `path` (see `line_of`), else ``file``."""
        line = self.line_of(path)
        return f"{self.source}:{line}" if line else self.source

    def error(self, problems: Iterable[tuple[str, str]]) -> SpecError:
        """A `SpecError` for (key path, message) pairs (`reader.Problem`s), each located in the
        file, in file order; its `fields` are their key paths, in the same order."""
        # In file order: a problem without a line (a missing key) first.
        ordered = sorted(problems, key=lambda problem: self.line_of(problem[0]))
        return SpecError(
            [self._locate(path, message) for path, message in ordered],
            self.source,
            fields=[path for path, _ in ordered],
        )

    def _locate(self, path: str, message: str) -> str:
        if not self.in_file:
            return f"{path}: {message}" if path else message
        return f"{self.where(path)}: {path}: {message}" if path else f"{self.source}: {message}"


def read_document(path: str) -> Document:
    """Read the file at `path`; `SpecError` (exit 2) if it is missing, not text or not YAML."""
    text = read_text(path)
    if isinstance(text, FileProblem):
        raise _file_error(text, path)
    return parse_text(text, path)


def parse_text(text: str, source: str) -> Document:
    """Parse YAML (or JSON) `text`; `source` names it in messages."""
    parsed = parse_yaml(text, json_fallback=True)
    if isinstance(parsed, FileProblem):
        raise _file_error(parsed, source)
    if parsed.data is None:
        raise SpecError([f"{source}: the file is empty"], source)
    return Document(source, parsed.data, parsed.lines)


def _file_error(problem: FileProblem, source: str) -> SpecError:
    where = f"{source}:{problem.line}" if problem.line else source
    return SpecError([f"{where}: {problem.message}"], source)


# --- reading values --------------------------------------------------------------------------


def _at_least(minimum: int) -> Rule[int]:
    """A rule: at least `minimum`."""

    def check(value: int) -> str | None:
        return f"must be at least {minimum}, got {value}" if value < minimum else None

    return check


def _fits_a_column(value: int) -> str | None:
    """A rule: fits a PostgreSQL `integer`."""
    return f"{value} is too large (at most {_MAX_INT})" if value > _MAX_INT else None


def _integer(section: Section, key: str, default: int, *, minimum: int = -_MAX_INT - 1) -> int:
    """An integer for an `integer` column, at least `minimum`."""
    return section.integer(key, default, rules=[_at_least(minimum), _fits_a_column])


def _one_line(value: str) -> str | None:
    """A rule: one line, no control characters."""
    return "must be one line without control characters" if _CONTROL.search(value) else None


def _short(value: str) -> str | None:
    """A rule: a name of at most `_MAX_NAME` characters."""
    if len(value) > _MAX_NAME:
        return f"is {len(value)} characters long; at most {_MAX_NAME}"
    return None


def _not_an_id(value: str) -> str | None:
    """A rule: not a UUID (commands take a campaign's id or its name in the same place)."""
    try:
        uuid.UUID(value)
    except ValueError:
        return None
    return f"{_shown(value)} looks like an id; commands would read it as one"


def _name(section: Section, key: str, *, not_an_id: bool = False) -> str:
    """The required `name` of a bot or campaign."""
    rules = [_one_line, _short, _not_an_id] if not_an_id else [_one_line, _short]
    return section.string(key, rules=rules, quote_hint=False)


def _text(section: Section, key: str, default: str) -> str:
    """An optional string that may be blank (the start checks judge it)."""
    return section.string(key, default, allow_blank=True)


def _some(names: list[str], limit: int = 8) -> str:
    """`names` joined for a message; a long list is cut short."""
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", ... ({len(names)} in all)"


# --- bots ------------------------------------------------------------------------------------


def parse_bot(document: Document) -> BotSpec:
    """The bot described by `document`; `SpecError` with every problem."""
    root = Section(document.data, _BOT_KEYS, expected=_A_MAPPING)
    if not isinstance(document.data, dict):  # nothing else is worth saying
        raise document.error(root.problems)
    name = _name(root, "name")
    prompt = root.string("prompt")
    pipeline = _pipeline(root)
    if root.problems:
        raise document.error(root.problems)
    return BotSpec(name=name, prompt=prompt, pipeline=pipeline)


def _pipeline(root: Section) -> dict[str, Any]:
    value = root.get("pipeline")
    if value is None:
        return {}
    if not isinstance(value, dict):
        root.problem("pipeline", f"expected a mapping, got {_describe(value)}")
        return {}
    before = len(root.problems)
    _check_json(value, "pipeline", root.problems)
    return value if len(root.problems) == before else {}


def _check_json(value: object, path: str, problems: list[Problem]) -> None:
    """Record a problem for anything in `value` that JSON (the jsonb column) cannot hold."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(Problem(path, f"keys must be strings, got {_describe(key)}"))
            else:
                _check_json(item, f"{path}.{key}", problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]", problems)
    elif isinstance(value, float) and not math.isfinite(value):
        problems.append(Problem(path, f"{value!r} is not a JSON number"))
    elif value is not None and not isinstance(value, str | int | float | bool):
        problems.append(
            Problem(
                path,
                f"expected JSON data (a string, number, boolean, null, "
                f"list or mapping), got {type(value).__name__}",
            )
        )


# --- campaigns -------------------------------------------------------------------------------


def parse_campaign(
    document: Document,
    *,
    bots: Collection[str] | None = None,
    numbers: Collection[str] | None = None,
) -> CampaignSpec:
    """The campaign described by `document`; `SpecError` with every problem.

    `bots` (the existing bots' names) and `numbers` (the configured caller IDs), when given,
    are what `bot` and `numbers` may refer to; None skips that check.
    """
    root = Section(document.data, _CAMPAIGN_KEYS, expected=_A_MAPPING)
    if not isinstance(document.data, dict):  # nothing else is worth saying
        raise document.error(root.problems)
    name = _name(root, "name", not_an_id=True)
    bot = _bot(root, bots)
    pool = _numbers(root, numbers)
    concurrency = _integer(root, "concurrency", DEFAULT_CONCURRENCY)
    window = root.section("window", _WINDOW_KEYS)
    start = _time(_text(window, "start", DEFAULT_WINDOW_START))
    end = _time(_text(window, "end", DEFAULT_WINDOW_END))
    days = _days(window)
    timezone = _text(window, "timezone", DEFAULT_TIMEZONE)
    per_contact = window.boolean("per_contact", False)
    always_on = root.boolean("always_on", False)
    ring_timeout = root.duration(
        "ring_timeout", DEFAULT_RING_TIMEOUT, positive=True, maximum=MAX_DURATION
    )
    retry = _retry(root.section("retry", _RETRY_KEYS))
    redial = _redial(root.section("redial", _REDIAL_KEYS))
    if root.problems:
        raise document.error(root.problems)
    return CampaignSpec(
        name=name,
        bot=bot,
        numbers=pool,
        concurrency=concurrency,
        window_start=start,
        window_end=end,
        window_days=days,
        timezone=timezone,
        window_per_contact=per_contact,
        always_on=always_on,
        ring_timeout=ring_timeout,
        retry=retry,
        redial=redial,
    )


def _bot(root: Section, bots: Collection[str] | None) -> str | None:
    value = root.get("bot")
    if value is None:
        return None  # allowed in a draft; `campaign start` asks for one
    if not isinstance(value, str):
        root.problem("bot", f"expected a bot name, got {_describe(value)}")
        return None
    if bots is not None and value not in bots:
        known = _some(sorted(bots)) or "none yet"
        root.problem(
            "bot",
            f"no bot named {_shown(value)} (known: {known}; "
            "create one with `dialler bot create FILE`)",
        )
        return None
    return value


def _numbers(root: Section, configured: Collection[str] | None) -> tuple[str, ...]:
    pool: list[str] = []
    seen: dict[str, str] = {}
    for path, number in root.strings("numbers"):
        if not is_e164(number):
            root.problem_at(
                path,
                f"{_shown(number)} is not an E.164 number ('+', then the country code and number)",
            )
        elif configured is not None and number not in configured:
            known = _some(list(configured)) or "none"
            root.problem_at(path, f"{number} is not a configured number (configured: {known})")
        elif number in seen:
            root.problem_at(path, f"{number} is listed twice (first at {seen[number]})")
        else:
            seen[number] = path
            pool.append(number)
    return tuple(pool)


def _time(value: str) -> str:
    text = value.strip()
    return f"0{text}" if _UNPADDED_TIME.fullmatch(text) else value


def _days(window: Section) -> tuple[str, ...]:
    if window.get("days") is None:
        return DEFAULT_WINDOW_DAYS
    return tuple(day.strip().lower() for _, day in window.strings("days"))


def _retry(retry: Section) -> RetryPolicy:
    max_attempts = _integer(retry, "max_attempts", DEFAULT_MAX_ATTEMPTS, minimum=1)
    delay = retry.duration("delay", DEFAULT_RETRY_DELAY, positive=False, maximum=MAX_DURATION)
    system = system_dispositions()
    on_system: list[str] = []
    for path, name in retry.strings("on_system"):
        if name not in system:
            retry.problem_at(path, f"{_shown(name)} is not one of {', '.join(system)}")
        elif name in on_system:
            retry.problem_at(path, f"{_shown(name)} is listed twice")
        else:
            on_system.append(name)
    on_custom: list[str] = []
    for path, name in retry.strings("on_custom"):
        if not name.strip():
            retry.problem_at(path, "must not be empty")
        elif name in system:
            retry.problem_at(
                path,
                f"{_shown(name)} is a system disposition; list it under "
                f"{retry.path_of('on_system')}",
            )
        elif name == Disposition.COMPLETED:
            retry.problem_at(
                path,
                f"{_shown(name)} is the bot's finished-conversation "
                "disposition, not a custom one; it never re-dials",
            )
        elif name in on_custom:
            retry.problem_at(path, f"{_shown(name)} is listed twice")
        else:
            on_custom.append(name)
    return RetryPolicy(
        max_attempts=max_attempts,
        delay=delay,
        on_system=frozenset(on_system),
        on_custom=frozenset(on_custom),
    )


def _redial(redial: Section) -> RedialPolicy:
    return RedialPolicy(
        stop_after_connect_longer_than=redial.duration(
            "stop_after_connect_longer_than", None, positive=False, maximum=MAX_DURATION
        ),
        redial_after_connect_shorter_than=redial.duration(
            "redial_after_connect_shorter_than", None, positive=False, maximum=MAX_DURATION
        ),
    )
