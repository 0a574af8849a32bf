"""The one reader of the files the dialler reads: the config file, bot and campaign files.

Two steps. `read_text` and `parse_yaml` turn a file into plain data plus the line of every key
path in it (or a `FileProblem` saying why they cannot). `Section` then reads that data one
mapping at a time with typed getters (string, integer, number, boolean, duration, choice, lists
of strings, lists of mappings, nested mappings). A getter never raises: it records a `Problem`
(key path, message) and returns a usable value (the default, or a placeholder for a missing
required key), so that every problem of a file is found in one pass; the caller raises once,
with all of them, as its own error (`ConfigError`, `SpecError`) and places them in the file
with `line_of`. Unknown keys are problems with a "did you mean" suggestion; types are strict
(``true`` is not an integer, ``"10"`` is not a number).

What a value must be beyond its type is a *rule*: a function from the value to the problem
with it, or None (`matches` builds the common one, a pattern).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar, overload

import yaml

from .domain.messages import describe, shown
from .durations import DurationError, format_duration, parse_duration

__all__ = [
    "FileProblem",
    "Parsed",
    "Problem",
    "Rule",
    "Section",
    "line_of",
    "matches",
    "parse_yaml",
    "read_text",
    "suggestion",
]

T = TypeVar("T")

#: What a value must be beyond its type: the problem with `value`, or None when it is fine.
Rule = Callable[[T], str | None]


class Problem(NamedTuple):
    """One problem of a file: the key path at fault (``retry.on_system[1]``; ``""`` for the
    document itself) and what is wrong, in words that never include a secret."""

    path: str
    message: str


# --- reading a file --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileProblem:
    """Why a file cannot be read or parsed; `line` when the message does not say it itself."""

    message: str
    line: int = 0


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed file: its data (None for an empty file) and the line of each key path in it."""

    data: object
    lines: Mapping[str, int] = field(default_factory=dict)


def read_text(path: str) -> str | FileProblem:
    """The text of the file at `path` (UTF-8, a byte order mark allowed), or why not."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return FileProblem("file not found")
    except IsADirectoryError:
        return FileProblem("is a directory, not a file")
    except OSError as exc:
        return FileProblem(f"cannot read file: {exc.strerror or exc}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return FileProblem(f"not UTF-8 text (bad byte at offset {exc.start})")


def parse_yaml(text: str, *, json_fallback: bool = False) -> Parsed | FileProblem:
    """`text` read as YAML (plain data only, duplicate keys refused), or why it is not YAML.

    With `json_fallback`, text that YAML refuses but that looks like JSON (e.g. indented with
    tabs, which YAML does not allow) is read as JSON; then no lines are known.
    """
    try:
        # The constructor already reads the start of the text (a control character there
        # is a `ReaderError`).
        loader = _Loader(text)
    except yaml.YAMLError as exc:
        return FileProblem(_yaml_problem(exc))
    try:
        node = loader.get_single_node()
        if node is not None:
            problem = _expansion_problem(node)
            if problem is not None:
                return FileProblem(problem)
        data = loader.construct_document(node) if node is not None else None
    except yaml.constructor.ConstructorError as exc:  # e.g. a duplicate key: YAML says where
        return FileProblem(_yaml_problem(exc))
    except RecursionError:  # PyYAML recurses per level: thousands of `[` exhaust the stack
        return FileProblem("invalid YAML: nested too deeply")
    except yaml.YAMLError as exc:
        if json_fallback and text.lstrip().startswith("{"):
            return _parse_json(text)
        return FileProblem(_yaml_problem(exc))
    finally:
        loader.dispose()
    lines: dict[str, int] = {}
    if node is not None:
        try:
            _index_lines(node, "", lines)
        except RecursionError:
            return FileProblem("invalid YAML: nested too deeply")
    return Parsed(data, lines)


#: Most values a YAML document may expand to, aliases counted each time they are used: far
#: above any real file, far below what a "billion laughs" alias bomb asks for.
MAX_YAML_VALUES = 100_000


def _expansion_problem(root: yaml.Node) -> str | None:
    """Why the document's aliases make it too big (or recursive) to build, or None. Counts
    the values the document stands for, each node's size computed once (so an alias bomb
    costs time in the number of its distinct nodes, not in what it would expand to)."""
    sizes: dict[int, int] = {}
    # Iterative post-order walk: a deeply nested document cannot exhaust the Python stack.
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    active: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            children = _children(node)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            if sizes[key] > MAX_YAML_VALUES:
                return (
                    f"line {node.start_mark.line + 1}: invalid YAML: aliases expand it to over "
                    f"{MAX_YAML_VALUES} values (write the values out, or use fewer aliases)"
                )
            continue
        if key in sizes:
            continue
        if key in active:
            return f"line {node.start_mark.line + 1}: invalid YAML: an alias refers to itself"
        active.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def line_of(lines: Mapping[str, int], path: str) -> int:
    """The line of key path `path` (or of its nearest enclosing key in `lines`); 0 if none."""
    candidate = path
    while candidate:
        line = lines.get(candidate)
        if line is not None:
            return line
        candidate = _parent(candidate)
    return 0


def _parent(path: str) -> str:
    """``a.b[2]`` → ``a.b``; ``a.b`` → ``a``; ``a`` → ``''``."""
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


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


def _yaml_problem(exc: yaml.YAMLError) -> str:
    # Built from the parts rather than str(exc), which quotes lines of the file.
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        message = f"line {mark.line + 1}, column {mark.column + 1}: invalid YAML: {exc.problem}"
        if exc.context and exc.context_mark is not None:
            message += f" ({exc.context} on line {exc.context_mark.line + 1})"
        return message
    return f"invalid YAML: {' '.join(str(exc).split())}"


def _parse_json(text: str) -> Parsed | FileProblem:
    try:
        return Parsed(json.loads(text, object_pairs_hook=_unique_pairs))
    except json.JSONDecodeError as exc:
        return FileProblem(f"invalid JSON: {exc.msg} (column {exc.colno})", exc.lineno)
    except _DuplicateKey as exc:
        return FileProblem(f"invalid JSON: duplicate key {exc.key!r}")
    except RecursionError:
        return FileProblem("invalid JSON: nested too deeply")


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


class _Loader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses duplicate keys and YAML 1.1's base-60 numbers.

    PyYAML would silently keep the last of two equal keys. It also reads an unquoted ``18:00``
    as the integer 1080 and ``9:30`` as 570; in files full of times of day (and durations) that
    is never what was meant, so here they stay strings, as in YAML 1.2.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            # Keys merged in with `<<` may be overridden on purpose; only explicit ones count.
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
# Its own copy of the resolvers, without YAML 1.1's int and float (which take base 60) ...
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# ... and the same int and float without the base-60 forms.
_Loader.add_implicit_resolver(
    _INT_TAG,
    re.compile(
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)"
        r"|[-+]?0x[0-9a-fA-F_]+)$"
    ),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?"
        r"|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


# --- reading values --------------------------------------------------------------------------


def suggestion(key: str, known: Collection[str]) -> str:
    """`` (did you mean 'x'?)`` for the known key closest to `key`; empty if none is close."""
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def matches(pattern: re.Pattern[str], rule: str, *, echo: bool = True) -> Rule[str]:
    """A rule: `pattern` matches the whole value, else ``'<value>' is not valid: <rule>``.

    With `echo=False` the value is left out of the message.
    """

    def check(value: str) -> str | None:
        if pattern.fullmatch(value):
            return None
        return f"{shown(value)} is not valid: {rule}" if echo else f"not valid: {rule}"

    return check


def _quote_hint(value: object) -> str:
    # YAML reads an unquoted +441632960001 as an integer and NO (Norway) as false.
    if isinstance(value, bool | int | float):
        return " (put the value in quotes)"
    return ""


class Section:
    """One mapping of a file, at key path `path`, read with typed getters.

    `problems` is shared by every section of the file (a new list for the document's root).
    A blank or absent section reads as empty: every key takes its default, and a required one
    is reported missing. `expected` names what a non-mapping should have been.
    """

    def __init__(
        self,
        data: object,
        keys: Collection[str],
        *,
        path: str = "",
        problems: list[Problem] | None = None,
        expected: str = "a mapping",
    ) -> None:
        self.path = path
        self.problems: list[Problem] = [] if problems is None else problems
        self._failed: set[str] = set()
        self._data: dict[str, object] = {}
        if data is None:
            return
        if not isinstance(data, dict):
            self.problem(None, f"expected {expected}, got {describe(data)}")
            return
        for key, value in data.items():
            if isinstance(key, str) and key in keys:
                self._data[key] = value
            else:
                self.problem(str(key), "unknown key" + suggestion(str(key), keys))

    # --- where and what ----------------------------------------------------------------------

    def path_of(self, key: str) -> str:
        """The key path of `key` in this section."""
        return f"{self.path}.{key}" if self.path else key

    def problem(self, key: str | None, message: str) -> None:
        """Record a problem with `key` (None: with the section as a whole)."""
        if key is None:
            self.problems.append(Problem(self.path, message))
        else:
            self._failed.add(key)
            self.problems.append(Problem(self.path_of(key), message))

    def problem_at(self, path: str, message: str) -> None:
        """Record a problem at key path `path` (an item of a list, another section's key)."""
        self.problems.append(Problem(path, message))

    def has(self, key: str) -> bool:
        """True if `key` is present with a value (a blank value counts as absent)."""
        return self._data.get(key) is not None

    def get(self, key: str) -> object:
        """The raw value at `key`; None when absent or blank (which take the default)."""
        return self._data.get(key)

    def valid(self, *keys: str) -> bool:
        """True if none of `keys` had a problem (so comparing them makes sense)."""
        return not self._failed.intersection(keys)

    def _required(self, key: str, required: bool) -> object:
        value = self._data.get(key)
        if value is None and required:
            self.problem(key, "missing required key")
        return value

    def _ruled(self, key: str, value: T, rules: Iterable[Rule[T]]) -> bool:
        """True if `value` passes every rule; the first that fails is recorded."""
        for rule in rules:
            message = rule(value)
            if message is not None:
                self.problem(key, message)
                return False
        return True

    # --- nested mappings and lists -----------------------------------------------------------

    def section(self, key: str, keys: Collection[str]) -> Section:
        """The mapping at `key`; absent, it is empty and its own required keys report that."""
        return Section(self._data.get(key), keys, path=self.path_of(key), problems=self.problems)

    def entries(self, key: str, keys: Collection[str], *, required: bool) -> Iterator[Section]:
        """The mappings of the list at `key`; a required list must have at least one.

        A generator, so that each entry's problems are recorded in file order.
        """
        value = self._data.get(key)
        if value is None or value == []:
            if required:
                self.problem(key, "at least one entry is required")
            return
        if not isinstance(value, list):
            self.problem(key, f"expected a list, got {describe(value)}")
            return
        path = self.path_of(key)
        for index, item in enumerate(value):
            if item is None:  # a bare `-`: no entry to build, say so rather than list its keys
                self.problem_at(f"{path}[{index}]", "empty entry")
            else:
                yield Section(item, keys, path=f"{path}[{index}]", problems=self.problems)

    def strings(self, key: str) -> Iterator[tuple[str, str]]:
        """(key path, value) of each string in the list at `key`; anything else is a problem."""
        value = self._data.get(key)
        if value is None:
            return
        if not isinstance(value, list):
            self.problem(key, f"expected a list, got {describe(value)}")
            return
        for index, item in enumerate(value):
            path = f"{self.path_of(key)}[{index}]"
            if isinstance(item, str):
                yield path, item
            else:
                self.problem_at(path, f"expected a string, got {describe(item)}{_quote_hint(item)}")

    # --- scalars -----------------------------------------------------------------------------

    def string(
        self,
        key: str,
        default: str | None = None,
        *,
        rules: Iterable[Rule[str]] = (),
        allow_blank: bool = False,
        echo: bool = True,
        quote_hint: bool = True,
    ) -> str:
        """A string; required when `default` is None (then ``""`` stands in on a problem).

        Blank is refused unless `allow_blank`; then each of `rules` must pass (a pattern:
        `matches`). With `echo=False` the value never appears in a message (it may hold
        a password); `quote_hint` adds "put the value in quotes" to a number or boolean.
        """
        fallback = default or ""
        value = self._required(key, required=default is None)
        if value is None:
            return fallback
        if not isinstance(value, str):
            what = describe(value) if echo else type(value).__name__
            hint = _quote_hint(value) if quote_hint else ""
            self.problem(key, f"expected a string, got {what}{hint}")
            return fallback
        if not value.strip() and not allow_blank:
            self.problem(key, "must not be empty")
            return fallback
        return value if self._ruled(key, value, rules) else fallback

    def choice(self, key: str, default: str, choices: Collection[str]) -> str:
        """One of `choices` (a string); `default` when absent."""
        value = self.string(key, default)
        if value in choices:
            return value
        if self.valid(key):
            self.problem(
                key, f"unknown value {shown(value)} (expected one of: {', '.join(choices)})"
            )
        return default

    def integer(self, key: str, default: int, *, rules: Iterable[Rule[int]] = ()) -> int:
        """An integer (not a boolean, not a float) passing `rules`; `default` when absent."""
        value = self._data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"expected an integer, got {describe(value)}")
            return default
        return value if self._ruled(key, value, rules) else default

    def number(self, key: str, default: float, *, rules: Iterable[Rule[float]] = ()) -> float:
        """An integer or a float (not a boolean) passing `rules`; `default` when absent."""
        value = self._data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, f"expected a number, got {describe(value)}")
            return default
        return float(value) if self._ruled(key, value, rules) else default

    def boolean(self, key: str, default: bool) -> bool:
        """``true`` or ``false``; `default` when absent."""
        value = self._data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(key, f"expected true or false, got {describe(value)}")
            return default
        return value

    @overload
    def duration(
        self, key: str, default: float, *, positive: bool, maximum: float | None = None
    ) -> float: ...

    @overload
    def duration(
        self, key: str, default: None, *, positive: bool, maximum: float | None = None
    ) -> float | None: ...

    def duration(
        self, key: str, default: float | None, *, positive: bool, maximum: float | None = None
    ) -> float | None:
        """A duration (`dialler.durations`) in seconds, rounded to the millisecond.

        Never negative; greater than 0 if `positive`; at most `maximum` if given.
        """
        value = self._data.get(key)
        if value is None:
            return default
        try:
            seconds = round(parse_duration(value, self.path_of(key)), 3)
        except DurationError as exc:
            self.problem(key, exc.reason)
            return default
        if positive and seconds <= 0:
            self.problem(key, f"must be greater than 0, got {_shown_duration(value)}")
        elif maximum is not None and seconds > maximum:
            self.problem(
                key, f"{_shown_duration(value)} is too long (at most {format_duration(maximum)})"
            )
        else:
            return seconds
        return default


def _shown_duration(value: object) -> str:
    return shown(value) if isinstance(value, str) else repr(value)
