-- The attempt report (CONTRACT.md, "Attempt report"). Both queries are read with a cursor.

-- name: contact_variables
-- Every contact's variables, in import order, to find the variable columns in first-seen
-- order (json keeps the CSV's column order; jsonb would not).
SELECT variables FROM contacts WHERE campaign_id = $1
ORDER BY created_at, line_number NULLS LAST, id

-- name: final_attempts
-- Only attempts with a final result (attempts_report_idx), oldest first.
SELECT a.campaign_id, a.contact_id, a.id AS attempt_id, a.attempt_number, ct.phone_number,
       a.caller_id, a.carrier, a.dialled_at, a.answered_at, a.ended_at, a.duration_ms,
       a.sip_code, a.outcome, a.disposition, a.worker, a.next_action, a.next_at, a.asterisk,
       ct.variables
FROM attempts a JOIN contacts ct ON ct.id = a.contact_id
WHERE a.campaign_id = $1 AND a.state = 'final'
ORDER BY a.finalised_at, a.id
