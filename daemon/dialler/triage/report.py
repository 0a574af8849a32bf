"""What `dialler triage` answers: each row of the guide evaluated (`Symptom`, its `Check`s and
the `AffectedCall` it points at), and the summary an escalation carries (`Report`, `--json`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from ..stats import rfc3339

__all__ = ["AffectedCall", "Check", "EscalationSummary", "Report", "Symptom"]


@dataclass(frozen=True, slots=True)
class Check:
    """One first check of a row: passed or not, and what was observed."""

    name: str
    ok: bool
    observed: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "observed": self.observed}


@dataclass(frozen=True, slots=True)
class AffectedCall:
    """One call an escalation can point at: its attempt id and when it was dialled."""

    attempt_id: UUID
    at: datetime
    symptom: str  # the key of the row it illustrates
    detail: str  # what is wrong with it, without a phone number

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt_id": str(self.attempt_id),
            "at": rfc3339(self.at),
            "symptom": self.symptom,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Symptom:
    """One row of the Quick triage table, evaluated.

    `applies`: the symptom (or a cause the row names) shows in the data. `escalate_when` is
    the row's "Escalate when" with this campaign's thresholds; `reason` says why `escalate` is
    what it is; `call` is the most recent attempt that shows the symptom, if any.
    """

    key: str
    title: str
    applies: bool
    checks: list[Check]
    fix: list[str]
    escalate: bool
    escalate_when: str
    reason: str = ""
    call: AffectedCall | None = None

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "applies": self.applies,
            "checks": [check.to_json() for check in self.checks],
            "fix": self.fix,
            "escalate": self.escalate,
            "escalate_when": self.escalate_when,
            "reason": self.reason,
            "call": self.call.to_json() if self.call is not None else None,
        }


@dataclass(frozen=True, slots=True)
class EscalationSummary:
    """What the guide asks an escalation to carry."""

    campaign_id: UUID
    checked_at: datetime
    call: AffectedCall | None  # a specific affected call, from the row that escalates
    checked: list[str]  # what was checked, one line each

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign_id": str(self.campaign_id),
            "checked_at": rfc3339(self.checked_at),
            "call": self.call.to_json() if self.call is not None else None,
            "checked": self.checked,
        }


@dataclass(frozen=True, slots=True)
class Report:
    """The whole triage of one campaign: every row, and the escalation summary."""

    campaign_id: UUID
    name: str
    state: str
    symptoms: list[Symptom]
    escalate: bool  # some row says escalate
    summary: EscalationSummary

    def symptom(self, key: str) -> Symptom:
        """The row called `key`; `KeyError` if there is none."""
        for symptom in self.symptoms:
            if symptom.key == key:
                return symptom
        raise KeyError(key)

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign_id": str(self.campaign_id),
            "name": self.name,
            "state": self.state,
            "escalate": self.escalate,
            "symptoms": [symptom.to_json() for symptom in self.symptoms],
            "summary": self.summary.to_json(),
        }
