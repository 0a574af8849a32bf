"""How values are shown in error messages: one wording for config, campaign files and
windows."""

from __future__ import annotations


def describe(value: object) -> str:
    """`value` for a type error: its YAML-ish type name and, for a scalar, the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"bool {str(value).lower()}"
    if isinstance(value, str):
        return f"str {shown(value)}"
    if isinstance(value, int | float):
        return f"{type(value).__name__} {value!r}"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def shown(text: str) -> str:
    """`text` quoted for a message, cut short so a pasted blob stays readable."""
    return repr(text) if len(text) <= 60 else repr(text[:57] + "...")
