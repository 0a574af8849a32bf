"""Structured logs: one line per event (logfmt or JSON), with campaign and attempt ids.

Phone numbers never reach a log line: the code logs ids, and as a last guard any E.164-looking
number in a message or field is masked (`+44770090****`). Control characters never reach it
raw either: logfmt quotes and escapes any value holding one, JSON escapes them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_E164 = re.compile(r"\+\d{6,15}")
_STD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def mask(text: str) -> str:
    return _E164.sub(lambda m: m.group(0)[:-4] + "****", text)


class Formatter(logging.Formatter):
    def __init__(self, style_name: str) -> None:
        super().__init__()
        self.json = style_name == "json"

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": mask(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STD and not key.startswith("_"):
                fields[key] = mask(str(value)) if isinstance(value, str) else value
        if record.exc_info:
            fields["exc"] = mask(self.formatException(record.exc_info))
        if self.json:
            return json.dumps(fields, default=str)
        return " ".join(f"{k}={_logfmt(v)}" for k, v in fields.items())


def _logfmt(value: object) -> str:
    """`value` as a logfmt value: quoted (JSON string escapes) when it has a space, `=`, a
    quote or a backslash, and whenever it has a control or other unprintable character, so
    that no value can start a line of its own or rewrite the terminal (log injection)."""
    text = str(value)
    if text == "" or any(c in text for c in ' ="\\') or not text.isprintable():
        # ensure_ascii escapes C1 controls and U+2028/9; DEL is ASCII, escaped by hand.
        return json.dumps(text).replace("\x7f", "\\u007f")
    return text


def setup(level: str, style_name: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Formatter(style_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # panoramisk logs whole AMI messages (dial strings carry phone numbers) at debug/info.
    logging.getLogger("panoramisk").setLevel(logging.WARNING)
