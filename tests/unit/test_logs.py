from __future__ import annotations

import json
import logging

from dialler.logs import Formatter, mask


def record(msg: str, **extra: object) -> logging.LogRecord:
    rec = logging.makeLogRecord({"name": "dialler.test", "levelname": "INFO", "msg": msg})
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_phone_numbers_are_masked_in_messages_and_fields() -> None:
    assert mask("dialled +447700900123 from +441632960001") == (
        "dialled +44770090**** from +44163296****"
    )
    line = Formatter("logfmt").format(record("call to +447700900123", peer="+447700900123"))
    assert "447700900123" not in line
    assert "+44770090****" in line


def test_json_lines_carry_the_ids() -> None:
    line = Formatter("json").format(record("attempt final", attempt_id="a-1", campaign_id="c-1"))
    data = json.loads(line)
    assert (data["msg"], data["attempt_id"], data["campaign_id"]) == ("attempt final", "a-1", "c-1")


def test_logfmt_quotes_values_with_spaces() -> None:
    line = Formatter("logfmt").format(record("ami connected", asterisk="pbx 1"))
    assert 'asterisk="pbx 1"' in line and 'msg="ami connected"' in line
