"""`dialler triage CAMPAIGN`: the triage guide's Quick triage table, evaluated from the data.

For each row of the table (spec/triage-guide.txt) the report says whether the symptom shows in
the campaign's data (`Symptom.applies`), runs the row's first checks against the database and
the config (`Check`: passed or not, with the value observed), lists what the operator can fix,
and says whether to escalate — the "Escalate when" column made concrete with this campaign's
thresholds. It ends with what an escalation must carry: the campaign id, the time and attempt
id of one affected call (never a phone number) and what was checked. docs/triage.md has the
checks and the escalation rules row by row.

Read-only, in three steps: `facts` gathers everything once (through the store, in one
snapshot), `rules` evaluates each row as a pure function of the facts, `text` words it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from ..config import Config
from ..store import Connection
from .facts import gather
from .report import AffectedCall, Check, EscalationSummary, Report, Symptom
from .rules import evaluate, summary

__all__ = ["AffectedCall", "Check", "EscalationSummary", "Report", "Symptom", "triage"]


async def triage(
    conn: Connection, config: Config, campaign_id: UUID, now: datetime | None = None
) -> Report:
    """Walk the guide's Quick triage table for the campaign; `UnknownCampaign` if unknown.

    The facts are read in one read-only repeatable-read transaction (unless the caller holds
    one already): counts from one query and rows from another must describe the same moment,
    or a call ending in between would look like a contact stuck without its attempt.
    """
    facts = await gather(conn, config, campaign_id, now or datetime.now(UTC))
    symptoms = evaluate(facts)
    return Report(
        campaign_id=facts.campaign.id,
        name=facts.campaign.name,
        state=facts.campaign.state,
        symptoms=symptoms,
        escalate=any(s.escalate for s in symptoms),
        summary=summary(facts, symptoms),
    )
