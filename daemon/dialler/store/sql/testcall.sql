-- `dialler test-call`: one call outside any campaign, recorded in a per-bot campaign that is
-- never scheduled (state paused), so the attempt, its result and the report work as usual.

-- name: bot_by_name
SELECT id FROM bots WHERE name = $1

-- name: test_campaign
-- One per bot; paused forever (the scheduler only dials running campaigns), one attempt per
-- test call, no retries.
INSERT INTO campaigns (name, bot_id, state, concurrency, window_start, window_end, window_days,
                       timezone, ring_timeout_ms, retry_max_attempts, started_at)
VALUES ($1, $2, 'paused', 1, '00:00', '24:00', '{mon,tue,wed,thu,fri,sat,sun}', 'UTC', $3, 1,
        now())
ON CONFLICT (name) DO UPDATE SET ring_timeout_ms = EXCLUDED.ring_timeout_ms
RETURNING id

-- name: test_contact
-- The callee as a contact of the test campaign; refused (no row) while a test call to it is
-- still in flight.
INSERT INTO contacts (campaign_id, phone_number, state, lease_owner, lease_expires_at,
                      next_due_at)
VALUES ($1, $2, 'dialing', $3, now() + make_interval(secs => $4), NULL)
ON CONFLICT (campaign_id, phone_number) DO UPDATE
SET state = 'dialing', lease_owner = $3, lease_expires_at = now() + make_interval(secs => $4)
WHERE contacts.state NOT IN ('dialing', 'connected', 'wrapping')
RETURNING id

-- name: test_attempt
INSERT INTO attempts (id, contact_id, campaign_id, attempt_number, counts_toward_max,
                      caller_id, carrier, asterisk, daemon_id, state, dialled_at, deadline_at)
VALUES ($1, $2, $3,
        (SELECT coalesce(max(a.attempt_number), 0) + 1 FROM attempts a WHERE a.contact_id = $2),
        false, $4, $5, $6, $7, 'dialing', now(), now() + make_interval(secs => $8))

-- name: test_progress
SELECT a.state, a.worker, a.attached_at, a.outcome, a.sip_code, a.disposition, a.notes,
       a.duration_ms, a.audio_frames_sent, a.audio_frames_received
FROM attempts a WHERE a.id = $1
