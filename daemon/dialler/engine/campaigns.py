"""The rules of a campaign, as the engine reads them from its database row."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ..domain.rules import RedialPolicy, RetryPolicy
from ..domain.window import Window


@dataclass(frozen=True, slots=True)
class CampaignRules:
    id: UUID
    window: Window
    retry: RetryPolicy
    redial: RedialPolicy
    ring_timeout: float
    cancelled: bool = False


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000.0


def retry_from_row(row: Mapping[str, Any]) -> RetryPolicy:
    """The retry policy stored in a `campaigns` row (durations in ms)."""
    return RetryPolicy(max_attempts=row["retry_max_attempts"],
                       delay=row["retry_delay_ms"] / 1000.0,
                       on_system=frozenset(row["retry_on_system"]),
                       on_custom=frozenset(row["retry_on_custom"]))


def redial_from_row(row: Mapping[str, Any]) -> RedialPolicy:
    """The redial rules stored in a `campaigns` row (thresholds in ms, NULL when off)."""
    return RedialPolicy(
        stop_after_connect_longer_than=_seconds(row["redial_stop_after_ms"]),
        redial_after_connect_shorter_than=_seconds(row["redial_short_connect_ms"]))


def rules_from_row(row: Mapping[str, Any]) -> CampaignRules:
    """Build the rules from a `running_campaigns` / `campaign_rules` row. The window was
    validated when the campaign started, so it parses."""
    return CampaignRules(
        id=row["id"],
        window=Window.parse(row["window_start"], row["window_end"], list(row["window_days"]),
                            row["timezone"]),
        retry=retry_from_row(row),
        redial=redial_from_row(row),
        ring_timeout=row["ring_timeout_ms"] / 1000.0,
        cancelled=row.get("cancelled_at") is not None,
    )
