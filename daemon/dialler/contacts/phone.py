"""Normalising a contact's phone number to E.164 (`phonenumbers`, with a default region).

A number is accepted when `phonenumbers` can parse it and its length is possible for its
country (`is_possible_number`), **not** only when it is "valid" (`is_valid_number`, which
also checks the number against the allocated ranges). The stricter check would refuse the
fictional ranges the lab and the demos dial (`+447700900xxx`, `+441632960xxx`, Ofcom's drama
numbers), and new ranges allocated after the installed metadata; a length check still catches
the usual typos (a digit missing or doubled, no country code on a foreign number).
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, ValidationResult

from ..domain.numbers import is_e164
from ..errors import InvalidNumber

__all__ = ["InvalidNumber", "normalise_phone"]

_PARSE_PROBLEMS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}
_LENGTH_PROBLEMS = {
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "wrong number of digits",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "a local number without its area code",
}


def normalise_phone(text: str, default_region: str) -> str:
    """`text` as an E.164 number (`+447700900123`).

    Numbers without a leading `+` (or international prefix such as `00`) are read as
    numbers of `default_region` (ISO 3166 code, e.g. `GB`): `07700 900123` → `+447700900123`.
    Raises `errors.InvalidNumber` (field `phone_number`) with the reason when the number
    cannot be dialled.
    """
    stripped = text.strip()
    if not stripped:
        raise InvalidNumber("phone_number is empty")
    try:
        number = phonenumbers.parse(stripped, default_region)
    except NumberParseException as exc:
        problem = _PARSE_PROBLEMS.get(exc.error_type, str(exc))
        raise InvalidNumber(f"invalid phone number {stripped!r}: {problem}") from None
    if number.extension:
        raise InvalidNumber(
            f"invalid phone number {stripped!r}: has an extension "
            f"({number.extension}), which cannot be dialled"
        )
    length = phonenumbers.is_possible_number_with_reason(number)
    if length != ValidationResult.IS_POSSIBLE:
        code = number.country_code or 0
        region = phonenumbers.region_code_for_country_code(code)
        where = f"+{code} ({region})" if region != phonenumbers.UNKNOWN_REGION else f"+{code}"
        problem = _LENGTH_PROBLEMS.get(length, "not a possible number")
        raise InvalidNumber(f"invalid phone number {stripped!r}: {problem} for {where}")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if not is_e164(e164):  # belt and braces: what the database would refuse
        raise InvalidNumber(f"invalid phone number {stripped!r}: not an E.164 number")
    return e164
