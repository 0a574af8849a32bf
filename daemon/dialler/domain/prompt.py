"""Prompt variables: the `{{NAME}}` and `{{call.NAME}}` placeholders of a bot's prompt.

DESIGN ("Fleet"): the worker gets the bot's prompt rendered with the contact's variables, both
forms resolving to the same variable; an unresolved placeholder is reported, never sent as
text. The guide ("Bot says the wrong customer details") blames CSV column spelling, prompt
variable spelling and flat vs namespaced usage, so `missing_variables` compares a prompt with
the variables at hand and suggests the near miss.

Syntax:

- A placeholder runs from `{{` to the next `}}`, whitespace (newlines too) allowed around the
  name: `{{Name}}`, `{{ Name }}`, `{{call.Name}}`, `{{ call.Name }}`.
- A name is letters, digits, `_` and `-` (Unicode letters and digits count), case-sensitive:
  `{{name}}` does not resolve `Name`. `.` belongs to no name; `call.` is the only prefix.
- Malformed placeholders are *invalid*, reported with what is wrong, and left out of the
  rendered text: `{{}}` (empty), `{{call.}}` (no name), `{{ x y }}`, `{{a.b}}`, `{{ {x} }}`
  (not a name), and a `{{` with no `}}` before the next `{{` or the end (unclosed; only the
  `{{` itself is left out). A lone `}}` is plain text: prompts may hold JSON.

Pure: no I/O, nothing of ours imported.
"""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "CALL_PREFIX",
    "Form",
    "Missing",
    "Placeholder",
    "Rendered",
    "format_invalid",
    "format_missing",
    "missing_variables",
    "placeholders",
    "prompt_warnings",
    "render",
]

CALL_PREFIX = "call."

# `{{`, a body holding no `{{` or `}}`, `}}`; else a `{{` that opens nothing (unclosed).
_TOKEN = re.compile(r"\{\{(?P<body>(?:(?!\{\{|\}\}).)*)\}\}|\{\{", re.DOTALL)
_NAME = re.compile(r"[\w-]+")
# What a near miss may differ in besides case (see `_suggestion`).
_SEPARATORS = re.compile(r"[\s_-]+")
_SIMILAR = 0.8
# The longest invalid placeholder quoted whole in a message.
_QUOTED = 40


class Form(enum.StrEnum):
    FLAT = "flat"  # {{NAME}}
    NAMESPACED = "namespaced"  # {{call.NAME}}
    INVALID = "invalid"  # malformed: see `Placeholder.problem`


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One placeholder as found in a prompt."""

    text: str  # as written, braces included
    start: int  # offset of its `{{` in the prompt
    line: int  # line of its `{{`, from 1
    form: Form
    name: str | None  # the variable it stands for; None when invalid
    problem: str | None  # why it is invalid; None when valid

    @property
    def valid(self) -> bool:
        return self.name is not None


@dataclass(frozen=True, slots=True)
class Rendered:
    """A prompt with its placeholders replaced.

    `unresolved` lists the variables it needed but did not get (once each, in order of first
    use); they were replaced by an empty string. `invalid` are the malformed placeholders,
    also left out of `text`.
    """

    text: str
    unresolved: list[str]
    invalid: list[Placeholder] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Missing:
    """A variable the prompt uses that is not available."""

    name: str
    #: An available variable it was probably meant to be, or None.
    suggestion: str | None
    #: How the prompt first uses it (for messages: `{{call.Plan}}` or `{{Plan}}`).
    form: Form = Form.FLAT

    @property
    def placeholder(self) -> str:
        prefix = CALL_PREFIX if self.form is Form.NAMESPACED else ""
        return f"{{{{{prefix}{self.name}}}}}"


def placeholders(prompt: str) -> list[Placeholder]:
    """Every placeholder in `prompt`, valid or not, in order (see the module docstring)."""
    found: list[Placeholder] = []
    line, counted = 1, 0
    for match in _TOKEN.finditer(prompt):
        line += prompt.count("\n", counted, match.start())
        counted = match.start()
        found.append(_placeholder(match, line))
    return found


def render(prompt: str, variables: Mapping[str, str]) -> Rendered:
    """`prompt` with each placeholder replaced by its variable's value (`{{NAME}}` and
    `{{call.NAME}}` alike), in one pass: a value is inserted as it is, braces and all, and
    never expanded again. Missing variables and invalid placeholders become empty strings
    and are reported; an empty value is a value (resolved)."""
    unresolved: dict[str, None] = {}
    invalid: list[Placeholder] = []
    pieces: list[str] = []
    end = 0
    for placeholder in placeholders(prompt):
        pieces.append(prompt[end : placeholder.start])
        end = placeholder.start + len(placeholder.text)
        if placeholder.name is None:
            invalid.append(placeholder)
        elif placeholder.name in variables:
            pieces.append(variables[placeholder.name])
        else:
            unresolved[placeholder.name] = None
    pieces.append(prompt[end:])
    return Rendered("".join(pieces), list(unresolved), invalid)


def missing_variables(prompt: str, available: Iterable[str]) -> list[Missing]:
    """The variables `prompt` uses that are not in `available`, once each in order of first
    use, each with a suggestion: an available name that differs only in case, spaces, `_` or
    `-` (`CUSTOMERNAME`, `customer_name` for `CustomerName`), else one close in spelling."""
    names = list(dict.fromkeys(available))
    present = set(names)
    missing: dict[str, Missing] = {}
    for placeholder in placeholders(prompt):
        name = placeholder.name
        if name is None or name in present or name in missing:
            continue
        missing[name] = Missing(name, _suggestion(name, names), placeholder.form)
    return list(missing.values())


def format_missing(missing: Missing, lacking: str = "has no column in the contacts") -> str:
    """One operator-facing line: ``prompt variable {{CustomerName}} has no column in the
    contacts (did you mean 'CUSTOMERNAME'?)``; `lacking` says where it was looked for."""
    text = f"prompt variable {missing.placeholder} {lacking}"
    if missing.suggestion is not None:
        text += f" (did you mean {missing.suggestion!r}?)"
    return text


def format_invalid(placeholder: Placeholder) -> str:
    """One operator-facing line for a malformed placeholder."""
    shown = placeholder.text
    if len(shown) > _QUOTED:
        shown = shown[: _QUOTED - 1] + "…"
    return (
        f"prompt placeholder {shown!r} (line {placeholder.line} of the prompt) is "
        f"malformed: {placeholder.problem}; the bot is given nothing in its place"
    )


def prompt_warnings(
    prompt: str, available: Iterable[str], lacking: str = "has no column in the contacts"
) -> list[str]:
    """`format_missing` for every missing variable, then `format_invalid` for every
    malformed placeholder."""
    warnings = [
        format_missing(missing, lacking) for missing in missing_variables(prompt, available)
    ]
    warnings.extend(
        format_invalid(placeholder) for placeholder in placeholders(prompt) if not placeholder.valid
    )
    return warnings


# --- internals -------------------------------------------------------------------------------


def _placeholder(match: re.Match[str], line: int) -> Placeholder:
    text = match.group(0)
    body = match.group("body")
    if body is None:
        return Placeholder(
            text,
            match.start(),
            line,
            Form.INVALID,
            None,
            "'{{' without a closing '}}' (before the next '{{' or the end)",
        )
    inner = body.strip()
    form = Form.FLAT
    name = inner
    if inner.startswith(CALL_PREFIX):
        form, name = Form.NAMESPACED, inner[len(CALL_PREFIX) :]
    if _NAME.fullmatch(name):
        return Placeholder(text, match.start(), line, form, name, None)
    return Placeholder(text, match.start(), line, Form.INVALID, None, _problem(inner, name))


def _problem(inner: str, name: str) -> str:
    """Why `inner` (a placeholder's body without the surrounding whitespace) is no name."""
    if not inner:
        return "no variable name between the braces"
    if not name:
        return f"no variable name after {CALL_PREFIX!r}"
    if any(character.isspace() for character in name):
        return f"{name!r} is not a variable name: a name has no spaces"
    if "." in name:
        return (
            f"{name!r} is not a variable name: '.' only follows the {CALL_PREFIX!r} "
            "prefix ({{call.NAME}})"
        )
    return f"{name!r} is not a variable name (letters, digits, '_' and '-' only)"


def _suggestion(name: str, available: list[str]) -> str | None:
    """The available variable `name` was most likely meant to be, or None."""
    keyed: dict[str, str] = {}
    for candidate in available:
        keyed.setdefault(_key(candidate), candidate)
    key = _key(name)
    if key in keyed:
        # Several may differ only in separators and case; the one equal up to case first.
        for candidate in available:
            if candidate.casefold() == name.casefold():
                return candidate
        return keyed[key]
    close = difflib.get_close_matches(key, list(keyed), n=1, cutoff=_SIMILAR)
    return keyed[close[0]] if close else None


def _key(name: str) -> str:
    return _SEPARATORS.sub("", name).casefold()
