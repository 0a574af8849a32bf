"""The zones a contact's number may be in, as a zone key (domain/zones.py) set at import.

The zones come from `phonenumbers`' time-zone data: one zone for most geographic numbers (a New
York landline), several for a country-wide mobile or toll-free range (every zone of Russia or
Australia), `Etc/Unknown` when the number says nothing (the fictional ranges the lab dials).
A `timezone` variable (CSV column or API metadata) holding an IANA name overrides the number's
data; an empty one does not. A number whose zone cannot be told gets `CAMPAIGN_ZONE_KEY`: the
campaign's own zone, resolved when the window is evaluated.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import phonenumbers
from phonenumbers import NumberParseException
from phonenumbers.timezone import time_zones_for_number

from ..domain.window import zone_problem
from ..domain.zones import CAMPAIGN_ZONE_KEY, zone_key

__all__ = ["TIMEZONE_VARIABLE", "contact_zone_key", "number_zone_key", "timezone_problem"]

#: The CSV column / metadata field that overrides the number's zones.
TIMEZONE_VARIABLE = "timezone"


def number_zone_key(e164: str) -> str:
    """The zone key of an E.164 number from its time-zone data (`CAMPAIGN_ZONE_KEY` when the
    data cannot tell)."""
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        return CAMPAIGN_ZONE_KEY
    return _key_of(time_zones_for_number(number))


@functools.lru_cache(maxsize=4096)
def _key_of(zones: tuple[str, ...]) -> str:
    # phonenumbers hands out the same few tuples (one per prefix of its data): a national list
    # computes each key once.
    return zone_key(zones)


def timezone_problem(value: str) -> str | None:
    """What is wrong with a `timezone` variable's value (``timezone: unknown time zone ...``);
    None when it is an IANA name zoneinfo knows, or blank (no override)."""
    if not value.strip():
        return None
    problem = _cached_zone_problem(value.strip())
    return None if problem is None else f"{TIMEZONE_VARIABLE}: {problem}"


@functools.lru_cache(maxsize=1024)
def _cached_zone_problem(value: str) -> str | None:
    return zone_problem(value)


def contact_zone_key(e164: str, variables: Mapping[str, str]) -> str:
    """The zone key of a contact: its valid `timezone` variable when it has one, else its
    number's (the caller has refused invalid `timezone` values already)."""
    override = variables.get(TIMEZONE_VARIABLE, "").strip()
    if override and _cached_zone_problem(override) is None:
        return zone_key((override,))
    return number_zone_key(e164)
