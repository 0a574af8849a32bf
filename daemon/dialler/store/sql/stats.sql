-- Live activity and stats of campaigns (`campaign show`, `calls`). See docs/engine.md.

-- name: contact_counts
-- The grid of each campaign of $1: one scan of its contacts (contacts_campaign_state_idx);
-- retries left against the campaign's own max_attempts.
SELECT ct.campaign_id, ct.state, count(*) AS n,
       count(*) FILTER (WHERE ct.state IN ('pending', 'retry_scheduled', 'callback_scheduled')
                         AND ct.next_due_at <= now()) AS due,
       sum(GREATEST(0, c.retry_max_attempts - ct.attempts_used)) FILTER (
           WHERE ct.state IN ('retry_scheduled', 'callback_scheduled')
              OR (ct.state = 'pending' AND ct.attempts_used >= 1)) AS retries_left
FROM contacts ct JOIN campaigns c ON c.id = ct.campaign_id
WHERE ct.campaign_id = ANY($1::uuid[])
GROUP BY ct.campaign_id, ct.state

-- name: attempt_rates
SELECT count(*) AS attempts, count(*) FILTER (WHERE outcome = 'answered') AS answered
FROM attempts WHERE campaign_id = $1 AND state = 'final'

-- name: campaign_carriers
-- The carriers of each campaign's enabled caller IDs (each carrier once per campaign).
SELECT DISTINCT cn.campaign_id, n.carrier
FROM campaign_numbers cn JOIN numbers n ON n.number = cn.number
WHERE cn.campaign_id = ANY($1::uuid[]) AND n.enabled

-- name: open_attempts_by_carrier
SELECT carrier, count(*) AS n FROM attempts
WHERE state <> 'final' AND carrier IS NOT NULL GROUP BY carrier

-- name: attempt_outcomes
-- Final attempts of each campaign of $1 by outcome (attempts_report_idx), and for the abandon
-- rate the answered ones that ended since $2 and how many of those no worker could take.
SELECT campaign_id, outcome, count(*) AS n,
       count(*) FILTER (WHERE ended_at >= $2) AS recent,
       count(*) FILTER (WHERE ended_at >= $2 AND disposition = 'abandoned') AS abandoned
FROM attempts WHERE campaign_id = ANY($1::uuid[]) AND state = 'final'
GROUP BY campaign_id, outcome

-- name: call_page
-- A page of the call list (keyset pagination): the contacts after the one with id $2 in the
-- call list's order (line, creation, id; contacts added through the API, without a line,
-- last), optionally in one state ($3), at most $4. NULL $2: from the start; NULL $3, $4:
-- every state, no limit (the whole list, read with a cursor).
WITH after AS (
    SELECT coalesce(line_number, 2147483647)::bigint + (line_number IS NULL)::int AS line,
           created_at, id
    FROM contacts WHERE id = $2 AND campaign_id = $1
)
SELECT ct.id, ct.phone_number, ct.state, ct.state_reason, ct.attempts_used, ct.next_due_at,
       ct.line_number, la.outcome, la.sip_code, la.disposition, la.next_action, la.attempt_number,
       la.last_attempt_at
FROM contacts ct
LEFT JOIN LATERAL (
    SELECT a.outcome, a.sip_code, a.disposition, a.next_action, a.attempt_number,
           coalesce(a.ended_at, a.dialled_at, a.queued_at) AS last_attempt_at
    FROM attempts a WHERE a.contact_id = ct.id
    ORDER BY a.attempt_number DESC LIMIT 1
) la ON true
WHERE ct.campaign_id = $1
  AND ($3::text IS NULL OR ct.state = $3)
  AND ($2::uuid IS NULL OR
       (coalesce(ct.line_number, 2147483647)::bigint + (ct.line_number IS NULL)::int,
        ct.created_at, ct.id) > (SELECT line, created_at, id FROM after))
ORDER BY ct.line_number NULLS LAST, ct.created_at, ct.id
LIMIT $4

-- name: contact_in_campaign
-- A call-list cursor must be a contact of the campaign (else the page would be empty).
SELECT EXISTS (SELECT 1 FROM contacts WHERE id = $2 AND campaign_id = $1)
