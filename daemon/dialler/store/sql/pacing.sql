-- name: lock_pacing
-- The carriers' shared pacing rows, locked in carrier order (no deadlock between claimers of
-- several carriers) until the claim commits; with the database's clock, which every daemon
-- shares (their own clocks may disagree).
SELECT carrier, configured_rate, allowed_rate, tokens, refilled_at, dials, refusals,
       counted_since, changed_at, clock_timestamp() AS now
FROM carrier_pacing
WHERE carrier = ANY($1::text[])
ORDER BY carrier
FOR UPDATE

-- name: add_pacing
-- Carriers paced for the first time: a full bucket at their configured rate. A concurrent
-- first claim by another daemon wins; the rows are read again afterwards.
INSERT INTO carrier_pacing (carrier, configured_rate, allowed_rate, tokens, refilled_at,
                            counted_since)
SELECT c.carrier, c.rate, c.rate, c.burst, clock_timestamp(), clock_timestamp()
FROM unnest($1::text[], $2::float8[], $3::float8[]) AS c(carrier, rate, burst)
ORDER BY c.carrier
ON CONFLICT (carrier) DO NOTHING

-- name: save_pacing
-- All carriers' new state in one statement (the claim's refill, a throttling refusal).
UPDATE carrier_pacing p
SET configured_rate = s.configured, allowed_rate = s.allowed, tokens = s.tokens,
    refilled_at = s.refilled_at, dials = s.dials, refusals = s.refusals,
    counted_since = s.counted_since, changed_at = s.changed_at
FROM unnest($1::text[], $2::float8[], $3::float8[], $4::float8[], $5::timestamptz[],
            $6::int[], $7::int[], $8::timestamptz[], $9::timestamptz[])
     AS s(carrier, configured, allowed, tokens, refilled_at, dials, refusals, counted_since,
          changed_at)
WHERE p.carrier = s.carrier

-- name: lock_attempt_pacing
-- A throttling refusal's carrier (the attempt's own, as dialled) and its pacing row, locked.
SELECT p.carrier, p.configured_rate, p.allowed_rate, p.tokens, p.refilled_at, p.dials,
       p.refusals, p.counted_since, p.changed_at, clock_timestamp() AS now
FROM attempts a JOIN carrier_pacing p ON p.carrier = a.carrier
WHERE a.id = $1
FOR UPDATE OF p

-- name: requeue_tripping_refusals
-- The refusals that tripped a carrier's throttling (CONTRACT: they use up no attempt): the
-- carrier's throttling refusals finalised since $3 that were decided as ordinary attempts,
-- whose contact has not moved on since (its latest attempt, not claimed again) in a running
-- campaign, become `requeue` — their contact due again at $4, the attempt uncounted. Runs once
-- per trip (rare), by the report index (campaign_id, finalised_at) of running campaigns.
WITH hit AS (
    SELECT a.id, a.contact_id, a.counts_toward_max
    FROM campaigns c
    JOIN attempts a ON a.campaign_id = c.id AND a.finalised_at >= $3
    JOIN contacts ct ON ct.id = a.contact_id
    WHERE c.state = 'running'
      AND a.carrier = $1 AND a.state = 'final' AND a.outcome = 'rejected'
      AND a.sip_code = ANY($2::int[])
      AND a.next_action IN ('retry', 'exhausted', 'done')
      AND ct.state IN ('retry_scheduled', 'exhausted', 'done')
      AND a.attempt_number = (SELECT max(b.attempt_number) FROM attempts b
                              WHERE b.contact_id = a.contact_id)
    FOR UPDATE OF a, ct SKIP LOCKED
), requeued AS (
    UPDATE attempts a
    SET next_action = 'requeue', next_at = $4, counts_toward_max = false
    FROM hit WHERE a.id = hit.id
)
UPDATE contacts ct
SET state = 'pending', next_due_at = $4, state_reason = NULL,
    attempts_used = ct.attempts_used - hit.counts_toward_max::int
FROM hit WHERE ct.id = hit.contact_id
RETURNING ct.id

-- name: pacing_states
-- Every paced carrier's state, read (not locked): `campaign show`, the metrics.
SELECT carrier, configured_rate, allowed_rate, tokens, refilled_at, dials, refusals,
       counted_since, changed_at, clock_timestamp() AS now
FROM carrier_pacing
ORDER BY carrier
