"""`dialler triage ID [--json]`: the triage guide's checks for one campaign (docs/triage.md).

Exit codes: 0 whenever the triage ran, whatever it found — the output is a report, and a
report that says "escalate" is a successful run (scripts read `escalate` from `--json`); 2 for
an unknown campaign; 1 when the database cannot be reached.
"""

from __future__ import annotations

import argparse
import json

from ..campaigns.lookup import resolve_campaign
from ..config import Config
from ..store import Connection
from ..triage import Report, Symptom
from ..triage import triage as run_triage
from .common import display_time, with_db


def triage(args: argparse.Namespace) -> int:
    async def body(conn: Connection, config: Config) -> Report:
        return await run_triage(conn, config, await resolve_campaign(conn, args.campaign))

    report = with_db(args, body)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(render(report))
    return 0


def render(report: Report) -> str:
    """The human report: every row of the guide, then the escalation summary."""
    summary = report.summary
    escalating = [s.title for s in report.symptoms if s.escalate]
    lines = [
        f"Triage of campaign {report.name} ({report.campaign_id}), {report.state}, "
        f"at {display_time(summary.checked_at)}",
        "Escalate: yes — " + "; ".join(escalating)
        if escalating
        else "Escalate: no — nothing needs engineering; fix what is marked ✗ below",
    ]
    for symptom in report.symptoms:
        lines.append("")
        lines.extend(_symptom(symptom))
    lines.append("")
    lines.append("Escalation summary (include it when you escalate)")
    lines.append(f"  campaign:   {summary.campaign_id}")
    call = summary.call
    if call is None:
        lines.append("  call:       no specific call (none affected yet)")
    else:
        title = next(s.title for s in report.symptoms if s.key == call.symptom)
        lines.append(
            f"  call:       {display_time(call.at)}, attempt {call.attempt_id} "
            f"({title}: {call.detail})"
        )
    lines.append(f"  checked at: {display_time(summary.checked_at)}")
    lines.append("  checked:")
    lines.extend(f"    - {line}" for line in summary.checked)
    return "\n".join(lines)


def _symptom(symptom: Symptom) -> list[str]:
    lines = [f"{symptom.title} — {'OBSERVED' if symptom.applies else 'not observed'}"]
    lines.extend(
        f"  {'✓' if check.ok else '✗'} {check.name}: {check.observed}" for check in symptom.checks
    )
    if symptom.fix:
        lines.append("  You can fix:")
        lines.extend(f"    - {item}" for item in symptom.fix)
    lines.append(f"  Escalate: {'yes' if symptom.escalate else 'no'} — {symptom.reason}")
    if symptom.applies and not symptom.escalate:
        lines.append(f"  Escalate when: {symptom.escalate_when}")
    return lines
