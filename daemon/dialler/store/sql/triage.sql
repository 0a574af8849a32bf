-- `dialler triage CAMPAIGN` (docs/triage.md): the facts behind the triage guide's first
-- checks, wrapped by dialler.store.triage and gathered by dialler.triage.facts. Read-only; every
-- query is bounded by one campaign, and the ones over attempts or waiting contacts go through a
-- partial index so a finished million-contact campaign costs no more than a small one.

-- name: pool
-- The campaign's caller IDs with the carrier behind each, as the daemon sees them (the
-- `numbers` table mirrors the config at every daemon start and `campaign start`).
SELECT cn.number, n.enabled, n.carrier
FROM campaign_numbers cn JOIN numbers n ON n.number = cn.number
WHERE cn.campaign_id = $1
ORDER BY cn.number;

-- name: recent_attempts
-- The last $2 final attempts, newest first: a backward scan of attempts_report_idx
-- (campaign_id, finalised_at WHERE state = 'final') that stops after $2 rows. Requeued
-- attempts are left out: our side failed before the call was placed, so they say nothing
-- about the carrier, the callee or the bot. No phone number is selected.
SELECT a.id, a.carrier, a.sip_code, a.outcome, a.disposition,
       coalesce(a.dialled_at, a.queued_at) AS dialled_at, a.worker, a.attached_at
FROM attempts a
WHERE a.campaign_id = $1 AND a.state = 'final' AND a.next_action <> 'requeue'
ORDER BY a.finalised_at DESC, a.id DESC
LIMIT $2;

-- name: open_attempts
-- Every attempt of the campaign that is not final yet. Their number is bounded by the
-- campaign's concurrency (plus whatever is stuck), so they are all fetched; the partial index
-- attempts_open_deadline_idx holds only open rows, never the campaign's history.
SELECT a.id, a.state, coalesce(a.dialled_at, a.queued_at) AS dialled_at, a.ended_at,
       a.deadline_at
FROM attempts a
WHERE a.state <> 'final' AND a.campaign_id = $1
ORDER BY dialled_at, a.id;

-- name: finishing_decisions
-- How the campaign's finished contacts ended, grouped by the last attempt's disposition and
-- the decision taken on it. The attempt that ends a contact is the one whose next_action is
-- done, exhausted or cancelled (at most one per contact: nothing dials it afterwards), so
-- reading those attempts gives each finished contact's last outcome without a per-contact
-- lookup. `latest` is the most recent such attempt, to point engineering at one call.
SELECT a.disposition, a.next_action, count(*) AS n,
       (array_agg(a.id ORDER BY a.finalised_at DESC, a.id DESC))[1] AS latest,
       (array_agg(coalesce(a.dialled_at, a.queued_at)
                  ORDER BY a.finalised_at DESC, a.id DESC))[1] AS latest_dialled_at
FROM attempts a
WHERE a.campaign_id = $1 AND a.state = 'final'
  AND a.next_action IN ('done', 'exhausted', 'cancelled')
GROUP BY a.disposition, a.next_action
ORDER BY n DESC, a.disposition;

-- name: waiting_contacts
-- Waiting contacts by state (contacts_due_idx holds only the waiting states, and the IN list
-- repeats its predicate so the planner uses it): how many are due now ($2), how many still
-- wait for their time and when the next one is due, and how many are overdue — due before $3
-- (now minus the stall threshold) and still not dialled.
SELECT state, count(*) AS n,
       count(*) FILTER (WHERE next_due_at <= $2) AS due,
       count(*) FILTER (WHERE next_due_at > $2) AS waiting,
       min(next_due_at) FILTER (WHERE next_due_at > $2) AS next_due_at,
       count(*) FILTER (WHERE next_due_at <= $3) AS overdue,
       min(next_due_at) FILTER (WHERE next_due_at <= $3) AS oldest_overdue_at
FROM contacts
WHERE campaign_id = $1 AND state IN ('pending', 'retry_scheduled', 'callback_scheduled')
GROUP BY state;

-- name: overdue_attempt
-- The last attempt of the contact in state $2 overdue the longest (due before $3): the call
-- an escalation about retries or callbacks that never re-dial should name.
SELECT la.id, la.dialled_at
FROM contacts ct
JOIN LATERAL (
    SELECT a.id, coalesce(a.dialled_at, a.queued_at) AS dialled_at FROM attempts a
    WHERE a.contact_id = ct.id
    ORDER BY a.attempt_number DESC LIMIT 1
) la ON true
WHERE ct.campaign_id = $1 AND ct.state IN ('pending', 'retry_scheduled', 'callback_scheduled')
  AND ct.state = $2 AND ct.next_due_at <= $3
ORDER BY ct.next_due_at, ct.id
LIMIT 1;

-- name: variable_coverage
-- For each prompt variable ($2), how many contacts have no value for it: the key is absent
-- (a CSV column or API metadata key spelt differently) or its value is empty. One scan of the
-- campaign's contacts whatever the number of variables.
SELECT v.name,
       count(ct.id) FILTER (WHERE coalesce(ct.variables ->> v.name, '') = '') AS lacking
FROM unnest($2::text[]) AS v(name)
CROSS JOIN contacts ct
WHERE ct.campaign_id = $1
GROUP BY v.name;

-- name: live_daemons
-- Daemons that have heart-beaten since $1 (now minus three heartbeat intervals: the engine's
-- own definition of a dead daemon).
SELECT count(*) AS n, max(heartbeat_at) AS last_heartbeat_at
FROM daemons WHERE heartbeat_at > $1;

-- name: last_test_call
-- The bot's latest `dialler test-call`: those calls are recorded in a per-bot campaign named
-- 'test-call: <bot>' (testcall.sql), so the guide's "the bot passes a test call" is on record.
SELECT a.id, a.state, coalesce(a.dialled_at, a.queued_at) AS dialled_at, a.outcome,
       a.disposition, a.sip_code, a.worker, a.attached_at
FROM campaigns c JOIN attempts a ON a.campaign_id = c.id
WHERE c.name = 'test-call: ' || $1
ORDER BY a.dialled_at DESC NULLS LAST, a.id DESC
LIMIT 1;
