"""E.164, the one form a phone number takes inside the dialler.

`+`, a country code that does not start with 0, and at most 15 digits in all (ITU-T E.164):
the form `contacts.phone.normalise_phone` produces, the form caller IDs are configured in, and
the form the database's CHECK constraints accept (`^\\+[1-9][0-9]{1,14}$`).
"""

from __future__ import annotations

import re

__all__ = ["E164", "E164_RULE", "is_e164"]

#: The pattern itself (use with `fullmatch`, or `search`/`sub` to find numbers in text).
E164 = re.compile(r"\+[1-9][0-9]{1,14}")
#: How the rule reads in an error message.
E164_RULE = "expected E.164: '+', a country code not starting with 0, at most 15 digits"


def is_e164(text: str) -> bool:
    """True when `text` is exactly one E.164 number."""
    return E164.fullmatch(text) is not None
