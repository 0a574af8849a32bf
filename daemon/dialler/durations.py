"""Durations as written in config, bot and campaign files (CONTRACT.md, "Files").

An integer is a number of seconds; a string is one or more ``<number><unit>`` parts with the unit
``ms``, ``s``, ``m``, ``h`` or ``d`` (``90s``, ``1h30m``, ``500ms``, ``1.5s``). Values are
handled as float seconds inside the program.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

from .domain.messages import describe, shown

__all__ = ["DurationError", "format_duration", "parse_duration"]

_UNIT_SECONDS: dict[str, Decimal] = {
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
    "d": Decimal(86400),
}
_UNITS_TEXT = "ms, s, m, h, d"
# One `<number><unit>` part. `ms` is tried before `m` so that "500ms" is not read as "500m" + "s".
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
# What a part looks like before we know whether its unit is one of ours: for the error message.
_LOOSE_PART = re.compile(r"(\d+(?:\.\d+)?)([^\d.\s]*)")


class DurationError(ValueError):
    """A value that is not a duration: ``<key>: <reason>``."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        #: The key (or option) the value was given for.
        self.key = key
        #: What is wrong, without the key.
        self.reason = reason


def parse_duration(value: object, key: str) -> float:
    """Return `value` (an integer of seconds or a string such as ``"1h30m"``) in seconds.

    Raises `DurationError` (a `ValueError`: ``<key>: <reason>``) saying what is wrong: a wrong
    type (booleans and floats are refused: write ``"1.5s"``), an empty string, a missing or
    unknown unit, or a negative value. Zero is accepted; callers that need a positive value
    check it.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise DurationError(
            key,
            f"expected a duration such as 90 or '1h30m', got {describe(value)}{_float_hint(value)}",
        )
    if isinstance(value, int):
        if value < 0:
            raise DurationError(key, f"duration must not be negative, got {value}")
        return float(value)
    return _parse_text(value, key)


def _parse_text(value: str, key: str) -> float:
    text = value.strip()
    if not text:
        raise DurationError(key, "empty duration; write e.g. '90s' or '1h30m'")
    if text.startswith("-"):
        raise DurationError(key, f"duration must not be negative, got {shown(value)}")
    total = Decimal(0)
    position = 0
    while position < len(text):
        match = _PART.match(text, position)
        if match is None:
            raise DurationError(key, f"{_what_is_wrong(text, position)} in duration {shown(value)}")
        total += Decimal(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    seconds = float(total)
    if not math.isfinite(seconds):
        raise DurationError(key, f"duration {shown(value)} is too large")
    return seconds


def _what_is_wrong(text: str, position: int) -> str:
    loose = _LOOSE_PART.match(text, position)
    if loose is None:
        return f"expected a number at {shown(text[position:])}"
    unit = loose.group(2)
    if not unit:
        return f"missing unit after {loose.group(1)!r} (use {_UNITS_TEXT})"
    return f"unknown unit {unit!r} (use {_UNITS_TEXT})"


def _float_hint(value: object) -> str:
    # 1.5 means nothing without a unit; the same value with one is what was meant.
    if isinstance(value, float):
        return f" (write a string with a unit, e.g. '{value}s')"
    return ""


def format_duration(seconds: float) -> str:
    """Write `seconds` the way a file would: 5400 → ``"1h30m"``, 0.5 → ``"500ms"``, 0 → ``"0s"``.

    Rounded to the millisecond; `parse_duration` reads the result back to the same value.
    """
    if not math.isfinite(seconds):
        raise ValueError(f"cannot format a non-finite duration: {seconds!r}")
    millis = round(abs(seconds) * 1000)
    if millis == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    sign = "-" if seconds < 0 else ""
    return sign + "".join(parts)
