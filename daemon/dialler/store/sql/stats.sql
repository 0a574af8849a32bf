-- Live activity and stats of campaigns (`campaign show`, `calls`). See docs/engine.md.

-- name: contact_counts
-- One scan of the campaign's contacts (contacts_campaign_state_idx) for the whole grid.
SELECT state, count(*) AS n,
       count(*) FILTER (WHERE state IN ('pending', 'retry_scheduled', 'callback_scheduled')
                         AND next_due_at <= now()) AS due,
       sum(GREATEST(0, $2 - attempts_used)) FILTER (
           WHERE state IN ('retry_scheduled', 'callback_scheduled')
              OR (state = 'pending' AND attempts_used >= 1)) AS retries_left
FROM contacts WHERE campaign_id = $1
GROUP BY state

-- name: attempt_rates
SELECT count(*) AS attempts, count(*) FILTER (WHERE outcome = 'answered') AS answered
FROM attempts WHERE campaign_id = $1 AND state = 'final'

-- name: campaign_carrier_capacity
-- Channels the campaign's enabled caller IDs' carriers offer (each carrier counted once).
SELECT DISTINCT n.carrier
FROM campaign_numbers cn JOIN numbers n ON n.number = cn.number
WHERE cn.campaign_id = $1 AND n.enabled

-- name: open_attempts_by_carrier
SELECT carrier, count(*) AS n FROM attempts
WHERE state <> 'final' AND carrier IS NOT NULL GROUP BY carrier

-- name: call_list
-- The call list: every contact with its state, attempts used and its last attempt's result.
SELECT ct.id, ct.phone_number, ct.state, ct.attempts_used, ct.next_due_at, ct.line_number,
       la.outcome, la.sip_code, la.disposition, la.next_action, la.attempt_number
FROM contacts ct
LEFT JOIN LATERAL (
    SELECT a.outcome, a.sip_code, a.disposition, a.next_action, a.attempt_number
    FROM attempts a WHERE a.contact_id = ct.id
    ORDER BY a.attempt_number DESC LIMIT 1
) la ON true
WHERE ct.campaign_id = $1
ORDER BY ct.line_number NULLS LAST, ct.created_at, ct.id
